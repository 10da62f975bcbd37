"""Parameters of the model, by name: series named as the parameter, kind ``parameter``."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..torch_compat import match, patterns
from .base import TensorQuantity, slot

__all__ = ["Parameters"]


class Parameters(TensorQuantity):
    """The values of the parameters whose ``named_parameters()`` names match ``select``
    (shell-style patterns: ``"*"`` all, ``"layers.0.*"``), captured in blocks."""

    kind = "parameter"

    def __init__(self, select: str | Sequence[str] = "*"):
        super().__init__()
        self.patterns = patterns(select)

    def setup(self, model: torch.nn.Module) -> None:
        every = [n for n, _ in model.named_parameters()]
        self.selected = [n for n in every if match(n, self.patterns)]
        if self.patterns and not self.selected:
            hint = ""
            if any(match(n, self.patterns) for n, _ in model.named_buffers()):
                hint = " (that pattern names buffers: pass buffers=... to record them)"
            raise ValueError(
                f"Recorder: no parameter matches {self.patterns}{hint}; the model has {every}"
            )

    def info(self) -> dict[str, Any]:
        return {"params": self.selected}

    def parameter_names(self) -> list[str]:
        return self.selected

    def attach(self, model: torch.nn.Module, rec: Any) -> None:
        named = dict(model.named_parameters())
        present = [n for n in self.selected if n in named]
        self._slots = [slot(model, n, "_parameters") for n in present]
        self.bind(present, present)

    def tensors(self, rec: Any, step: int) -> list[torch.Tensor | None]:
        return [table[key] for table, key in self._slots]
