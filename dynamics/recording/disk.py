"""A recording sink that streams to disk, crash-safe (:class:`DiskSink`)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
import zlib
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .files import _Files, _Pool, _WriterThread
from .format import (
    _COMMIT,
    _CRC_MAGIC,
    _CRC_RECORD,
    _LOCK,
    _MAX_MANIFEST_BYTES,
    _STEPS_MAGIC,
    _VALUES_MAGIC,
    FORMAT,
    MANIFEST,
    VERSION,
    _commit_bytes,
    _header,
    _read_manifest,
)
from .locks import _lock, _replace, hold_existing
from .model import Recording, RecordingError, RecordingExists
from .reader import load
from .sink import Block, Sink, _SeriesState

_DIRECT_BYTES = 64 << 10  # a series' rows of a block written from it as they are, not staged


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

    def __init__(self, path: Path, files: dict[str, _Files], stems: dict[str, str], sink: Sink):
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
                "as series (Recorder.put / DiskSink.append), not in the metadata"
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


def _finish_at_exit(
    thread: _WriterThread, series: dict, files: dict, committer: _Committer, lock: list
) -> None:
    """Write and commit what an unclosed DiskSink staged (run by weakref.finalize at
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


_NO_STEP = -(1 << 63)  # "no step yet" for the commit bookkeeping (steps are int64)


class DiskSink(Sink):
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

    def _new_block(self, rows: int, width: int, dtype) -> Block:
        """A block of the kind asked for that the writer thread has finished writing, or a
        new one while fewer than ``_MAX_BLOCKS`` of that kind exist (else wait for one:
        memory stays bounded)."""
        pool = self._pools.setdefault((rows, width, np.dtype(dtype)), _Pool())
        return pool.get(
            lambda: Block(np.empty(rows, "<i8"), np.empty((rows, width), dtype)),
            self._thread.check,
        )

    def _take_block(self, columns: list, block: Block, start: int, stop: int, done: bool):
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

    def _block_done(self, block: Block) -> None:
        self._thread.submit_columns([], block.steps, block.values, 0, 0, self._returner(block))

    def _returner(self, block: Block) -> Callable[[], None]:
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

    def _close(self, complete: bool) -> None:
        """Flush, close the files, commit and mark the recording complete (:meth:`close`).

        ``complete=False`` closes a recording of a run that was cut short (an error, an
        interrupt): everything written is kept and loads, but ``complete`` stays False,
        so a sweep knows to run it again. If writing fails (disk full) the recording stays
        as of its last commit.
        """
        try:
            self._write_out()
        except BaseException:
            self._shut()
            self._release()  # the recording stays as of its last commit
            raise
        self._shut()
        try:
            self.complete = complete
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
