"""One conformance suite for recording sinks (as zarr's ``StoreTests``): :class:`SinkTests`
holds every sink to the protocol written down in :class:`dynamics.recording.Sink`, and is
subclassed once per sink. Where sinks legitimately differ, a class attribute of the subclass
says so; the disk sink's own promises (checksums, the commit rule, resume) are tested in its
subclass.

Every value is read back and compared bit for bit (NaN payloads included).
"""

import contextlib
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from dynamics.recording import (
    DTYPES,
    Block,
    DiskSink,
    MemorySink,
    Recording,
    RecordingError,
    RecordingExists,
    Sink,
    hold_existing,
    load,
    verify,
)

SHAPES = [(), (3,), (2, 3), (0,), (4, 0)]


def random_values(rng: np.random.Generator, dtype, shape) -> np.ndarray:
    """Random bytes as ``dtype`` (every bit pattern: NaNs with payloads, infinities)."""
    dtype = np.dtype(dtype)
    raw = rng.integers(0, 256, math.prod(shape) * dtype.itemsize, dtype=np.uint8)
    if dtype.kind == "b":
        raw &= 1
    return raw.view(dtype).reshape(shape)


def assert_bits(got, want) -> None:
    """Same dtype (as stored: little endian), shape and bytes."""
    got, want = np.asarray(got), np.asarray(want)
    if want.dtype.byteorder == ">":
        want = want.astype(want.dtype.newbyteorder("<"))
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def columns_of(shapes: dict) -> tuple[list, int]:
    """``extend_block`` columns for series ``name -> shape`` side by side, and the width."""
    columns, lo = [], 0
    for name, shape in shapes.items():
        hi = lo + math.prod(shape)
        columns.append((name, lo, hi, shape))
        lo = hi
    return columns, lo


def fill(block: Block, columns: list, rows: range, steps, rng, dtype) -> dict:
    """Write random snapshots into ``rows`` of ``block``; return them per series."""
    written = {name: [] for name, *_ in columns}
    for row, step in zip(rows, steps):
        block.steps[row] = step
        for name, lo, hi, shape in columns:
            value = random_values(rng, dtype, shape)
            block.values[row, lo:hi] = value.reshape(-1)
            written[name].append(value)
    return written


class SinkTests:
    """The protocol every sink keeps. A subclass sets the hooks and the differences below."""

    #: ``recording()`` says up to which step the recording is committed (``committed_step``);
    #: False: the sink never commits and it is None
    COMMITS: bool
    #: staged snapshots are handed on (written out) as staging blocks fill: ``buffered_bytes``
    #: stays under a bound and is 0 once closed; False: the sink keeps everything staged
    HANDS_ON: bool
    #: a block handed back with ``done=True`` may be handed out again by ``new_block``;
    #: False: every block is new (the sink keeps the old ones' rows as they are)
    REUSES_BLOCKS: bool

    def make_sink(self, tmp_path: Path, metadata=None, **options) -> Sink:
        """A new sink (``tmp_path``: a path of its own, if it needs one)."""
        raise NotImplementedError

    def recording_of(self, sink: Sink) -> Recording:
        """What a reader gets of the sink's recording (after close: the final one)."""
        raise NotImplementedError

    def buffered_bound(self, snapshot_bytes: int) -> int:
        """The most bytes of one series that may stay staged (``HANDS_ON`` sinks)."""
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _sinks(self, tmp_path):
        self.tmp_path, self.made, self.rng = tmp_path, [], np.random.default_rng(0)
        yield
        for sink in self.made:  # a test that failed half way leaves no writer thread behind
            try:
                sink.close(complete=False)
            except Exception:
                pass

    def sink(self, metadata=None, **options) -> Sink:
        sink = self.make_sink(self.tmp_path / f"s{len(self.made)}", metadata, **options)
        self.made.append(sink)
        return sink

    def closed_recording(self, sink: Sink, complete: bool = True) -> Recording:
        sink.close(complete)
        rec = self.recording_of(sink)
        assert rec.complete is complete and sink.complete is complete and sink.closed
        return rec

    # -- append and extend ---------------------------------------------------------------
    def test_is_a_sink(self):
        assert isinstance(self.sink(), Sink)

    def test_append_and_extend_round_trip(self):
        sink = self.sink({"run": "demo"})
        want_w, want_loss = [], []
        for step in range(100):  # past several staging blocks
            value = self.rng.standard_normal((3, 4)).astype(np.float32)
            sink.append("w", step, value)
            want_w.append(value)
            if step % 10 == 0:
                sink.append("loss", step, 1.0 / (step + 1))
                want_loss.append(1.0 / (step + 1))
        more = self.rng.standard_normal((250, 3, 4)).astype(np.float32)
        sink.extend("w", np.arange(100, 150), more[:50])
        sink.extend("w", np.arange(150, 350), more[50:])
        rec = self.closed_recording(sink)
        assert sorted(rec) == ["loss", "w"] and rec.metadata == {"run": "demo"}
        np.testing.assert_array_equal(rec["w"].steps, np.arange(350))
        assert_bits(rec["w"].values, np.concatenate([np.stack(want_w), more]))
        np.testing.assert_array_equal(rec["loss"].steps, np.arange(0, 100, 10))
        assert_bits(rec["loss"].values, np.array(want_loss))
        assert rec["w"].steps.dtype == np.int64

    @pytest.mark.parametrize("shape", SHAPES, ids=str)
    @pytest.mark.parametrize("dtype", sorted(DTYPES))
    def test_every_dtype_and_shape_appended_and_extended(self, dtype, shape):
        sink = self.sink()
        first = [random_values(self.rng, dtype, shape) for _ in range(3)]
        for step, value in enumerate(first):
            sink.append("x", step, value)
        rest = random_values(self.rng, dtype, (40, *shape))
        sink.extend("x", np.arange(3, 43), rest)
        sink.declare("x", dtype, shape)  # agrees: accepted
        rec = self.closed_recording(sink)
        np.testing.assert_array_equal(rec["x"].steps, np.arange(43))
        assert_bits(rec["x"].values, np.concatenate([np.stack(first), rest]))

    @pytest.mark.parametrize("dtype", sorted(DTYPES))
    def test_every_dtype_through_blocks(self, dtype):
        sink = self.sink()
        shapes = {"a": (), "b": (3,), "c": (2, 3), "d": (0,)}
        columns, width = columns_of(shapes)
        for name, shape in shapes.items():
            sink.declare(name, dtype, shape, kind="parameter", source=name)
        block = sink.new_block(8, width, dtype)
        assert block.steps.shape == (8,) and block.values.shape == (8, width)
        assert block.steps.dtype == np.int64 and block.values.dtype == np.dtype(dtype)
        want = fill(block, columns, range(8), range(8), self.rng, dtype)
        sink.extend_block(columns, block, 0, 8, True)
        rec = self.closed_recording(sink)
        for name in shapes:
            np.testing.assert_array_equal(rec[name].steps, np.arange(8))
            assert_bits(rec[name].values, np.stack(want[name]))
            assert rec[name].kind == "parameter" and rec[name].source == name

    def test_big_endian_snapshots_are_stored_little_endian(self):
        sink = self.sink()
        big = np.arange(6, dtype=">f8").reshape(2, 3) / 7
        sink.append("x", 0, big[0])
        sink.append("x", 1, big[1].astype("<f8"))  # the same series, either byte order
        sink.extend("x", [2, 3], big)
        rec = self.closed_recording(sink)
        assert rec["x"].values.dtype == np.dtype("<f8")
        assert_bits(rec["x"].values, np.concatenate([big, big]))

    def test_appended_values_are_copied_before_the_call_returns(self):
        sink = self.sink()
        value = np.zeros(4)
        sink.append("x", 0, value)
        value[:] = 7  # the caller reuses its buffer (a parameter updated in place)
        sink.append("x", 1, value)
        many = np.ones((3, 4))
        sink.extend("x", [2, 3, 4], many)
        value[:], many[:] = -1, -1
        rec = self.closed_recording(sink)
        np.testing.assert_array_equal(rec["x"].values[:, 0], [0, 7, 1, 1, 1])

    def test_extend_needs_as_many_steps_as_snapshots(self):
        sink = self.sink()
        with pytest.raises(ValueError, match="as many steps as snapshots"):
            sink.extend("x", [0, 1], np.zeros((3, 2)))
        with pytest.raises(ValueError, match="as many steps as snapshots"):
            sink.extend("x", [0], np.float64(1.0))
        sink.extend("x", [], np.zeros((0, 2)))  # nothing: the series is not even declared
        sink.append("y", 0, 1.0)
        rec = self.closed_recording(sink)
        assert list(rec) == ["y"]

    # -- declare ---------------------------------------------------------------------------
    def test_declared_series_holds_what_was_declared(self):
        sink = self.sink()
        sink.declare("w", np.float32, (2, 2), kind="parameter", source="lin.weight")
        sink.declare("g", "<f2", [3], kind="stats", source="lin.weight", of="gradient")
        sink.declare("empty", np.int16, (5,))
        sink.append("w", 0, np.eye(2, dtype=np.float32))
        sink.extend("g", [0, 1], np.ones((2, 3), np.float16))
        sink.declare("w", np.float32, (2, 2), kind="data")  # agrees; what it holds stays
        rec = self.closed_recording(sink)
        assert (rec["w"].kind, rec["w"].source, rec["w"].of) == ("parameter", "lin.weight", "")
        assert (rec["g"].kind, rec["g"].of) == ("stats", "gradient")
        assert_bits(rec["w"].values, np.eye(2, dtype=np.float32)[None])
        assert_bits(rec["g"].values, np.ones((2, 3), np.float16))
        assert len(rec["empty"]) == 0 and rec["empty"].values.shape == (0, 5)
        assert rec["empty"].values.dtype == np.int16

    def test_snapshots_and_declarations_that_disagree_are_refused_and_change_nothing(self):
        sink = self.sink()
        sink.declare("x", np.float32, (2,))
        sink.append("x", 0, np.array([1.5, 2.5], np.float32))
        refused = [
            (ValueError, "shape", lambda: sink.append("x", 1, np.zeros(3, np.float32))),
            (ValueError, "shape", lambda: sink.append("x", 1, np.zeros((1, 2), np.float32))),
            (ValueError, "shape", lambda: sink.extend("x", [1], np.zeros((1, 3), np.float32))),
            (ValueError, "shape", lambda: sink.declare("x", np.float32, (3,))),
            # never cast: float64 would lose bits, int8 would wrap 300.7 to 44
            (TypeError, "float64", lambda: sink.append("x", 1, np.array([0.1, 0.2]))),
            (TypeError, "int8", lambda: sink.append("x", 1, np.array([3, 4], np.int8))),
            (TypeError, "float64", lambda: sink.extend("x", [1], np.zeros((1, 2)))),
            (TypeError, "int64", lambda: sink.declare("x", np.int64, (2,))),
        ]
        for error, match, call in refused:
            with pytest.raises(error, match=match):
                call()
        sink.append("x", 1, np.array([3.5, 4.5], np.float32))
        rec = self.closed_recording(sink)
        np.testing.assert_array_equal(rec["x"].steps, [0, 1])
        assert_bits(rec["x"].values, np.array([[1.5, 2.5], [3.5, 4.5]], np.float32))

    @pytest.mark.parametrize(
        "dtype", [object, "U3", "S2", "M8[s]", "m8[s]", [("a", "<f4")], "V4"], ids=str
    )
    def test_dtypes_that_cannot_be_recorded_are_refused(self, dtype):
        sink = self.sink()
        with pytest.raises(TypeError, match="cannot be recorded"):
            sink.declare("x", dtype, (2,))
        with pytest.raises(TypeError, match="cannot be recorded"):
            sink.append("y", 0, np.zeros(2, dtype))
        rec = self.closed_recording(sink)
        assert list(rec) == []

    def test_bad_declarations_are_refused(self):
        sink = self.sink()
        with pytest.raises(ValueError, match="negative dimension"):
            sink.declare("x", np.float32, (2, -1))
        with pytest.raises(ValueError, match="kind"):
            sink.declare("x", np.float32, (2,), kind="nonsense")
        with pytest.raises(ValueError, match="'of'"):
            sink.declare("x", np.float32, (2,), kind="stats", of="nonsense")
        rec = self.closed_recording(sink)
        assert list(rec) == []

    # -- steps -------------------------------------------------------------------------------
    def test_steps_never_decrease_per_series(self):
        sink = self.sink()
        sink.append("a", -5, 0.0)  # any int64 may come first
        sink.append("a", 3, 1.0)
        sink.append("a", 3, 2.0)  # equal steps: several snapshots at one step
        sink.append("b", 0, 9.0)  # another series has its own order
        with pytest.raises(ValueError, match="must not decrease"):
            sink.append("a", 2, 3.0)
        with pytest.raises(ValueError, match="must not decrease"):
            sink.extend("a", [2, 4], np.zeros(2))
        with pytest.raises(ValueError, match="must not decrease within one extend"):
            sink.extend("a", [5, 4], np.zeros(2))
        sink.extend("a", [3, 4, 4], np.array([4.0, 5.0, 6.0]))
        rec = self.closed_recording(sink)
        np.testing.assert_array_equal(rec["a"].steps, [-5, 3, 3, 3, 4, 4])
        np.testing.assert_array_equal(rec["a"].values, [0, 1, 2, 4, 5, 6])
        np.testing.assert_array_equal(rec["b"].steps, [0])

    def test_steps_never_decrease_through_blocks(self):
        sink = self.sink()
        columns, width = columns_of({"a": (2,), "b": ()})
        sink.declare("a", np.float32, (2,))
        sink.declare("b", np.float32, ())
        sink.append("b", 10, np.float32(1))
        block = sink.new_block(4, width, np.float32)
        block.values[:] = 0
        block.steps[:4] = [11, 13, 12, 14]
        with pytest.raises(ValueError, match="within a block"):
            sink.extend_block(columns, block, 0, 4, False)
        block.steps[:4] = [9, 10, 11, 12]  # "b" is at step 10 already
        with pytest.raises(ValueError, match="'b'.*must not decrease"):
            sink.extend_block(columns, block, 0, 4, False)
        block.steps[:4] = [10, 10, 11, 12]  # refused blocks are the producer's still
        block.values[:, 2] = [2, 3, 4, 5]
        sink.extend_block(columns, block, 0, 4, True)
        rec = self.closed_recording(sink)
        np.testing.assert_array_equal(rec["a"].steps, [10, 10, 11, 12])
        np.testing.assert_array_equal(rec["b"].steps, [10, 10, 10, 11, 12])
        np.testing.assert_array_equal(rec["b"].values, [1, 2, 3, 4, 5])

    # -- the block path ----------------------------------------------------------------------
    def test_blocks_of_several_series_handed_on_in_parts(self):
        sink = self.sink()
        shapes = {"a": (3,), "b": (2, 3), "c": (), "d": (0,)}
        columns, width = columns_of(shapes)
        for name, shape in shapes.items():
            sink.declare(name, np.float64, shape)
        want = {name: [] for name in shapes}
        steps = {name: [] for name in shapes}

        def took(written, at):
            for name, values in written.items():
                want[name] += values
                steps[name] += list(at)

        sink.append("c", 0, 0.5)  # staged before the block's rows: kept first
        took({"c": [np.float64(0.5)]}, [0])
        block = sink.new_block(6, width, np.float64)
        took(fill(block, columns, range(0, 2), [1, 2], self.rng, np.float64), [1, 2])
        sink.extend_block(columns, block, 0, 2, False)
        took(fill(block, columns, range(2, 5), [3, 3, 4], self.rng, np.float64), [3, 3, 4])
        sink.extend_block(columns, block, 2, 5, False)
        sink.append("c", 5, 0.25)  # between two parts of one block
        took({"c": [np.float64(0.25)]}, [5])
        sink.extend_block(columns, block, 5, 5, True)  # handed back, row 5 never filled
        partial = sink.new_block(6, width, np.float64)
        took(fill(partial, columns, range(3), [6, 7, 8], self.rng, np.float64), [6, 7, 8])
        sink.extend_block(columns, partial, 0, 3, True)  # a partial block, handed back
        rec = self.closed_recording(sink)
        for name, shape in shapes.items():
            np.testing.assert_array_equal(rec[name].steps, steps[name])
            assert_bits(rec[name].values, np.array(want[name]).reshape(len(want[name]), *shape))

    def test_blocks_of_large_and_small_series(self):
        # a large series' rows may be written from the block as they are, small ones staged
        sink = self.sink()
        shapes = {"big": (100, 200), "small": (2,)}
        columns, width = columns_of(shapes)
        for name, shape in shapes.items():
            sink.declare(name, np.float32, shape)
        want = {name: [] for name in shapes}
        for i in range(5):
            block = sink.new_block(4, width, np.float32)
            written = fill(block, columns, range(4), range(4 * i, 4 * i + 4), self.rng, "<f4")
            sink.extend_block(columns, block, 0, 2, False)
            sink.extend_block(columns, block, 2, 4, True)
            for name in shapes:
                want[name] += written[name]
        rec = self.closed_recording(sink)
        for name in shapes:
            np.testing.assert_array_equal(rec[name].steps, np.arange(20))
            assert_bits(rec[name].values, np.stack(want[name]))

    def test_blocks_handed_back_are_reused_only_after_their_rows_are_taken(self):
        sink = self.sink()
        columns, width = columns_of({"x": (64,)})
        sink.declare("x", np.int32, (64,))
        seen, want = [], []
        for i in range(10):
            block = sink.new_block(4, width, np.int32)
            if block.views is None:
                block.views = ("producer's", id(block))
            assert block.views == ("producer's", id(block))  # stays with its block
            assert all(
                block is old or not np.shares_memory(block.values, old.values) for old in seen
            )
            seen.append(block)
            want += fill(block, columns, range(4), range(4 * i, 4 * i + 4), self.rng, np.int32)["x"]
            sink.extend_block(columns, block, 0, 4, True)
        reused = len({id(b) for b in seen}) < len(seen)
        assert reused is self.REUSES_BLOCKS
        rec = self.closed_recording(sink)
        assert_bits(rec["x"].values, np.stack(want))

    def test_blocks_that_disagree_with_their_series_are_refused(self):
        sink = self.sink()
        sink.declare("x", np.float32, (2, 3))
        block = sink.new_block(2, 6, np.float32)
        block.steps[:] = [0, 1]
        block.values[:] = 1
        for columns in (
            [("x", 0, 6, (3, 2))],  # another shape
            [("x", 0, 4, (2, 3))],  # columns narrower than the shape
        ):
            with pytest.raises(ValueError, match="'x'"):
                sink.extend_block(columns, block, 0, 2, False)
        with pytest.raises(KeyError, match="never"):
            sink.extend_block([("never", 0, 6, (2, 3))], block, 0, 2, False)
        other = sink.new_block(2, 6, np.float64)
        other.steps[:] = [0, 1]
        with pytest.raises(ValueError, match="float64"):  # another dtype
            sink.extend_block([("x", 0, 6, (2, 3))], other, 0, 2, True)
        sink.extend_block([("x", 0, 6, (2, 3))], block, 0, 2, True)
        rec = self.closed_recording(sink)
        assert_bits(rec["x"].values, np.ones((2, 2, 3), np.float32))

    # -- metadata ----------------------------------------------------------------------------
    def test_metadata_is_json_and_merged(self):
        sink = self.sink({"arr": np.arange(3), "t": (1, 2.5), "p": Path("a/b"), "x": np.float32(2)})
        assert sink.metadata == {"arr": [0, 1, 2], "t": [1, 2.5], "p": "a/b", "x": 2.0}
        sink.update_metadata(seed=np.int64(3), nested={"inf": float("inf")}, arr=None)
        with pytest.raises(TypeError, match="not JSON-able"):
            sink.update_metadata(ok=1, bad=object())
        with pytest.raises(TypeError, match="not JSON-able"):
            self.sink({"bad": {1, 2}})
        sink.append("x", 0, 1.0)
        want = {"arr": None, "t": [1, 2.5], "p": "a/b", "x": 2.0, "seed": 3}
        want["nested"] = {"inf": "inf"}
        assert sink.metadata == want
        assert self.closed_recording(sink).metadata == want

    # -- closing -----------------------------------------------------------------------------
    @pytest.mark.parametrize("complete", [True, False])
    def test_close_says_whether_the_run_finished(self, complete):
        sink = self.sink()
        sink.append("x", 0, np.arange(2))
        sink.append("x", 7, np.arange(2) + 1)
        rec = self.closed_recording(sink, complete)
        np.testing.assert_array_equal(rec["x"].steps, [0, 7])
        assert rec.committed_step == (7 if self.COMMITS else None)
        sink.close(not complete)  # idempotent: the first close decides
        assert sink.complete is complete
        assert self.recording_of(sink).complete is complete
        assert sink.recording().complete is complete

    def test_an_empty_sink_closes_to_an_empty_recording(self):
        rec = self.closed_recording(self.sink({"a": 1}))
        assert list(rec) == [] and rec.metadata == {"a": 1} and rec.committed_step is None

    def test_recording_while_open_holds_everything_so_far(self):
        sink = self.sink()
        sink.extend("x", range(20), np.arange(20.0))
        early = sink.recording()
        assert not early.complete and not sink.closed
        assert early.committed_step == (19 if self.COMMITS else None)
        np.testing.assert_array_equal(early["x"].values, np.arange(20.0))
        sink.extend("x", range(20, 50), np.arange(20.0, 50.0))
        sink.append("y", 50, 1)
        rec = self.closed_recording(sink)
        np.testing.assert_array_equal(early["x"].values, np.arange(20.0))  # unchanged
        np.testing.assert_array_equal(rec["x"].values, np.arange(50.0))
        np.testing.assert_array_equal(sink.recording()["x"].values, np.arange(50.0))

    @pytest.mark.parametrize("fails", [False, True])
    def test_context_manager_closes(self, fails):
        sink = self.sink()
        with pytest.raises(KeyError) if fails else contextlib.nullcontext():
            with sink as entered:
                assert entered is sink
                sink.append("x", 0, 3)
                if fails:
                    raise KeyError("cut short")
        assert sink.closed and sink.complete is not fails
        rec = self.recording_of(sink)
        assert rec.complete is not fails and rec["x"].values.tolist() == [3]

    def test_every_write_after_close_is_refused_and_changes_nothing(self):
        sink = self.sink({"a": 1})
        sink.declare("x", np.float32, (2,))
        sink.append("x", 0, np.ones(2, np.float32))
        block = sink.new_block(2, 2, np.float32)
        block.steps[:] = [1, 2]
        block.values[:] = 2
        before = self.closed_recording(sink)
        writes = [
            lambda: sink.declare("new", np.float32, ()),
            lambda: sink.declare("x", np.float32, (2,)),
            lambda: sink.append("x", 5, np.ones(2, np.float32)),
            lambda: sink.extend("x", [5], np.ones((1, 2), np.float32)),
            lambda: sink.new_block(2, 2, np.float32),
            lambda: sink.extend_block([("x", 0, 2, (2,))], block, 0, 2, True),
            lambda: sink.update_metadata(late=True),
        ]
        for write in writes:
            with pytest.raises(ValueError, match="closed"):
                write()
        after = self.recording_of(sink)
        assert after.complete and after.metadata == {"a": 1} and list(after) == ["x"]
        assert after.committed_step == before.committed_step
        assert_bits(after["x"].values, np.ones((1, 2), np.float32))
        assert sink.metadata == {"a": 1}

    # -- buffering and hold_from ---------------------------------------------------------------
    def test_buffered_bytes(self):
        sink = self.sink()
        frame = np.ones(1000, np.float32)  # 4000 bytes
        appended = 0
        for step in range(60):
            sink.append("x", step, frame)
            sink.append("y", step, np.float64(step))
            appended += frame.nbytes + 8
            buffered = sink.buffered_bytes
            assert 0 < buffered <= appended
            if self.HANDS_ON:
                assert buffered <= self.buffered_bound(frame.nbytes) + self.buffered_bound(8)
        block = sink.new_block(4, 1000, np.float32)  # blocks are not counted
        assert sink.buffered_bytes == buffered
        block.steps[:] = 60
        sink.extend_block([], block, 0, 0, True)
        sink.close()
        assert (sink.buffered_bytes == 0) is self.HANDS_ON
        assert len(self.recording_of(sink)["x"]) == 60

    def test_hold_from_loses_nothing(self):
        sink = self.sink()
        sink.hold_from(2)
        for step in range(5):
            sink.append("x", step, step)
        sink.hold_from(None)
        sink.hold_from(4)
        rec = self.closed_recording(sink)
        np.testing.assert_array_equal(rec["x"].values, np.arange(5))


class TestMemorySink(SinkTests):
    COMMITS = False  # everything appended is in recording(); nothing to commit
    HANDS_ON = False  # keeps every snapshot: its staging blocks grow (up to 64 MiB)
    REUSES_BLOCKS = False  # a block's rows become the series' values as they are

    def make_sink(self, tmp_path, metadata=None, **options):
        return MemorySink(metadata, **options)

    def recording_of(self, sink):
        return sink.recording()


class TestDiskSink(SinkTests):
    COMMITS = True
    HANDS_ON = True
    REUSES_BLOCKS = True  # at most three blocks of a kind, each handed out again once written
    FLUSH_BYTES = 4096

    def make_sink(self, tmp_path, metadata=None, **options):
        options = {"flush_bytes": self.FLUSH_BYTES, "flush_seconds": 1000.0, **options}
        return DiskSink(tmp_path.with_suffix(".rec"), metadata, **options)

    def recording_of(self, sink):
        return load(sink.path)

    def buffered_bound(self, snapshot_bytes):
        return max(self.FLUSH_BYTES, snapshot_bytes)

    def written(self, sink, name) -> int:
        """Snapshots of series ``name`` in its files (committed or not), once the writer
        thread has written what it was handed."""
        path = sink.path / f"s{sink._series[name].index:04d}.steps"
        deadline = time.monotonic() + 10
        while True:
            n = (path.stat().st_size - 16) // 8
            if n >= sink._series[name].count - sink._series[name].n or time.monotonic() > deadline:
                return n
            time.sleep(0.005)

    def test_checksums_verify_and_find_a_flipped_byte(self):
        sink = self.sink()
        for step in range(300):
            sink.append("w", step, random_values(self.rng, "<f4", (12,)))
        sink.flush()
        assert verify(sink.path) == []  # open, as committed
        self.closed_recording(sink)
        assert verify(sink.path) == [] and load(sink.path, verify=True).complete
        # a value of snapshot 200; the last step (299 -> 315: the steps still increase)
        for suffix, offset in (("values", 16 + 200 * 48 + 5), ("steps", 16 + 299 * 8)):
            path = sink.path / f"s0000.{suffix}"
            data = bytearray(path.read_bytes())
            data[offset] ^= 0x10
            path.write_bytes(bytes(data))
            problems = verify(sink.path)
            assert len(problems) == 1 and "'w' (s0000)" in problems[0] and suffix in problems[0]
            with pytest.raises(RecordingError, match="checksum mismatch"):
                load(sink.path, verify=True)
            data[offset] ^= 0x10
            path.write_bytes(bytes(data))
            assert verify(sink.path) == []

    def test_an_unclosed_recording_loads_cut_to_its_last_commit(self):
        sink = self.sink(flush_bytes=64)  # staging blocks of 8 snapshots, written at once
        for step in range(30):
            sink.append("a", step, np.float64(step))
            sink.append("b", step, np.full(3, step, np.int16))
        # steps 0..29 are handed to the writer thread; step 0 was committed as step 1 began
        assert self.written(sink, "a") >= 24
        rec = load(sink.path)
        assert not rec.complete and rec.committed_step == 0
        assert rec["a"].steps.tolist() == [0] and rec["b"].values.tolist() == [[0, 0, 0]]
        sink.hold_from(17)  # snapshots of step 17 on may still come: commits stop before it
        sink.flush()
        rec = load(sink.path, verify=True)
        assert rec.committed_step == 16
        assert rec["a"].values.tolist() == list(range(17)) and len(rec["b"]) == 17
        sink.hold_from(None)
        sink.flush()  # the caller says every step so far is finished
        sink.append("a", 30, np.float64(30))  # not committed
        rec = load(sink.path, verify=True)
        assert rec.committed_step == 29 and rec["a"].steps.tolist() == list(range(30))
        np.testing.assert_array_equal(rec["b"].values[:, 2], np.arange(30))
        rec = self.closed_recording(sink)
        assert rec.committed_step == 30 and rec["a"].steps[-1] == 30 and len(rec["b"]) == 30

    def test_commit_through_commits_on_the_writer_thread(self):
        sink = self.sink()
        for step in range(10):
            sink.append("a", step, np.float64(step))
        sink.commit_through(6)
        deadline = time.monotonic() + 10
        while load(sink.path).committed_step != 6 and time.monotonic() < deadline:
            time.sleep(0.005)
        rec = load(sink.path, verify=True)
        assert rec.committed_step == 6 and rec["a"].values.tolist() == list(range(7))

    def test_one_writer_per_recording(self):
        sink = self.sink()
        sink.append("x", 0, 1.0)
        for overwrite in (False, True):
            with pytest.raises(RecordingError, match="another writer"):
                DiskSink(sink.path, overwrite=overwrite)
        with pytest.raises(RecordingError, match="another writer"):
            hold_existing(sink.path)
        self.closed_recording(sink)
        with pytest.raises(RecordingExists):
            DiskSink(sink.path)
        held = hold_existing(sink.path)  # closed: the lock is free
        try:
            with pytest.raises(RecordingError, match="another writer"):
                DiskSink(sink.path, overwrite=True)
        finally:
            os.close(held)
        with DiskSink(sink.path, overwrite=True) as again:
            again.append("y", 0, 2.0)
        assert list(load(sink.path)) == ["y"]

    def test_resume_rewrites_the_kept_prefix_and_goes_on(self):
        # what Recorder(resume=True) does: the old recording locked, its prefix up to the
        # checkpoint written into a new one beside it, swapped in, and the writer moved()
        path = self.tmp_path / "run.rec"
        values = random_values(self.rng, "<f4", (20, 2, 3))
        with DiskSink(path, {"run": 1}) as old:
            old.extend("w", np.arange(20), values)  # steps 0..19; the checkpoint is at 9
            old.extend("loss", np.arange(0, 20, 5), np.arange(4.0))
        held = hold_existing(path)
        try:
            before = load(path)
            tmp = self.tmp_path / ".run.rec.resuming"
            sink = DiskSink(tmp, before.metadata, flush_bytes=self.FLUSH_BYTES)
            self.made.append(sink)
            for name, s in before.items():
                keep = int(np.searchsorted(s.steps, 9, side="right"))
                sink.declare(name, s.values.dtype, s.shape, **s.info)
                sink.extend(name, s.steps[:keep], np.asarray(s.values[:keep]))
            sink.flush()
            del before
            aside = path.with_name(".run.replaced")
            os.replace(path, aside)
            os.replace(tmp, path)
            sink.moved(path)
            shutil.rmtree(aside)
        finally:
            os.close(held)
        swapped = load(path)
        assert not swapped.complete and swapped.committed_step == 9
        assert [len(swapped["w"]), len(swapped["loss"])] == [10, 2]
        again = random_values(self.rng, "<f4", (5, 2, 3))
        sink.extend("w", np.arange(10, 15), again)
        sink.update_metadata(resumed=[9])
        rec = self.closed_recording(sink)
        assert rec.metadata == {"run": 1, "resumed": [9]} and verify(path) == []
        np.testing.assert_array_equal(rec["w"].steps, np.arange(15))
        assert_bits(rec["w"].values, np.concatenate([values[:10], again]))
        np.testing.assert_array_equal(rec["loss"].steps, [0, 5])
        assert rec.path == path
        assert sorted(p.name for p in self.tmp_path.iterdir()) == ["run.rec"]


def test_the_sinks_former_names_are_the_same_classes():
    import dynamics
    from dynamics.recording import MemoryWriter, RecordingWriter

    assert RecordingWriter is DiskSink and MemoryWriter is MemorySink
    assert dynamics.RecordingWriter is DiskSink and dynamics.DiskSink is DiskSink
