"""Functions of the model captured on the schedule: ``derived={"name": fn}``."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from .base import Quantity

__all__ = ["Derived"]


class Derived(Quantity):
    """``{"positions": lambda model: model.a[:, None] * model.w}``: each function of the
    model returns a tensor or array of fixed shape, captured as series ``name``."""

    kind = "derived"

    def __init__(self, functions: Mapping[str, Callable[[torch.nn.Module], Any]]):
        self.functions = dict(functions)

    def info(self) -> dict[str, Any]:
        return {"derived": list(self.functions)}

    def asked(self) -> list[str]:
        return list(self.functions)

    def capture(self, rec: Any, model: torch.nn.Module, step: int) -> None:
        for name, fn in self.functions.items():
            rec.emit(name, step, fn(model), self.kind)
