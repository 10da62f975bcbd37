"""What a :class:`~dynamics.Recorder` captures, one small class each on :class:`Quantity`.

The recorder's keyword arguments are shorthands that build these (:func:`from_keywords`);
``Recorder(..., quantities=[...])`` adds any others, written as in :mod:`.base`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from .activations import Activations
from .base import Quantity, TensorQuantity
from .buffers import Buffers
from .derived import Derived
from .gradients import Gradients
from .parameters import Parameters
from .probe import Probe
from .sharpness import Sharpness
from .summaries import Summaries

__all__ = [
    "Quantity",
    "TensorQuantity",
    "Parameters",
    "Buffers",
    "Gradients",
    "Derived",
    "Summaries",
    "Activations",
    "Sharpness",
    "Probe",
    "from_keywords",
    "describe",
]


def from_keywords(
    *,
    params: str | Sequence[str] | None,
    buffers: str | Sequence[str] | None,
    grads: bool,
    derived: Mapping[str, Callable[[torch.nn.Module], Any]] | None,
    summaries: str | Sequence[str] | None,
    summary_grads: bool,
    activations: str | Sequence[str] | None,
) -> list[Quantity]:
    """The quantities the recorder's keyword arguments ask for, in the order they are
    captured: parameters, buffers, gradients, derived, summaries, activations."""
    made: list[Quantity] = []
    if params is not None:
        made.append(Parameters(params))
        if grads:
            made.append(Gradients(made[-1]))
    if buffers is not None:
        made.insert(1 if params is not None else 0, Buffers(buffers))
    if derived:
        made.append(Derived(derived))
    if summaries is not None:
        made.append(Summaries(summaries, grads=summary_grads))
    if activations is not None:
        made.append(Activations(activations))
    return made


def describe(quantities: Sequence[Quantity]) -> dict[str, Any]:
    """Their entries of ``metadata["recorder"]``, merged: lists joined, mappings merged."""
    info: dict[str, Any] = {}
    for q in quantities:
        for key, value in q.info().items():
            if isinstance(value, dict) and isinstance(info.get(key), dict):
                info[key] = {**info[key], **value}
            elif isinstance(value, list) and isinstance(info.get(key), list):
                info[key] = info[key] + value
            else:
                info[key] = value
    return info
