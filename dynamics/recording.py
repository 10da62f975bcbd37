"""Recordings: named series of snapshots plus JSON metadata, streamed to disk and read lazily.

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

import collections
import concurrent.futures
import contextlib
import ctypes
import difflib
import errno
import fnmatch
import json
import math
import mmap
import os
import queue
import re
import shutil
import stat
import struct
import sys
import tempfile
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

try:
    import fcntl
except ImportError:  # Windows: no writer lock
    fcntl = None

import numpy as np

FORMAT = "nndynamics-recording"
VERSION = 2  # 2: checksums, commit file, dtype in headers, lock (1 still loads)
MANIFEST = "manifest.json"
_HEADER_SIZE = 16
_STEPS_MAGIC = b"NNDYNSTP"
_VALUES_MAGIC = b"NNDYNVAL"
_CRC_MAGIC = b"NNDYNCRC"

__all__ = [
    "KINDS",
    "Recording",
    "RecordingError",
    "RecordingNotFound",
    "RecordingExists",
    "RecordingWriter",
    "MemoryWriter",
    "Series",
    "Summary",
    "load",
    "verify",
    "to_jsonable",
]


#: What a series holds, written by the recorder into the manifest so that renderers and
#: exporters read roles instead of parsing names. ``""`` is "not said" (a series appended
#: by hand); readers then go by shape alone.
KINDS = {
    "parameter": "a model parameter (source: its name in named_parameters())",
    "gradient": "the gradient of a parameter (source: the parameter's name)",
    "buffer": "a module buffer such as BatchNorm's running_mean (source: its name)",
    "derived": "a function of the model given to Recorder(derived=...)",
    "scalar": "a number logged with Recorder.log()",
    "stats": "mean, std, min, max of a tensor (source: the tensor; of: what it is)",
    "histogram": "histogram counts of a tensor (source, of: as for stats)",
    "edges": "bin edges of those counts, when the bins adapt per step",
    "activation": "the output of a module (source: the module's name)",
    "data": "data recorded beside the run with Recorder.put() (a training set)",
}
#: What a summarised tensor is (the ``of`` of stats, histogram and edges series).
SUMMARISED = ("parameter", "gradient", "activation")


class RecordingError(ValueError):
    """A recording on disk is missing, truncated, foreign, unsafe, damaged or inconsistent,
    or is being written by another process."""


class RecordingNotFound(RecordingError, FileNotFoundError):
    """No recording at that path (also a FileNotFoundError, as before it was a RecordingError)."""


class RecordingExists(RecordingError, FileExistsError):
    """Something is already at the path a writer was asked to create (also a
    FileExistsError, which it was before it was a RecordingError)."""


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths inside ``obj`` to plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no inf/nan; keep them readable
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"metadata value {obj!r} of type {type(obj).__name__} is not JSON-able")


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One named quantity over training.

    Attributes
    ----------
    steps : (T,) int64
        Training step of each snapshot, increasing.
    values : (T, *shape) array
        Snapshot values; step is always the first axis. A ``numpy.memmap`` for recordings
        loaded from disk, so only the rows that are indexed are read.
    kind : str
        What the series holds, one of :data:`KINDS` (``""``: not said).
    source : str
        The parameter, buffer or module it comes from (``""`` when not applicable).
    of : str
        For ``stats``, ``histogram`` and ``edges``: what was summarised (``parameter``,
        ``gradient`` or ``activation``).
    """

    steps: np.ndarray
    values: np.ndarray
    kind: str = ""
    source: str = ""
    of: str = ""

    def __post_init__(self):
        if self.kind and self.kind not in KINDS:
            raise ValueError(f"series kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.of and self.of not in SUMMARISED:
            raise ValueError(
                f"a summary's 'of' must be one of {', '.join(SUMMARISED)}, got {self.of!r}"
            )

    @property
    def info(self) -> dict[str, str]:
        """``kind``, ``source`` and ``of``, only those that are set (as in the manifest)."""
        return {
            k: v for k, v in (("kind", self.kind), ("source", self.source), ("of", self.of)) if v
        }

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one snapshot."""
        return tuple(self.values.shape[1:])

    def nearest_index(self, step: int | np.ndarray) -> int | np.ndarray:
        """Index of the snapshot whose step is closest to ``step`` (ties go to the earlier)."""
        if len(self.steps) == 0:
            raise IndexError("series is empty")
        step_arr = np.asarray(step)
        right = np.clip(np.searchsorted(self.steps, step_arr, side="left"), 0, len(self.steps) - 1)
        left = np.clip(right - 1, 0, len(self.steps) - 1)
        pick_left = np.abs(step_arr - self.steps[left]) <= np.abs(self.steps[right] - step_arr)
        idx = np.where(pick_left, left, right)
        return int(idx) if np.ndim(idx) == 0 else idx

    def at(self, step: int) -> np.ndarray:
        """Values of the snapshot nearest to ``step``."""
        return np.asarray(self.values[self.nearest_index(step)])

    def between(self, start: int | None = None, stop: int | None = None) -> "Series":
        """Snapshots with ``start <= step < stop`` (either bound may be None)."""
        lo = 0 if start is None else int(np.searchsorted(self.steps, start, side="left"))
        hi = (
            len(self.steps) if stop is None else int(np.searchsorted(self.steps, stop, side="left"))
        )
        return Series(self.steps[lo:hi], self.values[lo:hi], **self.info)

    def resample(self, steps: Iterable[int]) -> "Series":
        """The snapshot nearest to each of ``steps`` (values are read, not interpolated)."""
        idx = np.atleast_1d(self.nearest_index(np.asarray(list(steps), dtype=np.int64)))
        return Series(self.steps[idx], np.asarray(self.values[idx]), **self.info)


class Recording:
    """Named series plus JSON metadata: the contract between capture and rendering.

    Parameters
    ----------
    series : mapping of str to Series
    metadata : dict
        JSON-able: experiment name, resolved config, seed, versions, scene references.
    complete : bool
        False for a recording whose writer never closed (a crash or an interrupt); it then
        holds everything up to the last flushed snapshot.
    path : Path, optional
        Where the recording lives on disk, if it was loaded from there.
    committed_step : int, optional
        For a recording loaded from disk: the last step its writer committed (every series
        holds all of its snapshots up to this step and none after it); None before the
        first commit, or for a recording not from disk.
    """

    def __init__(
        self,
        series: Mapping[str, Series],
        metadata: Mapping[str, Any] | None = None,
        *,
        complete: bool = True,
        path: Path | None = None,
        committed_step: int | None = None,
    ):
        self._series = dict(series)
        self.metadata = dict(metadata or {})
        self.complete = complete
        self.path = path
        self.committed_step = committed_step

    # -- access ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Series:
        try:
            return self._series[name]
        except KeyError:
            raise KeyError(self._missing_message([name])) from None

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def __iter__(self) -> Iterator[str]:
        return iter(self._series)

    def __len__(self) -> int:
        return len(self._series)

    def keys(self) -> list[str]:
        return list(self._series)

    def items(self):
        return self._series.items()

    def select(self, *patterns: str) -> dict[str, Series]:
        """Series whose names match any of the shell-style ``patterns`` (``"grad/*"``)."""
        return {
            k: s
            for k, s in self._series.items()
            if any(fnmatch.fnmatchcase(k, p) for p in patterns)
        }

    def of_kind(self, *kinds: str) -> dict[str, Series]:
        """Series whose kind is one of ``kinds`` (``of_kind("scalar")``), in recording order."""
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown series kind {unknown[0]!r}; kinds are {', '.join(KINDS)}")
        return {k: s for k, s in self._series.items() if s.kind in kinds}

    def summaries(self) -> dict[str, "Summary"]:
        """Every summarised tensor: its ``stats``, ``histogram`` and (adaptive bins) ``edges``
        series, paired by their ``of`` and ``source`` as the recorder wrote them (not by name).
        Keys are labels such as ``"conv1.weight"``, ``"gradient of conv1.weight"``,
        ``"activation conv1"``."""
        parts: dict[tuple[str, str], dict[str, str]] = {}
        for name, s in self._series.items():
            if s.kind in ("stats", "histogram", "edges"):
                parts.setdefault((s.of, s.source), {})[s.kind] = name
        fixed = ((self.metadata.get("recorder") or {}).get("summaries") or {}).get("edges")
        out = {}
        for (of, source), names in parts.items():
            if (
                "stats" in names
                and "histogram" in names
                and ("edges" in names or fixed is not None)
            ):
                summary = Summary(
                    of, source, names["stats"], names["histogram"], names.get("edges"), fixed
                )
                out[summary.label] = summary
        return out

    def require(self, *names: str) -> None:
        """Raise KeyError naming every one of ``names`` that this recording lacks."""
        missing = [n for n in names if n not in self._series]
        if missing:
            raise KeyError(self._missing_message(missing))

    def _missing_message(self, names: list[str]) -> str:
        """One line: the missing names, then what there is (a few series: all of them;
        many, as a real model has: the closest names and the count)."""
        where = f" {self.path}" if self.path else ""
        have = list(self._series)
        if len(have) <= 12:
            there = f"it has: {', '.join(have) or 'none'}"
        else:
            close = dict.fromkeys(
                m for n in names for m in difflib.get_close_matches(n, have, 3, 0.6)
            )
            there = (f"closest: {', '.join(map(repr, close))} " if close else "") + (
                f"({len(have)} series in all, e.g. {', '.join(have[:3])})"
            )
        return f"recording{where} has no series {', '.join(map(repr, names))}; {there}"

    def __repr__(self) -> str:
        parts = [f"{k}: {len(s)}x{s.shape}" for k, s in self._series.items()]
        state = "" if self.complete else ", incomplete"
        return f"Recording({', '.join(parts)}{state})"

    # -- persistence -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: bool = False) -> "Recording":
        """Open a recording directory written by :class:`RecordingWriter` (lazy, no pickle)."""
        return load(path, verify=verify)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, chunk: int = 256) -> Path:
        """Write this recording to ``path`` (a directory), ``chunk`` snapshots at a time."""
        with RecordingWriter(path, self.metadata, overwrite=overwrite) as writer:
            for name, s in self._series.items():
                writer.declare(name, s.values.dtype, s.shape, **s.info)
                for lo in range(0, len(s), chunk):
                    writer.extend(
                        name, s.steps[lo : lo + chunk], np.asarray(s.values[lo : lo + chunk])
                    )
        return Path(path)


@dataclass(frozen=True)
class Summary:
    """The series that summarise one tensor (see :meth:`Recording.summaries`).

    Attributes
    ----------
    of : str
        ``parameter``, ``gradient`` or ``activation``.
    source : str
        The parameter or module name.
    stats, histogram : str
        Names of the ``(4,)`` mean/std/min/max series and of the counts series.
    edges : str or None
        Name of the per-step bin edges series (adaptive bins), else None.
    fixed_edges : list of float or None
        The bins shared by every step when ``edges`` is None.
    """

    of: str
    source: str
    stats: str
    histogram: str
    edges: str | None = None
    fixed_edges: list | None = None

    @property
    def label(self) -> str:
        return {
            "parameter": self.source,
            "gradient": f"gradient of {self.source}",
            "activation": f"activation {self.source}",
        }.get(self.of, self.source)

    def read(self, recording: Recording) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``steps (T,)``, ``counts (T, bins)`` and ``edges`` (``(T, bins + 1)`` or
        ``(bins + 1,)``)."""
        hist = recording[self.histogram]
        edges = recording[self.edges].values if self.edges else self.fixed_edges
        return np.asarray(hist.steps), np.asarray(hist.values), np.asarray(edges, dtype=float)


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
_crc32 = _fast_crc32  # the writer's checksum (benchmarks/recording_format.py swaps it to time it)
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


class _SeriesFile:
    """One open series file whose header was checked: ``records`` whole records follow it."""

    def __init__(self, path: Path, magic: bytes, record_size: int, dtype, version: int):
        self.path, self.record_size = path, record_size
        self.fd, st = _open_file(path, "series file")
        try:
            _check_header(
                path, os.pread(self.fd, _HEADER_SIZE, 0), magic, record_size, dtype, version
            )
        except BaseException:
            os.close(self.fd)
            raise
        self.st, self.size = st, st.st_size
        self.records = (
            (self.size - _HEADER_SIZE) // record_size if record_size else None
        )  # None: any number

    def has_exactly(self, n: int) -> bool:
        return self.size == _HEADER_SIZE + n * self.record_size

    def unwritten(self, n: int) -> tuple[int, int]:
        """Bytes of holes among the bytes that ``n`` records need, and those bytes."""
        end = _HEADER_SIZE + n * self.record_size
        return _unwritten(self.fd, self.st, end), end

    def close(self) -> None:
        os.close(self.fd)


def _map_values(vfile: _SeriesFile, n: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """``n`` snapshots of a values file as a read-only array that is read on demand.

    A ``numpy.memmap`` keeps a duplicate of the file descriptor open for as long as the
    array lives (Python's mmap object holds one), so a recording of ~510 series exhausted
    a 1024-descriptor limit. On 64-bit POSIX the file is mapped with the C library's
    ``mmap`` instead and the descriptor closed at once; the mapping is released when the
    last view of it is gone. The result is still a ``numpy.memmap`` (without a backing
    mmap object), so slicing and reductions behave as before.
    """
    length = _HEADER_SIZE + n * vfile.record_size
    if _libc_mmap() is None:  # Windows, 32-bit: numpy's memmap (one descriptor per series)
        return np.memmap(vfile.path, dtype=dtype, mode="r", offset=_HEADER_SIZE, shape=(n, *shape))
    mmap_fn, munmap_fn = _libc_mmap()
    addr = mmap_fn(None, length, mmap.PROT_READ, mmap.MAP_SHARED, vfile.fd, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        err = ctypes.get_errno()
        raise RecordingError(f"{vfile.path}: cannot map the values ({os.strerror(err)})")
    buf = (ctypes.c_char * length).from_address(addr)
    weakref.finalize(buf, munmap_fn, addr, length)
    arr = np.frombuffer(buf, dtype=dtype, count=n * math.prod(shape), offset=_HEADER_SIZE).reshape(
        n, *shape
    )
    arr.flags.writeable = False
    arr = arr.view(np.memmap)
    arr.filename, arr.offset, arr.mode = str(vfile.path), _HEADER_SIZE, "r"
    return arr


_LIBC_MMAP: list = []


def _libc_mmap():
    if not _LIBC_MMAP:
        fns = None
        if os.name == "posix" and sys.maxsize > 2**32:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                mmap_fn, munmap_fn = libc.mmap, libc.munmap
                mmap_fn.restype, munmap_fn.restype = ctypes.c_void_p, ctypes.c_int
                mmap_fn.argtypes = [
                    ctypes.c_void_p,
                    ctypes.c_size_t,
                    ctypes.c_int,
                    ctypes.c_int,
                    ctypes.c_int,
                    ctypes.c_int64,
                ]
                munmap_fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
                fns = (mmap_fn, munmap_fn)
            except (OSError, AttributeError):
                fns = None
        _LIBC_MMAP.append(fns)
    return _LIBC_MMAP[0]


@dataclass
class _Opened:
    manifest: _Manifest
    commit: _Commit | None
    counts: dict[str, int]  # snapshots of each series (by name) before the commit-step cut


def _open(root: Path) -> tuple[_Opened, Recording]:
    """Read and check ``root``: every count it claims against the files' sizes and holes
    before anything is read or allocated. A series whose files have holes is read only once
    every file's are known (and few)."""
    man = _read_manifest(root)
    commit = None
    if man.version > 1:
        # a recording being written may have a newer commit than the manifest read just
        # before it: one that counts a series declared since is not an error then
        commit = _read_commit(root, {s.stem for s in man.series}, strict=man.complete)
    if man.complete and commit is not None:
        for s in man.series:
            if commit.counts.get(s.stem, 0) != man.counts[s.name]:
                raise RecordingError(
                    f"{root / _COMMIT}: commits {commit.counts.get(s.stem, 0)} snapshots of series "
                    f"{s.name!r}, the manifest records {man.counts[s.name]}"
                )
    used: dict[str, int] = {}
    needed, holes = 0, []  # bytes the counts need in all; files with holes
    read: dict[str, Series] = {}
    for spec in man.series:
        with _series_files(root, spec, man.version) as (sfile, vfile):
            used[spec.name] = n = _count(man, commit, spec, sfile, vfile)
            (sh, send), (vh, vend) = sfile.unwritten(n), vfile.unwritten(n)
            needed += send + vend
            if sh or vh:
                what = f"{n} snapshots of {spec.dtype.str}{list(spec.shape)}"
                holes += [(sh, send, sfile.path, f"the steps of {n} snapshots")]
                holes += [(vh, vend, vfile.path, what)]
            else:  # reading it costs what it holds on disk
                read[spec.name] = _read_series(man, commit, spec, sfile, vfile, n)
    _refuse_sparse(holes, needed)
    for spec in man.series:  # those with holes, once all of them are known to be few
        if spec.name not in read:
            with _series_files(root, spec, man.version) as (sfile, vfile):
                n = used[spec.name]
                for f in (sfile, vfile):
                    if f.records is not None and f.records < n:
                        raise RecordingError(f"{f.path}: file shrank while being read")
                read[spec.name] = _read_series(man, commit, spec, sfile, vfile, n)
    series = {spec.name: read[spec.name] for spec in man.series}
    step = commit.step if commit is not None else None
    rec = Recording(series, man.metadata, complete=man.complete, path=root, committed_step=step)
    return _Opened(man, commit, used), rec


def _read_series(
    man: _Manifest,
    commit: _Commit | None,
    spec: _Spec,
    sfile: _SeriesFile,
    vfile: _SeriesFile,
    n: int,
) -> Series:
    """One series: its ``n`` steps read (and cut to the commit's step), its values mapped."""
    steps = np.empty(n, "<i8")
    _pread_into(sfile.fd, steps, _HEADER_SIZE, sfile.path)
    if n > 1 and np.any(steps[1:] < steps[:-1]):
        raise RecordingError(f"{sfile.path}: steps are not in increasing order")
    if not man.complete and commit is not None:  # cut to the last committed step
        cut = commit.step
        n = int(np.searchsorted(steps, cut, side="right")) if cut is not None else 0
        steps = steps[:n]
    values = (
        _map_values(vfile, n, spec.dtype, spec.shape)
        if n and spec.record_size
        else np.empty((n, *spec.shape), spec.dtype)
    )
    return Series(steps, values, **spec.info)


@contextlib.contextmanager
def _series_files(
    root: Path, spec: _Spec, version: int
) -> Iterator[tuple[_SeriesFile, _SeriesFile]]:
    """The steps and values files of one series, open, their headers checked."""
    sfile = _SeriesFile(root / f"{spec.stem}.steps", _STEPS_MAGIC, 8, np.dtype("<i8"), version)
    try:
        vfile = _SeriesFile(
            root / f"{spec.stem}.values", _VALUES_MAGIC, spec.record_size, spec.dtype, version
        )
        try:
            yield sfile, vfile
        finally:
            vfile.close()
    finally:
        sfile.close()


def _count(
    man: _Manifest, commit: _Commit | None, spec: _Spec, sfile: _SeriesFile, vfile: _SeriesFile
) -> int:
    """Snapshots of one series to read (before the commit-step cut): the count the manifest
    or the commit claims, once both files are seen to hold it."""
    n_values = sfile.records if vfile.records is None else vfile.records
    if not man.complete and commit is None:
        # version 1, writer never closed: the longest prefix present in both files
        return min(sfile.records, n_values)
    expected = man.counts[spec.name] if man.complete else commit.counts.get(spec.stem, 0)
    said = "the manifest records" if man.complete else "the last commit records"
    for f, n in ((sfile, sfile.records), (vfile, n_values)):
        if n < expected:
            raise RecordingError(
                f"{f.path}: truncated, holds {n} of the {expected} snapshots {said}"
            )
        if man.complete and not f.has_exactly(expected):
            raise RecordingError(
                f"{f.path}: {f.size} bytes, not the {expected} snapshots {said} "
                "(extra or partial data after the end)"
            )
    return expected


def _unwritten(fd: int, st: os.stat_result, end: int) -> int:
    """Bytes of ``[0, end)`` of an open file that are holes: never written, read back as
    zeros. 0 when the file's allocated blocks cover ``end`` (however they lie, reading it
    costs no more than it holds on disk) or when the system cannot tell."""
    blocks = getattr(st, "st_blocks", None)
    if blocks is None or blocks * 512 >= end or not hasattr(os, "SEEK_HOLE"):
        return 0
    holes = pos = 0
    try:
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: nothing but holes after pos
                    raise
                data = end
            holes += min(data, end) - pos
            if data >= end:
                break
            pos = os.lseek(fd, data, os.SEEK_HOLE)
    except OSError:  # a file system that cannot say: count what was found
        pass
    return holes


def _refuse_sparse(holes: list[tuple[int, int, Path, str]], needed: int) -> None:
    """Refuse a recording whose files claim far more than they hold on disk.

    ``holes``: per file with holes, the bytes of holes among those its count needs, those
    bytes, its path and what they hold; ``needed``: the bytes the counts of all files need.
    A writer writes every byte, so holes come only from a file
    extended without writing (a forged or damaged recording, a sparse copy) or a file
    system that keeps zero blocks as holes (ZFS with compression): at most
    ``_HOLE_SLACK`` plus ``_HOLE_RATIO`` times the bytes that are there.
    """
    unwritten = sum(h for h, *_ in holes)
    written = needed - unwritten
    limit = _HOLE_SLACK + _HOLE_RATIO * written
    if unwritten > limit:
        h, end, path, what = max(holes, key=lambda x: x[0])
        raise RecordingError(
            f"{path}: {h} of the {end} bytes that {what} need are holes, never written "
            f"(a sparse file: forged or damaged); in all, the recording's files hold {written} "
            f"bytes and claim {unwritten} more, over the {limit} ({_HOLE_SLACK >> 20} MiB and "
            f"{_HOLE_RATIO} times what they hold) that a recording may leave unwritten"
        )


def _crc_file(fd: int, path: Path, offset: int, size: int) -> int:
    crc, done = 0, 0
    while done < size:
        chunk = os.pread(fd, min(size - done, 1 << 24), offset + done)
        if not chunk:
            raise RecordingError(f"{path}: file shrank while being read")
        crc = _fast_crc32(chunk, crc)
        done += len(chunk)
    return crc


def verify(path: str | os.PathLike) -> list[str]:
    """Check every checksum of a recording; one line per damaged block (empty: intact).

    Reads all of it. A closed recording is checked whole (manifest, commit, every block of
    every series); an incomplete one up to its last commit, its manifest included (against
    the manifests that commit covers; a commit of a writer from before that covered only the
    manifest of a closed recording). Raises :class:`RecordingError` for a recording that
    cannot be read at all (or was written before checksums, version 1).
    """
    return _verified(Path(path))[0]


def _verified(root: Path) -> tuple[list[str], Recording]:
    """What :func:`verify` finds, and the recording as the checked files hold it."""
    for _ in range(3):
        opened, rec = _open(root)
        man, commit = opened.manifest, opened.commit
        if commit is None:
            raise RecordingError(
                f"{man.path}: format version {man.version} has no checksums; nothing to verify"
            )
        problem = _manifest_problem(man, commit)
        # a live writer may have replaced the manifest, then the commit, between our reads
        # of the two: read both again
        if problem is None or man.complete or not _manifest_changed(man):
            break
    problems = [] if problem is None else [problem]
    for spec in man.series:
        problems += _verify_series(root, man, spec, opened.counts[spec.name])
    return problems, rec


def _manifest_problem(man: _Manifest, commit: _Commit) -> str | None:
    covered = commit.manifest_crc32s
    if covered is None:  # an earlier writer's commit: it covers a closed recording's manifest
        covered = (commit.manifest_crc32,) if man.complete else ()
    if not covered or zlib.crc32(man.raw) in covered:
        return None
    return (
        f"{man.path}: checksum mismatch (the manifest was changed or damaged after it was written)"
    )


def _manifest_changed(man: _Manifest) -> bool:
    try:
        return _read_small(man.path, "manifest", _MAX_MANIFEST_BYTES) != man.raw
    except RecordingError:
        return False


_CRC_BATCH = 4096  # checksum records read at a time (96 kB): the table is never read whole


def _crc_records(cfile: _SeriesFile) -> Iterator[tuple[int, int, int, int]]:
    for lo in range(0, cfile.records, _CRC_BATCH):
        k = min(_CRC_BATCH, cfile.records - lo)
        offset = _HEADER_SIZE + lo * _CRC_RECORD.size
        data = _pread(cfile.fd, k * _CRC_RECORD.size, offset, cfile.path)
        yield from _CRC_RECORD.iter_unpack(data)


def _verify_series(root: Path, man: _Manifest, spec: _Spec, n: int) -> list[str]:
    """Problems of one series' first ``n`` snapshots against its checksum records."""
    cpath = root / f"{spec.stem}.crc"
    try:
        cfile = _SeriesFile(cpath, _CRC_MAGIC, _CRC_RECORD.size, None, man.version)
    except RecordingError as exc:
        return [f"series {spec.name!r}: {exc}"]
    problems = []
    fds = [cfile.fd]
    try:
        if man.complete and not cfile.has_exactly(cfile.records):
            problems.append(f"{cpath}: partial checksum record at the end")
        sfd = _open_file(root / f"{spec.stem}.steps", "series file")[0]
        fds.append(sfd)
        vfd = _open_file(root / f"{spec.stem}.values", "series file")[0]
        fds.append(vfd)
        covered, broken = 0, False
        for i, (first, count, scrc, vcrc) in enumerate(_crc_records(cfile)):
            if covered == n:  # blocks after the last commit are not part of the recording
                if man.complete:
                    problems.append(f"{cpath}: checksum records after the last snapshot ({n})")
                break
            if first != covered or count < 1 or first + count > n:
                problems.append(
                    f"{cpath}: checksum record {i} covers snapshots "
                    f"{first}..{first + count - 1}, expected a block starting at {covered} "
                    f"within the {n} snapshots"
                )
                broken = True
                break
            s_ok = _crc_file(sfd, cpath, _HEADER_SIZE + 8 * first, 8 * count) == scrc
            v_ok = (
                _crc_file(
                    vfd, cpath, _HEADER_SIZE + spec.record_size * first, spec.record_size * count
                )
                == vcrc
            )
            if not (s_ok and v_ok):
                which = " and ".join(w for w, ok in (("steps", s_ok), ("values", v_ok)) if not ok)
                lo, hi = (
                    int.from_bytes(os.pread(sfd, 8, _HEADER_SIZE + 8 * k), "little", signed=True)
                    for k in (first, first + count - 1)
                )
                problems.append(
                    f"series {spec.name!r} ({spec.stem}): snapshots "
                    f"{first}..{first + count - 1} (steps {lo}..{hi} as stored): {which} "
                    "checksum mismatch"
                )
            covered = first + count
        if covered < n and not broken:
            problems.append(
                f"series {spec.name!r} ({spec.stem}): snapshots {covered}..{n - 1} have no checksum"
            )
    finally:
        for fd in fds:
            os.close(fd)
    return problems


def load(path: str | os.PathLike, *, verify: bool = False) -> Recording:
    """Open a recording directory lazily (values are memory-mapped).

    A recording whose writer never closed (killed, disk full) loads every series up to the
    last committed step, the same step for all of them, and has ``complete == False``.
    Anything malformed, truncated, foreign or unsafe raises :class:`RecordingError` naming
    the file and the problem; nothing blocks. ``verify=True`` also reads everything and
    checks every block's checksum (about 1 s per GB), raising RecordingError listing every
    damaged block.

    A TensorBoard log (an ``events.out.tfevents.*`` file, or a directory of them and no
    manifest) is read as a recording too (:mod:`dynamics.tensorboard`, in memory).
    """
    root = Path(path)
    if _is_event_log(root):
        from .tensorboard import from_tensorboard

        return from_tensorboard(root)
    if verify:
        problems, rec = _verified(root)
        if problems:
            raise RecordingError(f"{root}: damaged:\n" + "\n".join(problems))
        return rec
    return _open(root)[1]


def _is_event_log(root: Path) -> bool:
    """Whether ``root`` is a TensorBoard event file, or a directory without a manifest that
    holds event files (in it, or in subdirectories at most two levels down). False for
    anything unreadable: the reader says why."""
    try:
        if root.name.startswith("events.out.tfevents"):
            return stat.S_ISREG(os.stat(root).st_mode)
        if not root.is_dir() or root.is_symlink() or (root / MANIFEST).exists():
            return False
        for dirpath, dirnames, files in os.walk(root):
            if any(f.startswith("events.out.tfevents") for f in files):
                return True
            if len(Path(dirpath).relative_to(root).parts) >= 2:
                dirnames.clear()  # runs lie at most two levels down: never walk a whole disk
        return False
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


_CRC_OFFLOAD_BYTES = (
    64 << 10
)  # larger blocks are checksummed on a second thread, during their write
_DIRECT_BYTES = 64 << 10  # a series' rows of a block written from it as they are, not staged
_MAX_BLOCKS = 3  # staging blocks per series in a RecordingWriter: one filling, two being written


class _Files:
    """The three files of one series being written, and how many snapshots they hold.

    Opened by the writer thread when it writes a block and kept open, at most
    ``_MAX_OPEN_SERIES`` series at a time (least recently written closed first): a
    recording of 1500 series would otherwise hold 4500 descriptors.
    """

    __slots__ = ("handles", "paths", "written")

    def __init__(self, root: Path, stem: str):
        self.paths = tuple(root / f"{stem}.{ext}" for ext in ("steps", "values", "crc"))
        self.handles = None  # (steps, values, crc) files while open
        self.written = 0

    def open(self):
        if self.handles is None:  # values unbuffered: they are written in large blocks
            self.handles = tuple(
                open(p, "ab", buffering=0 if p.suffix == ".values" else -1) for p in self.paths
            )
        return self.handles

    def close(self) -> None:
        if self.handles is not None:
            handles, self.handles = self.handles, None
            for f in handles:
                f.close()


_MAX_OPEN_SERIES = 64


def _crc_chunks(chunks: list) -> int:
    """The CRC-32 of the concatenated ``chunks``."""
    crc = 0
    for chunk in chunks:
        crc = _crc32(chunk, crc)
    return crc


def _write_all(file, chunks: list, size: int) -> None:
    """Append ``chunks`` (``size`` bytes in all) to the unbuffered binary ``file`` with one
    ``writev`` (the GIL is released for it), finishing a short write chunk by chunk."""
    done = os.writev(file.fileno(), chunks) if len(chunks) > 1 else file.write(chunks[0])
    if done == size:
        return
    skip = done or 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        if skip >= len(view):
            skip -= len(view)
            continue
        view, skip = view[skip:], 0
        while view:
            written = file.write(view)
            if not written:
                raise OSError(errno.EIO, f"{file.name}: write made no progress")
            view = view[written:]


class _Pool:
    """At most ``_MAX_BLOCKS`` buffers of one kind for a RecordingWriter: one being filled,
    the others being written; the writer thread gives each back (:meth:`put`) once written."""

    __slots__ = ("_free", "_made")

    def __init__(self, made: int = 0):
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._made = made  # buffers of this kind that exist

    def get(self, make: Callable[[], Any], check: Callable[[], None]):
        """A written buffer, or ``make()`` while fewer than ``_MAX_BLOCKS`` exist, or (after
        ``check()``, which raises a failed writer's error) wait for one: memory stays bounded."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._made < _MAX_BLOCKS:
            self._made += 1
            return make()
        check()
        return self._free.get()

    def put(self, buffer) -> None:
        self._free.put(buffer)


class _WriterThread:
    """A thread that writes staging blocks to their files, so training does not wait on I/O.

    ``write`` releases the GIL: on a 2-core machine the copy into the page cache overlaps
    the next training step instead of adding to it. So does the CRC-32 (zlib-ng's, for
    buffers over 5 kB), which checksums each block here, off the training thread. An error in the
    thread (disk full) is raised in the training thread at the next append that hands over
    a block, or on flush.
    """

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._open: collections.OrderedDict = collections.OrderedDict()  # series with open files
        self._thread = threading.Thread(
            target=self._run, name="nndynamics-recording-writer", daemon=True
        )
        self._thread.start()
        self._crc_jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._crc_done: queue.SimpleQueue = queue.SimpleQueue()
        self._crc_thread = threading.Thread(
            target=self._checksums, name="nndynamics-recording-crc", daemon=True
        )
        self._crc_thread.start()

    def _checksums(self) -> None:
        while (chunks := self._crc_jobs.get()) is not None:
            try:
                self._crc_done.put(_crc_chunks(chunks))
            except BaseException as exc:  # never leave the writer waiting
                self._crc_done.put(-1)
                self.error = exc

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                kind, *job = item
                if kind == "commit":
                    if self.error is None:  # a failed write: the recording stays as of before
                        try:
                            job[0].commit(*job[1:])
                        except BaseException as exc:
                            self.error = exc
                    continue
                columns, steps, values, start, stop, free = job
                try:
                    if self.error is None:
                        sbytes = memoryview(steps[start:stop]).cast("B")
                        scrc = _crc32(sbytes)
                        for files, lo, hi in columns:
                            data = values[start:stop] if lo is None else values[start:stop, lo:hi]
                            if not data.size:  # zero-size snapshots: only steps are written
                                data = [memoryview(b"")]
                            elif data.flags.c_contiguous:
                                data = [memoryview(data).cast("B")]
                            else:  # a series' columns of a block: written row by row, no copy
                                data = list(data)
                            self._write(files, sbytes, scrc, data, stop - start)
                except BaseException as exc:  # reported to the training thread by check()
                    self.error = exc
                finally:
                    if free is not None:
                        free()
            finally:
                self._queue.task_done()

    def _write(self, files: _Files, sbytes, scrc: int, chunks: list, n: int) -> None:
        """Append ``n`` snapshots to one series' files: the values (``chunks``, contiguous
        buffers, in one ``writev``), the steps, then the checksum record (last: a block it
        covers is whole on disk)."""
        size = sum(c.nbytes for c in chunks)
        offload = size >= _CRC_OFFLOAD_BYTES
        if offload:  # checksum on the other thread while the block is written
            self._crc_jobs.put(chunks)
        sfile, vfile, cfile = self._handles(files)
        _write_all(vfile, chunks, size)
        sfile.write(sbytes)
        sfile.flush()
        vcrc = self._crc_done.get() if offload else _crc_chunks(chunks)
        cfile.write(_CRC_RECORD.pack(files.written, n, scrc, vcrc))
        cfile.flush()
        files.written += n

    def _handles(self, files: _Files):
        if files in self._open:
            self._open.move_to_end(files)
        else:
            if len(self._open) >= _MAX_OPEN_SERIES:
                self._open.popitem(last=False)[0].close()
            self._open[files] = None
        return files.open()

    def submit(self, files, steps, values, n, free) -> None:
        """Write rows ``[:n]`` of one series' staging block, then call ``free`` (unless
        None)."""
        self._queue.put(("block", [(files, None, None)], steps, values, 0, n, free))

    def submit_columns(self, columns, steps, values, start, stop, free) -> None:
        """Write rows ``[start:stop)`` of a block holding several series side by side
        (``columns``: ``(files, lo, hi)``, series in ``values[:, lo:hi]``); then call ``free``
        (unless None)."""
        self._queue.put(("block", columns, steps, values, start, stop, free))

    def submit_commit(self, committer: "_Committer", *args) -> None:
        """``committer.commit(*args)`` on this thread, after every block submitted before."""
        self._queue.put(("commit", committer, *args))

    def wait(self) -> None:
        """Block until every submitted block is written; raise the thread's error if any."""
        self._queue.join()
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise OSError(f"recording writer failed: {self.error}") from self.error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._crc_thread.is_alive():
            self._crc_jobs.put(None)
            self._crc_thread.join()


class _Committer:
    """Writes the manifest and the ``commit`` file of a recording being written.

    The commit holds, per series file, the snapshots written, and the step up to which
    every series is whole. It is replaced atomically after the data it covers is written,
    so after a kill at any moment the loader cuts every series to the same step. The
    manifest is rewritten only when something in it changed (a new series, metadata), and
    always before the commit that first counts a new series: with the pure-Python JSON
    encoder that ``indent`` needs, rewriting it at each of 1500 new series took 50 s.

    Every commit holds the checksum of the manifest on disk, and before a manifest is
    replaced the commit is rewritten to hold both checksums: killed at any moment, the
    manifest there verifies, and a flip in it never does (closed or not).
    """

    def __init__(
        self, path: Path, files: dict[str, _Files], stems: dict[str, str], sink: "_SinkBase"
    ):
        self.path, self.files, self.stems = path, files, stems
        self.series, self.metadata = sink._series, sink.metadata  # shared, not copied
        self.manifest_crc32 = 0
        self.dirty = True  # the manifest on disk lacks something
        self.step: int | None = None  # last committed step
        self.lock = threading.Lock()  # the training and the writer thread both replace the commit
        self.last: tuple | None = None  # step and counts of the commit on disk

    def manifest_bytes(self, complete: bool = False, closed: bool = False) -> bytes:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "complete": complete,
            "metadata": self.metadata,
            "series": {
                name: {
                    "file": self.stems[name],
                    "dtype": s.dtype.str,
                    "shape": list(s.shape),
                    **s.info,
                }
                for name, s in self.series.items()
                if name in self.stems
            },
        }
        if closed:
            manifest["counts"] = {
                name: s.count for name, s in self.series.items() if name in self.stems
            }
        return json.dumps(manifest, indent=1).encode("utf-8")

    def write_manifest(self, data: bytes | None = None) -> None:
        data = self.manifest_bytes() if data is None else data
        if len(data) > _MAX_MANIFEST_BYTES:  # a reader would refuse it: never write one
            raise RecordingError(
                f"{self.path}: the metadata would make the manifest {len(data) >> 20} MiB, over "
                f"the {_MAX_MANIFEST_BYTES >> 20} MiB a recording may hold; keep large arrays "
                "as series (Recorder.put / RecordingWriter.append), not in the metadata"
            )
        crc = zlib.crc32(data)
        with self.lock:
            if self.last is not None and crc != self.manifest_crc32:
                # the commit on disk covers both manifests first: killed before the rename
                # or after it, the manifest there verifies (update_metadata after the last
                # commit, close)
                self._write_commit(*self.last, (self.manifest_crc32, crc))
            _replace(self.path / MANIFEST, data)
            self.manifest_crc32, self.dirty = crc, False

    def commit(self, step: int | None, files: list | None = None) -> None:
        """Record ``step``, the snapshots written per series and the manifest's checksum.
        ``files`` (``(stem, _Files)`` pairs taken when the manifest was last written) lets the
        writer thread commit while the training thread declares new series."""
        if files is None:
            if self.dirty:
                self.write_manifest()
            files = [(self.stems[name], f) for name, f in self.files.items()]
            self.step = step
        counts = {stem: f.written for stem, f in files}
        with self.lock:
            self._write_commit(step, counts, (self.manifest_crc32,))

    def _write_commit(self, step: int | None, counts: dict, manifest_crc32s: tuple) -> None:
        _replace(self.path / _COMMIT, _commit_bytes(step, counts, manifest_crc32s))
        self.last = step, counts

    def commit_later(self, thread: "_WriterThread", step: int) -> None:
        """Have the writer thread commit ``step`` once every block submitted so far is
        written; the training thread does not wait."""
        if self.dirty:
            self.write_manifest()
        files = [(self.stems[name], f) for name, f in self.files.items()]
        self.step = step
        thread.submit_commit(self, step, files)


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _flock_or_refuse(fd: int, root: Path) -> None:
    """Hold an exclusive OS lock on ``fd`` or raise naming the process that holds it."""
    if fcntl is None:  # no OS lock (Windows): one writer per recording is not enforced
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise RecordingError(
            f"{root}: is being written by another writer (process {holder}); "
            "one writer per recording"
        ) from None


def _lock(root: Path) -> int:
    """Create and take the writer lock of a directory this writer has just made
    (``root/lock``, an OS lock held for the writer's life and released by the OS when the
    process dies, even by SIGKILL). The file is new (``O_EXCL``): an existing file, a link
    above all, is never opened for writing."""
    path = root / _LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    except OSError as exc:
        raise RecordingError(
            f"{path}: cannot create the writer lock ({exc.strerror or exc})"
        ) from None
    _flock_or_refuse(fd, root)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def hold_existing(root: Path) -> int | None:
    """Take the writer lock of an existing recording without writing to it (for a writer
    that will replace or rewrite it: held until the new one is in place, so no other writer
    enters it meanwhile). None where it has no lock file (written by an older version).

    The lock is opened read-only, never followed through a symbolic link, and refused if
    it is not a regular file with one link: a hard link to a file outside the recording is
    never locked, truncated or written."""
    path = root / _LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordingError(
            f"{path}: cannot open the writer lock ({exc.strerror or exc}); "
            "is it a link? A recording's lock is a plain file"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise RecordingError(
            f"{path}: the writer lock is not a plain file of its own "
            f"({'a hard link' if stat.S_ISREG(st.st_mode) else 'not a regular file'}); "
            "refusing to touch this recording"
        )
    _flock_or_refuse(fd, root)
    return fd


def _finish_at_exit(
    thread: _WriterThread, series: dict, files: dict, committer: _Committer, lock: list
) -> None:
    """Write and commit what an unclosed RecordingWriter staged (run by weakref.finalize at
    exit: the process is ending, so every step appended is finished)."""
    try:
        for state in series.values():
            if state.n and state.name in files:
                thread.submit(files[state.name], state.steps, state.values, state.n, None)
                state.n = 0
        thread.wait()
        last = max((s.last for s in series.values() if s.count), default=None)
        committer.commit(last)
    except OSError as exc:  # a finalizer must not raise; say what was lost instead
        print(f"nndynamics: {exc}; the recording keeps what was committed before", file=sys.stderr)
    finally:
        thread.stop()
        if lock:
            os.close(lock.pop())


class _SeriesState:
    """One series being written: its fixed dtype/shape and a staging block of snapshots."""

    __slots__ = ("name", "index", "dtype", "shape", "info", "count", "last", "steps", "values", "n")

    def __init__(
        self,
        name: str,
        index: int,
        dtype: np.dtype,
        shape: tuple[int, ...],
        capacity: int,
        info: dict[str, str],
    ):
        self.name, self.index, self.dtype, self.shape, self.info = name, index, dtype, shape, info
        self.count = 0  # snapshots appended so far
        self.last = -1  # last step appended (steps never decrease)
        self.steps = np.empty(capacity, "<i8")
        self.values = np.empty((capacity, *shape), dtype)
        self.n = 0  # snapshots in the staging block

    @property
    def snapshot_bytes(self) -> int:
        return self.dtype.itemsize * math.prod(self.shape)


class Block:
    """Rows of snapshots of several series side by side, from a sink's ``new_block``:
    ``steps`` (rows,) int64 and ``values`` (rows, width). ``views`` is the producer's to
    keep its tensor views of the values in (the recorder: the whole table and its rows; it
    stays with the block when the sink hands it out again)."""

    __slots__ = ("steps", "values", "views")

    def __init__(self, steps: np.ndarray, values: np.ndarray):
        self.steps, self.values, self.views = steps, values, None


class _SinkBase:
    """What a recorder writes into: declare series, append snapshots, close to a Recording.

    Every series has a preallocated staging block; ``append`` copies one snapshot into it
    (the only copy made) and a subclass decides what happens when the block is full
    (:meth:`_spill`): the disk writer writes it out, the memory writer grows it.
    """

    def __init__(self, metadata: Mapping[str, Any] | None = None):
        self.metadata: dict[str, Any] = to_jsonable(dict(metadata or {}))
        self._series: dict[str, _SeriesState] = {}
        self.closed = False
        self.complete = False  # closed after the producer finished (not cut short by an error)

    def declare(
        self,
        name: str,
        dtype,
        shape: tuple[int, ...],
        *,
        kind: str = "",
        source: str = "",
        of: str = "",
    ) -> None:
        """Fix a series' dtype, per-snapshot shape and what it holds (``kind``, ``source``,
        ``of``: see :class:`Series`) before its first append (optional)."""
        info = Series(np.empty(0, np.int64), np.empty(0), kind, source, of).info  # validates
        dtype = np.dtype(dtype)
        if dtype.hasobject:
            raise TypeError(f"series {name!r}: object arrays cannot be recorded")
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"series {name!r}: negative dimension in shape {shape}")
        state = self._series.get(name)
        if state is None:
            dtype = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
            if dtype.str not in DTYPES:
                raise TypeError(
                    f"series {name!r}: dtype {dtype} cannot be recorded (numeric or bool only)"
                )
            capacity = self._initial_capacity(dtype.itemsize * math.prod(shape))
            self._series[name] = _SeriesState(name, len(self._series), dtype, shape, capacity, info)
            self._on_new_series(self._series[name])
        elif state.shape != shape:
            raise ValueError(
                f"series {name!r}: snapshot shape {shape} differs from earlier {state.shape}"
            )

    def append(self, name: str, step: int, value) -> None:
        """Append one snapshot of series ``name`` taken at training ``step`` (copied now)."""
        if self.closed:
            raise ValueError(f"series {name!r}: cannot append, the recording is closed")
        if type(value) is not np.ndarray:
            value = np.asarray(value)
        state = self._series.get(name)
        if state is None:
            self.declare(name, value.dtype, value.shape)
            state = self._series[name]
        elif value.shape != state.shape:
            raise ValueError(
                f"series {name!r}: snapshot shape {value.shape} differs from earlier {state.shape}"
            )
        step = int(step)
        if step < state.last:
            raise ValueError(
                f"series {name!r}: steps must not decrease (got {step} after {state.last})"
            )
        if state.n == len(state.steps):
            self._spill(state)
        n = state.n
        state.values[n] = value
        state.steps[n] = step
        state.n = n + 1
        state.count += 1
        state.last = step
        self._appended(step)

    def extend(self, name: str, steps, values) -> None:
        """Append several snapshots at once: ``steps`` (n,), ``values`` (n, *shape).

        Copied block by block into the staging block (no per-snapshot Python work)."""
        if self.closed:
            raise ValueError(f"series {name!r}: cannot append, the recording is closed")
        steps = np.asarray(steps, dtype=np.int64)
        values = np.asarray(values)
        if values.ndim == 0 or len(steps) != len(values):
            raise ValueError(
                f"series {name!r}: extend needs as many steps as snapshots, got {len(steps)} steps "
                f"and values of shape {values.shape}"
            )
        if np.any(np.diff(steps) < 0):
            raise ValueError(f"series {name!r}: steps must not decrease within one extend()")
        if not len(steps):
            return
        state = self._series.get(name)
        if state is None:
            self.declare(name, values.dtype, values.shape[1:])
            state = self._series[name]
        elif values.shape[1:] != state.shape:
            raise ValueError(
                f"series {name!r}: snapshot shape {values.shape[1:]} differs from earlier "
                f"{state.shape}"
            )
        if int(steps[0]) < state.last:
            raise ValueError(
                f"series {name!r}: steps must not decrease (got {int(steps[0])} after {state.last})"
            )
        self._stage(state, steps, values)
        self._appended(state.last)

    def _stage(self, state: _SeriesState, steps: np.ndarray, values: np.ndarray) -> None:
        """Copy snapshots (checked) into the staging block of ``state``, spilling as it fills."""
        done = 0
        while done < len(steps):
            if state.n == len(state.steps):
                self._spill(state)
            k = min(len(state.steps) - state.n, len(steps) - done)
            state.values[state.n : state.n + k] = values[done : done + k]
            state.steps[state.n : state.n + k] = steps[done : done + k]
            state.n += k
            state.count += k
            done += k
        state.last = int(steps[-1])

    def _took(self, state: _SeriesState, k: int, last: int) -> None:
        """``k`` snapshots up to step ``last`` of ``state`` were taken from a block as they are
        (the ones staged before them are spilled first, to keep the order)."""
        if state.n:
            self._spill(state)
        state.count += k
        state.last = last

    # -- the block interface: a producer (the Recorder) copies snapshots of several series
    #    straight into a block the sink gave it, so each value is copied once
    def new_block(self, rows: int, width: int, dtype) -> "Block":
        """An empty :class:`Block` of ``rows`` snapshots of ``width`` values of ``dtype``, for
        :meth:`extend_block`. The sink may hand out a block it used before."""
        raise NotImplementedError

    def extend_block(
        self, columns: list, block: "Block", start: int, stop: int, done: bool
    ) -> None:
        """Append rows ``[start:stop)`` of ``block`` (from :meth:`new_block`): snapshots at
        steps ``block.steps[start:stop]`` of the declared series in ``columns``,
        ``(name, lo, hi, shape)`` each, series ``name`` being ``block.values[:, lo:hi]``.

        The caller never writes those rows again; ``done=True``: nor any row of the block,
        which the sink may then reuse. No copy is made here."""
        if self.closed:
            raise ValueError("cannot append, the recording is closed")
        k = stop - start
        if k <= 0:
            if done:
                self._block_done(block)
            return
        steps = block.steps[start:stop]
        first, last = int(steps[0]), int(steps[-1])
        if k > 1 and np.any(steps[1:] < steps[:-1]):
            raise ValueError(f"series {columns[0][0]!r}: steps must not decrease within a block")
        for name, _, _, shape in columns:
            state = self._series[name]
            if state.shape != shape or state.dtype != block.values.dtype:
                raise ValueError(
                    f"series {name!r}: block of {block.values.dtype} snapshots of shape {shape} "
                    f"for a series of {state.dtype} {state.shape}"
                )
            if first < state.last:
                raise ValueError(
                    f"series {name!r}: steps must not decrease (got {first} after {state.last})"
                )
        self._take_block(columns, block, start, stop, done)
        self._appended(last)

    def _take_block(self, columns: list, block: "Block", start: int, stop: int, done: bool):
        raise NotImplementedError

    def _block_done(self, block: "Block") -> None: ...

    def update_metadata(self, **items: Any) -> None:
        """Merge JSON-able ``items`` into the metadata (left as it was if they are refused)."""
        before = dict(self.metadata)
        self.metadata.update(to_jsonable(items))
        try:
            self._on_metadata()
        except RecordingError:
            self.metadata.clear()
            self.metadata.update(before)
            raise

    @property
    def buffered_bytes(self) -> int:
        """Bytes of snapshots staged in memory and not yet handed on."""
        return sum(s.n * s.snapshot_bytes for s in self._series.values())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)

    # hooks for subclasses
    def _initial_capacity(self, snapshot_bytes: int) -> int:
        return 16

    def _spill(self, state: _SeriesState) -> None:
        """The staging block of ``state`` is full: make room for at least one snapshot."""
        raise NotImplementedError

    def _appended(self, step: int) -> None: ...
    def hold_from(self, step: int | None) -> None: ...
    def _on_new_series(self, state: _SeriesState) -> None: ...
    def _on_metadata(self) -> None: ...
    def close(self, complete: bool = True) -> None: ...
    def recording(self) -> Recording: ...


_PREFAULTER: list = []  # the helper thread that prepares MemoryWriter blocks (made when needed)
if hasattr(os, "register_at_fork"):  # a forked child has no such thread: it makes its own
    os.register_at_fork(after_in_child=_PREFAULTER.clear)


def _prefaulted(rows: int, shape: tuple, dtype) -> concurrent.futures.Future:
    """Start allocating ``steps`` (rows,) and ``values`` (rows, *shape), touching every page,
    on the helper thread; :func:`_collect` takes them. One long-lived thread, not one per
    block: starting a thread costs the training thread about 100 us."""
    if not _PREFAULTER:
        _PREFAULTER.append(
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nndynamics-prefault")
        )
    return _PREFAULTER[0].submit(_make_touched, rows, shape, np.dtype(dtype))


def _make_touched(rows: int, shape: tuple, dtype: np.dtype):
    values = np.empty((rows, *shape), dtype)
    raw = values.reshape(-1).view(np.uint8)
    raw[:: mmap.PAGESIZE] = 0  # numpy releases the GIL: the faults happen here
    return np.empty(rows, "<i8"), values


def _collect(future: concurrent.futures.Future | None, rows: int, shape: tuple, dtype):
    """What :func:`_prefaulted` made; allocated here if nothing was prepared or the helper
    failed (out of memory: this raises what it raised)."""
    try:
        if future is not None:
            return future.result()
    except Exception:
        pass
    return np.empty(rows, "<i8"), np.empty((rows, *shape), dtype)


class MemoryWriter(_SinkBase):
    """Keeps every snapshot in memory. For small runs and tests.

    Full staging blocks are kept as they are and a new, twice larger block is started (up
    to 64 MiB), so a snapshot is copied once when appended; ``recording()`` joins the
    blocks of a series into one array (once; later calls return views of it).

    Blocks from :meth:`new_block` (the Recorder's parameters, side by side) are kept as they
    are, each series a view of its columns, and joined the same way. Each series' next
    block, and the next :meth:`new_block`, is allocated and touched page by page on a helper
    thread while the current one fills: the first write to fresh memory faults every page
    in, and on this project's 2-core VM that costs 4 ms per MiB (a 64 KiB snapshot copied
    into fresh memory took 259 us, into touched memory 5.7 us), which training would
    otherwise wait on.
    """

    _MAX_BLOCK_BYTES = 64 << 20

    def __init__(self, metadata: Mapping[str, Any] | None = None):
        super().__init__(metadata)
        self._full: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._next: dict[str, concurrent.futures.Future] = {}  # next staging block
        self._next_blocks: dict[tuple, concurrent.futures.Future] = {}  # next new_block

    def _on_new_series(self, state: _SeriesState) -> None:
        # the next staging block is prepared from the first spill on: a series that only
        # ever comes in blocks (the Recorder's parameters) never has one touched for nothing
        self._full[state.name] = []

    def _grown(self, state: _SeriesState, capacity: int) -> int:
        if 2 * capacity * max(state.snapshot_bytes, 1) <= self._MAX_BLOCK_BYTES:
            return 2 * capacity
        return capacity

    def _spill(self, state: _SeriesState) -> None:
        n = state.n
        if n:  # rows [:n] are never written again: kept as they are
            self._full[state.name].append((state.steps[:n], state.values[:n]))
        capacity = self._grown(state, len(state.steps))
        steps, values = _collect(
            self._next.pop(state.name, None), capacity, state.shape, state.dtype
        )
        state.steps, state.values, state.n = steps, values, 0
        self._next[state.name] = _prefaulted(
            self._grown(state, len(steps)), state.shape, state.dtype
        )

    def new_block(self, rows: int, width: int, dtype) -> "Block":
        """A fresh block (a kept block is never reused), allocated and touched on a helper
        thread while the previous one of its kind filled."""
        key = (rows, width, np.dtype(dtype))
        steps, values = _collect(self._next_blocks.pop(key, None), rows, (width,), dtype)
        self._next_blocks[key] = _prefaulted(rows, (width,), dtype)
        return Block(steps, values)

    def _take_block(self, columns: list, block: "Block", start: int, stop: int, done: bool):
        steps = block.steps[start:stop]
        last = int(steps[-1])
        for name, lo, hi, shape in columns:
            self._took(self._series[name], stop - start, last)
            values = block.values[start:stop, lo:hi].reshape((stop - start, *shape))
            self._full[name].append((steps, values))

    def close(self, complete: bool = True) -> None:
        """Stop accepting snapshots; ``complete=False`` marks a run that was cut short."""
        self.closed, self.complete = True, bool(complete)

    def recording(self) -> Recording:
        series = {}
        for name, state in self._series.items():
            full = self._full[name]
            if full:  # join everything so far into one block, which becomes the staging block
                steps = np.concatenate([s for s, _ in full] + [state.steps[: state.n]])
                values = np.concatenate([v for _, v in full] + [state.values[: state.n]])
                full.clear()
                state.steps, state.values, state.n = steps, values, len(steps)
            # views: rows [:n] are never written again (a full block is replaced, not grown)
            series[name] = Series(state.steps[: state.n], state.values[: state.n], **state.info)
        return Recording(series, self.metadata, complete=self.complete)


_NO_STEP = -(1 << 63)  # "no step yet" for the commit bookkeeping (steps are int64)


class RecordingWriter(_SinkBase):
    """Streams snapshots into a recording directory with bounded memory.

    Parameters
    ----------
    path : path-like
        Directory to create (``*.rec`` by convention).
    metadata : dict, optional
        JSON-able metadata; more can be merged later with :meth:`update_metadata`.
    overwrite : bool
        Replace an existing recording at ``path``. Without it, an existing path is an error.
        Either way a recording that another writer (any process) has open is refused with
        :class:`RecordingError`: the writer holds an OS lock on ``path/lock`` for its life.
    flush_bytes : int
        Size of each series' staging block: a series is written out once this many bytes
        of its snapshots are staged (at least one snapshot), with one ``write`` call.
    flush_seconds : float
        How much wall time of training a kill may lose: every series is written out and a
        commit recorded on the first append this long after the previous commit (and the
        first finished step is committed at once, so a run killed in its first second
        still has it). The commit is written by the writer thread after the blocks it covers,
        so training does not wait on it (with ``flush_seconds=0``, every append waits).

    The commit rule: a commit records, after every byte it covers is written, the step
    ``S`` up to which all series are whole: the last step before the newest step seen
    (steps advance together across series, as the recorder appends them; snapshots of
    step ``S + 1`` may still be coming). A recording that was not closed loads every
    series up to ``S``: no series has data past it and every series has all of its
    snapshots up to it, whatever their cadences. :meth:`flush` and :meth:`close` commit
    the newest step too (the caller says it is finished).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        metadata: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
        flush_bytes: int = 1 << 20,
        flush_seconds: float = 1.0,
    ):
        super().__init__(metadata)
        self.path = Path(path)
        self._lock_fd: list[int] = [self._create(overwrite)]
        self.flush_bytes = int(flush_bytes)
        self.flush_seconds = float(flush_seconds)
        self._files: dict[str, _Files] = {}
        self._stems: dict[str, str] = {}
        self._staging: dict[str, _Pool] = {}  # each series' staging blocks
        self._pools: dict[tuple, _Pool] = {}  # new_block's blocks, by (rows, width, dtype)
        self._high = _NO_STEP  # newest step appended
        self._done = _NO_STEP  # newest step known finished (the one before _high)
        self._hold: int | None = None  # snapshots of steps >= this may still arrive (hold_from)
        self._thread = _WriterThread()
        self._committer = _Committer(self.path, self._files, self._stems, self)
        # a process that exits without close() still writes and commits what it staged
        self._finalizer = weakref.finalize(
            self,
            _finish_at_exit,
            self._thread,
            self._series,
            self._files,
            self._committer,
            self._lock_fd,
        )
        self._next_flush = time.monotonic() + self.flush_seconds
        self._write_manifest()
        self._committer.commit(None)

    def _create(self, overwrite: bool) -> int:
        """Make the recording's directory, holding its lock, and return the lock.

        The directory is made beside ``path`` under a temporary name, locked, and only then
        renamed into place (a rename onto an existing recording fails): two writers started
        at the same instant never share a directory, and the loser deletes nothing. With
        ``overwrite`` the old recording's lock is held (refused if another writer has it)
        until the new one has replaced it."""
        path = self.path
        held = None
        replacing = os.path.lexists(path)
        if replacing:
            if path.is_dir() and not path.is_symlink():
                # another writer's lock refuses us whether or not we may overwrite
                held = hold_existing(path)
            if not overwrite:
                if held is not None:
                    os.close(held)
                raise RecordingExists(f"{path}: already exists (pass overwrite=True to replace it)")
            if not path.is_dir() or path.is_symlink():
                raise RecordingExists(
                    f"{path}: exists and is not a recording; refusing to overwrite it"
                )
            try:
                if (path / MANIFEST).exists():
                    _read_manifest(path)  # only ever delete what is one of our recordings
                elif [p for p in path.iterdir() if p.name != _LOCK]:
                    raise RecordingExists(
                        f"{path}: exists and is not a recording; refusing to overwrite it"
                    )
            except BaseException:
                if held is not None:
                    os.close(held)
                raise
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent))
        try:
            lock = _lock(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if held is not None:
                os.close(held)
            raise
        try:
            if replacing:  # swap: the old one aside, the new one in, the old one gone
                aside = tmp.with_suffix(".old")
                os.rename(path, aside)
                try:
                    os.rename(tmp, path)
                except OSError:
                    os.rename(aside, path)
                    raise
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(tmp, path)  # fails if another writer got there first
        except OSError as exc:
            os.close(lock)
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                raise RecordingExists(
                    f"{path}: already exists (another writer made it at the same moment)"
                ) from None
            raise
        finally:
            if held is not None:
                os.close(held)
        return lock

    def _stem(self, name: str) -> str:
        return f"s{self._series[name].index:04d}"

    def _write_manifest(self) -> None:
        self._committer.write_manifest()

    def _initial_capacity(self, snapshot_bytes: int) -> int:
        return max(1, min(self.flush_bytes // max(snapshot_bytes, 1), 1 << 16))

    def _on_new_series(self, state: _SeriesState) -> None:
        stem = self._stem(state.name)
        files = _Files(self.path, stem)
        headers = (
            _header(_STEPS_MAGIC, 8, np.dtype("<i8")),
            _header(_VALUES_MAGIC, state.snapshot_bytes, state.dtype),
            _header(_CRC_MAGIC, _CRC_RECORD.size),
        )
        for p, header in zip(files.paths, headers):
            with open(p, "xb") as f:
                f.write(header)
        self._files[state.name] = files
        self._stems[state.name] = stem
        self._committer.dirty = True  # written before the next commit, which counts this series
        self._staging[state.name] = _Pool(made=1)

    def _on_metadata(self) -> None:
        self._write_manifest()

    def _appended(self, step: int) -> None:
        if step > self._high:  # a new step began: every snapshot of the previous one is in
            self._done, self._high = self._high, step
            if self._committer.step is None and self._done != _NO_STEP:
                self._flush(self._done)  # the first finished step goes to disk at once
                return
        if time.monotonic() >= self._next_flush:  # flush_seconds=0: committed before returning
            self._flush(self._done, wait=self.flush_seconds <= 0)

    def moved(self, path: str | os.PathLike) -> None:
        """The recording's directory was renamed to ``path`` while open (a resume swaps a
        rewritten recording in): every later write, commit and manifest goes there."""
        self._thread.wait()
        self.path = Path(path)
        self._committer.path = self.path
        for files in self._files.values():
            files.close()
            files.paths = tuple(self.path / p.name for p in files.paths)

    def hold_from(self, step: int | None) -> None:
        """Snapshots at ``step`` or later may still be appended (a recorder's copies from an
        accelerator in flight): commits stop before it until ``hold_from(None)``."""
        self._hold = None if step is None else int(step)

    def _spill(self, state: _SeriesState) -> None:
        """Hand the full staging block of one series to the writer thread; take an empty one.

        The thread writes it (values file first, then steps, then the block's checksum
        record) while training goes on. At most ``_MAX_BLOCKS`` blocks per series exist,
        so a writer that falls behind makes this wait: memory stays bounded.
        """
        if not state.n:
            return
        self._thread.check()
        pool = self._staging[state.name]
        steps, values = state.steps, state.values
        state.steps, state.values = pool.get(
            lambda: (np.empty_like(steps), np.empty_like(values)), self._thread.check
        )
        self._thread.submit(
            self._files[state.name], steps, values, state.n, partial(pool.put, (steps, values))
        )
        state.n = 0

    def new_block(self, rows: int, width: int, dtype) -> "Block":
        """A block of the kind asked for that the writer thread has finished writing, or a
        new one while fewer than ``_MAX_BLOCKS`` of that kind exist (else wait for one:
        memory stays bounded)."""
        pool = self._pools.setdefault((rows, width, np.dtype(dtype)), _Pool())
        return pool.get(
            lambda: Block(np.empty(rows, "<i8"), np.empty((rows, width), dtype)),
            self._thread.check,
        )

    def _take_block(self, columns: list, block: "Block", start: int, stop: int, done: bool):
        """Series with at least ``_DIRECT_BYTES`` in these rows are written from the block as
        they are (by the writer thread); smaller ones are copied into their staging blocks,
        so that a bias of a few values is not written (a thread hand-over, three writes) for
        every block of rows."""
        self._thread.check()
        k = stop - start
        steps = block.steps[start:stop]
        last = int(steps[-1])
        direct = []
        for name, lo, hi, shape in columns:
            state = self._series[name]
            if k * (hi - lo) * block.values.itemsize >= _DIRECT_BYTES:
                self._took(state, k, last)
                direct.append((self._files[name], lo, hi))
            else:
                self._stage(state, steps, block.values[start:stop, lo:hi].reshape((k, *shape)))
        if direct or done:  # a block goes back through the writer's queue, after its writes
            free = self._returner(block) if done else None
            self._thread.submit_columns(direct, block.steps, block.values, start, stop, free)

    def _block_done(self, block: "Block") -> None:
        self._thread.submit_columns([], block.steps, block.values, 0, 0, self._returner(block))

    def _returner(self, block: "Block") -> Callable[[], None]:
        """What gives ``block`` back to its pool (called by the writer thread)."""
        pool = self._pools[(len(block.steps), block.values.shape[1], block.values.dtype)]
        return partial(pool.put, block)

    def _write_out(self) -> None:
        for state in self._series.values():
            self._spill(state)
        self._thread.wait()

    def _flush(self, step: int, wait: bool = True) -> None:
        """Write out every staged snapshot, then commit ``step`` (whole in every series).
        ``wait=False`` (the periodic commit during training) hands both to the writer thread
        and returns at once: the commit is written after the blocks it covers."""
        if wait:
            self._write_out()
        else:
            for state in self._series.values():
                self._spill(state)
        if self._hold is not None:
            step = min(step, self._hold - 1)
        if step != _NO_STEP:
            if wait:
                self._committer.commit(step)
            else:
                self._committer.commit_later(self._thread, step)
        self._next_flush = time.monotonic() + self.flush_seconds

    def flush(self) -> None:
        """Hand every staged snapshot to the OS and commit every step so far (call it
        between steps): a process killed after this keeps them."""
        self._flush(self._high)

    def commit_through(self, step: int) -> None:
        """Hand every staged snapshot to the writer thread and have it commit ``step`` after
        them, without waiting: the caller says every snapshot up to ``step`` is appended (a
        recorder at the start of a new training step)."""
        self._flush(min(int(step), self._high), wait=False)

    def close(self, complete: bool = True) -> None:
        """Flush, close the files, commit and mark the recording complete (idempotent).

        ``complete=False`` closes a recording of a run that was cut short (an error, an
        interrupt): everything written is kept and loads, but ``complete`` stays False,
        so a sweep knows to run it again. If writing fails (disk full) the recording stays
        as of its last commit.
        """
        if self.closed:
            return
        try:
            self._write_out()
        except BaseException:
            self._shut()
            self._release()  # the recording stays as of its last commit
            raise
        self._shut()
        try:
            self.complete = bool(complete)
            if self._committer.dirty:  # the commit below counts every series: list them first
                self._committer.write_manifest()
            # commit first: killed before the closed manifest is in, the recording loads
            # whole but incomplete (the commit covers both manifests meanwhile)
            self._committer.commit(None if self._high == _NO_STEP else self._high)
            self._committer.write_manifest(self._committer.manifest_bytes(self.complete, True))
        finally:
            self._release()

    def _shut(self) -> None:
        self._finalizer.detach()
        self._thread.stop()
        for files in self._files.values():
            files.close()
        self.closed = True

    def _release(self) -> None:
        if self._lock_fd:
            os.close(self._lock_fd.pop())

    def recording(self) -> Recording:
        """The recording as it stands on disk (flushes and commits first)."""
        if not self.closed:
            self.flush()
        return load(self.path)
