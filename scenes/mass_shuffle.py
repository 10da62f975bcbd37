"""Where the "mass" of a logistic regression's weight vector goes during training.

Run: ``python -m scenes.mass_shuffle`` (writes ``outputs/mass_shuffle.mp4`` and the 3-D
scatter of the data, ``outputs/mass_shuffle_scatter.png``); ``--help`` lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series

from .base import Cell, Field, PanelScene, figure_to_png, grid_axes, new_figure
from .plotting import CurvesPanel, HeatmapPanel, get_cmap
from .registry import register

__all__ = ["MassShuffleScene", "MassShuffleSceneConfig", "VIEWS"]

VIEWS = ("all", "heatmap", "curves", "averaged")
#: What the averaged cells show of the noise weights: their mass, or their signed mean.
NOISE_MEANS = ("abs", "signed")
# one colour per kind of input coordinate, used for tick labels, curves and the scatter
KIND_COLORS = {"label": "#c0392b", "signal": "#1f5fbf", "noise": "#666666"}
CLASS_STYLE = [("class 0", "#1f77b4", "o"), ("class 1", "#e6550d", "^")]


@dataclass(frozen=True)
class MassShuffleSceneConfig:
    """What the mass-shuffling movie shows.

    Attributes
    ----------
    view : str
        ``all`` (default: the three views composed), ``heatmap`` (the weight vector as a
        row of coloured cells), ``curves`` (W[0], W[1] and the mean of the noise weights
        over steps, every weight faintly behind) or ``averaged`` (W[0], W[1] and the noise
        weights' mass as cells).
    noise_mean : str
        What the averaged cells show of the noise weights: ``abs`` (default: their mass,
        the mean of ``|W[2:]|``, which grows under Adam however their signs fall) or
        ``signed`` (the mean of W[2:], near 0 when their signs are mixed).
    cmap : str
        Colormap of the heatmaps, any matplotlib or seaborn name ("hot" as the reference,
        "viridis", "rocket", "vlag" ...).
    members : bool
        Draw every individual weight as a faint curve behind the three averages.
    shared_scale : bool
        In a sweep (--sweep), one colour scale for every run, so a colour means the same
        weight everywhere; --no-shared-scale gives each run its own (for runs whose
        weights differ by orders of magnitude, such as a learning-rate sweep).
    """

    view: str = "all"
    noise_mean: str = "abs"
    cmap: str = "hot"
    members: bool = True
    shared_scale: bool = True

    def __post_init__(self):
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {self.view!r}")
        if self.noise_mean not in NOISE_MEANS:
            raise ValueError(
                f"noise_mean must be one of {', '.join(NOISE_MEANS)}, got {self.noise_mean!r}"
            )
        get_cmap(self.cmap)  # fail early, with the list of names


def _inputs(meta: dict, k: int) -> dict:
    inputs = meta.get("inputs") or {}
    label = list(inputs.get("label", [0]))
    signal = [c for c in inputs.get("signal", [0, 1]) if c not in label]
    noise = list(inputs.get("noise", range(len(label) + len(signal), k)))
    return {"label": label, "signal": signal, "noise": noise}


def _weight_row(ax, recording, cmap: str, shared: dict, colorbar: bool) -> HeatmapPanel:
    """The weight vector as a row of cells coloured by the kind of its input, on the
    ``shared`` colour scale (``vmin``, ``vmax``; the run's own where absent): a sweep's cell
    and a handout's keyframe."""
    weight = recording["weight"]
    w = np.asarray(weight.values, dtype=float).reshape(len(weight), -1)
    kinds = _inputs(recording.metadata, w.shape[1])
    col_kind = {c: kind for kind, cols in kinds.items() for c in cols}
    return HeatmapPanel(
        ax,
        weight.steps,
        w,
        cmap=cmap,
        vmin=shared.get("vmin"),
        vmax=shared.get("vmax"),
        row_labels=["W"],
        col_labels=[str(c) for c in range(w.shape[1])],
        col_colors=[KIND_COLORS[col_kind.get(c, "noise")] for c in range(w.shape[1])],
        colorbar="weight" if colorbar else None,
        square=True,
    )


def _weight_curves(ax, weight, w, groups, colors, members: bool, **legend) -> CurvesPanel:
    """W[0], W[1] and the mean of the noise weights over steps (each weight faintly behind
    with ``members``), revealed up to a cursor: the movie's panel and the handout's."""
    return CurvesPanel(
        ax,
        weight.steps,
        w,
        groups=groups,
        members=members,
        reveal="cursor",
        colors=colors,
        ylabel="weight",
        xlabel="training step",
        **legend,
    )


@register(
    "mass_shuffle",
    experiment="dynamics.experiments.mass_shuffle",
    description="Train a logistic regression on 15 inputs, of which x[0] carries the label, x[1] "
    "has the same "
    "scale but no information and 13 are tiny noise, and watch where the weight vector's mass goes "
    "(Adam moves every weight, noise included; plain gradient descent does not).",
)
class MassShuffleScene(PanelScene):
    """The weight vector of a logistic regression over training, as heatmaps and curves.

    Reads series ``weight`` (T, 1, k) and, when present, ``train_accuracy``,
    ``test_accuracy``, ``train_loss`` and ``data/x``, ``data/y`` (for the 3-D scatter),
    and the metadata entries ``inputs`` (which coordinates carry the label, the signal,
    the noise) and ``caption``.
    """

    requires = ("weight",)
    Config = MassShuffleSceneConfig
    title = "Where does the weight mass go?"
    readout = (
        Field("train_accuracy", "train acc", "{:.3f}"),
        Field("test_accuracy", "test acc", "{:.3f}"),
        Field("train_loss", "loss", "{:.4f}"),
    )
    small_multiples = True
    header_left = 0.06

    # -- layout --------------------------------------------------------------------------
    def build(self, fig: Figure):
        cfg, rec, meta = self.config, self.recording, self.recording.metadata
        weight = rec["weight"]
        w = np.asarray(weight.values, dtype=float).reshape(len(weight), -1)
        k = w.shape[1]
        kinds = _inputs(meta, k)
        groups = {"W[0]": kinds["label"], "W[1]": kinds["signal"], "mean of W[2:]": kinds["noise"]}
        groups = {name: cols for name, cols in groups.items() if cols}
        colors = [KIND_COLORS[kind] for kind, cols in kinds.items() if cols]
        col_kind = {c: kind for kind, cols in kinds.items() for c in cols}

        panels = []
        view = cfg.view
        if view == "all":
            gs = grid_axes(
                fig,
                2,
                2,
                top=0.83,
                bottom=0.09,
                left=0.06,
                right=0.9,
                hspace=0.5,
                wspace=0.3,
                height_ratios=[1, 2.6],
                width_ratios=[1.7, 1],
            )
            heat_ax, curve_ax, avg_ax = (
                fig.add_subplot(gs[0, :]),
                fig.add_subplot(gs[1, 0]),
                fig.add_subplot(gs[1, 1]),
            )
        else:
            gs = grid_axes(
                fig,
                1,
                1,
                top=0.8,
                bottom=0.12 if view == "curves" else 0.3,
                left=0.08,
                right=0.95 if view == "curves" else 0.88,
            )
            heat_ax = curve_ax = avg_ax = fig.add_subplot(gs[0, 0])
        if view in ("all", "heatmap"):
            heat = HeatmapPanel(
                heat_ax,
                weight.steps,
                w,
                cmap=cfg.cmap,
                row_labels=["W"],
                col_labels=[f"x{c}" for c in range(k)],
                col_colors=[KIND_COLORS[col_kind.get(c, "noise")] for c in range(k)],
                colorbar="weight",
                square=view == "all",
            )
            heat_ax.set_title(
                "weights $W[i]$ of the 15 inputs (colour limits fixed over the run)",
                fontsize="medium",
                loc="left",
            )
            self._kind_key(heat_ax, kinds)
            panels.append(heat)
        if view in ("all", "curves"):
            panels.append(
                _weight_curves(
                    curve_ax, weight, w, groups, colors, cfg.members, legend_loc="upper left"
                )
            )
            curve_ax.set_title(
                f"W[0], W[1] and the average of the {len(kinds['noise'])} noise weights",
                fontsize="medium",
                loc="left",
            )
        if view in ("all", "averaged"):
            # the noise weights' mass (mean |W[2:]|) by default: the lesson is where the mass
            # goes, and a signed mean of weights of mixed signs stays near 0 as they grow
            mass = cfg.noise_mean == "abs"
            cells = {
                ("mean |W[2:]|" if mass and name == "mean of W[2:]" else name): (
                    np.abs(w[:, cols]) if mass and name == "mean of W[2:]" else w[:, cols]
                ).mean(axis=1)
                for name, cols in groups.items()
            }
            averaged = np.stack(list(cells.values()), axis=1)
            # the same colour limits as the full heatmap: a colour means one value in both
            panels.append(
                HeatmapPanel(
                    avg_ax,
                    weight.steps,
                    averaged,
                    cmap=cfg.cmap,
                    row_labels=[""],
                    col_labels=list(cells),
                    col_colors=colors,
                    annotate=True,
                    colorbar="weight",
                    vmin=float(w.min()),
                    vmax=float(w.max()),
                    square=True,
                )
            )
            what = "mass of the noise weights" if mass else "signed mean of the noise weights"
            avg_ax.set_title(f"W[0], W[1] and the {what}", fontsize="medium", loc="left")
        return panels

    def _kind_key(self, ax, kinds: dict) -> None:
        words = {
            "label": "x0: carries the label",
            "signal": "x1: same scale (10), no label",
            "noise": "x2..x14: noise of scale 0.01",
        }
        x = 0.0
        for kind in ("label", "signal", "noise"):
            if kinds[kind]:
                ax.annotate(
                    words[kind],
                    (x, 0),
                    xycoords="axes fraction",
                    xytext=(0, -22),
                    textcoords="offset points",
                    color=KIND_COLORS[kind],
                    fontsize="small",
                    va="top",
                )
                x += 0.34

    # -- small multiples -------------------------------------------------------------------
    @classmethod
    def sweep_scales(cls, recordings, config) -> dict:
        """One colour scale for every run of a sweep: the weights' range over all of them."""
        if not config.shared_scale:
            return {}
        lo = min(float(np.min(r["weight"].values)) for r in recordings)
        hi = max(float(np.max(r["weight"].values)) for r in recordings)
        return {"vmin": lo, "vmax": hi}

    @classmethod
    def small_panel(cls, ax, recording, config, shared, cell: Cell):
        """One run of a sweep: its weight vector as a row of cells, on the shared scale."""
        # a shared scale needs one colorbar per row; separate scales one per run
        panel = _weight_row(ax, recording, config.cmap, shared, cell.last_col or not shared)
        ax.tick_params(labelsize="x-small")
        return panel

    # -- handouts --------------------------------------------------------------------------
    def handout_panels(self, sheet, cell: Cell, shared: dict):
        """A keyframe of the handout: the weight vector as a row of cells on the run's colour
        scale, above W[0], W[1] and the mean of the noise weights over steps (every weight
        faintly behind) with a cursor at the step."""
        from .handout import main_and_curves

        cfg, rec = self.config, self.recording
        weight = rec["weight"]
        w = np.asarray(weight.values, dtype=float).reshape(len(weight), -1)
        kinds = _inputs(rec.metadata, w.shape[1])
        groups = {"W[0]": kinds["label"], "W[1]": kinds["signal"], "mean of W[2:]": kinds["noise"]}
        groups = {name: cols for name, cols in groups.items() if cols}
        colors = [KIND_COLORS[kind] for kind, cols in kinds.items() if cols]

        def row(ax):
            panel = _weight_row(ax, rec, cfg.cmap, shared, colorbar=True)
            ax.set_xlabel("input coordinate $i$")  # coloured by kind, as in the legend
            ax.set_anchor("S")  # on the curves below
            return panel

        def curves(ax):  # the page's legend names the lines once
            return _weight_curves(ax, weight, w, groups, colors, cfg.members, legend=False)

        return main_and_curves(sheet, row, curves, colorbar=True, stacked=True, share=0.3)

    def handout_aspect(self) -> float:
        return 1.5  # a row of cells above the curves

    # -- static figure -------------------------------------------------------------------
    def write_figures(self, stem: Path) -> list[Path]:
        """The 3-D scatter of the first three input coordinates, coloured by class, twice:
        at native scale and on equal axes [-30, 30]^3 (how thin the noise dimensions are)."""
        rec = self.recording
        if "data/x" not in rec or "data/y" not in rec:
            return []
        x = np.asarray(rec["data/x"].values[0], dtype=float)[:, :3]
        y = np.asarray(rec["data/y"].values[0])
        fig = new_figure(self.options)
        fig.patch.set_facecolor("white")
        titles = (
            "native scale: every axis fitted to its data",
            "equal axes [-30, 30]$^3$: the noise axis is flat",
        )
        for j, title in enumerate(titles):
            ax = fig.add_subplot(1, 2, j + 1, projection="3d")
            for cls, (name, color, marker) in enumerate(CLASS_STYLE):
                pts = x[y == cls]
                ax.scatter(
                    pts[:, 0],
                    pts[:, 1],
                    pts[:, 2],
                    s=6,
                    color=color,
                    marker=marker,
                    label=name,
                    depthshade=False,
                )
            if j == 1:
                for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
                    setter(-30, 30)
                ax.set_box_aspect((1, 1, 1))
            ax.set_xlabel("x0 (label)")
            ax.set_ylabel("x1")
            ax.set_zlabel("x2 (noise)")
            ax.set_title(title, fontsize="medium")
            ax.legend(loc="upper left", fontsize="small")
        fig.suptitle(
            "The data: the first three of the 15 input coordinates", fontsize="large", weight="bold"
        )
        return [figure_to_png(fig, Path(f"{stem}_scatter.png"))]

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """A logistic-regression-like recording: W[0] grows to the largest weight, W[1]
        shrinks to 0, the noise weights drift apart; scores on a finer step grid than the
        weights; the data for the scatter."""
        rng = np.random.default_rng(seed)
        t = np.linspace(0, 1, frames)[:, None]
        start = rng.uniform(-0.6, 0.6, 15)
        drift = np.concatenate([[3.0], [-start[1]], rng.uniform(-1.5, 1.5, 13)])
        weight = (start + t * drift)[:, None, :].astype(np.float32)
        steps = np.arange(frames, dtype=np.int64) * 40
        fine = np.arange(4 * (frames - 1) + 1, dtype=np.int64) * 10
        x = np.concatenate(
            [10 * rng.standard_normal((200, 2)), 0.01 * rng.standard_normal((200, 13))], axis=1
        )
        once = np.zeros(1, np.int64)
        series = {
            "weight": Series(steps, weight, kind="parameter", source="weight"),
            "train_accuracy": Series(fine, np.linspace(0.5, 1.0, len(fine)), kind="scalar"),
            "test_accuracy": Series(fine, np.linspace(0.5, 0.99, len(fine)), kind="scalar"),
            "train_loss": Series(fine, np.geomspace(0.7, 0.03, len(fine)), kind="scalar"),
            "data/x": Series(once, x[None].astype(np.float32), kind="data"),
            "data/y": Series(once, (x[:, 0] >= 0)[None].astype(np.float32), kind="data"),
        }
        meta = {
            "inputs": {"label": [0], "signal": [0, 1], "noise": list(range(2, 15))},
            "caption": "logistic regression on 15 inputs, Adam lr 0.0001 (an example recording)",
        }
        return Recording(series, meta)


if __name__ == "__main__":
    from .cli import main

    main("mass_shuffle")
