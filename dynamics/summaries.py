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
        v = tensor.detach().reshape(-1)
        if not v.is_floating_point() or v.dtype in (torch.float16, torch.bfloat16):
            v = v.to(torch.float32 if v.is_floating_point() else torch.float64)
        x = v.to(torch.float64)
        if x.numel() == 0:
            nan = torch.full((4,), float("nan"), dtype=torch.float64, device=x.device)
            return nan, torch.zeros(self.bins, dtype=torch.int64, device=x.device), \
                torch.full((self.bins + 1,), float("nan"), dtype=torch.float64, device=x.device)
        stats = torch.stack([x.mean(), x.std(correction=0), x.min(), x.max()])
        all_finite = bool(torch.isfinite(stats).all())  # NaN/inf anywhere shows in the stats
        if not all_finite:
            keep = torch.isfinite(x)
            x, v = x[keep], v[keep]
        if self.adaptive:
            if x.numel() == 0:
                edges = np.full(self.bins + 1, np.nan)
            else:
                lo, hi = (stats[2], stats[3]) if all_finite else torch.aminmax(x)
                edges = self.edges(float(lo), float(hi))  # two scalars to the host, not the tensor
        else:
            edges = self.edges(*self.range)
        e = torch.as_tensor(edges, dtype=torch.float64, device=x.device)
        if x.numel() == 0 or not np.isfinite(edges).all():
            return stats, torch.zeros(self.bins, dtype=torch.int64, device=x.device), e
        return stats, self._counts(v, x, e, float(edges[0]), float(edges[-1])), e

    def _counts(self, v: torch.Tensor, x: torch.Tensor, e: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        """Counts of ``x`` (float64) in the bins ``e``; ``v`` is the same values in their own
        float dtype, used for the bulk of the arithmetic (float32 halves the memory traffic).

        numpy.histogram's method for equal bins: a computed index, corrected by comparing
        with the edges. Rounding (of float32 arithmetic, or of numpy's edges against the
        formula) can only misplace values within a small margin of an edge, so only those
        few are compared exactly, in float64. Every count matches numpy's (tested, with
        values on edges and their float neighbours).
        """
        n = self.bins
        margin = 1e-6 if v.dtype == torch.float64 else 64 * n * 2.0**-24  # bound on the error of f
        f = (v - lo).mul_(n / (hi - lo)).add_(1.0)  # bin position + 1 (> 0 for every counted value)
        # a value is near an edge when [f - margin, f + margin] holds a whole number; int32
        # truncation does the flooring (int64 conversion and round() were the slow parts)
        below = (f - margin).to(torch.int32)
        near = torch.nonzero(below != f.add_(margin).to(torch.int32)).flatten()
        index = below.sub_(1).clamp_(0, n - 1)  # floor(position) away from the edges
        if not self.adaptive:  # outside [lo, hi] is not counted; near the ends it is checked below
            index[(f < 1.0) | (f > n + 1 + 2 * margin)] = -1  # f holds position + 1 + margin here
        if near.numel():
            xn, i = x[near], index[near].long().clamp_(0, n - 1)
            i -= (xn < e[i]).long()
            i += ((xn >= e[i + 1]) & (i != n - 1)).long()
            i[(xn < lo) | (xn > hi)] = -1
            index[near] = i.to(torch.int32)
        if not self.adaptive:
            index = index[index >= 0]
        return torch.bincount(index, minlength=n)
