"""The CPU summary of a tensor in one fused kernel (numba): per chunk, its sum, its centred
sum of squares and its histogram counts, exactly as :class:`dynamics.summaries.Summarizer`
defines them.

Chunks of :data:`CHUNK` values stay in the core's first-level cache while three short
loops read them: the sum (eight independent float64 accumulators, which the compiler turns
into vector adds), the squares of the values minus the chunk's mean (likewise), and the
bins. A value's bin is ``floor((x - edges[0]) * scale)`` in float64, except within
``margin`` (in bins) of an edge, where rounding could move it: those few are placed by
comparison with the edges themselves, as ``numpy.histogram`` places them.

The kernel runs on the calling thread. Blocks of chunks on several numba threads were
tried: with numba's OpenMP layer they were 2x faster alone but reset torch's thread count
and slowed the training around them; with its own ``workqueue`` pool the 15 summaries of a
training step of ``benchmarks/summaries_vs_tensorboard.py`` took longer than on one thread
(thread wake-ups on two busy cores).

Accuracy: each eight-lane chunk sum adds at most 512 values per lane, so its relative error
is under 512 float64 roundings (6e-14) even when every value has the same sign; the chunk
sums and the chunks' centred squares are merged exactly by the caller (``math.fsum``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["CHUNK", "summarise"]

#: Values per chunk: 16 KiB of float32, in a core's first-level cache.
CHUNK = 4096


@nb.njit(cache=True, nogil=True)
def _bin_exact(x, edges, bins):
    """The bin of ``x`` by comparison with ``edges`` (numpy.histogram's rule), -1 outside."""
    lo, hi = 0, bins + 1  # the number of edges <= x, by bisection
    while lo < hi:
        mid = (lo + hi) // 2
        if edges[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    k = lo - 1
    if x == edges[bins]:
        return bins - 1  # the last bin holds its right edge
    if k < 0 or k >= bins:
        return -1
    return k


@nb.njit(cache=True, nogil=True, inline="always")
def _chunk(v, scale, shift, offset, margin, top, twice, hist):
    """Sum and centred sum of squares of chunk ``v``; its values' bin sums added to ``hist``."""
    size = v.shape[0]
    full = size // 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for j in range(full):
        i = 8 * j
        a0 += v[i]
        a1 += v[i + 1]
        a2 += v[i + 2]
        a3 += v[i + 3]
        a4 += v[i + 4]
        a5 += v[i + 5]
        a6 += v[i + 6]
        a7 += v[i + 7]
    for i in range(8 * full, size):
        a0 += v[i]
    total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    mean = total / size
    q0 = q1 = q2 = q3 = q4 = q5 = q6 = q7 = 0.0
    for j in range(full):
        i = 8 * j
        d0 = v[i] - mean
        d1 = v[i + 1] - mean
        d2 = v[i + 2] - mean
        d3 = v[i + 3] - mean
        d4 = v[i + 4] - mean
        d5 = v[i + 5] - mean
        d6 = v[i + 6] - mean
        d7 = v[i + 7] - mean
        q0 += d0 * d0
        q1 += d1 * d1
        q2 += d2 * d2
        q3 += d3 * d3
        q4 += d4 * d4
        q5 += d5 * d5
        q6 += d6 * d6
        q7 += d7 * d7
    for i in range(8 * full, size):
        d0 = v[i] - mean
        q0 += d0 * d0
    squares = ((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7))
    if hist.shape[0] == 0:  # bins checked value by value afterwards
        return total, squares
    m2 = 2.0 * margin
    for i in range(size):  # vectorised: the sums of the two truncations (towards zero)
        low = np.float64(v[i]) * scale + shift  # position - margin, with the offset
        if offset:
            low = min(max(low, -margin), top)
        twice[i] = np.int32(low) + np.int32(low + m2)
    for i in range(size):
        hist[twice[i]] += 1
    return total, squares


@nb.njit(cache=True, nogil=True)
def _chunks(x, scale, shift, offset, margin, top, exact_only, sums, squares, rows):
    """Every chunk of ``x``, its sum and centred squares at its own index, the bin sums of
    its values into ``rows[0]``."""
    n = x.shape[0]
    twice = np.empty(CHUNK, dtype=np.int32)
    hist = rows[0, :0] if exact_only else rows[0]
    for c in range((n + CHUNK - 1) // CHUNK):
        start = c * CHUNK
        v = x[start : min(start + CHUNK, n)]
        sums[c], squares[c] = _chunk(v, scale, shift, offset, margin, top, twice, hist)


@nb.njit(cache=True, nogil=True)
def _finish(x, edges, scale, shift, offset, margin, top, exact_only, rows, counts):
    bins = edges.shape[0] - 1
    width = rows.shape[1]
    merged = np.zeros(width, dtype=np.int64)
    for b in range(rows.shape[0]):
        for k in range(width):
            merged[k] += rows[b, k]
    near = exact_only
    for k in range(1, width - 1, 2):
        if merged[k]:
            near = True
    for k in range(bins):  # the values certainly in their bins
        counts[k] += merged[2 * (k + offset)]
    if not near:
        counts[bins - 1] += merged[width - 1]  # adaptive: the largest values, at the last edge
        return
    m2 = 2.0 * margin
    for i in range(x.shape[0]):  # those near an edge, by comparison with the edges
        value = np.float64(x[i])
        if not exact_only:
            low = value * scale + shift
            if offset:
                low = min(max(low, -margin), top)
            if (np.int32(low) + np.int32(low + m2)) % 2 == 0:
                continue
        k = _bin_exact(value, edges, bins)
        if k >= 0:
            counts[k] += 1


def summarise(x, edges, margin, offset, exact_only, sums, squares, counts):
    """Fill ``sums[c]`` and ``squares[c]`` (the sum and the centred sum of squares of chunk
    ``c``) and add the histogram of ``x`` to ``counts`` (bins,) int64.

    ``x``: 1-D float32 or float64, contiguous, every value finite. ``edges``: (bins + 1,)
    float64. ``margin``: how close (in bins) to an edge a position must be to be checked
    against the edges; ``offset``: 0 for adaptive bins (every value lies within the edges),
    1 for a fixed range (values outside it go to a slot at each end, not counted);
    ``exact_only``: check every value (bins too narrow for float64 arithmetic).

    Bins: the truncations of ``position - margin`` and ``position + margin`` are summed, as
    in :class:`dynamics.summaries._Slots`; an even sum is twice the value's slot, an odd
    one says the value lies near an edge. The sums are computed for a whole chunk first (a
    loop the compiler vectorises), then counted. Only if some value lies near an inner edge
    are the values read once more, and those looked up.
    """
    bins = edges.shape[0] - 1
    slots = bins + 2 * offset
    scale = bins / (edges[bins] - edges[0])
    shift = offset - margin - edges[0] * scale
    top = slots - 3.0 * margin
    rows = np.zeros((1, 2 * slots), dtype=np.int64)
    args = (scale, shift, offset, margin, top, exact_only)
    _chunks(x, *args, sums, squares, rows)
    _finish(x, edges, *args, rows, counts)
