"""The loss landscape around a recorded trajectory: the loss over a plane through the final
parameters, and the path of the recorded snapshots projected onto it (Li et al., NeurIPS 2018,
"Visualizing the loss landscape of neural nets").

``landscape(recording, model, loss_fn, batch)`` takes a recording that holds the model's
parameter snapshots (series of kind ``parameter``, as the recorder writes them with
``params="*"``), the model they belong to and its loss, and returns the recording with the
landscape added as series and metadata, so that a scene draws it without the model
(``python -m scenes.landscape``):

* the plane: through the final snapshot ``theta_T``, spanned by two directions ``d1, d2``:

  - ``"pca"`` (default): the top two right singular vectors of the snapshots' displacements
    from the final point, ``X = [theta_t - theta_T]`` (not centred on their mean: the plane
    must pass through ``theta_T``, and these are the two directions that, among planes
    through it, keep the most of the path's squared distance to it). Their *explained
    variance ratios* ``s_k^2 / sum_i s_i^2`` are the shares of that squared distance each
    keeps; a path that lies in a plane through the final point keeps all of it (they sum
    to 1). Signs: the first snapshot lies at negative coordinates, so the path runs up and
    to the right into the origin;
  - ``"random"``: two Gaussian directions drawn from a private generator seeded with
    ``seed`` (reproducible, the global random state untouched), *filter-normalised*: every
    filter of a direction (the slice ``d[i]`` of a parameter of two or more dimensions
    along its first axis: a row of a linear layer's weight, an output channel of a
    convolution's) is scaled to the norm of the same filter of the final weights, and the
    parameters of one dimension (biases, batch-norm scales) are zero (Li et al.'s
    "biasbn" choice), so that the landscapes of networks at different weight scales
    compare. The two are nearly, not exactly, orthogonal; the path is projected onto them
    by least squares. Default extent ``[-1, 1]^2`` (one filter norm each way), since a
    trajectory seldom moves far along random directions;

* the grid: the loss at ``theta_T + a d1 + b d2`` on an ``N x N`` lattice of ``(a, b)``
  covering the projected path (and the origin) with ``margin`` times its span to spare on
  each side (or ``extent``). The grid's parameter vectors are built in chunks of ``chunk``
  points and evaluated with :func:`torch.func.functional_call` under
  :func:`torch.func.vmap` (one batched forward pass per chunk: no model is loaded with
  parameters point by point), the chunk tuned by timing unless given (:func:`losses_at`:
  where one point at a time is as fast, as for a large forward pass on a CPU, it stays one
  at a time); a loss ``vmap`` cannot batch is evaluated one point at a time, still through
  ``functional_call``;
* the path: each snapshot's coordinates in the plane (its projection), the loss at the
  snapshot itself and the loss at its projection (equal where the path lies in the plane;
  where they differ, the contours under the drawn path are not what the run saw).

The loss is ``loss_fn(model(x), y, ...)`` for ``batch = (x, y, ...)`` (or
``loss_fn(model(x))`` for a tensor ``batch``), as :func:`dynamics.curvature.sharpness`
takes it, so ``torch.nn.functional.cross_entropy`` serves as it is; or, with ``batch=None``,
``loss_fn(params)``: any scalar function of the dict of trainable parameters (name to
tensor), written with :func:`torch.func.functional_call` (a penalty on the weights, a loss
on several batches). It is evaluated in eval mode (dropout off, batch norm on its running
statistics, no buffer updated), in the model's dtype, under ``torch.no_grad``; the model's
modes and the global random state are restored after.

A recording of a reference experiment rebuilds its own model and loss
(:func:`of_experiment`; an experiment module that defines ``landscape_loss(config)``):
``python -m scenes.landscape RUN.rec`` computes and draws it.

Series written (``name`` defaults to ``landscape``):

* ``name`` (kind ``landscape``): the ``(N, N)`` loss grid at the final step, row ``i`` at
  ``b = betas[i]`` (from the bottom), column ``j`` at ``a = alphas[j]``;
* ``name/directions`` (kind ``landscape``): ``(2, P)`` float64, ``d1`` and ``d2`` over the
  ``P`` trainable parameters flattened in ``named_parameters()`` order;
* ``name/path`` (kind ``path``): ``(T, 2)`` float64, the snapshots' coordinates ``(a, b)``;
* ``name/path/loss`` and ``name/path/plane_loss`` (kind ``path``): ``(T,)`` float64, the
  loss at each snapshot and at its projection.

and ``metadata["landscape"][name]``: ``directions``, ``explained_variance`` (per direction:
the share of the path's squared distance to the final point along it, as above),
``in_plane`` (the share of it in the plane), ``extent`` ``[a0, a1, b0, b1]`` (the grid's
first and last coordinates: ``alphas = linspace(a0, a1, N)``), ``size`` ``N``, ``origin``
(``end`` or ``start``), ``origin_step``, ``parameters`` ``P``, ``names`` (the parameters, in
order), ``loss`` (what it is), ``seed``, ``normalisation``, ``dtype``, ``chunk`` (vectors
per vmap call; 0: one at a time), ``vectorized`` and ``seconds``.

**Several paths on one plane** (``paths={label: prefix}``): runs that train copies of one
network side by side (the edge-of-stability runs at several step sizes, whose parameters are
recorded as ``members.<k>.<name>``) share one plane, so that their paths compare: the
principal directions are those of all their snapshots together, about the first path's
final point (``origin="end"``) or its first (``origin="start"``: runs from one start all
begin at ``(0, 0)``, and the explained variance is then the share of the paths' squared
distance from the start). Each path's series go under ``name/<label>/path`` (and its
``/loss``, ``/plane_loss``) instead of ``name/path``, and ``metadata["landscape"][name]``
gains ``paths``: per path its ``label``, parameter ``prefix``, ``path`` series and
``in_plane`` share, in order.

A reference experiment whose recordings hold several paths says which with a hook
``landscape_options(config)``: keyword arguments of :func:`landscape` (``paths``,
``origin``, ``square``), which :func:`of_experiment` passes on.
"""

from __future__ import annotations

import importlib
import math
import re
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch.func import functional_call, vmap

from .curvature import split_batch, trainable, untouched
from .recording import Recording, Series

__all__ = [
    "ORIGINS",
    "Plane",
    "landscape",
    "of_experiment",
    "rebuild",
    "snapshots",
    "pca_directions",
    "random_directions",
    "project",
    "loss_grid",
    "losses_at",
    "params_loss",
    "DIRECTIONS",
]

#: How the plane is chosen.
DIRECTIONS = ("pca", "random")


class Plane(NamedTuple):
    """Two directions over the flat trainable parameters and what each keeps of the path.

    Attributes
    ----------
    directions : (2, P) float64 tensor
    explained : (2,) float64 array
        The share of the path's squared distance to the final point along each direction
        (for ``pca``: the explained variance ratios).
    """

    directions: torch.Tensor
    explained: np.ndarray


def _parameter_series(
    recording: Recording, names: Sequence[str], prefix: str = ""
) -> dict[str, Series]:
    """The recorded series of each parameter name (after ``prefix``): a ``parameter`` series
    whose source is ``prefix + name``, else the series of that name."""
    by_source = {
        s.source: s for s in recording.of_kind("parameter").values() if s.source
    }  # the recorder names a parameter's series after it and says so in source
    found, missing = {}, []
    for n in names:
        key = prefix + n
        s = by_source.get(key) or (recording[key] if key in recording else None)
        if s is None:
            missing.append(prefix + n)
        else:
            found[n] = s
    if missing:
        have = ", ".join(list(recording.of_kind("parameter"))[:6]) or "none"
        raise ValueError(
            f"landscape: the recording has no snapshots of the model's parameters "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} (its parameter "
            f"series: {have}); record them with Recorder(params='*')"
        )
    return found


def snapshots(
    recording: Recording, model: torch.nn.Module, prefix: str = ""
) -> tuple[np.ndarray, torch.Tensor, list[str]]:
    """The model's trainable parameters at every step the recording holds all of them
    (``prefix``: those of a copy of the model whose parameters are recorded under
    ``prefix + name``, e.g. ``members.0.layers.0.weight``).

    Returns
    -------
    steps : (T,) int64
    flat : (T, P) float64 tensor
        Each snapshot's parameters flattened in ``named_parameters()`` order.
    names : list of str
    """
    names, params = trainable(model)
    series = _parameter_series(recording, names, prefix)
    steps = None
    for n, p in zip(names, params):
        s = series[n]
        if s.shape != tuple(p.shape):
            raise ValueError(
                f"landscape: series of {prefix + n!r} holds snapshots of shape {s.shape}, the "
                f"model's parameter has shape {tuple(p.shape)}"
            )
        ss = np.asarray(s.steps)
        steps = ss if steps is None else np.intersect1d(steps, ss)
    if steps is None or not len(steps):
        raise ValueError(
            f"landscape: no step at which every parameter{' of ' + prefix if prefix else ''} "
            "was recorded"
        )
    rows = []
    for n in names:
        s = series[n]
        idx = np.searchsorted(np.asarray(s.steps), steps)
        values = np.asarray(s.values[idx], dtype=np.float64)
        rows.append(torch.from_numpy(values).reshape(len(steps), -1))
    return steps.astype(np.int64), torch.cat(rows, dim=1), names


def pca_directions(flat: torch.Tensor, origin: torch.Tensor | None = None) -> Plane:
    """The top two right singular vectors of ``flat - origin`` (``origin``: the last row),
    signed so that the first row's coordinates are negative, or, where the first row is the
    origin itself (a plane through the start), so that the rows' mean coordinates are
    positive; see the module docstring."""
    flat = flat.to(torch.float64)
    origin = flat[-1] if origin is None else origin.to(torch.float64)
    X = flat - origin
    total = float((X * X).sum())
    if not total > 0:
        raise ValueError(
            "landscape: the parameters never moved: a path has no principal directions"
        )
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)
    d = torch.zeros(2, X.shape[1], dtype=torch.float64)
    k = min(2, Vh.shape[0])
    d[:k] = Vh[:k]
    if k < 2:  # a single snapshot besides the origin: any unit vector orthogonal to the first
        e = torch.zeros(X.shape[1], dtype=torch.float64)
        e[int(d[0].abs().argmin())] = 1.0
        e = e - (e @ d[0]) * d[0]
        d[1] = e / e.norm()
    start = bool((X[0] == 0).all())  # the path runs out of the origin, not into it
    for i in range(2):
        c = float(X.sum(0) @ d[i]) if start else -float(X[0] @ d[i])
        if c < 0 or (c == 0 and float(d[i].sum()) < 0):
            d[i] = -d[i]
    s2 = np.zeros(2)
    s2[:k] = (S[:k] ** 2).numpy()
    return Plane(d, s2 / total)


def random_directions(
    model: torch.nn.Module, seed: int = 0, origin: torch.Tensor | None = None
) -> torch.Tensor:
    """Two filter-normalised Gaussian directions ``(2, P)`` float64 (Li et al. 2018) for the
    model's trainable parameters at ``origin`` (flat; default: the model's own).

    Drawn from ``torch.Generator().manual_seed(seed)`` in float64, the first direction over
    every parameter in order, then the second. Each filter (the slice along the first axis
    of a parameter of two or more dimensions) is scaled to the norm of that filter of the
    parameters; parameters of one dimension (biases) get zero."""
    _, params = trainable(model)
    if origin is None:
        origin = torch.cat([p.detach().reshape(-1).double().cpu() for p in params])
    gen = torch.Generator().manual_seed(int(seed))
    sizes = [p.numel() for p in params]
    weights = origin.to(torch.float64).split(sizes)
    out = torch.zeros(2, sum(sizes), dtype=torch.float64)
    for k in range(2):
        parts = []
        for p, w in zip(params, weights):
            d = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if p.dim() <= 1:
                d.zero_()
            else:
                w = w.reshape(p.shape)
                dims = tuple(range(1, p.dim()))
                wn = w.pow(2).sum(dims, keepdim=True).sqrt()
                dn = d.pow(2).sum(dims, keepdim=True).sqrt()
                d = d * wn / dn
            parts.append(d.reshape(-1))
        out[k] = torch.cat(parts)
    return out


def project(
    flat: torch.Tensor, origin: torch.Tensor, directions: torch.Tensor
) -> tuple[np.ndarray, float]:
    """Coordinates ``(T, 2)`` of each row of ``flat`` in the plane ``origin + span(d1, d2)``
    (least squares: exact projection for directions that are not orthonormal) and the share
    of ``sum ||flat - origin||^2`` that the projections keep (1: the rows lie in the plane)."""
    D = directions.to(torch.float64)
    X = flat.to(torch.float64) - origin.to(torch.float64)
    G = D @ D.T
    coords = torch.linalg.solve(G, D @ X.T).T  # (T, 2)
    total = float((X * X).sum())
    kept = float(((coords @ D) ** 2).sum())
    return coords.numpy(), (kept / total if total > 0 else 1.0)


def params_loss(
    model: torch.nn.Module, loss_fn: Callable[..., torch.Tensor], batch: Any = None
) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
    """The loss as a function of the dict of trainable parameters: ``loss_fn`` itself when
    ``batch`` is None, else ``params -> loss_fn(functional_call(model, params, (x,)), *rest)``
    for ``batch = (x, *rest)``."""
    if batch is None:
        return loss_fn
    x, rest = split_batch(batch)

    def loss(params):
        return loss_fn(functional_call(model, dict(params), (x,)), *rest)

    return loss


def _flat_to_params(
    flat: torch.Tensor, names: Sequence[str], params: Sequence[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``(B, P)`` (or ``(P,)``) flat rows as a dict of ``(B, *shape)`` tensors in each
    parameter's dtype and device."""
    lead = flat.shape[:-1]
    parts = flat.split([p.numel() for p in params], dim=-1)
    return {
        n: part.reshape(*lead, *p.shape).to(device=p.device, dtype=p.dtype)
        for n, part, p in zip(names, parts, params)
    }


#: Largest chunk the tuning of :func:`losses_at` tries.
MAX_CHUNK = 256


def losses_at(
    model: torch.nn.Module,
    loss: Callable[[Mapping[str, torch.Tensor]], torch.Tensor],
    rows: Callable[[int, int], torch.Tensor],
    count: int,
    *,
    chunk: int | None = None,
    vectorize: bool = True,
    progress: Any = None,
) -> tuple[np.ndarray, bool, int]:
    """The loss at ``count`` flat parameter vectors, ``rows(lo, hi)`` giving rows ``lo..hi-1``
    as a ``(hi - lo, P)`` float64 tensor, cast to each parameter's dtype and evaluated with
    ``vmap(loss)`` ``chunk`` vectors at a time (``vectorize``), or one vector at a time
    through ``functional_call`` (``vectorize=False``, ``chunk=0``, or where vmap cannot batch
    the loss). ``progress``: a bar to ``update`` by the vectors done.

    ``chunk=None`` tunes it on the work itself: one vector at a time without vmap, then
    chunks of 1, 2, 4, ... vectors with vmap are timed (two of each, the faster counts)
    while the time per vector falls by 5% or more (up to :data:`MAX_CHUNK`), and the rest
    goes the fastest way (vmap only where it beats one at a time by 5% or more). Where a
    forward pass is large enough to keep the processor busy (the spiral MLP on 1 000
    points, on a CPU) batching gains little and one at a time may stay; a small network,
    or a GPU, gains from large chunks.

    Returns
    -------
    losses : (count,) float64 array
    vectorized : bool
        Whether vmap did (the rest of) it.
    chunk : int
        The vectors per vmap call used last (0: one at a time without vmap).
    """
    names, params = trainable(model)
    out = np.empty(count)
    batched = vmap(loss) if vectorize else None
    tuning = chunk is None and batched is not None
    # (vmap?, size): the way now; tuning starts without vmap, then vmap on 1, 2, 4, ...
    way = (False, 2) if tuning else (batched is not None and chunk != 0, max(1, int(chunk or 1)))
    tried, seen, before = [], [], math.inf  # (time per vector, way); this way's; vmap's last
    lo = 0
    with untouched(model), torch.no_grad():
        while lo < count:
            hi = min(lo + way[1], count)
            start = time.perf_counter()
            flat = rows(lo, hi)
            values = None
            if way[0] and batched is not None:
                try:
                    values = batched(_flat_to_params(flat, names, params))
                except RuntimeError:  # vmap cannot batch this loss: one vector at a time
                    batched, tuning, way = None, False, (False, way[1])
            if values is None:
                values = torch.stack(
                    [loss(_flat_to_params(row, names, params)).reshape(()) for row in flat]
                )
            out[lo:hi] = values.reshape(hi - lo).to(torch.float64).cpu().numpy()
            if progress is not None:
                progress.update(hi - lo)
            lo = hi
            if not tuning:
                continue
            seen.append((time.perf_counter() - start) / len(flat))
            if len(seen) < 2:  # each way timed twice, the faster counts (a busy machine)
                continue
            per, seen = min(seen), []
            tried.append((per, way))
            if way[0] and per < 0.95 * before and 2 * way[1] <= MAX_CHUNK:
                before, way = per, (True, 2 * way[1])  # vmap gained: a chunk twice as large
            elif not way[0]:
                way = (True, 1)  # one at a time measured: now vmap, from one vector
            else:  # no better than half the chunk: settle on the fastest way seen (vmap
                # only where it beats one at a time by 5%: a tie goes to the fewer copies)
                tuning, way = False, min(tried, key=lambda t: t[0] * (1.05 if t[1][0] else 1))[1]
    return out, batched is not None and way[0], way[1] if way[0] else 0


def loss_grid(
    model: torch.nn.Module,
    loss: Callable[[Mapping[str, torch.Tensor]], torch.Tensor],
    origin: torch.Tensor,
    directions: torch.Tensor,
    points: torch.Tensor,
    **kwargs: Any,
) -> tuple[np.ndarray, bool, int]:
    """The loss at ``origin + a d1 + b d2`` for each row ``(a, b)`` of ``points`` ``(M, 2)``
    (the vectors built in float64); ``kwargs`` and the result as :func:`losses_at`'s."""
    origin, D = origin.to(torch.float64), directions.to(torch.float64)
    pts = points.to(torch.float64)
    return losses_at(model, loss, lambda lo, hi: origin + pts[lo:hi] @ D, len(pts), **kwargs)


def _extent(coords: np.ndarray, margin: float) -> list[float]:
    """``[a0, a1, b0, b1]``: the path's coordinates and the origin with ``margin`` times the
    span to spare on each side (a direction the path never moves along: +-1)."""
    out = []
    for k in range(2):
        lo = min(float(coords[:, k].min()), 0.0)
        hi = max(float(coords[:, k].max()), 0.0)
        span = hi - lo
        if not span > 1e-12 * max(abs(lo), abs(hi), 1.0):
            lo, hi, span = -1.0, 1.0, 0.0
        pad = margin * span
        out += [lo - pad, hi + pad]
    return out


#: Where the plane passes.
ORIGINS = ("end", "start")


def _square(extent: Sequence[float]) -> list[float]:
    """``extent`` with its narrower axis widened about its centre to the wider one's span, so
    that the grid is square in parameter-space distance (drawn with equal aspect, it fills
    a square panel)."""
    a0, a1, b0, b1 = extent
    half = max(a1 - a0, b1 - b0) / 2
    ca, cb = (a0 + a1) / 2, (b0 + b1) / 2
    return [ca - half, ca + half, cb - half, cb + half]


def landscape(
    recording: Recording,
    model: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batch: Any = None,
    *,
    directions: str = "pca",
    size: int = 51,
    margin: float = 0.25,
    extent: Sequence[float] | None = None,
    square: bool = False,
    paths: Mapping[str, str] | None = None,
    origin: str = "end",
    seed: int = 0,
    chunk: int | None = None,
    vectorize: bool = True,
    name: str = "landscape",
    description: str = "",
    progress: bool = False,
) -> Recording:
    """The loss landscape around the recorded trajectory, added to the recording.

    Parameters
    ----------
    recording : Recording
        Holds snapshots of every trainable parameter of ``model`` (series of kind
        ``parameter`` named, or sourced, as in ``named_parameters()``); the steps at which
        all of them were recorded are the path, the last one the origin of the plane.
    model : torch.nn.Module
        The network they belong to (its parameters' values are not used, nor changed).
    loss_fn : callable
        ``loss_fn(model(x), *rest)`` for ``batch = (x, *rest)``, or with ``batch=None``
        ``loss_fn(params)`` of the dict of trainable parameters (see the module docstring);
        either must return a scalar and, for speed, be batchable by :func:`torch.func.vmap`.
    batch : tensor, tuple or None
    directions : {"pca", "random"}
        The plane: the path's top two principal directions about the final point, or two
        filter-normalised random directions drawn with ``seed``.
    size : int
        Grid points per side (``size x size`` losses), at least 2.
    margin : float
        Room around the projected path (and the origin), as a fraction of its span per axis.
    extent : sequence of 4 floats, optional
        ``[a0, a1, b0, b1]``, the grid's first and last coordinates, instead (default for
        ``random``: ``[-1, 1, -1, 1]``).
    square : bool
        Widen the narrower side of the grid (computed or given) to the wider one's span,
        about its centre: the grid covers as much distance along both directions, for a
        picture drawn with equal aspect.
    paths : mapping of str to str, optional
        Several paths on one plane: for each label (``"lr=0.1"``), the prefix under which a
        copy of ``model``'s parameters is recorded (``"members.0."``: series
        ``members.0.layers.0.weight`` ...). The plane's principal directions are those of
        every path's snapshots together; each path is projected onto it and written under
        ``name/<label>/``. Default: one path, the model's own parameter names.
    origin : {"end", "start"}
        Where the plane passes: the (first) path's final snapshot, or its first (for runs
        from one start: every path begins at ``(0, 0)``).
    seed : int
        Seed of the random directions.
    chunk : int, optional
        Grid points per batched evaluation (memory grows with it); default: tuned by timing
        (:func:`losses_at`). Give it where the numbers must repeat bit for bit: the tuning
        may choose another chunk on another run, and float32 sums batched otherwise round
        otherwise.
    vectorize : bool
        Batch with vmap (False: one point at a time, through functional_call still).
    name : str
        Name of the series written (and their prefix).
    description : str
        What the loss is, kept in the metadata (default: the loss function's name).
    progress : bool
        Show a progress bar over the grid's points.

    Returns
    -------
    Recording
        The recording's series and metadata, plus the landscape's (module docstring).
    """
    from .progress import progress_bar

    if directions not in DIRECTIONS:
        raise ValueError(
            f"landscape: directions must be one of {', '.join(DIRECTIONS)}, got {directions!r}"
        )
    if origin not in ORIGINS:
        raise ValueError(f"landscape: origin must be one of {', '.join(ORIGINS)}, got {origin!r}")
    if not isinstance(size, int) or isinstance(size, bool) or not 2 <= size <= 2000:
        raise ValueError(f"landscape: size must be an int from 2 to 2000, got {size!r}")
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"landscape: margin must be >= 0, got {margin}")
    if extent is not None:
        extent = [float(v) for v in extent]
        if (
            len(extent) != 4
            or not all(map(math.isfinite, extent))
            or not (extent[0] < extent[1] and extent[2] < extent[3])
        ):
            raise ValueError(
                f"landscape: extent must be [a0, a1, b0, b1] with a0 < a1, b0 < b1, got {extent}"
            )
    if paths is not None:
        paths = dict(paths)
        if not paths or not all(isinstance(k, str) and k for k in paths):
            raise ValueError(
                f"landscape: paths must map non-empty labels to parameter prefixes, got {paths}"
            )
    start = time.perf_counter()
    tracks = [snapshots(recording, model, prefix) for prefix in (paths or {"": ""}).values()]
    names = tracks[0][2]
    flat = torch.cat([f for _, f, _ in tracks])  # every path's snapshots, one after another
    sizes = [len(s) for s, _, _ in tracks]
    first_steps, first = tracks[0][0], tracks[0][1]
    at = -1 if origin == "end" else 0
    center, origin_step = first[at], int(first_steps[at])
    if directions == "pca":
        D, explained = pca_directions(flat, center)
    else:
        D = random_directions(model, seed, center)
        explained = None
    coords, in_plane = project(flat, center, D)
    if explained is None:  # the share of the path's squared distance along each direction
        X = flat - center
        total = float((X * X).sum())
        unit = D / D.norm(dim=1, keepdim=True)
        explained = (((X @ unit.T) ** 2).sum(0) / total).numpy() if total > 0 else np.zeros(2)
    if extent is None:
        extent = [-1.0, 1.0, -1.0, 1.0] if directions == "random" else _extent(coords, margin)
    if square:
        extent = _square(extent)
    alphas = np.linspace(extent[0], extent[1], size)
    betas = np.linspace(extent[2], extent[3], size)
    grid_b, grid_a = np.meshgrid(betas, alphas, indexing="ij")
    points = torch.from_numpy(np.stack([grid_a.ravel(), grid_b.ravel()], axis=1))
    loss = params_loss(model, loss_fn, batch)
    _, params = trainable(model)
    total_points = size * size + 2 * len(flat)
    with progress_bar(
        total=total_points, desc="landscape", unit="point", disable=not progress, mininterval=0.5
    ) as bar:
        grid, vectorized, chunk = loss_grid(
            model, loss, center, D, points, chunk=chunk, vectorize=vectorize, progress=bar
        )
        plane_loss, _, _ = loss_grid(
            model, loss, center, D, torch.from_numpy(coords), chunk=chunk,
            vectorize=vectorized, progress=bar,
        )  # fmt: skip
        # the loss at each snapshot itself: its own parameters, in the plane or not
        path_loss, _, _ = losses_at(
            model, loss, lambda lo, hi: flat[lo:hi], len(flat), chunk=chunk,
            vectorize=vectorized, progress=bar,
        )  # fmt: skip
    last = first_steps[-1:]
    series = {
        **dict(recording.items()),
        name: Series(last, grid.reshape(1, size, size), kind="landscape"),
        f"{name}/directions": Series(last, D.numpy()[None], kind="landscape"),
    }
    written = []
    bounds = np.cumsum([0, *sizes])
    for k, (label, prefix) in enumerate((paths or {"": ""}).items()):
        lo, hi = bounds[k], bounds[k + 1]
        base = f"{name}/{label}/path" if paths is not None else f"{name}/path"
        steps = tracks[k][0]
        series[base] = Series(steps, coords[lo:hi], kind="path")
        series[f"{base}/loss"] = Series(steps, path_loss[lo:hi], kind="path")
        series[f"{base}/plane_loss"] = Series(steps, plane_loss[lo:hi], kind="path")
        kept = project(flat[lo:hi], center, D)[1]
        written.append({"label": label, "prefix": prefix, "path": base, "in_plane": kept})
    about = {
        "directions": directions,
        "explained_variance": [float(v) for v in explained],
        "in_plane": float(in_plane),
        "extent": [float(v) for v in extent],
        "size": size,
        "origin": origin,
        "origin_step": origin_step,
        "path_steps": int(len(flat)),
        "parameters": int(flat.shape[1]),
        "names": list(names),
        "loss": description or getattr(loss_fn, "__name__", type(loss_fn).__name__),
        "seed": int(seed) if directions == "random" else None,
        "normalisation": "filter (Li et al. 2018), 1-D parameters zero"
        if directions == "random"
        else f"orthonormal principal directions of the path{'s' if paths else ''} about "
        f"{'its final' if origin == 'end' else 'the first'} point",
        "dtype": str(params[0].dtype).replace("torch.", ""),
        "chunk": int(chunk),
        "vectorized": bool(vectorized),
        "seconds": round(time.perf_counter() - start, 3),
    }
    if paths is not None:
        about["paths"] = written
    metadata = dict(recording.metadata)
    metadata["landscape"] = {**(metadata.get("landscape") or {}), name: about}
    return Recording(
        series,
        metadata,
        complete=recording.complete,
        path=recording.path,
        committed_step=recording.committed_step,
    )


def rebuild(recording: Recording) -> tuple[torch.nn.Module, Callable, str]:
    """The model, the loss (a function of the parameters dict) and its description of a
    recording of a reference experiment, from its ``landscape_loss(config)``; ValueError
    in one line for a recording that cannot be rebuilt."""
    where = f" {recording.path}" if recording.path else ""
    api = (
        "compute its landscape with the Python API: "
        "dynamics.landscape.landscape(recording, model, loss_fn, batch)"
    )
    experiment = recording.metadata.get("experiment")
    if not isinstance(experiment, str) or not re.fullmatch(r"[a-z_][a-z0-9_]*", experiment):
        raise ValueError(
            f"recording{where} says no reference experiment, so its model and loss cannot be "
            f"rebuilt; {api}"
        )
    try:
        module = importlib.import_module(f"dynamics.experiments.{experiment}")
    except ImportError:
        module = None
    hook = getattr(module, "landscape_loss", None)
    if hook is None:
        raise ValueError(
            f"recording{where} of experiment {experiment!r}: that experiment cannot rebuild its "
            f"model and loss; {api}"
        )
    config = recording.metadata.get("config")
    try:
        config = module.Config(**config)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"recording{where}: its {experiment} config cannot be rebuilt ({exc}); {api}"
        ) from None
    return hook(config)


def of_experiment(recording: Recording, **kwargs: Any) -> Recording:
    """:func:`landscape` of a recording of a reference experiment, whose module rebuilds the
    model and loss (:func:`rebuild`); ``kwargs`` as :func:`landscape`'s, over the
    experiment's own ``landscape_options(config)`` where it has them (its several paths)."""
    model, loss, description = rebuild(recording)
    module = importlib.import_module(f"dynamics.experiments.{recording.metadata['experiment']}")
    hook = getattr(module, "landscape_options", None)
    options = {} if hook is None else dict(hook(module.Config(**recording.metadata["config"])))
    options.update(kwargs)
    return landscape(recording, model, loss, None, description=description, **options)
