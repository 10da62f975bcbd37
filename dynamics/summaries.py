"""Per-tensor summaries computed where the tensor lives: mean, std, min, max and a histogram.

A summary of a large tensor is a few dozen numbers; computing it on the tensor's device
and copying only those numbers avoids moving the tensor itself to the CPU. The figures
equal numpy's on the same values: statistics in float64 (``std`` with ``ddof=0``, as
``numpy.std``), and histogram counts exactly as ``numpy.histogram`` counts them (bin
``i`` holds ``edges[i] <= x < edges[i+1]``, the last bin also ``x == edges[-1]``, values
outside the range are not counted; the edges are numpy's ``linspace``).

Cost: one pass for min and max, then one read of the values for everything else. A
float32 or float64 CPU tensor goes through one fused numba kernel
(:mod:`dynamics._summary_kernels`) that reads cache-sized chunks for their sum, centred
sum of squares (two-pass variance, merged across chunks) and bins. Other tensors (GPU,
other dtypes) are taken in chunks whose float64 copy gives the same three, with torch ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Summarizer", "STATS"]

STATS = ("mean", "std", "min", "max")

# Values per chunk of a CPU tensor: the float64 copy (512 KiB) and the chunk's other
# temporaries stay in a core's cache. Other devices take a tensor whole.
_CPU_CHUNK = 1 << 16


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
        A complex tensor is summarised by its modulus ``|z|``.
        """
        v = tensor.detach().reshape(-1)
        if v.is_complex():  # no order on complex numbers: the modulus |z| is summarised
            v = v.abs()
        if not v.is_floating_point() or v.dtype in (torch.float16, torch.bfloat16):
            v = v.to(torch.float32 if v.is_floating_point() else torch.float64)
        device = v.device
        if v.numel() == 0:
            nan = torch.full((4,), float("nan"), dtype=torch.float64, device=device)
            return (
                nan,
                torch.zeros(self.bins, dtype=torch.int64, device=device),
                torch.full((self.bins + 1,), float("nan"), dtype=torch.float64, device=device),
            )
        lo, hi = torch.aminmax(v)  # NaN anywhere makes both NaN
        lo, hi = float(lo), float(hi)  # two scalars to the host, not the tensor
        if math.isfinite(lo) and math.isfinite(hi):
            mean, std, counts, edges = self._summarise_finite(v, lo, hi)
            return (
                torch.tensor([mean, std, lo, hi], dtype=torch.float64, device=device),
                counts,
                edges,
            )
        # NaN or inf: the statistics of all values (NaN or inf, as numpy's), the counts of the
        # finite ones
        x = v.to(torch.float64)
        stats = torch.stack([x.mean(), x.std(correction=0), x.min(), x.max()])
        v = v[torch.isfinite(v)]
        if v.numel():
            lo, hi = torch.aminmax(v)
            return (stats,) + self._summarise_finite(v, float(lo), float(hi))[2:]
        edges = np.full(self.bins + 1, np.nan) if self.adaptive else self.edges(*self.range)
        return (
            stats,
            torch.zeros(self.bins, dtype=torch.int64, device=device),
            torch.as_tensor(edges, dtype=torch.float64, device=device),
        )

    def _summarise_finite(
        self, v: torch.Tensor, lo: float, hi: float
    ) -> tuple[float, float, torch.Tensor, torch.Tensor]:
        """``(mean, std, counts, edges)`` of ``v``, whose values are all finite, ``lo`` and
        ``hi`` its min and max."""
        edges = self.edges(lo, hi) if self.adaptive else self.edges(*self.range)
        if v.is_cpu and v.dtype in (torch.float32, torch.float64) and np.isfinite(edges).all():
            return self._summarise_cpu(v, lo, hi, edges)
        chunk = min(_CPU_CHUNK if v.is_cpu else v.numel(), v.numel())
        buffer = torch.empty(chunk, dtype=torch.float64, device=v.device)
        slots = None
        if np.isfinite(edges).all():
            slots = _Slots(edges, self.adaptive, max(abs(lo), abs(hi)), v.device)
        sizes, means, squares = [], [], []
        for values in v.split(chunk):
            x = buffer[: values.numel()].copy_(values)
            mean = float(x.sum()) / x.numel()
            x.sub_(mean)  # centred: no cancellation in the sum of squares, whatever the offset
            squares.append(float(torch.dot(x, x)))
            sizes.append(x.numel())
            means.append(mean)
            if slots is not None:
                slots.add(values, x, mean)
        mean = math.fsum(k * m for k, m in zip(sizes, means)) / v.numel()
        # Chan, Golub and LeVeque's merge of the chunks' centred sums of squares
        between = math.fsum(k * (m - mean) ** 2 for k, m in zip(sizes, means))
        std = math.sqrt((math.fsum(squares) + between) / v.numel())
        if slots is None:
            return (
                mean,
                std,
                torch.zeros(self.bins, dtype=torch.int64, device=v.device),
                torch.as_tensor(edges, dtype=torch.float64, device=v.device),
            )
        return mean, std, slots.counts(), slots.edges

    def _summarise_cpu(
        self, v: torch.Tensor, lo: float, hi: float, edges: np.ndarray
    ) -> tuple[float, float, torch.Tensor, torch.Tensor]:
        """:meth:`_summarise_finite` of a float32 or float64 CPU tensor, in one fused kernel
        (:mod:`dynamics._summary_kernels`): the values are read once, in cache-sized chunks."""
        from ._summary_kernels import CHUNK, summarise

        x = v.contiguous().numpy()
        n = len(x)
        chunks = -(-n // CHUNK)
        sums, squares = np.empty(chunks), np.empty(chunks)
        counts = np.zeros(self.bins, dtype=np.int64)
        offset = 0 if self.adaptive else 1
        scale = self.bins / (float(edges[-1]) - float(edges[0]))
        magnitude = max(abs(lo), abs(hi), abs(float(edges[0])), abs(float(edges[-1])))
        # a few float64 roundings of the position, with a wide safety factor (as _Slots)
        margin = 64 * 2.0**-53 * (magnitude * scale + self.bins + 2 * offset + 1)
        summarise(x, edges, margin, offset, not margin < 0.25, sums, squares, counts)
        sizes = np.full(chunks, float(CHUNK))
        sizes[-1] = n - CHUNK * (chunks - 1)
        mean = math.fsum(sums) / n
        # Chan, Golub and LeVeque's merge of the chunks' centred sums of squares
        with np.errstate(invalid="ignore", over="ignore"):  # sums beyond float64: inf, nan
            between = math.fsum(sizes * (sums / sizes - mean) ** 2)
        std = math.sqrt((math.fsum(squares) + between) / n)
        return mean, std, torch.from_numpy(counts), torch.from_numpy(edges)


class _Slots:
    """Histogram counts accumulated chunk by chunk, each exactly as ``numpy.histogram``
    counts it.

    A value's bin comes from its position ``(x - edges[0]) * bins / (edges[-1] - edges[0])``
    computed in float64. The rounding of that arithmetic, and numpy's rounding of the
    edges, are bounded by ``margin`` (in bins): a value whose position is further than that
    from every whole number is in the bin the position says. The others, on an edge or
    within a few float64 roundings of one, are placed by comparing them with the edges.
    The truncations of ``position - margin`` and ``position + margin`` go into one
    ``bincount`` as their sum: even sums are bins, odd ones say that some value is near an
    edge (then, and only then, those values are looked up).

    Slots are the bins and, for a fixed range, one more at each end for the values below
    and above it (not counted).
    """

    def __init__(self, edges: np.ndarray, adaptive: bool, magnitude: float, device: torch.device):
        """``magnitude``: the largest absolute value to be counted."""
        self.bins = len(edges) - 1
        self.offset = 0 if adaptive else 1
        self.slots = self.bins + 2 * self.offset
        self.edges = torch.as_tensor(edges, dtype=torch.float64, device=device)
        self.first = float(edges[0])
        self.scale = self.bins / (float(edges[-1]) - self.first)
        # a few float64 roundings of numbers up to magnitude * scale, with a wide safety factor
        magnitude = max(magnitude, abs(self.first), abs(float(edges[-1])))
        self.margin = 64 * 2.0**-53 * (magnitude * self.scale + self.slots + 1)
        # the sums of the two truncations fit int8 for up to 62 bins, 64 adaptive (float64 ->
        # int8 is the cheapest conversion on a CPU; bincount reads them as uint8)
        self.index_dtype = torch.int8 if 2 * self.slots <= 128 else torch.int32
        self.pairs = [0] * (2 * self.slots)
        self.exact: list[torch.Tensor] = []

    def add(self, values: torch.Tensor, centred: torch.Tensor, mean: float) -> None:
        """Count ``values``; ``centred`` is them in float64 minus ``mean``, and is overwritten."""
        if not (
            self.margin < 0.25 and math.isfinite(mean)
        ):  # bins too narrow for float64 arithmetic
            self.exact.append(self._exact_slots(values))
            return
        m = self.margin
        # position - margin; a truncation (towards zero) of anything in (-1, 1) is 0, so the
        # values at the first edge are certain. Adaptive bins hold every value: those near
        # the last edge (the largest) are in the last bin. A fixed range's end slots take
        # everything beyond them.
        shift = torch.tensor(
            (mean - self.first) * self.scale + self.offset - m,
            dtype=torch.float64,
            device=centred.device,
        )
        position = torch.add(shift, centred, alpha=self.scale, out=centred)
        if self.offset:
            position.clamp_(-m, self.slots - 3 * m)
        both = position.to(self.index_dtype)  # float -> integer conversions truncate
        both += position.add_(2 * m).to(self.index_dtype)
        pairs = torch.bincount(
            both.view(torch.uint8) if both.dtype == torch.int8 else both, minlength=len(self.pairs)
        ).tolist()
        if any(pairs[1:-1:2]):  # near an edge inside the range
            self.exact.append(self._exact_slots(values[torch.nonzero(both & 1).flatten()]))
            pairs[-1] = 0  # near the last edge: looked up with them
        self.pairs = [a + b for a, b in zip(self.pairs, pairs)]

    def _exact_slots(self, values: torch.Tensor) -> torch.Tensor:
        """Slots of ``values`` by comparison with the edges in float64."""
        x = values.to(torch.float64)
        at_or_below = torch.searchsorted(self.edges, x, right=True)  # how many edges are <= x
        return (
            at_or_below - (1 - self.offset) - (x == self.edges[-1]).long()
        )  # the last bin holds its right edge

    def counts(self) -> torch.Tensor:
        """The bins' counts (int64)."""
        slots = self.pairs[0::2]
        slots[-1] += self.pairs[-1]  # adaptive: near the last edge, in the last bin
        slots = torch.tensor(slots, dtype=torch.int64, device=self.edges.device)
        if self.exact:
            slots += torch.bincount(torch.cat(self.exact), minlength=self.slots)
        return slots[self.offset : self.offset + self.bins]
