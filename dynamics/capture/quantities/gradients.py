"""Gradients of parameters, those of the update: series ``grad/<name>``, kind ``gradient``."""

from __future__ import annotations

from typing import Any

import torch

from .base import TensorQuantity
from .parameters import Parameters

__all__ = ["Gradients"]


class Gradients(TensorQuantity):
    """The gradients of the parameters ``params`` selects, captured in blocks. Frozen
    parameters have none (the recorder reports them); a parameter without a gradient at a
    captured step (unused in that forward pass) has no snapshot there, and is reported."""

    kind = "gradient"

    def __init__(self, params: Parameters):
        super().__init__()
        self.params = params

    def info(self) -> dict[str, Any]:
        return {"grads": True}

    def gradient_names(self) -> list[str]:
        return self.params.selected

    def attach(self, model: torch.nn.Module, rec: Any) -> None:
        named = dict(model.named_parameters())
        names = [n for n in self.params.selected if n in named and named[n].requires_grad]
        self._params = [named[n] for n in names]
        self.bind([f"grad/{n}" for n in names], names)

    def gradient_params(self) -> list[torch.nn.Parameter]:
        return self._params

    def tensors(self, rec: Any, step: int) -> list[torch.Tensor | None]:
        tensors = [rec.gradient(p) for p in self._params]
        if None in tensors and any(t is not None for t in tensors):
            missing = [n for n, t in zip(self.tensor_set.sources, tensors) if t is None]
            rec.report(
                "no-gradient",
                f"Recorder: {len(missing)} parameter(s) had no gradient at step {step} and "
                f"have no gradient snapshot there: {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''} (not used in the forward pass, or "
                "zero_grad(set_to_none=True) after backward?)",
                strict_raises=False,
            )
        return tensors
