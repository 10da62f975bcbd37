"""The on-disk format of a recording, and the checks on every byte read from it.

On-disk format (a directory, conventionally named ``*.rec``; version 2)::

    run.rec/
        manifest.json        format tag, version, metadata, series table, completion state
        commit               per series file the snapshots written, the step every series is
                             whole up to, CRC-32 of the manifest (of both while one replaces
                             the other); its own CRC-32 last
        lock                 pid of the writer, which holds an OS lock (flock) on it
        s0000.steps          16-byte header + int64[T]          (little endian)
        s0000.values         16-byte header + dtype[T, *shape]  (raw, C order)
        s0000.crc            16-byte header + (first, count, crc32 steps, crc32 values) per block
        s0001.steps ...

    header: 8-byte magic, record size (6 bytes), dtype kind and item size (1 byte each)

Why this format (measured and argued in README.md, "Recordings on disk"):

* Appending is a plain ``write`` at the end of the files, so memory stays bounded by the
  write buffer whatever the number of steps, and the cost per snapshot is a memcpy.
* A process killed mid-run (even by SIGKILL) leaves every ``write`` that returned in the
  page cache, but series end at different steps (a kill test found parameters at 124
  snapshots, the loss at 122). So the writer commits, after the data: the loader of an
  unclosed recording cuts every series to the last committed step. The manifest and the
  commit are only ever replaced atomically (write to a temporary file, then rename).
* Bit flips load as data unless something checks: a CRC-32 per block, computed on the
  writer's threads, is checked by ``load(verify=True)`` and ``python -m dynamics.check``,
  and so is the manifest's, held by every commit: one flip renamed ``loss`` to ``lmss`` in
  an unclosed recording that verified intact when only closed ones had it checked.
* A recording is read no further than it holds on disk: a 36 kB forgery (files extended
  without being written, counts to match) took over 8 GB to load, one claiming a 1 TiB matrix
  had a scene read it. Holes may be at most 16 MiB and 16 times what the files hold.
* Values are memory-mapped: a scene touches only the frames it draws, so a recording
  larger than memory renders. No pickle, no torch: JSON and raw arrays only.
* No extra dependency (HDF5 needs h5py and its single-writer rules; a crash during an
  HDF5 write can corrupt the whole file; zarr would add a dependency to do the same job).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .model import KINDS, SUMMARISED, RecordingError, RecordingNotFound

FORMAT = "nndynamics-recording"
VERSION = 2  # 2: checksums, commit file, dtype in headers, lock (1 still loads)
MANIFEST = "manifest.json"
_HEADER_SIZE = 16
_STEPS_MAGIC = b"NNDYNSTP"
_VALUES_MAGIC = b"NNDYNVAL"
_CRC_MAGIC = b"NNDYNCRC"


# -- reading: every byte from disk is checked before it is used -------------------------
#
# Fuzzing the loader with 1232 mutated recordings found 147 inputs that raised something
# other than RecordingError (negative dimensions, OverflowError from memmap, a NaN count,
# JSON nested 100 000 deep, a 5000-digit integer, a FIFO that blocked forever, 510 series
# exhausting 1024 file descriptors ...). So: the whole manifest is validated before any
# file is opened, series files are opened without following links or blocking and must
# be regular files, and values are mapped without keeping a descriptor open. A fault harness
# then made small recordings cost seconds and gigabytes (sparse files with forged counts, a
# 1 TiB checksum table, a manifest of escaped quotes that a regular expression took
# quadratic time over): every count is checked against the files' sizes and holes before
# anything is read or allocated, and the checksum table is read a batch at a time.

_MAX_MANIFEST_BYTES = 8 << 20  # a manifest is a few kB; metadata a few MB at most
_MAX_JSON_DEPTH = 64
_MAX_NDIM = 32
_MAX_RECORD_BYTES = (1 << 48) - 1  # what the 6-byte size field of a header holds
# holes (bytes never written) a recording's files may have among those their counts need:
# reading and checksumming 32 MiB of holes took 25 ms each; a recording under 1 MB on disk
# then loads or is refused in milliseconds, and a 36 kB one claiming a 1 TiB snapshot is refused
_HOLE_SLACK = 16 << 20
_HOLE_RATIO = 16
_STEM = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_CRC_RECORD = struct.Struct("<qqII")  # first snapshot, count, crc32 of steps bytes, of values bytes
_COMMIT = "commit"
try:  # zlib-ng's CRC-32: the same checksum as zlib's, 7x faster here (30 against 4.2 GB/s)
    from zlib_ng.zlib_ng import crc32 as _fast_crc32
except ImportError:  # pragma: no cover - zlib-ng is an install requirement
    _fast_crc32 = zlib.crc32
_LOCK = "lock"
#: dtypes a series may have: numeric and bool, little endian (what every reader maps).
DTYPES = frozenset(
    {
        "|b1",
        "|i1",
        "|u1",
        "<i2",
        "<u2",
        "<i4",
        "<u4",
        "<i8",
        "<u8",
        "<f2",
        "<f4",
        "<f8",
        "<c8",
        "<c16",
    }
)


def _header(magic: bytes, record_size: int, dtype: np.dtype | None = None) -> bytes:
    """16 bytes: magic, record size (6 bytes), dtype kind and item size (version 2)."""
    kind, size = (ord(dtype.kind), dtype.itemsize) if dtype is not None else (0, 0)
    return magic + record_size.to_bytes(6, "little") + bytes((kind, size))


def _is_int(x) -> bool:
    return type(x) is int  # bool is an int subclass: refused


def _open_file(path: Path, what: str) -> tuple[int, os.stat_result]:
    """Open a file of a recording for reading: never follows a link, never blocks (a FIFO),
    refuses anything but a regular file. Returns the descriptor and its stat."""
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise RecordingError(f"{path}: {what} is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RecordingError(
                f"{path}: {what} is a symbolic link (files of a recording must be "
                "regular files inside its directory)"
            ) from None
        raise RecordingError(f"{path}: cannot open {what} ({exc.strerror or exc})") from None
    except ValueError as exc:  # embedded null byte
        raise RecordingError(f"{path!r}: cannot open {what} ({exc})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise RecordingError(f"{path}: {what} is not a regular file")
    return fd, st


def _pread(fd: int, size: int, offset: int, path: Path) -> bytes:
    out, done = [], 0
    while done < size:
        chunk = os.pread(fd, min(size - done, 1 << 26), offset + done)
        if not chunk:
            raise RecordingError(f"{path}: file shrank while being read")
        out.append(chunk)
        done += len(chunk)
    return b"".join(out)


def _pread_into(fd: int, out: np.ndarray, offset: int, path: Path) -> None:
    """Fill ``out`` (C-contiguous) from ``fd`` at ``offset``, without an intermediate copy."""
    view, done = memoryview(out).cast("B"), 0
    while done < len(view):
        part = view[done : done + (1 << 26)]
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [part], offset + done)
        else:  # pragma: no cover - Windows, older macOS
            chunk = os.pread(fd, len(part), offset + done)
            got = len(chunk)
            part[:got] = chunk
        if not got:
            raise RecordingError(f"{path}: file shrank while being read")
        done += got


def _read_small(path: Path, what: str, limit: int) -> bytes:
    fd, st = _open_file(path, what)
    try:
        if st.st_size > limit:
            raise RecordingError(
                f"{path}: {what} is {st.st_size} bytes, more than the {limit} a recording writes"
            )
        return _pread(fd, st.st_size, 0, path)
    finally:
        os.close(fd)


def _nested_deeper(doc, limit: int) -> bool:
    """Whether containers in ``doc`` nest more than ``limit`` deep, walked level by level.

    Measured on the parsed document: a regular expression that stripped strings before
    counting brackets went quadratic on ``"\\"\\"\\"...`` (a 40 kB manifest took 10 s), and
    the parser itself refuses nesting past the interpreter's recursion limit. Only non-empty
    containers are kept for the next level: 8 MiB of ``{},`` adds no memory to the parse."""
    level, depth = [doc], 1
    while level:
        if depth > limit:
            return True
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:  # what json.loads makes
                    if depth == limit:
                        return True
                    if child:
                        below.append(child)
        level, depth = below, depth + 1
    return False


def _parse_json(data: bytes, path: Path, what: str):
    deep = RecordingError(f"{path}: {what} is nested more than {_MAX_JSON_DEPTH} levels deep")
    try:
        doc = json.loads(data.decode("utf-8"))
    except RecursionError:  # nested past the parser's limit (the interpreter's)
        raise deep from None
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: bad JSON, huge int
        raise RecordingError(f"{path}: {what} is not valid JSON ({exc})") from None
    if isinstance(doc, (dict, list)) and _nested_deeper(doc, _MAX_JSON_DEPTH):
        raise deep
    return doc


@dataclass(frozen=True)
class _Spec:
    name: str
    stem: str
    dtype: np.dtype
    shape: tuple[int, ...]
    info: dict

    @property
    def record_size(self) -> int:
        return self.dtype.itemsize * math.prod(self.shape)


@dataclass
class _Manifest:
    path: Path
    raw: bytes
    version: int
    complete: bool
    metadata: dict
    series: list[_Spec]
    counts: dict[str, int] | None  # by series name; closed recordings only


def _read_manifest(root: Path) -> _Manifest:
    """The manifest of ``root``, validated field by field (RecordingError on anything off)."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise RecordingNotFound(f"{root}: no such recording") from None
    except (OSError, ValueError) as exc:
        raise RecordingError(
            f"{root!r}: cannot read ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise RecordingError(f"{root}: not a recording (expected a directory holding {MANIFEST})")
    mpath = root / MANIFEST
    try:
        raw = _read_small(mpath, "manifest", _MAX_MANIFEST_BYTES)
    except RecordingError as exc:
        if not os.path.lexists(mpath):
            raise RecordingError(f"{root}: not a recording ({MANIFEST} is missing)") from None
        raise exc from None
    m = _parse_json(raw, mpath, "manifest")
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise RecordingError(f"{mpath}: not a {FORMAT} manifest (format tag missing or foreign)")

    def bad(what: str):
        return RecordingError(f"{mpath}: {what}")

    version = m.get("version")
    if not _is_int(version) or version not in (1, VERSION):
        raise bad(f"unsupported format version {version!r} (this reader knows 1 and {VERSION})")
    complete = m.get("complete", False)
    if type(complete) is not bool:
        raise bad(f"'complete' must be true or false, got {complete!r}")
    metadata = m.get("metadata", {})
    if not isinstance(metadata, dict):
        raise bad(f"'metadata' must be a mapping, got {type(metadata).__name__}")
    table = m.get("series")
    if not isinstance(table, dict):
        raise bad("manifest has no series table")
    specs, stems = [], set()
    for name, spec in table.items():

        def field(what, name=name):
            return bad(f"series {name!r}: {what}")

        if not isinstance(spec, dict):
            raise field("entry is not a mapping")
        stem = spec.get("file")
        if not isinstance(stem, str) or not _STEM.match(stem):
            raise field(f"unsafe or malformed file name {stem!r}")
        if stem in stems:
            raise field(f"file {stem!r} is used by another series")
        stems.add(stem)
        dtype = spec.get("dtype")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise field(f"dtype {dtype!r} is not one of {', '.join(sorted(DTYPES))}")
        shape = spec.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) > _MAX_NDIM
            or not all(_is_int(d) and 0 <= d <= _MAX_RECORD_BYTES for d in shape)
        ):
            raise field(
                f"shape {shape!r} is not a list of at most {_MAX_NDIM} non-negative integers"
            )
        dt = np.dtype(dtype)
        if dt.itemsize * math.prod(shape) > _MAX_RECORD_BYTES:
            raise field(f"snapshots of shape {shape} are larger than a series file can hold")
        info = {}
        for key in ("kind", "source", "of"):
            if key in spec:
                if not isinstance(spec[key], str):
                    raise field(f"{key!r} must be a string, got {spec[key]!r}")
                info[key] = spec[key]
        if info.get("kind") and info["kind"] not in KINDS:
            raise field(f"kind {info['kind']!r} is not one of {', '.join(KINDS)}")
        if info.get("of") and info["of"] not in SUMMARISED:
            raise field(f"'of' {info['of']!r} is not one of {', '.join(SUMMARISED)}")
        specs.append(_Spec(name, stem, dt, tuple(shape), info))
    counts = None
    if complete:
        counts = m.get("counts")
        if not isinstance(counts, dict):
            raise bad(
                "a complete recording must record its counts "
                "(a mapping of series to snapshot counts)"
            )
        for spec in specs:
            if spec.name not in counts:
                raise bad(f"complete recording lacks the count of series {spec.name!r}")
            if not _is_int(counts[spec.name]) or counts[spec.name] < 0:
                raise bad(
                    f"count of series {spec.name!r} must be a non-negative integer, got "
                    f"{counts[spec.name]!r}"
                )
        extra = set(counts) - {s.name for s in specs}
        if extra:
            raise bad(
                f"counts name series that the table lacks: {', '.join(map(repr, sorted(extra)))}"
            )
    return _Manifest(mpath, raw, version, complete, metadata, specs, counts)


@dataclass
class _Commit:
    step: int | None  # every series is complete up to this step (None: nothing yet)
    counts: dict[str, int]  # snapshots written per series file stem
    manifest_crc32: int  # the newest manifest it covers (what earlier readers check)
    # every manifest it covers: the one on disk, and during a rewrite the one replacing it;
    # None in commits of earlier writers, which covered the manifest of closed recordings only
    manifest_crc32s: tuple[int, ...] | None


def _commit_bytes(step: int | None, counts: Mapping[str, int], manifest_crc32s) -> bytes:
    body = json.dumps(
        {
            "step": step,
            "counts": dict(counts),
            "manifest_crc32": manifest_crc32s[-1],
            "manifest_crc32s": list(manifest_crc32s),
        },
        separators=(",", ":"),
    ).encode()
    return body + b"\n%08x\n" % zlib.crc32(body)


def _read_commit(root: Path, stems: set[str], strict: bool) -> _Commit:
    path = root / _COMMIT
    data = _read_small(path, "commit file", _MAX_MANIFEST_BYTES)
    body, nl, crc = data[:-1].rpartition(b"\n")
    if not (data.endswith(b"\n") and nl and re.fullmatch(rb"[0-9a-f]{8}", crc)) or int(
        crc, 16
    ) != zlib.crc32(body):
        raise RecordingError(f"{path}: commit file is damaged (its checksum does not match)")
    c = _parse_json(body, path, "commit file")
    if not isinstance(c, dict) or not isinstance(c.get("counts"), dict):
        raise RecordingError(f"{path}: commit file has no counts")
    step, counts, mcrc = c.get("step"), c["counts"], c.get("manifest_crc32")
    if not (step is None or _is_int(step)) or not _is_int(mcrc):
        raise RecordingError(f"{path}: commit file has a malformed step or manifest checksum")
    mcrcs = c.get("manifest_crc32s")
    if mcrcs is not None and not (
        isinstance(mcrcs, list) and 1 <= len(mcrcs) <= 2 and all(_is_int(x) for x in mcrcs)
    ):
        raise RecordingError(f"{path}: commit file has malformed manifest checksums")
    for stem, n in counts.items():
        if stem not in stems and strict:
            raise RecordingError(
                f"{path}: commit names series file {stem!r}, which the manifest lacks"
            )
        if not _is_int(n) or n < 0:
            raise RecordingError(
                f"{path}: count of {stem!r} must be a non-negative integer, got {n!r}"
            )
    return _Commit(step, counts, mcrc, None if mcrcs is None else tuple(mcrcs))


def _check_header(
    path: Path, header: bytes, magic: bytes, record_size: int, dtype: np.dtype | None, version: int
) -> None:
    if len(header) < _HEADER_SIZE or header[:8] != magic:
        raise RecordingError(f"{path}: not a series file of this format (bad header)")
    if version == 1:
        stored, tail = int.from_bytes(header[8:16], "little"), b"\0\0"
    else:
        stored, tail = int.from_bytes(header[8:14], "little"), header[14:16]
    if stored != record_size:
        raise RecordingError(
            f"{path}: header says {stored}-byte records, manifest implies {record_size}"
        )
    if version > 1 and tail != _header(magic, record_size, dtype)[14:]:
        raise RecordingError(
            f"{path}: header says another dtype than the manifest's {dtype.str if dtype else ''}"
        )
