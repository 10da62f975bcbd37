"""Fused CPU kernels for the two-layer ReLU student (numba), linear in the width m.

One SGD step on a batch of n samples needs, for every neuron i, its pre-activations
``z_ij = w_i . x_j + b_i`` twice: once for the network's output (a sum over all neurons)
and once for the gradients (which need the residual, hence that sum). A chain of array
operations materialises ``z`` (n x m), its ReLU, its mask and the masked residuals as
separate (n, m) temporaries: at m = 100 000 that is about ten passes over 4 MB arrays a
step. These kernels walk the neurons in fixed chunks of :data:`CHUNK`, recompute ``z``
in cache and keep no (n, m) array, so a step reads and writes each parameter about
twice. numba compiles them (to the machine's vector instructions) on first use and caches
the result beside this file.

Layout: ``W`` is the *transposed* input-weight matrix, ``(d, m)`` contiguous, so a chunk
of one coordinate of every neuron is contiguous (the model stores ``w`` with these strides,
see :class:`~dynamics.experiments.relu_particles.TwoLayerReLU`).

Determinism: the chunks are fixed (not one per thread), each chunk is summed in a fixed
order and the chunk sums are added in order, so the result does not depend on how many
threads run the chunks.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._threads import kernel_threads

__all__ = ["CHUNK", "PARALLEL_FROM", "THREADS", "predict", "train_frame"]

#: Neurons per chunk: 4096 neurons' scratch (z and four gradient rows) stays in L2.
CHUNK = 4096
#: From this many neurons on, chunks run on several threads (below it a thread start costs
#: more than a chunk).
PARALLEL_FROM = 4 * CHUNK

# No nnan / ninf: a diverging run must still produce its inf and NaN for the loss check.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@nb.njit(cache=True, fastmath=_FAST)
def _chunk_output(a, W, b, lo, hi, x, z, out):
    """``out[j] = sum_i a_i relu(W[:, i] . x_j + b_i)`` over neurons ``lo <= i < hi``.

    Every inner loop runs over ``range(L)`` on 1-D contiguous slices: with a loop index
    the compiler cannot prove non-negative (``range(lo, hi)``) numba keeps its
    negative-index check in the loop and nothing is vectorised (10x slower).
    """
    d = W.shape[0]
    L = hi - lo
    zero = a.dtype.type(0)
    ac, bc = a[lo:hi], b[lo:hi]
    for j in range(x.shape[0]):
        z[:L] = bc
        for k in range(d):
            xk = x[j, k]
            wk = W[k, lo:hi]
            for i in range(L):
                z[i] += wk[i] * xk
        acc = zero
        for i in range(L):
            acc += ac[i] * max(z[i], zero)
        out[j] = acc


@nb.njit(cache=True, fastmath=_FAST)
def _chunk_update(a, W, b, lo, hi, x, r, c, z, ga, gb, gW):
    """SGD update of neurons ``lo <= i < hi`` from residuals ``r`` (relu'(0) = 1); ``c`` is
    the step over (n m)."""
    d = W.shape[0]
    L = hi - lo
    zero = a.dtype.type(0)
    ac, bc = a[lo:hi], b[lo:hi]
    ga[:L] = 0
    gb[:L] = 0
    gW[:, :L] = 0
    for j in range(x.shape[0]):
        rj = r[j]
        z[:L] = bc
        for k in range(d):
            xk = x[j, k]
            wk = W[k, lo:hi]
            for i in range(L):
                z[i] += wk[i] * xk
        for i in range(L):
            zi = z[i]
            ga[i] += rj * max(zi, zero)
            z[i] = rj if zi >= zero else zero  # r_j 1[z >= 0]
        for i in range(L):
            gb[i] += z[i]
        for k in range(d):
            xk = x[j, k]
            gk = gW[k]
            for i in range(L):
                gk[i] += z[i] * xk
    for k in range(d):
        wk = W[k, lo:hi]
        gk = gW[k]
        for i in range(L):
            wk[i] -= c * ac[i] * gk[i]  # the gradients of b and w use a before its update
    for i in range(L):
        bc[i] -= c * ac[i] * gb[i]
        ac[i] -= c * ga[i]


@nb.njit(cache=True)
def _forward_chunk(a, W, b, x, partial, ch):
    m = a.shape[0]
    lo = ch * CHUNK
    z = np.empty(min(CHUNK, m), a.dtype)  # scratch no larger than the network
    _chunk_output(a, W, b, lo, min(m, lo + CHUNK), x, z, partial[ch])


@nb.njit(cache=True)
def _update_chunk(a, W, b, x, r, c, ch):
    m = a.shape[0]
    lo = ch * CHUNK
    size = min(CHUNK, m)
    z = np.empty(size, a.dtype)
    ga = np.empty(size, a.dtype)
    gb = np.empty(size, a.dtype)
    gW = np.empty((W.shape[0], size), a.dtype)
    _chunk_update(a, W, b, lo, min(m, lo + CHUNK), x, r, c, z, ga, gb, gW)


# Each loop twice, as separate functions: numba's on-disk cache is keyed by the Python
# function, so one function compiled both with and without parallel=True loaded the
# parallel code for both (a serial call then paid a parallel launch per SGD step).
@nb.njit(cache=True, parallel=True)
def _forward_jit(a, W, b, x, partial):
    for ch in nb.prange(partial.shape[0]):
        _forward_chunk(a, W, b, x, partial, ch)


@nb.njit(cache=True)
def _forward_serial(a, W, b, x, partial):
    for ch in range(partial.shape[0]):
        _forward_chunk(a, W, b, x, partial, ch)


@nb.njit(cache=True, parallel=True)
def _update_jit(a, W, b, x, r, c, nchunks):
    for ch in nb.prange(nchunks):
        _update_chunk(a, W, b, x, r, c, ch)


@nb.njit(cache=True)
def _update_serial(a, W, b, x, r, c, nchunks):
    for ch in range(nchunks):
        _update_chunk(a, W, b, x, r, c, ch)


def _residuals(partial, y, m, r):
    """``r_j = (sum over chunks, in order) / m - y_j`` (``m``: the output's normaliser)."""
    for j in range(y.shape[0]):
        s = partial[0, j]
        for ch in range(1, partial.shape[0]):
            s += partial[ch, j]
        r[j] = s / m - y[j]


_residuals_jit = nb.njit(cache=True)(_residuals)


@nb.njit(cache=True)
def _train(a, W, b, x, y, batch, step, norm, parallel):
    m = a.shape[0]
    nchunks = (m + CHUNK - 1) // CHUNK
    partial = np.empty((nchunks, batch), a.dtype)
    r = np.empty(batch, a.dtype)
    for lo in range(0, x.shape[0], batch):
        hi = min(x.shape[0], lo + batch)
        n = hi - lo
        c = a.dtype.type(step / (n * norm))
        if parallel:
            _forward_jit(a, W, b, x[lo:hi], partial[:, :n])
        else:
            _forward_serial(a, W, b, x[lo:hi], partial[:, :n])
        _residuals_jit(partial[:, :n], y[lo:hi], norm, r[:n])
        if parallel:
            _update_jit(a, W, b, x[lo:hi], r[:n], c, nchunks)
        else:
            _update_serial(a, W, b, x[lo:hi], r[:n], c, nchunks)


@nb.njit(cache=True)
def _predict(a, W, b, x, out, block, norm, parallel):
    m = a.shape[0]
    nchunks = (m + CHUNK - 1) // CHUNK
    partial = np.empty((nchunks, block), a.dtype)
    zeros = np.zeros(block, a.dtype)
    for lo in range(0, x.shape[0], block):
        hi = min(x.shape[0], lo + block)
        n = hi - lo
        if parallel:
            _forward_jit(a, W, b, x[lo:hi], partial[:, :n])
        else:
            _forward_serial(a, W, b, x[lo:hi], partial[:, :n])
        _residuals_jit(partial[:, :n], zeros[:n], norm, out[lo:hi])


#: Threads for the chunks of a wide network (None: numba's default, one per core).
THREADS: int | None = None


def _threads(m: int) -> kernel_threads:
    """numba threads for a call: several only from :data:`PARALLEL_FROM` neurons on."""
    return kernel_threads((THREADS or nb.config.NUMBA_NUM_THREADS) if m >= PARALLEL_FROM else 1)


def train_frame(a, W, b, x, y, batch: int, step: float, norm: float | None = None) -> None:
    """SGD over ``x`` (N, d), ``y`` (N,) in batches of ``batch`` (the last may be short), in
    place on ``a`` (m,), ``W`` (d, m), ``b`` (m,): each step moves every parameter by
    ``step`` times its batch-mean gradient of ``0.5 (f(x) - y)^2``, where
    ``f(x) = (1/norm) sum_i a_i relu(w_i . x + b_i)`` (``norm``: m by default, sqrt(m) for
    the lazy scaling). All arrays share one float dtype."""
    norm = float(a.shape[0] if norm is None else norm)
    with _threads(a.shape[0]) as pool:
        _train(a, W, b, x, y, int(batch), float(step), norm, pool.n > 1)


def predict(a, W, b, x, block: int = 256, norm: float | None = None) -> np.ndarray:
    """``f(x)`` for ``x`` (N, d), ``block`` samples at a time (memory: a few blocks);
    ``norm`` as in :func:`train_frame`."""
    norm = float(a.shape[0] if norm is None else norm)
    out = np.empty(x.shape[0], a.dtype)
    with _threads(a.shape[0]) as pool:
        _predict(a, W, b, x, out, int(block), norm, pool.n > 1)
    return out
