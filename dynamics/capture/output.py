"""What the recorder hands its sink: series declared once (dtype and shape never change),
values appended (tensors on an accelerator copied asynchronously), tensors captured in
blocks, NaN and inf reported, and the step a commit must stop before."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .blocks import Block, TensorSet
from .errors import RecorderError
from .torch_compat import match, storage_dtype

__all__ = ["Output"]


class Output:
    """The recorder's side of the sink protocol (:mod:`dynamics.recording.sink`).

    ``report(key, message, strict_raises=True)`` is the recorder's (a warning once, an
    error with ``strict=True``); ``nonfinite_ok``: patterns of series whose NaN and inf
    are values.
    """

    def __init__(self, report: Callable[..., None], nonfinite_ok: list[str]):
        self.report, self.nonfinite_ok = report, nonfinite_ok
        self.sink: Any = None  # set once made (a resumed recording fills declared first)
        # series -> (stored dtype, shape of a snapshot): neither changes (never cast into)
        self.declared: dict[str, tuple[np.dtype, tuple]] = {}
        self.floor: dict[str, int] = {}  # resumed series -> last kept step (later appends only)
        self.floor_max = -1
        self.nonfinite: dict[str, int] = {}
        self.pending: list[tuple] = []  # device->host copies in flight
        self.sets: list[TensorSet] = []  # the tensor quantities' sets, captured in blocks

    def emit(
        self, name: str, step: int, value: Any, kind: str, source: str = "", of: str = ""
    ) -> None:
        if not isinstance(value, torch.Tensor):
            self.append(name, step, np.asarray(value), kind, source, of)
            return
        value = value.detach()
        if value.dtype is torch.bfloat16:
            value = value.float()  # numpy has no bfloat16; float32 holds every bfloat16 exactly
        if value.is_cpu:
            # no copy here: every sink copies what it keeps before this returns
            self.append(name, step, value.numpy(), kind, source, of)
            return
        # Accelerator tensor: start an asynchronous copy into pinned memory and collect it
        # at the next capture, so the training step is not stalled waiting for the copy.
        if value.device.type != "cuda":  # other accelerators: a plain blocking copy
            self.append(name, step, value.cpu().numpy(), kind, source, of)
            return
        host = torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=True)
        host.copy_(value, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending.append((name, step, host, event, (kind, source, of)))
        if len(self.pending) == 1:  # a commit must not cover this step before the copy is appended
            self.update_hold()

    def append(
        self,
        name: str,
        step: int,
        value: np.ndarray,
        kind: str = "",
        source: str = "",
        of: str = "",
    ) -> None:
        # the first snapshot of a series declares what it holds (written into the manifest)
        value = np.asarray(value)
        if self.declared.get(name) != (value.dtype, value.shape):
            self.declare(name, value.dtype, value.shape, kind, source, of)
        if step <= self.floor.get(name, -1):
            return  # resumed: the kept recording already holds this step
        if kind in _CHECKED and value.dtype.kind == "f" and not np.isfinite(value).all():
            self._non_finite([name], step)
        self.sink.append(name, step, value)

    def declare(
        self, name: str, dtype: np.dtype, shape: tuple, kind: str, source: str, of: str
    ) -> None:
        shape = tuple(shape)
        if name not in self.declared:
            self.sink.declare(name, dtype, shape, kind=kind, source=source, of=of)
            self.declared[name] = dtype, shape
            return
        declared, declared_shape = self.declared[name]
        if shape != declared_shape:
            raise ValueError(
                f"Recorder: series {name!r} was recorded with shape {declared_shape} and is "
                f"now {shape} (a parameter replaced or resized after the recorder started, "
                "or an activation of a batch of another size?). A series keeps one shape: record "
                "the new shape into a new recording"
            )
        if declared != dtype:
            raise TypeError(
                f"Recorder: series {name!r} was recorded as {declared} and is now {dtype} "
                "(model.double(), .half() or .to(dtype) after the recorder started?). A series "
                "keeps one dtype and the recorder never casts: convert the model before making the "
                "Recorder, or record the new dtype into a new recording"
            )

    def drain(self) -> None:
        for name, step, host, event, info in self.pending:
            event.synchronize()
            self.append(name, step, host.numpy(), *info)
        if self.pending:
            self.pending.clear()
            self.update_hold()

    def update_hold(self) -> None:
        """Tell the sink the first step whose snapshots are not all handed to it yet (rows
        in this recorder's blocks, copies from an accelerator in flight): a commit, which
        promises every series whole up to its step, stops before it."""
        firsts = [b.steps[b.start] for tset in self.sets for b in tset.blocks if b.n > b.start]
        firsts += [step for _, step, *_ in self.pending]
        self.sink.hold_from(min(firsts) if firsts else None)

    def capture_tensors(self, tset: TensorSet, step: int, tensors: list) -> None:
        """Capture ``tensors`` (those of ``tset``, None: none this step) at ``step`` into
        blocks (a :class:`~dynamics.capture.quantities.TensorQuantity`'s capture)."""
        key = None
        if tset.keep_views:
            try:
                key = [(t.data_ptr(), t.dtype, t.shape, t.stride()) for t in tensors]
            except AttributeError:  # a tensor is None
                pass
        if key is None or key != tset.key:
            signature = [(t.dtype, t.shape) if t is not None else None for t in tensors]
            if signature != tset.signature and not self._build_blocks(tset, signature, tensors):
                self._capture_slow(tset, step, tensors)
                return
            views = [t.flatten() for t in tensors]
            # a flatten of a contiguous tensor is a view of it (else a copy, not kept)
            keep = key is not None and all(t.is_contiguous() for t in tensors)
            sources = (
                [[views[i] for i in block.index] for block in tset.blocks]
                if len(tset.blocks) > 1
                else [views]
            )
            tset.key, tset.sources_kept = (key, sources) if keep else (None, [])
        else:
            sources = tset.sources_kept
        if step <= self.floor_max:  # just resumed: some series already hold this step
            self._capture_slow(tset, step, tensors)
            return
        for block, source in zip(tset.blocks, sources):
            if block.buf is None:
                block.take(self.sink)
            n = block.n
            if n and block.steps[n - 1] > step:
                raise ValueError(
                    f"series {block.slices[0][0]!r}: steps must not decrease (got {step} after "
                    f"{block.steps[n - 1]})"
                )
            torch.cat(source, out=block.rows[n])
            block.steps[n] = step
            block.n = n + 1
            if n == block.start:
                self.update_hold()
            if block.n == block.capacity:
                self.flush_block(block)

    def _build_blocks(self, tset: TensorSet, signature: list, tensors: list) -> bool:
        """(Re)build the blocks of ``tset`` for ``signature``; False: capture it tensor by tensor
        (a missing gradient, a tensor off the CPU, a dtype numpy lacks)."""
        for block in tset.blocks:
            self.flush_block(block)
            if block.buf is not None:  # give the sink its block back
                buf, block.buf = block.buf, None
                self.sink.extend_block(block.slices, buf, block.n, block.n, True)
        tset.blocks, tset.signature, tset.key, tset.sources_kept = [], None, None, []
        if any(t is None or not t.is_cpu for t in tensors):
            return False
        dtypes = [storage_dtype(s[0]) for s in signature]
        if any(d is None for d in dtypes):
            return False
        for name, source, dtype, s in zip(tset.names, tset.sources, dtypes, signature):
            self.declare(name, dtype, tuple(s[1]), tset.kind, source, "")
        groups: dict[np.dtype, list[int]] = {}
        for i, d in enumerate(dtypes):
            groups.setdefault(d, []).append(i)
        for dtype, index in groups.items():
            tset.blocks.append(
                Block(
                    [tset.names[i] for i in index],
                    [tuple(signature[i][1]) for i in index],
                    dtype,
                    index,
                )
            )
        tset.signature = signature
        return True

    def _capture_slow(self, tset: TensorSet, step: int, tensors: list) -> None:
        for block in tset.blocks:  # keep each series' steps in order
            self.flush_block(block)
        for name, source, tensor in zip(tset.names, tset.sources, tensors):
            if tensor is not None:
                self.emit(name, step, tensor, tset.kind, source)

    def _check_finite(self, block: Block, start: int, n: int) -> None:
        """NaN or inf in rows ``[start:n)`` of a block? Their sums say (NaN and inf survive a
        sum; an overflow to inf is told apart by the exact check that follows)."""
        sums = block.sums[start:n]
        half = block.dtype.itemsize < 4  # summed in float32
        torch.sum(block.table[start:n], 1, dtype=torch.float32 if half else None, out=sums)
        sums = sums.numpy()
        if np.isfinite(sums).all():
            return
        values, steps = block.buf.values, block.buf.steps
        for row in (start + np.flatnonzero(~np.isfinite(sums))).tolist():
            bad = [
                name
                for name, lo, hi, _ in block.slices
                if not np.isfinite(values[row, lo:hi]).all()
            ]
            if bad:
                self._non_finite(bad, int(steps[row]))

    def _non_finite(self, names: list[str], step: int) -> None:
        new = [
            name
            for name in names
            if name not in self.nonfinite and not match(name, self.nonfinite_ok)
        ]
        if not new:
            return
        for name in new:
            self.nonfinite[name] = step
        self.sink.update_metadata(nonfinite=dict(self.nonfinite))
        self.report(
            f"nonfinite/{new[0]}",
            "Recorder: non-finite value (NaN or inf) in series "
            f"{', '.join(map(repr, new[:5]))}{' ...' if len(new) > 5 else ''} at step {step} "
            "(first for each; listed in metadata['nonfinite'])",
        )

    def flush_block(self, block: Block) -> None:
        """Hand the block's rows not yet handed on to the sink (and, once it is full, the
        block itself: the next capture takes a new one)."""
        buf, start, n = block.buf, block.start, block.n
        if buf is None or n == start:
            return
        done = n == block.capacity
        block.start = n
        buf.steps[start:n] = block.steps[start:n]
        try:
            self.sink.extend_block(block.slices, buf, start, n, done and not block.floating)
            self.update_hold()
            if block.floating:  # after handing them on: with strict=True the raise loses nothing
                self._check_finite(block, start, n)
        finally:
            if done:
                block.buf, block.table, block.rows, block.n, block.start = None, None, (), 0, 0
                if block.floating and not self.sink.closed:  # checked: the sink may reuse it
                    self.sink.extend_block(block.slices, buf, n, n, True)

    def flush_blocks(self) -> None:
        error = None
        for tset in self.sets:
            for block in tset.blocks:
                try:
                    self.flush_block(block)
                except RecorderError as exc:  # strict: hand on every block first
                    error = error or exc
        if error is not None:
            raise error


#: kinds whose values are checked for NaN and inf (parameters, buffers and gradients captured
#: in blocks are checked there, with one sum per snapshot)
_CHECKED = frozenset({"parameter", "gradient", "buffer", "derived", "scalar", "stats"})
