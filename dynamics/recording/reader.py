"""Reading a recording from disk: memory-mapped series, :func:`load`, :func:`verify`."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import math
import mmap
import os
import stat
import sys
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .format import (
    _COMMIT,
    _CRC_MAGIC,
    _CRC_RECORD,
    _HEADER_SIZE,
    _HOLE_RATIO,
    _HOLE_SLACK,
    _MAX_MANIFEST_BYTES,
    _STEPS_MAGIC,
    _VALUES_MAGIC,
    MANIFEST,
    _check_header,
    _Commit,
    _fast_crc32,
    _Manifest,
    _open_file,
    _pread,
    _pread_into,
    _read_commit,
    _read_manifest,
    _read_small,
    _Spec,
)
from .model import Recording, RecordingError, Series


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
    return verified(Path(path))[0]


def verified(root: str | os.PathLike) -> tuple[list[str], Recording]:
    """What :func:`verify` finds, and the recording as the checked files hold it (one reading
    of the files for both: :mod:`dynamics.check` reports the two)."""
    root = Path(root)
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
        from ..tensorboard import from_tensorboard

        return from_tensorboard(root)
    if verify:
        problems, rec = verified(root)
        if problems:
            raise RecordingError(f"{root}: damaged:\n" + "\n".join(problems))
        return rec
    return _open(root)[1]


def load_runs(*paths: str | os.PathLike) -> dict[str, Recording]:
    """Several runs, read and named: ``{name: Recording}`` in the order given.

    Each path is what :func:`load` reads (a recording, a TensorBoard event file or log
    directory); a log directory of several runs gives each of them, in name order
    (:func:`dynamics.tensorboard.runs`). A run is named after its folder (an event file
    given alone: the folder it is in), and where two names agree their parent folders are
    added until they differ: ``runs/lr0.1/seed0`` and ``runs/lr1/seed0`` are
    ``lr0.1/seed0`` and ``lr1/seed0``. Raises :class:`ValueError` where a run is given
    twice (the same path, or a log directory and one of its runs), and
    :class:`RecordingError` as :func:`load` does.
    """
    found: dict[Path, tuple[str, ...]] = {}  # each run: the folders that name it
    for path in paths:
        root = Path(os.path.abspath(path))
        if root.is_dir() and _is_event_log(root):
            from ..tensorboard import runs

            runs_here = [root / rel if rel != "." else root for rel in runs(root)]
        else:
            runs_here = [root]
        for run in runs_here:
            if run in found:
                raise ValueError(f"run {run} is given twice: give each run once")
            named = run.parent if run.is_file() and _is_event_log(run) else run
            found[run] = named.parts[1:] if named.anchor else named.parts
    names = _unique_names(list(found.values()))
    return {name: load(run) for name, run in zip(names, found)}


def _unique_names(places: list[tuple[str, ...]]) -> list[str]:
    """The last folder of each place, with as many of its parents as it takes for the names
    to differ; places that are the same (two event files of one folder) are numbered."""
    depth = [1] * len(places)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(places, depth)]
        clash = {n for n in names if names.count(n) > 1}
        grow = [i for i, n in enumerate(names) if n in clash and depth[i] < len(places[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if names.count(n) == 1 else f"{n} ({seen[n]})")
    return out


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
