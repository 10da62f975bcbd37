"""The recording's ``metadata["recorder"]``: what is recorded and how (each quantity's
entries), and what cannot be (frozen parameters, parameters no given optimizer steps)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from ..summaries import Summarizer
from .quantities import Quantity, describe
from .schedules import Schedule
from .torch_compat import distributed

__all__ = ["recorder_metadata"]


def recorder_metadata(
    quantities: Sequence[Quantity],
    model: torch.nn.Module,
    optimizers: list,
    metadata: Mapping[str, Any] | None,
    *,
    grads: bool,
    schedule: Schedule,
    summarizer: Summarizer,
    nonfinite_ok: list[str],
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The user's ``metadata`` with ``"recorder"`` added (unless given), and the names of the
    frozen parameters asked for gradients and of the recorded ones no optimizer steps."""
    named = dict(model.named_parameters())
    wanted = [n for q in quantities for n in q.gradient_names()]
    frozen = [n for n in dict.fromkeys(wanted) if not named[n].requires_grad]
    not_optimized: list[str] = []
    if optimizers:
        stepped = {id(p) for o in optimizers for g in o.param_groups for p in g["params"]}
        watched = dict.fromkeys(n for q in quantities for n in q.parameter_names())
        not_optimized = [
            n for n in watched if named[n].requires_grad and id(named[n]) not in stepped
        ]
    described = describe(quantities)
    summaries = described.pop("summaries", None)
    info = {"params": [], "grads": grads, "derived": [], **described}
    info["schedule"] = schedule.description
    if len(optimizers) > 1:
        info["optimizers"] = len(optimizers)
        info["step_rule"] = (
            "a step completes when every optimizer has stepped since the previous step"
        )
    if frozen:
        info["frozen"] = frozen
    if not_optimized:
        info["not_optimized"] = not_optimized
    if nonfinite_ok:
        info["nonfinite_ok"] = nonfinite_ok
    if distributed():  # what this rank saw: its weights, and its own scalars unless reduced
        dist = torch.distributed
        info["distributed"] = {
            "rank": dist.get_rank(),
            "world_size": dist.get_world_size(),
            "backend": str(dist.get_backend()),
            "scalars": "rank-local unless logged with reduce='mean'",
        }
    meta = dict(metadata or {})
    meta.setdefault("recorder", info)
    if summaries is not None:
        meta["recorder"]["summaries"] = {
            **summarizer.describe(),
            **{"params": [], "grads": False, "activations": []},
            **summaries,
        }
    return meta, frozen, not_optimized
