"""One picture of a whole model: every tensor's update, norm or gradient norm over training.

Run: ``python -m scenes.layers RUN.rec [--quantity update|weight|gradient]`` (writes
``outputs/layers.mp4``); ``--help`` lists every flag. One row per tensor, in model order
(the order of the recording's series), one column per snapshot, coloured on a log scale,
with a cursor at the current step:

* ``update`` (default): the relative update ``||W_t - W_{t-1}|| / ||W_t||`` between
  consecutive snapshots of each parameter (a layer that stopped learning turns dark, one
  that blows up bright);
* ``weight``: the norm ``||W_t||`` of each parameter;
* ``gradient``: the norm of each recorded gradient (``grad/<name>``, ``Recorder(grads=True)``).

Readable from 1 to 500 tensors: every row is labelled while rows are tall enough, else
runs of rows in one module (``encoder.layers.0.self_attn (4)``), else every k-th row
(:class:`scenes.plotting.StepMapPanel`). Each series is read a block of snapshots at a
time (a recording larger than memory works), and more snapshots than
:data:`MAX_COLUMNS` are pooled into columns (each the largest value among its
snapshots, so a spike stays visible). ``python -m scenes.render`` shows this picture for a
model of more than 12 parameter tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series

from .base import Field, PanelScene
from .plotting import StepMapPanel, axes_in, fit_into, get_cmap, packed_cells, thin_step_ticks
from .registry import register

__all__ = [
    "LayersScene",
    "LayersSceneConfig",
    "QUANTITIES",
    "TensorMap",
    "tensor_map",
    "column_edges",
]

#: What a row can show: the kind of series it is computed from, and the colorbar's label.
QUANTITIES = {
    "update": ("parameter", "relative update ||ΔW|| / ||W||"),
    "weight": ("parameter", "weight norm ||W||"),
    "gradient": ("gradient", "gradient norm ||grad W||"),
}
#: At most this many columns (about the width of the axes in pixels at 1280 x 720).
MAX_COLUMNS = 1000
#: Bytes of snapshots read at once from each series (as float64).
CHUNK_BYTES = 32 << 20


def column_edges(steps: np.ndarray, most: int = MAX_COLUMNS) -> np.ndarray:
    """Step edges of the columns of a map over ``steps``: one column centred on each step
    when they are evenly spaced and at most ``most``, else ``most`` equal columns from the
    first step to the last (a linear step axis whatever the schedule)."""
    steps = np.unique(np.asarray(steps, dtype=float))
    if len(steps) == 1:
        return np.array([steps[0] - 0.5, steps[0] + 0.5])
    gaps = np.diff(steps)
    if len(steps) <= most and np.allclose(gaps, gaps[0]):
        half = gaps[0] / 2
        return np.linspace(steps[0] - half, steps[-1] + half, len(steps) + 1)
    return np.linspace(steps[0], steps[-1], most + 1)


def _per_snapshot(series: Series, quantity: str, chunk_bytes: int):
    """``(index range, values)`` of ``quantity`` for each snapshot of ``series``, a block of
    snapshots at a time (the update of the first snapshot is NaN: it has no predecessor)."""
    values = series.values
    n = len(values)
    size = max(int(np.prod(series.shape)), 1)
    per = max(1, chunk_bytes // (8 * size))
    prev = None
    for lo in range(0, n, per):
        block = np.asarray(values[lo : lo + per], dtype=np.float64).reshape(-1, size)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        if quantity != "update":
            yield lo, norms
            continue
        moved = np.full(len(block), np.nan)
        if prev is not None:
            d = block[0] - prev
            moved[0] = np.sqrt(d @ d)
        if len(block) > 1:
            d = block[1:] - block[:-1]
            moved[1:] = np.sqrt(np.einsum("ij,ij->i", d, d))
        prev = block[-1].copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            yield lo, np.where(norms > 0, moved / norms, np.nan)


@dataclass(frozen=True)
class TensorMap:
    """A per-tensor quantity over training, pooled into columns.

    Attributes
    ----------
    labels : list of str
        One per row: the tensors (a gradient by its parameter's name), in recording order.
    edges : (C + 1,) float array
        Step edges of the columns.
    values : (rows, C) float array
        The quantity: the largest value among each column's snapshots; a column with none
        holds the one before it; NaN before a tensor's first value.
    steps : (T,) int array
        Every step a row has a snapshot at.
    quantity : str
        A key of :data:`QUANTITIES`.
    """

    labels: list
    edges: np.ndarray
    values: np.ndarray
    steps: np.ndarray
    quantity: str

    @property
    def title(self) -> str:
        return QUANTITIES[self.quantity][1]


def tensor_series(recording: Recording, quantity: str) -> dict[str, Series]:
    """The series the rows of ``quantity`` come from, by row label, in recording order:
    parameters, or gradients labelled by their parameter."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}")
    kind = QUANTITIES[quantity][0]
    return {
        (s.source or name.removeprefix("grad/")) if kind == "gradient" else name: s
        for name, s in recording.of_kind(kind).items()
        if len(s) and len(s.shape) >= 1 and int(np.prod(s.shape)) >= 1
    }


def tensor_map(
    recording: Recording,
    quantity: str = "update",
    *,
    most: int = MAX_COLUMNS,
    chunk_bytes: int = CHUNK_BYTES,
) -> TensorMap:
    """The :class:`TensorMap` of ``quantity`` (a key of :data:`QUANTITIES`) of every tensor
    of ``recording``. Reads each series once, ``chunk_bytes`` at a time.

    Raises
    ------
    KeyError
        The recording has no series of the kind ``quantity`` needs (saying what it has).
    """
    series = tensor_series(recording, quantity)
    if not series:
        kind = QUANTITIES[quantity][0]
        hint = " (record them with Recorder(grads=True))" if kind == "gradient" else ""
        kinds = sorted({s.kind or "kind not said" for _, s in recording.items()})
        raise KeyError(
            f"{quantity} needs {kind} series{hint}; the recording has {len(recording)} series "
            f"of kinds: {', '.join(kinds) or 'none'}"
        )
    if quantity == "update" and max(len(s) for s in series.values()) < 2:
        raise ValueError("update needs at least two snapshots of a parameter; there is one")
    steps = np.unique(np.concatenate([np.asarray(s.steps) for s in series.values()]))
    edges = column_edges(steps, most)
    cols = len(edges) - 1
    out = np.full((len(series), cols), np.nan)
    for row, s in enumerate(series.values()):
        at = np.clip(np.searchsorted(edges, np.asarray(s.steps), side="right") - 1, 0, cols - 1)
        filled = np.zeros(cols, bool)
        for lo, q in _per_snapshot(s, quantity, chunk_bytes):
            where = at[lo : lo + len(q)]  # increasing: runs of snapshots per column
            cols_here, starts = np.unique(where, return_index=True)
            top = np.fmax.reduceat(q, starts)  # NaN-ignoring maximum per column
            out[row, cols_here] = np.fmax(out[row, cols_here], top)
            filled[cols_here] = True
        last = np.maximum.accumulate(np.where(filled, np.arange(cols), -1))
        out[row] = np.where(last >= 0, out[row][np.maximum(last, 0)], np.nan)
    return TensorMap(list(series), edges, out, steps.astype(np.int64), quantity)


@dataclass(frozen=True)
class LayersSceneConfig:
    """What the map shows.

    Attributes
    ----------
    quantity : str
        What each row (one tensor, in model order) shows over training, on a log colour
        scale: update (the relative update ||W_t - W_t-1|| / ||W_t|| between snapshots of
        each parameter), weight (the norm ||W_t||) or gradient (the norm of each recorded
        gradient grad/NAME).
    cmap : str
        Colormap, any matplotlib or seaborn name (a sequential one: the colour is a
        magnitude).
    """

    quantity: str = "update"
    cmap: str = "viridis"

    def __post_init__(self):
        if self.quantity not in QUANTITIES:
            raise ValueError(
                f"quantity must be one of {', '.join(QUANTITIES)}, got {self.quantity!r}"
            )
        get_cmap(self.cmap)


def map_panel(ax, tmap: TensorMap, cmap: str = "viridis") -> StepMapPanel:
    """The panel of ``tmap`` on ``ax`` (as the layers scene and the dashboard draw it)."""
    return StepMapPanel(
        ax,
        tmap.edges,
        tmap.values,
        tmap.labels,
        cmap=cmap,
        colorbar=tmap.title,
        ylabel=f"tensor ({len(tmap.labels)}, model order)",
    )


@register(
    "layers",
    description="Draw every tensor of a saved recording at once: a tensors x training-steps "
    "map of each one's relative update, weight norm or gradient norm (--quantity), on a log "
    "colour scale, one row per tensor in model order, with a cursor at the current step.",
)
class LayersScene(PanelScene):
    """Every tensor of a model over training: relative update, norm or gradient norm per row.

    Reads the parameter series (or the gradient series, for ``--quantity gradient``) by
    kind, and ``loss`` for the readout when present.
    """

    Config = LayersSceneConfig
    title = "Every tensor over training"
    readout = (Field("loss", "loss", "{:.4g}"),)

    def check(self) -> None:
        self.map_ = tensor_map(self.recording, self.config.quantity)

    def timeline(self) -> np.ndarray:
        return self.map_.steps

    def heading(self) -> str:
        return f"{self.title}: {self.map_.title}"

    def build(self, fig: Figure):
        (cell,) = packed_cells([[1]], left=0.02, right=0.98, bottom=0.02, top=self.header_bottom)
        ax = axes_in(fig, cell, colorbar=True)
        n = len(self.map_.labels)
        ax.set_title(f"{n} tensor{'s' * (n != 1)}", fontsize="medium", loc="left")
        panel = map_panel(ax, self.map_, self.config.cmap)
        fit_into(ax, cell)
        thin_step_ticks(ax)
        return [panel]

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """A 5-block network's 15 tensors drifting at rates over three decades, and a loss."""
        rng = np.random.default_rng(seed)
        steps = np.arange(frames, dtype=np.int64) * 10
        series = {}
        for block in range(5):
            for part, shape in (
                ("linear.weight", (6, 4)),
                ("linear.bias", (6,)),
                ("norm.weight", (6,)),
            ):
                name = f"blocks.{block}.{part}"
                rate = 10.0 ** -rng.uniform(0, 3)
                walk = np.cumsum(rng.normal(0, rate, (frames, *shape)), axis=0)
                series[name] = Series(
                    steps,
                    (rng.normal(0, 1, shape) + walk).astype(np.float32),
                    kind="parameter",
                    source=name,
                )
        series["loss"] = Series(steps, np.geomspace(2, 0.05, frames), kind="scalar")
        return Recording(series, {"caption": "a 5-block network (an example recording)"})


if __name__ == "__main__":
    from .cli import main

    main("layers")
