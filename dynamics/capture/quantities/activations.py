"""Summaries of module outputs, from forward hooks: ``stats/act/<module>`` ..."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..torch_compat import eager, leaves, match, patterns
from .base import Quantity

__all__ = ["Activations"]


class Activations(Quantity):
    """Summaries of the outputs of the modules ``select`` names (``named_modules()``).

    An output that is a tuple, list or dict gives one series per tensor in it
    (``stats/act/lstm[0]``, ``stats/act/attn[weights]``); other non-tensor elements are
    skipped (reported once), None quietly. The first forward pass after a scheduled step is
    recorded under that step; passes inside :meth:`~dynamics.Recorder.quiet` are not.
    """

    when = "forward"
    kind = "stats"

    def __init__(self, select: str | Sequence[str]):
        self.patterns = patterns(select)
        self._last: dict[str, int] = {}  # module -> the step last recorded

    def setup(self, model: torch.nn.Module) -> None:
        every = [n for n, _ in model.named_modules() if n]
        self.selected = [n for n in every if match(n, self.patterns)]
        if self.patterns and not self.selected:
            raise ValueError(
                f"Recorder: no module matches activations={self.patterns}; the model has {every}"
            )

    def info(self) -> dict[str, Any]:
        return {"summaries": {"activations": self.selected}}

    def hooks(self, model: torch.nn.Module, rec: Any) -> list[Any]:
        modules = dict(model.named_modules())
        return [modules[n].register_forward_hook(self._hook(n, rec)) for n in self.selected]

    def _hook(self, name: str, rec: Any):
        schedule = self.schedule

        @eager  # never traced into a compiled graph: runs eagerly on real tensors
        def hook(module, inputs, output) -> None:
            step = rec.step
            if rec.quieted or self._last.get(name) == step:
                return
            if step not in (schedule or rec.schedule):
                return
            self._last[name] = step
            with torch.no_grad():
                for suffix, out in leaves(output):
                    if isinstance(out, torch.Tensor):
                        rec.summarize(f"act/{name}{suffix}", step, out, "activation", name + suffix)
                    elif out is not None:  # None: an optional output not asked for (HF)
                        rec.report(
                            f"act-nontensor/{name}{suffix}",
                            f"Recorder: the output of module {name!r} holds a "
                            f"{type(out).__name__} at {suffix or 'the top'}, not a tensor; it is "
                            "not recorded",
                        )

        return hook
