"""The sink protocol: what a recording sink (memory or disk) takes from the recorder."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .format import DTYPES
from .model import Recording, RecordingError, Series, to_jsonable


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
