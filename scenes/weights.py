"""Heatmaps of any recorded matrices over training, side by side on one timeline.

Run: ``python -m scenes.weights RUN.rec [--show 0.weight,2.weight]`` (writes
``outputs/weights.mp4``); ``--help`` lists every flag.

* Colour scale (``--scale``): fixed over the run for weights, so a colour means one value
  in every frame; per frame for gradients, from the 99th percentile of ``|g|`` of each
  frame, so a gradient that shrinks over decades stays readable instead of fading to
  white (``--scale symlog``: a symmetric log scale fixed over the run). The colorbar says
  which scale it shows; under the per-frame scale its tick labels follow the frame.
* A convolution kernel (rank 3 to 5, ``(out, in, *kernel)``) is drawn as a filter grid by
  default: ``out x in`` tiles of ``kh x kw`` (a 3-D kernel: its middle depth slice, or
  ``--depth``, said in the title). ``--kernels flat`` draws it as other tensors of higher
  rank: rows its first axis, columns the rest flattened (``out x (in * kh * kw)``).
* A vector is one row. A matrix keeps square cells unless that would make a panel more
  than :data:`MAX_STRETCH` times as wide as tall (or tall as wide): a 4 x 512 matrix is a
  wide, short panel, not a sliver, nor stretched into a tall one.
* Hidden units (``--order``): ``none`` draws the units of each layer as recorded;
  ``norm`` orders them once by the norm of their final weights, ``match`` in a sweep
  matches every cell's units to the first cell's (:mod:`scenes.order`): the same order on
  every frame, the next layer's columns permuted with them, the title says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series

from .base import Cell, Field, PanelScene, split_names
from .order import ORDERS, Permuted, order_of, unit_orders
from .plotting import (
    HEATMAP_SCALES,
    FilterGrid,
    ScaledHeatmapPanel,
    axes_in,
    fit_into,
    get_cmap,
    matrix_view,
    packed_cells,
)
from .registry import register

__all__ = [
    "WeightsScene",
    "WeightsSceneConfig",
    "matrix_series",
    "heatmap_values",
    "box_aspect",
    "quantity_of",
]

NOT_MATRICES = ("scalar", "stats", "histogram", "edges", "data", "curvature", "landscape", "path")
#: A heatmap's panel is at most this many times as wide as tall (or tall as wide).
MAX_STRETCH = 4.0
#: What the cells of a series of each kind are (the colorbar's label).
QUANTITY = {"parameter": "weight", "gradient": "gradient", "activation": "activation"}
SCALES = ("auto", *HEATMAP_SCALES)
KERNEL_VIEWS = ("grid", "flat")


def matrix_series(recording: Recording) -> list[str]:
    """Series that can be drawn as matrices over training: at least two snapshots of at
    least two numbers, not scalars, summaries or data; parameters first."""
    names = [
        n
        for n, s in recording.items()
        if s.kind not in NOT_MATRICES
        and len(s.shape) >= 1
        and int(np.prod(s.shape)) >= 2
        and len(s) >= 2
    ]
    return sorted(
        names, key=lambda n: recording[n].kind != "parameter"
    )  # stable: recording order otherwise


def quantity_of(series: Series) -> str:
    """What a series' numbers are, from its kind: ``weight``, ``gradient``, ``activation``,
    else ``value``."""
    return QUANTITY.get(series.kind, "value")


def box_aspect(rows: int, cols: int) -> float:
    """Height / width of a heatmap of ``rows x cols`` cells: square cells, within
    ``1 / MAX_STRETCH`` to ``MAX_STRETCH``."""
    return float(np.clip(rows / cols, 1 / MAX_STRETCH, MAX_STRETCH))


def heatmap_values(series: Series, config: "WeightsSceneConfig", order=(None, None)):
    """What a heatmap of ``series`` draws: a :class:`~scenes.plotting.FilterGrid` of a
    kernel of rank 3 to 5 (unless ``config.kernels`` is ``flat``), else the snapshots as
    matrices (:func:`~scenes.plotting.matrix_view`). Lazy either way. ``order``: the
    permutations of the series' first and second axis (:func:`scenes.order.order_of`)."""
    rows, cols = order
    if config.kernels == "grid" and 3 <= len(series.shape) <= 5:
        values = series.values
        if rows is not None or cols is not None:
            values = Permuted(values, rows, cols)
        return FilterGrid(values, depth=config.depth_index)
    view = matrix_view(series.values)
    if rows is None and cols is None:
        return view
    if len(series.shape) == 1:  # a vector is one row: its entries are the units
        return Permuted(view, None, rows)
    if cols is not None and len(series.shape) > 2:  # flattened: each input a run of columns
        k = int(np.prod(series.shape[2:]))
        cols = (np.asarray(cols)[:, None] * k + np.arange(k)).ravel()
    return Permuted(view, rows, cols)


@dataclass(frozen=True)
class WeightsSceneConfig:
    """What the heatmaps show.

    Attributes
    ----------
    show : str
        Comma-separated series to draw, side by side (at most 4); default: the recorded
        parameters that are matrices (or of higher rank), else any matrix or vector series.
    cmap : str
        Colormap, any matplotlib or seaborn name; a diverging one ("RdBu_r", "vlag") with
        ``center`` shows the sign of each weight.
    center : bool
        Colour limits centred on 0 (-m to m), so white means zero in every frame;
        --no-center uses the minimum and maximum (of the run, or percentiles of the frame).
    scale : str
        Colour scale of each heatmap: run (limits fixed over the run: m the largest |value|),
        frame (limits from each frame's 99th percentile of |value|, so gradients that shrink
        over decades stay readable; the colorbar's ticks follow the frame), symlog (a
        symmetric log scale fixed over the run, linear near 0), or auto (frame for
        gradients, run for everything else). The colorbar says which scale it shows.
    kernels : str
        How a convolution kernel (rank 3 to 5: out, in, then the kernel) is drawn: grid (out
        x in tiles of kh x kw, the filters as they are; a 3-D kernel's depth slice) or flat
        (out rows of in*kh*kw columns).
    depth : str
        The depth slice of a 3-D kernel (out, in, d, kh, kw) that the grid shows: middle, or
        its index from 0. The title says which.
    order : str
        Order of the hidden units (rows of a layer whose units the next recorded weight
        matrix reads): none (as recorded), norm (by the norm of their final weights,
        largest first: a run whose units were permuted is drawn the same) or match (in a
        sweep, each cell's units matched to the first cell's by the Hungarian assignment on
        the cosine similarity of their final weights; alone, as norm). One order for every
        frame; the next layer's columns follow it.
    """

    show: str = ""
    cmap: str = "RdBu_r"
    center: bool = True
    scale: str = "auto"
    kernels: str = "grid"
    depth: str = "middle"
    order: str = "none"

    def __post_init__(self):
        get_cmap(self.cmap)  # fail early, with the list of names
        if len(split_names(self.show)) > 4:
            raise ValueError(
                f"show takes at most 4 series side by side, got {len(split_names(self.show))}"
            )
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.kernels not in KERNEL_VIEWS:
            raise ValueError(
                f"kernels must be one of {', '.join(KERNEL_VIEWS)}, got {self.kernels!r}"
            )
        if self.depth != "middle" and not (self.depth.isdigit() and self.depth.isascii()):
            raise ValueError(f"depth must be middle or a slice index from 0, got {self.depth!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")

    @property
    def depth_index(self) -> int | None:
        """``depth`` as an index (None: the middle slice)."""
        return None if self.depth == "middle" else int(self.depth)

    def scale_for(self, series: Series) -> str:
        """The colour scale of ``series``: ``scale``, with ``auto`` resolved by its kind."""
        if self.scale != "auto":
            return self.scale
        return "frame" if series.kind == "gradient" else "run"


@register(
    "weights",
    description="Draw any recorded matrices (weights, gradients, derived tensors) of a saved "
    "recording as heatmaps over training, side by side on one timeline: colour limits fixed over "
    "the run for weights, following each frame for gradients (--scale), convolution kernels as "
    "filter grids (--kernels).",
)
class WeightsScene(PanelScene):
    """Heatmaps of recorded matrices over training, on a colour scale that suits each kind.

    Reads the series named by ``show`` (default: the parameters that are matrices), and
    ``loss`` for the readout when present.
    """

    Config = WeightsSceneConfig
    title = "Weights over training"
    readout = (Field("loss", "loss", "{:.3e}"),)
    small_multiples = True

    @classmethod
    def shown(cls, recording: Recording, config) -> list[str]:
        names = split_names(config.show)
        if names:
            recording.require(*names)
            bad = [n for n in names if recording[n].shape == ()]
            if bad:
                raise ValueError(
                    f"series {bad[0]!r} is a scalar, not a matrix (draw it with scenes.curves)"
                )
            return names
        return cls.default_choice(recording)[0]

    @classmethod
    def default_choice(cls, recording: Recording) -> tuple[list[str], str]:
        """What is drawn without ``show`` (at most 4 series), and which rule chose it: the
        parameters that are matrices (or of higher rank), else the parameters, else any
        matrix or vector series."""
        matrices = matrix_series(recording)
        params = [n for n in matrices if recording[n].kind == "parameter"]
        rules = (
            ("parameter matrices", [n for n in params if len(recording[n].shape) >= 2]),
            ("parameters", params),
            ("matrix and vector series", matrices),
        )
        why, picks = next(((w, p) for w, p in rules if p), ("", []))
        if not picks:
            raise KeyError(
                "recording has no matrix or vector series to draw as heatmaps; it has: "
                + (", ".join(f"{k} {s.shape}" for k, s in recording.items()) or "none")
            )
        if len(picks) > 4:
            why = f"the first 4 {why}"
        return picks[:4], why

    def check(self) -> None:
        self.shown_ = self.shown(self.recording, self.config)
        if not split_names(self.config.show):  # chosen here: say what, and what else there is
            _, why = self.default_choice(self.recording)
            others = [n for n in matrix_series(self.recording) if n not in self.shown_]
            self.note_choice(self.shown_, why, others)
        for name in self.shown_:  # a depth slice the kernel lacks fails here, in one line
            heatmap_values(self.recording[name], self.config)
        self.orders_ = unit_orders(self.recording, self.config.order)[0]

    def timeline(self) -> np.ndarray:
        return np.unique(np.concatenate([np.asarray(self.recording[n].steps) for n in self.shown_]))

    def heading(self) -> str:
        kinds = {self.recording[n].kind for n in self.shown_}
        what = (
            "Weights"
            if kinds == {"parameter"}
            else "Gradients"
            if kinds == {"gradient"}
            else "Matrices"
        )
        return f"{what} over training"

    @classmethod
    def describe(cls, recording: Recording, name: str, config, order=(None, None)) -> str:
        """The panel title of series ``name``: its name and what the heatmap shows of it
        (and how its units are ordered, under ``order``)."""
        series = recording[name]
        how = {"norm": "by norm", "match": "matched"}.get(config.order, "")
        ordered = []
        if order[0] is not None:
            ordered.append(f"units {how}")
        if order[1] is not None:
            ordered.append(f"inputs {how}" if order[0] is None else "inputs too")
        ordered = ", " + ", ".join(ordered) if ordered else ""
        shape, values = series.shape, heatmap_values(series, config)
        if isinstance(values, FilterGrid):
            (o, i), (kh, kw) = values.channels, values.tile
            what = f"{o} x {i} filters of {kh} x {kw}"
            if (values.out_shown, values.in_shown) != (o, i):
                what += f", first {values.out_shown} x {values.in_shown}"
            if values.depth is not None:
                what += f", depth slice {values.depth} of {values.depths}"
            return f"{name}  ({what}{ordered})"
        rows, cols = values.shape[1:]
        note = "" if len(shape) == 2 else f", from {'x'.join(map(str, shape))}"
        return f"{name}  ({rows} x {cols}{note}{ordered})"

    @classmethod
    def heatmap_panel(
        cls,
        ax,
        recording: Recording,
        name: str,
        config,
        colorbar: bool,
        order=(None, None),
        **limits,
    ) -> ScaledHeatmapPanel:
        """The heatmap of series ``name`` on ``ax``, its axes labelled (``order``: the
        permutations of its units, :func:`scenes.order.order_of`; ``limits``: colour limits
        shared by a sweep's cells, which fix the scale over the run)."""
        series = recording[name]
        values = heatmap_values(series, config, order)
        grid = isinstance(values, FilterGrid)
        rows, cols = values.shape[1:]
        ax.set_box_aspect(box_aspect(rows, cols))
        panel = ScaledHeatmapPanel(
            ax,
            series.steps,
            values,
            scale="run" if limits else config.scale_for(series),
            quantity=quantity_of(series),
            cmap=config.cmap,
            center=0.0 if config.center else None,
            colorbar=colorbar,
            edgecolor=None if grid else "auto",  # the blank cells between tiles part them
            **limits,
        )
        if grid:
            values.label_tiles(ax)
            ax.spines[:].set_visible(False)  # the tiles are framed by the blank cells
        else:
            ax.set_xlabel("column")
            ax.set_ylabel("row")
        return panel

    def build(self, fig: Figure):
        n = len(self.shown_)
        rows = [[1, 1], [1, 1]] if n == 4 else [[1] * n]
        cells = packed_cells(
            rows, left=0.02, right=0.98, bottom=0.02, top=self.header_bottom - 0.02
        )
        panels = []
        for cell, name in zip(cells, self.shown_):
            ax = axes_in(fig, cell, colorbar=True)
            order = order_of(self.recording, name, self.orders_)
            ax.set_title(
                self.describe(self.recording, name, self.config, order),
                fontsize="medium",
                loc="left",
            )
            panels.append(self.heatmap_panel(ax, self.recording, name, self.config, True, order))
            fit_into(ax, cell)
        return panels

    @classmethod
    def sweep_scales(cls, recordings, config) -> dict:
        """One colour scale for every run: the first matrix's range over all of them; and
        under ``order``, the order of each run's units (``"orders"``: ``(recording,
        orders)`` pairs), matched to the first run's under ``match``."""
        shared = cls._sweep_limits(recordings, config)
        if config.order != "none":
            pairs, reference = [], None
            for rec in recordings:
                orders, keys = unit_orders(rec, config.order, reference)
                reference = keys if reference is None else reference
                pairs.append((rec, orders))
            shared["orders"] = tuple(pairs)
        return shared

    @classmethod
    def _sweep_limits(cls, recordings, config) -> dict:
        from .plotting import finite_range

        firsts = [r[cls.shown(r, config)[0]] for r in recordings]
        if any(config.scale_for(s) != "run" for s in firsts):
            return {}  # each cell on its own scale (per frame, or symlog)
        ranges = [finite_range(heatmap_values(s, config)) for s in firsts]
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        if not np.isfinite([lo, hi]).all():
            return {}
        if config.center:
            m = max(abs(lo), abs(hi)) or 1.0
            return {"vmin": -m, "vmax": m}
        return {"vmin": lo, "vmax": hi}

    @classmethod
    def small_panel(cls, ax, recording: Recording, config, shared: dict, cell: Cell):
        """One run of a sweep: its first matrix, on the shared colour scale (its units in
        the order of ``shared["orders"]``)."""
        limits = {k: v for k, v in shared.items() if k != "orders"}
        orders = next((o for r, o in shared.get("orders", ()) if r is recording), {})
        name = cls.shown(recording, config)[0]
        order = order_of(recording, name, orders)
        panel = cls.heatmap_panel(ax, recording, name, config, cell.last_col, order, **limits)
        ax.tick_params(labelsize="x-small")
        return panel

    def handout_panels(self, sheet, cell: Cell, shared: dict):
        """A keyframe of the handout: the first matrix with its colour scale, beside the
        loss with a cursor at the step (where the recording has one)."""
        from .handout import curves_panel, main_and_curves

        rec, name = self.recording, self.shown_[0]
        order = order_of(rec, name, self.orders_)
        limits = {k: v for k, v in shared.items() if k != "orders"}

        def main(ax):
            ax.set_title(self.describe(rec, name, self.config, order), loc="left")
            panel = self.heatmap_panel(ax, rec, name, self.config, True, order, **limits)
            for bar in ax.child_axes:  # "weight, scale fixed over run" in two lines: the
                label = bar.yaxis.label  # panel is shorter than the movie's
                label.set_text(label.get_text().replace(", ", ",\n", 1))
            return panel

        return main_and_curves(
            sheet,
            main,
            (lambda ax: curves_panel(ax, rec, ["loss"], ylabel="loss")) if "loss" in rec else None,
            aspect=None,
            colorbar=True,
        )

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """A 24 x 16 and a 4 x 24 weight matrix drifting from a random start, and a loss."""
        rng = np.random.default_rng(seed)
        t = np.linspace(0, 1, frames)[:, None, None]
        series = {}
        for name, shape in (("0.weight", (24, 16)), ("2.weight", (4, 24))):
            start, drift = rng.normal(0, 0.3, shape), rng.normal(0, 0.6, shape)
            series[name] = Series(
                np.arange(frames, dtype=np.int64) * 10,
                (start + t * drift).astype(np.float32),
                kind="parameter",
                source=name,
            )
        series["loss"] = Series(
            np.arange(frames, dtype=np.int64) * 10, np.geomspace(1, 1e-2, frames), kind="scalar"
        )
        return Recording(series, {"caption": "a 16-24-4 MLP (an example recording)"})


if __name__ == "__main__":
    from .cli import main

    main("weights")
