"""The disk writer's files and its thread: series files kept open, buffers, checksums."""

from __future__ import annotations

import collections
import errno
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable

from .format import _CRC_RECORD, _fast_crc32

_crc32 = _fast_crc32  # the writer's checksum (benchmarks/recording_format.py swaps it to time it)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


_CRC_OFFLOAD_BYTES = (
    64 << 10
)  # larger blocks are checksummed on a second thread, during their write
_MAX_BLOCKS = 3  # staging blocks per series in a DiskSink: one filling, two being written


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
    """At most ``_MAX_BLOCKS`` buffers of one kind for a DiskSink: one being filled,
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

    def submit_commit(self, committer: Any, *args) -> None:
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
