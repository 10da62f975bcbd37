"""A recording sink that keeps every series in memory (:class:`MemorySink`)."""

from __future__ import annotations

import concurrent.futures
import mmap
import os
from typing import Any, Mapping

import numpy as np

from .model import Recording, Series
from .sink import Block, Sink, _SeriesState

_PREFAULTER: list = []  # the helper thread that prepares MemorySink blocks (made when needed)
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


class MemorySink(Sink):
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

    def _new_block(self, rows: int, width: int, dtype) -> Block:
        """A fresh block (a kept block is never reused), allocated and touched on a helper
        thread while the previous one of its kind filled."""
        key = (rows, width, np.dtype(dtype))
        steps, values = _collect(self._next_blocks.pop(key, None), rows, (width,), dtype)
        self._next_blocks[key] = _prefaulted(rows, (width,), dtype)
        return Block(steps, values)

    def _take_block(self, columns: list, block: Block, start: int, stop: int, done: bool):
        steps = block.steps[start:stop]
        last = int(steps[-1])
        for name, lo, hi, shape in columns:
            self._took(self._series[name], stop - start, last)
            values = block.values[start:stop, lo:hi].reshape((stop - start, *shape))
            self._full[name].append((steps, values))

    def _close(self, complete: bool) -> None:
        self.closed, self.complete = True, complete

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
