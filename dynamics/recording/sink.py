"""The sink protocol: what a recording sink (memory or disk) takes from the recorder.

:class:`Sink` is the abstract base of every sink (:class:`~dynamics.recording.MemorySink`,
:class:`~dynamics.recording.DiskSink`) and its docstring is the protocol, written down
once; :class:`Block` is the half of the zero-copy block path a sink hands out (the other
half is ``_Block`` in :mod:`dynamics.recorder`). ``tests/test_sinks.py`` holds every sink to
it.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Mapping

import numpy as np

from .format import DTYPES
from .model import Recording, RecordingError, Series, to_jsonable

_NO_STEP = -(1 << 63)  # the last step of a series with no snapshot yet: any int64 step may follow


def _stored(dtype: np.dtype) -> np.dtype:
    """``dtype`` as a series stores it (little endian)."""
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


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
        self.last = _NO_STEP  # last step appended (steps never decrease)
        self.steps = np.empty(capacity, "<i8")
        self.values = np.empty((capacity, *shape), dtype)
        self.n = 0  # snapshots in the staging block

    @property
    def snapshot_bytes(self) -> int:
        return self.dtype.itemsize * math.prod(self.shape)


class Block:
    """Rows of snapshots of several series side by side, handed out by :meth:`Sink.new_block`.

    ``steps`` (rows,) int64 and ``values`` (rows, width) of one dtype; row ``i`` holds the
    snapshots taken at step ``steps[i]``, series ``name`` in columns ``[lo:hi)`` (see
    :meth:`Sink.extend_block`). A new block's contents are undefined (a sink may hand out a
    block it used before). ``views`` is the producer's, to keep its views of the values in
    (the recorder: the whole table as a tensor and its rows); it stays with the block when
    the sink hands it out again.
    """

    __slots__ = ("steps", "values", "views")

    def __init__(self, steps: np.ndarray, values: np.ndarray):
        self.steps, self.values, self.views = steps, values, None


class Sink(abc.ABC):
    """What a recorder writes into: declare series, append snapshots, close to a Recording.

    **Series.** A series has one dtype (one of :data:`~dynamics.recording.DTYPES`; a big-endian
    dtype is stored little endian) and one per-snapshot shape (zero-size allowed), fixed by
    :meth:`declare` or by its first snapshot. What it holds (``kind``, ``source``, ``of``) is
    fixed by the first declaration; a later ``declare`` of the same series must agree on
    dtype and shape (the rest is ignored). The sink never casts: a snapshot of another dtype
    or shape is refused.

    **Steps.** Per series, steps never decrease (equal steps are allowed: several
    snapshots at one step); any int64 may come first. Nothing is asked across series, but
    the disk sink commits on the assumption that steps advance together (a snapshot of a
    step later than ``S`` in any series means ``S`` is finished in all of them) unless told
    otherwise by :meth:`hold_from`.

    **Snapshots in.** :meth:`append` (one) and :meth:`extend` (several) copy the values into
    the series' staging block before they return (the only copy): the caller may reuse its
    array at once. What happens to a full staging block is the subclass's (:meth:`_spill`):
    the memory sink keeps it and starts a larger one, the disk sink hands it to its writer
    thread. :attr:`buffered_bytes` counts what is staged.

    **The block path** (zero copy; the recorder's ``_Block`` is the producer):

    1. ``block = sink.new_block(rows, width, dtype)``: the producer owns the block.
    2. It fills rows in order, ``block.steps[i]`` and ``block.values[i]``.
    3. ``sink.extend_block(columns, block, start, stop, done)`` hands rows
       ``[start:stop)`` to the sink, each series in ``columns`` (declared before, with the
       block's dtype) being ``block.values[:, lo:hi]``. From then on those rows belong to
       the sink, which keeps views of them (memory) or writes them later from another thread
       (disk): the producer never writes them again, and may go on filling the rows after
       ``stop``. ``done=True`` hands the whole block back: the producer writes none of its rows
       again and the sink may hand it out again from ``new_block`` (the disk sink does, once
       written). ``start == stop`` with ``done=True`` hands back a block with no new rows.

    Every block must be handed back (``done=True``) in the end: the disk sink keeps at most
    three blocks of one ``(rows, width, dtype)`` and ``new_block`` waits for one to be handed
    back and written (memory stays bounded), so a producer that holds more waits forever.
    A block refused by ``extend_block`` (an error below) is still the producer's.

    **Metadata.** :attr:`metadata` is JSON: :meth:`update_metadata` merges JSON-able items
    (numpy scalars and arrays, tuples and paths converted; anything else refused, the
    metadata left as it was).

    **Closing.** :meth:`close` (``complete=True``: the producer finished; ``False``: it was
    cut short) is idempotent, the first call deciding ``complete``; afterwards every write
    (``declare``, ``append``, ``extend``, ``new_block``, ``extend_block``,
    ``update_metadata``) raises ValueError. ``with sink:`` closes on leaving the block,
    ``complete`` unless an exception left it. :attr:`closed` and :attr:`complete` say where
    it stands. :meth:`recording` returns what was recorded (so far, if still open:
    ``complete`` is then False), bit for bit as appended.

    **Errors.** ValueError: a write after close, a snapshot or declaration whose shape differs
    from the series', a negative dimension, an unknown ``kind`` or ``of`` (see
    :data:`~dynamics.recording.KINDS`), a step before the series' last one, ``extend``
    with as many steps as snapshots not given, a block whose columns disagree with their
    series (shape, dtype, width). TypeError: a dtype that cannot be recorded (object, string,
    datetime ...), a snapshot or declaration of another dtype than the series', metadata
    that is not JSON-able. KeyError: ``extend_block`` naming a series never declared. The
    disk sink adds RecordingError (the lock, a manifest too large), RecordingExists and
    OSError (a failed write, raised at a later call). A call refused with ValueError,
    TypeError or KeyError changes nothing.

    **Beyond the protocol**, the disk sink has :meth:`~DiskSink.flush`,
    :meth:`~DiskSink.commit_through` and :meth:`~DiskSink.moved` (a resume), which
    the recorder calls on it alone.

    **Subclasses** implement :meth:`_spill`, :meth:`_new_block`, :meth:`_take_block`,
    :meth:`_close` and :meth:`recording`, and may override the hooks :meth:`_initial_capacity`,
    :meth:`_on_new_series`, :meth:`_appended`, :meth:`_on_metadata`, :meth:`_block_done` and
    :meth:`hold_from` (no-ops here, but ``_initial_capacity``: 16 snapshots).
    """

    def __init__(self, metadata: Mapping[str, Any] | None = None):
        self.metadata: dict[str, Any] = to_jsonable(dict(metadata or {}))
        self._series: dict[str, _SeriesState] = {}
        self.closed = False
        self.complete = False  # closed after the producer finished (not cut short by an error)

    def _check_open(self, what: str) -> None:
        if self.closed:
            raise ValueError(f"{what}: cannot write, the recording is closed")

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
        self._check_open(f"series {name!r}")
        info = Series(np.empty(0, np.int64), np.empty(0), kind, source, of).info  # validates
        dtype = np.dtype(dtype)
        if dtype.hasobject:
            raise TypeError(f"series {name!r}: object arrays cannot be recorded")
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"series {name!r}: negative dimension in shape {shape}")
        state = self._series.get(name)
        if state is None:
            dtype = _stored(dtype)
            if dtype.str not in DTYPES:
                raise TypeError(
                    f"series {name!r}: dtype {dtype} cannot be recorded (numeric or bool only)"
                )
            capacity = self._initial_capacity(dtype.itemsize * math.prod(shape))
            self._series[name] = _SeriesState(name, len(self._series), dtype, shape, capacity, info)
            self._on_new_series(self._series[name])
            return
        if state.shape != shape:
            raise ValueError(
                f"series {name!r}: snapshot shape {shape} differs from earlier {state.shape}"
            )
        if _stored(dtype) != state.dtype:
            raise TypeError(f"series {name!r}: dtype {dtype} differs from earlier {state.dtype}")

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
        elif value.dtype != state.dtype and _stored(value.dtype) != state.dtype:
            raise TypeError(
                f"series {name!r}: snapshot of {value.dtype} for a series of {state.dtype} "
                "(a sink never casts)"
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
        if values.ndim == 0 or steps.ndim != 1 or len(steps) != len(values):
            raise ValueError(
                f"series {name!r}: extend needs as many steps as snapshots, got {steps.shape} "
                f"steps and values of shape {values.shape}"
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
        elif values.dtype != state.dtype and _stored(values.dtype) != state.dtype:
            raise TypeError(
                f"series {name!r}: snapshots of {values.dtype} for a series of {state.dtype} "
                "(a sink never casts)"
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

    # -- the block path: a producer (the Recorder) copies snapshots of several series
    #    straight into a block the sink gave it, so each value is copied once
    def new_block(self, rows: int, width: int, dtype) -> Block:
        """An empty :class:`Block` of ``rows`` snapshots of ``width`` values of ``dtype``, for
        :meth:`extend_block`; the sink may hand out a block it used before (see the class)."""
        self._check_open("new_block")
        return self._new_block(rows, width, dtype)

    def extend_block(self, columns: list, block: Block, start: int, stop: int, done: bool) -> None:
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
        for name, lo, hi, shape in columns:
            state = self._series[name]
            if (
                state.shape != shape
                or state.dtype != block.values.dtype
                or hi - lo != math.prod(shape)
            ):
                raise ValueError(
                    f"series {name!r}: block of {block.values.dtype} snapshots of shape {shape} "
                    f"in columns [{lo}:{hi}) for a series of {state.dtype} {state.shape}"
                )
            if first < state.last:
                raise ValueError(
                    f"series {name!r}: steps must not decrease (got {first} after {state.last})"
                )
        self._take_block(columns, block, start, stop, done)
        self._appended(last)

    def update_metadata(self, **items: Any) -> None:
        """Merge JSON-able ``items`` into the metadata (left as it was if they are refused)."""
        self._check_open("update_metadata")
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
        """Bytes of snapshots staged in memory and not yet handed on (blocks from
        :meth:`new_block` are not counted)."""
        return sum(s.n * s.snapshot_bytes for s in self._series.values())

    def close(self, complete: bool = True) -> None:
        """Stop accepting snapshots and finish the recording (idempotent: the first call
        decides). ``complete=False`` marks a run that was cut short."""
        if not self.closed:
            self._close(bool(complete))

    @abc.abstractmethod
    def recording(self) -> Recording:
        """What was recorded, as a :class:`Recording` (so far, if the sink is still open)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)

    # -- what a subclass must implement
    @abc.abstractmethod
    def _spill(self, state: _SeriesState) -> None:
        """The staging block of ``state`` is full: make room for at least one snapshot."""

    @abc.abstractmethod
    def _new_block(self, rows: int, width: int, dtype) -> Block:
        """What :meth:`new_block` returns (the sink is open)."""

    @abc.abstractmethod
    def _take_block(self, columns: list, block: Block, start: int, stop: int, done: bool):
        """Take rows ``[start:stop)`` (at least one, checked) of ``block`` for ``columns``; each
        series' count and last step are the subclass's to advance (:meth:`_stage`,
        :meth:`_took`)."""

    @abc.abstractmethod
    def _close(self, complete: bool) -> None:
        """Finish the recording; set :attr:`closed` (and :attr:`complete` to ``complete``)
        even when finishing fails. Called once."""

    # -- optional hooks: no-ops here, on purpose (not abstract)
    def _initial_capacity(self, snapshot_bytes: int) -> int:
        """Snapshots in a new series' first staging block."""
        return 16

    def _on_new_series(self, state: _SeriesState) -> None:  # noqa: B027 (optional)
        """A series was declared (its state is in ``self._series``)."""

    def _appended(self, step: int) -> None:  # noqa: B027 (optional)
        """Snapshots up to ``step`` were appended (after every append, extend, extend_block)."""

    def _on_metadata(self) -> None:  # noqa: B027 (optional)
        """The metadata changed; raise RecordingError to refuse it (it is then restored)."""

    def _block_done(self, block: Block) -> None:  # noqa: B027 (optional)
        """``block`` was handed back with no new rows (``extend_block(..., k, k, True)``)."""

    def hold_from(self, step: int | None) -> None:  # noqa: B027 (optional)
        """Snapshots at ``step`` or later may still be appended (a recorder's copies from an
        accelerator in flight): a sink that commits commits nothing from ``step`` on until
        ``hold_from(None)``. A no-op for a sink that does not commit."""
