"""The CPU summary of a tensor in one fused kernel (numba): per chunk, its sum, its centred
sum of squares and its histogram counts, exactly as :class:`dynamics.summaries.Summarizer`
defines them.

Chunks of :data:`CHUNK` values stay in the core's first-level cache while short loops
read them: the sum, the squares of the values minus the chunk's mean (both vectorised
float64 reductions: ``fastmath={"reassoc"}`` lets the compiler keep one accumulator per
vector lane, and allows nothing else), then the bins. A value's bin is
``floor((x - edges[0]) * scale)`` in float64, except within ``margin`` (in bins) of an
edge, where rounding could move it: those few are placed by comparison with the edges
themselves, as ``numpy.histogram`` places them. The counting is the one scalar loop; with
at most 64 slots it counts two values per increment, into 64 x 64 tables of pairs.

The kernel runs on the calling thread. Blocks of chunks on several numba threads were
tried: with numba's OpenMP layer they were 2x faster alone but reset torch's thread count
and slowed the training around them; with its own ``workqueue`` pool the 15 summaries of a
training step of ``benchmarks/summaries_vs_tensorboard.py`` took longer than on one thread
(thread wake-ups on two busy cores).

Accuracy: a chunk sum adds at most 4096 values per accumulator, so its relative error is
under 4096 float64 roundings (5e-13) even when every value has the same sign, and under
512 (6e-14) when the compiler keeps eight or more vector lanes, as it does for AVX2 and
AVX-512. The result depends on that lane count, so it is reproducible on one machine, not
bit for bit across CPUs. The chunk sums and the chunks' centred squares are merged exactly
by the caller (``math.fsum``).
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


@nb.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sum(v):
    """The float64 sum of chunk ``v``, in as many lanes as the compiler vectorises it
    into (``reassoc`` allows exactly that reordering and nothing else)."""
    total = 0.0
    for i in range(v.shape[0]):
        total += np.float64(v[i])
    return total


@nb.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _centred_squares(v, mean):
    """The sum of ``(v - mean)**2`` over chunk ``v``, vectorised like :func:`_sum`."""
    total = 0.0
    for i in range(v.shape[0]):
        d = np.float64(v[i]) - mean
        total += d * d
    return total


@nb.njit(cache=True, nogil=True)
def _positions(v, scale, shift, offset, margin, top, twice):
    """``twice[i]``: the sum of the truncations (towards zero) of ``position - margin`` and
    ``position + margin`` of ``v[i]``, in plain float64 arithmetic (a loop the compiler
    vectorises)."""
    m2 = 2.0 * margin
    for i in range(v.shape[0]):
        low = np.float64(v[i]) * scale + shift  # position - margin, with the offset
        if offset:
            low = min(max(low, -margin), top)
        twice[i] = np.int32(low) + np.int32(low + m2)


@nb.njit(cache=True, nogil=True)
def _count(twice, size, width, pairs, hist):
    """Count ``twice[:size]`` into ``hist`` (width,), or, when ``pairs`` is not empty, into
    ``pairs`` (2 * width * width,): the first half's value times ``width`` plus the second
    half's, one increment for two values (a scalar increment is the slowest step here).
    Consecutive pairs go to two tables, so that a run of values in one bin (most of a
    ReLU's output) does not wait on one counter."""
    if pairs.shape[0] == 0:
        for i in range(size):
            hist[twice[i]] += 1
        return
    half = size // 2
    for j in range(half):  # vectorised
        twice[j] = twice[j] * width + twice[j + half]
    other = width * width
    for j in range(0, half - 1, 2):
        pairs[twice[j]] += 1
        pairs[other + twice[j + 1]] += 1
    if half % 2:
        pairs[twice[half - 1]] += 1
    if size % 2:
        hist[twice[size - 1]] += 1


@nb.njit(cache=True, nogil=True)
def _flush(pairs, width, hist):
    """Add the pair counts to ``hist`` and clear them."""
    for t in range(2):
        for a in range(width):
            for b in range(width):
                i = (t * width + a) * width + b
                k = pairs[i]
                if k:
                    hist[a] += k
                    hist[b] += k
                    pairs[i] = 0


#: Largest slot count for the pair histogram: two tables of 64 * 64 int32 counts are 32 KiB,
#: in the first level cache beside the chunk.
_PAIR_WIDTH = 64
#: Chunks between flushes of the int32 pair counts: at most 1024 per table and chunk, so
#: at most 2**26 between flushes, far below 2**31.
_FLUSH_CHUNKS = 1 << 16


@nb.njit(cache=True, nogil=True)
def _chunks(x, scale, shift, offset, margin, top, exact_only, sums, squares, rows):
    """Every chunk of ``x``, its sum and centred squares at its own index, the bin sums of
    its values into ``rows[0]``."""
    n = x.shape[0]
    twice = np.empty(CHUNK, dtype=np.int32)
    hist = rows[0]
    width = hist.shape[0]
    paired = width <= _PAIR_WIDTH and not exact_only
    pairs = np.zeros(2 * width * width if paired else 0, dtype=np.int32)
    for c in range((n + CHUNK - 1) // CHUNK):
        start = c * CHUNK
        v = x[start : min(start + CHUNK, n)]
        size = v.shape[0]
        total = _sum(v)
        sums[c] = total
        squares[c] = _centred_squares(v, total / size)
        if not exact_only:  # else the bins are found value by value afterwards
            _positions(v, scale, shift, offset, margin, top, twice)
            _count(twice, size, width, pairs, hist)
            if pairs.shape[0] and c % _FLUSH_CHUNKS == _FLUSH_CHUNKS - 1:
                _flush(pairs, width, hist)
    if pairs.shape[0]:
        _flush(pairs, width, hist)


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
