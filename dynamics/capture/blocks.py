"""Tensors captured together in blocks: one ``torch.cat`` per dtype and step into a row of a
block the sink hands out, and the rows handed on with no second copy."""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["Block", "TensorSet"]


class Block:
    """Snapshots of a fixed list of same-dtype CPU tensors, one row per snapshot, side by side.

    The rows live in a block the sink hands out (``new_block``): a capture is one
    ``torch.cat`` of every tensor (flattened) into the next row, bit-exact, and rows go to
    the sink as they are, with no second copy (``extend_block``). For floating dtypes the
    rows handed on are summed row by row in one call (a NaN or inf survives a sum, so the
    values are searched only where a sum is not finite): one sum over many rows costs the
    training thread less than a sum of each row right after its capture.
    """

    #: bytes of snapshots per block (at most 256 rows): large enough that the per-block work
    #: (one hand-over per series) is small per snapshot
    BYTES = 4 << 20

    def __init__(
        self, names: list[str], shapes: list[tuple[int, ...]], dtype: np.dtype, index: list[int]
    ):
        sizes = [math.prod(s) for s in shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        self.width = offsets[-1]
        self.dtype = dtype
        self.capacity = int(min(256, max(2, self.BYTES // max(self.width * dtype.itemsize, 1))))
        self.slices = [
            (name, lo, hi, shape)
            for name, lo, hi, shape in zip(names, offsets, offsets[1:], shapes)
        ]
        self.index = index  # positions of this block's tensors in the set's tensor list
        # the steps of the rows, as Python ints: written into the sink's block when the rows
        # are handed on (a numpy scalar read and write per capture cost about 4 us)
        self.steps = [0] * self.capacity
        self.floating = dtype.kind == "f"
        if self.floating:
            self.sums = torch.empty(
                self.capacity, dtype=torch.float64 if dtype.itemsize > 4 else torch.float32
            )
        self.buf = None  # the sink's block being filled (taken at the first capture into it)
        self.table: torch.Tensor | None = None  # the block's values, as a tensor
        self.rows: tuple = ()  # torch views of the block's rows
        self.n = 0  # rows filled
        self.start = 0  # rows [:start] are handed to the sink

    def take(self, sink) -> None:
        buf = self.buf = sink.new_block(self.capacity, self.width, self.dtype)
        if buf.views is None:  # a block the sink hands out again keeps its views
            table = torch.from_numpy(buf.values)
            buf.views = table, table.unbind(0)
        self.table, self.rows = buf.views
        self.n = self.start = 0


class TensorSet:
    """Parameters, buffers or gradients captured together (see :class:`Block`)."""

    def __init__(self, kind: str, names: list[str], sources: list[str]):
        self.kind, self.names, self.sources = kind, names, sources
        self.signature: list | None = None  # [(torch dtype, shape)] the blocks were built for
        self.blocks: list[Block] = []
        # Parameters and buffers keep their memory from step to step: their flattened views
        # are kept while every tensor's (data pointer, dtype, shape, strides) stays the same.
        # (A kept view holds its storage, so no other tensor can start at that address.)
        # Gradients are new tensors at every step (zero_grad(set_to_none=True)): not kept.
        self.keep_views = kind != "gradient"
        self.key: list | None = None
        self.sources_kept: list = []  # per block, the kept views of its tensors
