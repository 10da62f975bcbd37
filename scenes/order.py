"""Hidden units that keep their place: one order of a layer's units for every frame, and in
a sweep the same order across cells.

The units of a hidden layer are anonymous: a run, or a rerun with another seed, may hold
the same features under any permutation, and a heatmap of its weights reshuffles with it.
An order here is computed once, from the final snapshot, and applied to every frame:

* ``norm``: units by the norm of their final weights (rows of the layer), largest first;
  ties by the rows' values, so the order depends only on the set of units, not on their
  labels: a layer whose units were permuted is drawn identically.
* ``match``: in a sweep, each cell's units matched to the reference cell's (the first, in
  ``norm`` order) by the assignment that maximises the summed cosine similarity of their
  final weights (:func:`linear_sum_assignment`, as in weight matching / "git re-basin"), so
  one row means the corresponding unit in every cell. Alone, the same as ``norm``.

Which rows are units: the weight matrices (parameters of rank 2 or more) in recording
order form a chain; a layer's rows (its first axis, a kernel's output channels) are hidden
units when the next matrix of the chain reads them, that is has as many columns (second
axis) as it has rows. The next matrix's columns then get the same permutation, so the
drawing stays one network; the last layer's rows (outputs, classes) keep their order.
A ``<layer>.bias`` follows ``<layer>.weight``, and a gradient its parameter.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ORDERS",
    "linear_sum_assignment",
    "norm_order",
    "match_units",
    "Permuted",
    "unit_orders",
    "order_of",
]

#: Values of ``--order``.
ORDERS = ("none", "norm", "match")

Order = tuple  # (rows, cols): a permutation of axis 1 and of axis 2 of (T, ...), or None


def linear_sum_assignment(cost) -> tuple[np.ndarray, np.ndarray]:
    """The assignment of rows to columns of ``cost`` (n x m) of least total cost, exact.

    Shortest augmenting paths with potentials (the Hungarian method in the form of Jonker
    and Volgenant), O(n^2 m) for n <= m; a tall matrix is solved transposed. Returns
    ``(rows, cols)`` as :func:`scipy.optimize.linear_sum_assignment` does: ``min(n, m)``
    pairs, ``rows`` ascending, ``cost[rows, cols].sum()`` the least possible.
    """
    c = np.asarray(cost, dtype=float)
    if c.ndim != 2:
        raise ValueError(f"cost must be a matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("cost must be finite")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: the row (from 1) on column j, 0 none
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used
            free[0] = False
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free[1:] & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            j1 = int(np.argmin(np.where(free, minv, np.inf)))
            delta = minv[j1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:])
    rows = owner[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    by_row = np.argsort(rows)
    return rows[by_row], cols[by_row]


def norm_order(key: np.ndarray) -> np.ndarray:
    """Rows of ``key`` (units x inputs) by norm, largest first; ties by the rows' values,
    so the order is a function of the set of rows (a permuted layer sorts the same)."""
    key = _as_rows(key)
    norms = np.linalg.norm(np.nan_to_num(key), axis=1)
    # lexsort: the last key is the primary one
    return np.lexsort((*np.nan_to_num(key).T[::-1], -norms)).astype(np.int64)


def _as_rows(key) -> np.ndarray:
    """``key`` as a float matrix of one row per unit (its other axes flattened)."""
    key = np.asarray(key, dtype=float)
    return key.reshape(key.shape[0], int(np.prod(key.shape[1:])))


def _unit_rows(key: np.ndarray) -> np.ndarray:
    key = np.nan_to_num(_as_rows(key))
    norms = np.linalg.norm(key, axis=1, keepdims=True)
    return np.divide(key, norms, out=np.zeros_like(key), where=norms > 0)


def match_units(key: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The order of the units (rows) of ``key`` that puts on row ``k`` the unit matched to
    the reference's unit ``k``: the assignment of largest summed cosine similarity of rows.
    With more units than the reference, the unmatched ones follow, by norm; with fewer,
    the matched units keep the reference's order."""
    key, reference = _as_rows(key), _as_rows(reference)
    if key.shape[1] != reference.shape[1]:
        raise ValueError(
            f"units of {key.shape[1]} inputs cannot be matched to units of {reference.shape[1]}"
        )
    similarity = _unit_rows(reference) @ _unit_rows(key).T  # (reference units, units)
    _, cols = linear_sum_assignment(-similarity)  # rows ascending: the reference's order
    rest = np.setdiff1d(np.arange(len(key)), cols)
    return np.concatenate([cols, rest[norm_order(key[rest])]]).astype(np.int64)


class Permuted:
    """Snapshots ``(T, a, b, ...)`` with axis 1 taken in the order ``rows`` and axis 2 in
    the order ``cols`` (None: as they are). Lazy like :class:`~scenes.plotting.FilterGrid`:
    ``view[i]`` and ``view[a:b]`` read only those snapshots (of a memmap)."""

    def __init__(self, values, rows=None, cols=None):
        self.values, self.rows, self.cols = values, rows, cols
        self.shape, self.ndim, self.dtype = tuple(values.shape), values.ndim, values.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        block = np.asarray(self.values[index])
        lead = 0 if isinstance(index, (int, np.integer)) else 1  # the axis of snapshots
        if self.rows is not None:
            block = np.take(block, self.rows, axis=lead)
        if self.cols is not None:
            block = np.take(block, self.cols, axis=lead + 1)
        return block


def _chain(recording) -> list[str]:
    """The weight matrices of ``recording`` (parameters of rank 2 or more), in its order."""
    return [n for n, s in recording.items() if s.kind == "parameter" and len(s.shape) >= 2]


def unit_orders(recording, how: str, reference: dict | None = None) -> tuple[dict, dict]:
    """The order of every hidden layer of ``recording`` (see the module): ``{name: (rows,
    cols)}`` (permutations of the parameter's first and second axis, or None), and the
    ordered final weights of each hidden layer, ``{name: key}``, that a later cell of a
    sweep is matched to (``reference``, under ``how="match"``)."""
    if how not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {how!r}")
    orders: dict = {}
    keys: dict = {}
    if how == "none":
        return orders, keys
    chain = _chain(recording)
    before = None  # the permutation of the previous layer's units, and their number
    for name, after in zip(chain, [*chain[1:], None]):
        shape = recording[name].shape
        cols = before[0] if before is not None and shape[1] == before[1] else None
        rows = None
        if after is not None and recording[after].shape[1] == shape[0]:  # hidden units
            final = np.asarray(recording[name].values[-1], dtype=float)
            if cols is not None:
                final = final[:, cols]
            key = final.reshape(shape[0], -1)
            ref = (reference or {}).get(name) if how == "match" else None
            rows = (
                match_units(key, ref)
                if ref is not None and ref.shape[1:] == key.shape[1:]
                else norm_order(key)
            )
            keys[name] = key[rows]
        before = (rows, shape[0]) if rows is not None else None
        if rows is not None or cols is not None:
            orders[name] = (rows, cols)
    return orders, keys


def order_of(recording, name: str, orders: dict) -> Order:
    """The ``(rows, cols)`` permutations of series ``name``: those of its parameter (a
    gradient's source), or of ``<layer>.weight``'s units for ``<layer>.bias``."""
    series = recording[name]
    own = series.source if series.kind == "gradient" and series.source else name
    if own in orders and own in recording and recording[own].shape == series.shape:
        return orders[own]
    if own.endswith(".bias"):
        rows = orders.get(own[: -len("bias")] + "weight", (None, None))[0]
        if rows is not None and series.shape == (len(rows),):
            return (rows, None)
    return (None, None)
