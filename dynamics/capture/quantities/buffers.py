"""Buffers of the model (BatchNorm's running statistics), by name: kind ``buffer``."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..torch_compat import match, patterns
from .base import TensorQuantity, slot

__all__ = ["Buffers"]


class Buffers(TensorQuantity):
    """The buffers whose ``named_buffers()`` names match ``select`` (``"*running_*"``),
    captured in blocks; series named as the buffer."""

    kind = "buffer"

    def __init__(self, select: str | Sequence[str]):
        super().__init__()
        self.patterns = patterns(select)

    def setup(self, model: torch.nn.Module) -> None:
        every = [n for n, _ in model.named_buffers()]
        self.selected = [n for n in every if match(n, self.patterns)]
        if self.patterns and not self.selected:
            raise ValueError(
                f"Recorder: no buffer matches buffers={self.patterns}; the model has {every}"
            )

    def info(self) -> dict[str, Any]:
        return {"buffers": self.selected}

    def attach(self, model: torch.nn.Module, rec: Any) -> None:
        self._slots = [slot(model, n, "_buffers") for n in self.selected]
        self.bind(list(self.selected), list(self.selected))

    def tensors(self, rec: Any, step: int) -> list[torch.Tensor | None]:
        return [table.get(key) for table, key in self._slots]
