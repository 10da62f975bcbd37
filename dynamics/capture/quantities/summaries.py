"""Summaries of parameters (and their gradients): ``stats/<name>``, ``hist/<name>`` and,
with adaptive bins, ``edges/<name>``, computed on the tensor's device."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..torch_compat import match, patterns
from .base import Quantity

__all__ = ["Summaries"]


class Summaries(Quantity):
    """Mean, std, min, max and a histogram of each parameter ``select`` names (with the
    recorder's :class:`~dynamics.summaries.Summarizer`), and of its gradient with
    ``grads=True`` (``stats/grad/<name>`` ...)."""

    kind = "stats"

    def __init__(self, select: str | Sequence[str], grads: bool = False):
        self.patterns, self.grads = patterns(select), bool(grads)

    def setup(self, model: torch.nn.Module) -> None:
        every = [n for n, _ in model.named_parameters()]
        self.selected = [n for n in every if match(n, self.patterns)]
        if self.patterns and not self.selected:
            raise ValueError(
                f"Recorder: no parameter matches summaries={self.patterns}; the model has {every}"
            )

    def info(self) -> dict[str, Any]:
        return {"summaries": {"params": self.selected, "grads": self.grads}}

    def asked(self) -> list[str]:
        return [f"stats/{n}" for n in self.selected]

    def parameter_names(self) -> list[str]:
        return self.selected

    def gradient_names(self) -> list[str]:
        return self.selected if self.grads else []

    def attach(self, model: torch.nn.Module, rec: Any) -> None:
        named = dict(model.named_parameters())
        self._params = [(n, named[n]) for n in self.selected if n in named]

    def gradient_params(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self._params] if self.grads else []

    def capture(self, rec: Any, model: torch.nn.Module, step: int) -> None:
        for name, param in self._params:
            rec.summarize(name, step, param, "parameter", name)
            grad = rec.gradient(param)
            if self.grads and grad is not None:
                rec.summarize(f"grad/{name}", step, grad, "gradient", name)
