"""Per-tensor summaries computed where the tensor lives: mean, std, min, max and a histogram.

A summary of a large tensor is a few dozen numbers; computing it on the tensor's device
and copying only those numbers avoids moving the tensor itself to the CPU. The figures
equal numpy's on the same values: statistics in float64 (``std`` with ``ddof=0``, as
``numpy.std``), and histogram counts exactly as ``numpy.histogram`` counts them (bin
``i`` holds ``edges[i] <= x < edges[i+1]``, the last bin also ``x == edges[-1]``, values
outside the range are not counted; the edges are numpy's ``linspace``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Summarizer", "STATS"]

STATS = ("mean", "std", "min", "max")


@dataclass(frozen=True)
class Summarizer:
    """How tensors are summarised.

    Attributes
    ----------
    bins : int
        Histogram bins.
    range : (float, float) or None
        Fixed bin range for every tensor and step (comparable across steps, values
        outside are not counted), or None: adaptive, each tensor's own ``[min, max]`` at
        each step (every value counted; the edges are recorded with the counts).
    """

    bins: int = 30
    range: tuple[float, float] | None = None

    def __post_init__(self):
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")
        if self.range is not None:
            lo, hi = self.range
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"range must be two finite numbers lo < hi, got {self.range}")

    @property
    def adaptive(self) -> bool:
        return self.range is None

    def edges(self, lo: float, hi: float) -> np.ndarray:
        """Bin edges as numpy makes them (``lo == hi`` widens to ``lo - 0.5, hi + 0.5``)."""
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        return np.linspace(lo, hi, self.bins + 1)

    def describe(self) -> dict:
        """JSON-able description for a recording's metadata."""
        out = {"bins": self.bins, "stats": list(STATS), "adaptive": self.adaptive}
        if not self.adaptive:
            out["range"] = list(self.range)
            out["edges"] = self.edges(*self.range).tolist()
        return out

    @torch.no_grad()
    def __call__(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(stats, counts, edges)`` of ``tensor``, all on its device.

        ``stats`` (4,) float64 = mean, std, min, max; ``counts`` (bins,) int64;
        ``edges`` (bins + 1,) float64. NaNs make the statistics NaN and are not counted.
        """
        x = tensor.detach().reshape(-1).to(torch.float64)
        if x.numel() == 0:
            nan = torch.full((4,), float("nan"), dtype=torch.float64, device=x.device)
            return nan, torch.zeros(self.bins, dtype=torch.int64, device=x.device), \
                torch.full((self.bins + 1,), float("nan"), dtype=torch.float64, device=x.device)
        stats = torch.stack([x.mean(), x.std(correction=0), x.min(), x.max()])
        finite = x[torch.isfinite(x)] if not bool(torch.isfinite(stats).all()) else x
        if self.adaptive:
            if finite.numel() == 0:
                edges = np.full(self.bins + 1, np.nan)
            else:
                lo, hi = torch.aminmax(finite)
                edges = self.edges(float(lo), float(hi))  # two scalars to the host, not the tensor
        else:
            edges = self.edges(*self.range)
        e = torch.as_tensor(edges, dtype=torch.float64, device=x.device)
        if finite.numel() == 0 or not np.isfinite(edges).all():
            return stats, torch.zeros(self.bins, dtype=torch.int64, device=x.device), e
        index = torch.bucketize(finite, e, right=True) - 1  # edges[i] <= x < edges[i+1]
        index[finite == e[-1]] = self.bins - 1  # the last bin is closed on the right
        inside = (index >= 0) & (index < self.bins)
        counts = torch.bincount(index[inside], minlength=self.bins)
        return stats, counts, e
