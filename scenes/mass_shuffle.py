"""Where the "mass" of a logistic regression's weight vector goes during training.

Run: ``python -m scenes.mass_shuffle`` (writes ``outputs/mass_shuffle.mp4`` and the 3-D
scatter of the data, ``outputs/mass_shuffle_scatter.png``); ``--help`` lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .base import PanelScene, grid_axes
from .cli import main, register
from .plotting import CurvesPanel, HeatmapPanel, Readout, get_cmap, snapshot_at
from .writers import open_writer

__all__ = ["MassShuffleScene", "MassShuffleSceneConfig", "VIEWS"]

VIEWS = ("all", "heatmap", "curves", "averaged")
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
        over steps, every weight faintly behind) or ``averaged`` (those three as cells).
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
    cmap: str = "hot"
    members: bool = True
    shared_scale: bool = True

    def __post_init__(self):
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {self.view!r}")
        get_cmap(self.cmap)  # fail early, with the list of names


def _inputs(meta: dict, k: int) -> dict:
    inputs = meta.get("inputs") or {}
    label = list(inputs.get("label", [0]))
    signal = [c for c in inputs.get("signal", [0, 1]) if c not in label]
    noise = list(inputs.get("noise", range(len(label) + len(signal), k)))
    return {"label": label, "signal": signal, "noise": noise}


@register(
    "mass_shuffle",
    experiment="dynamics.experiments.mass_shuffle",
    description="Train a logistic regression on 15 inputs, of which x[0] carries the label, x[1] has the same "
    "scale but no information and 13 are tiny noise, and watch where the weight vector's mass goes "
    "(Adam moves every weight, noise included; plain gradient descent does not).",
)
class MassShuffleScene(PanelScene):
    """The weight vector of a logistic regression over training, as heatmaps and curves.

    Reads series ``weight`` (T, 1, k) and, when present, ``train_accuracy``,
    ``test_accuracy``, ``train_loss`` and ``data/x``, ``data/y`` (for the 3-D scatter),
    and the metadata entries ``inputs``, ``config``, ``lr`` and ``boundary``.
    """

    requires = ("weight",)
    timeline = "weight"
    Config = MassShuffleSceneConfig
    title = "Where does the weight mass go?"

    # -- layout --------------------------------------------------------------------------
    def build(self, fig: Figure):
        cfg, rec, meta = self.config, self.recording, self.recording.metadata
        weight = rec["weight"]
        w = np.asarray(weight.values, dtype=float).reshape(len(weight), -1)
        k = w.shape[1]
        kinds = _inputs(meta, k)
        self.kinds_ = kinds
        groups = {"W[0]": kinds["label"], "W[1]": kinds["signal"], "mean of W[2:]": kinds["noise"]}
        groups = {name: cols for name, cols in groups.items() if cols}
        colors = [KIND_COLORS[kind] for kind, cols in kinds.items() if cols]
        col_kind = {c: kind for kind, cols in kinds.items() for c in cols}
        fig.patch.set_facecolor("white")

        panels = []
        view = cfg.view
        if view == "all":
            gs = grid_axes(fig, 2, 2, top=0.83, bottom=0.09, left=0.06, right=0.9, hspace=0.5, wspace=0.3,
                           height_ratios=[1, 2.6], width_ratios=[1.7, 1])
            heat_ax, curve_ax, avg_ax = fig.add_subplot(gs[0, :]), fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1])
        else:
            gs = grid_axes(fig, 1, 1, top=0.8, bottom=0.12 if view == "curves" else 0.3, left=0.08,
                           right=0.95 if view == "curves" else 0.88)
            heat_ax = curve_ax = avg_ax = fig.add_subplot(gs[0, 0])
        if view in ("all", "heatmap"):
            heat = HeatmapPanel(heat_ax, weight.steps, w, cmap=cfg.cmap, row_labels=["W"],
                                col_labels=[f"x{c}" for c in range(k)],
                                col_colors=[KIND_COLORS[col_kind.get(c, "noise")] for c in range(k)],
                                colorbar="weight", square=view == "all")
            heat_ax.set_title("weights $W[i]$ of the 15 inputs (colour limits fixed over the run)",
                              fontsize="medium", loc="left")
            self._kind_key(heat_ax, kinds)
            panels.append(heat)
        if view in ("all", "curves"):
            panels.append(CurvesPanel(curve_ax, weight.steps, w, groups=groups, members=cfg.members,
                                      reveal="cursor", colors=colors, ylabel="weight", xlabel="training step",
                                      legend_loc="upper left"))
            curve_ax.set_title("W[0], W[1] and the average of the 13 noise weights", fontsize="medium", loc="left")
        if view in ("all", "averaged"):
            averaged = np.stack([w[:, cols].mean(axis=1) for cols in groups.values()], axis=1)
            # the same colour limits as the full heatmap: a colour means one value in both
            panels.append(HeatmapPanel(avg_ax, weight.steps, averaged, cmap=cfg.cmap, row_labels=[""],
                                       col_labels=list(groups), col_colors=colors, annotate=True,
                                       colorbar="weight", vmin=float(w.min()), vmax=float(w.max()),
                                       square=True))
            avg_ax.set_title("the same three, averaged, as cells", fontsize="medium", loc="left")
        self._header(fig)
        return panels

    def _kind_key(self, ax, kinds: dict) -> None:
        words = {"label": "x0: carries the label", "signal": "x1: same scale (10), no label",
                 "noise": "x2..x14: noise of scale 0.01"}
        x = 0.0
        for kind in ("label", "signal", "noise"):
            if kinds[kind]:
                ax.annotate(words[kind], (x, 0), xycoords="axes fraction", xytext=(0, -22), textcoords="offset points",
                            color=KIND_COLORS[kind], fontsize="small", va="top")
                x += 0.34

    def _header(self, fig: Figure) -> None:
        rec, meta = self.recording, self.recording.metadata
        c = meta.get("config", {})
        opt = {"adam": "Adam", "gd": "gradient descent"}.get(c.get("optimizer"), c.get("optimizer", ""))
        lr = meta.get("lr")
        title = self.title
        details = ", ".join(s for s in (
            "logistic regression on 15 inputs",
            f"{opt} lr {lr:g}" if opt and lr else opt,
            f"boundary {meta['boundary']}" if meta.get("boundary") else "",
        ) if s)
        fig.text(0.06, 0.95, title, fontsize="x-large", weight="bold", va="center")
        fig.text(0.06, 0.90, details, fontsize="medium", color="#444444", va="center")
        self.scores_ = {name: rec[name] for name in ("train_accuracy", "test_accuracy", "train_loss") if name in rec}
        names = {"train_accuracy": ("train acc", "{:.3f}", 5), "test_accuracy": ("test acc", "{:.3f}", 5),
                 "train_loss": ("loss", "{:.4f}", 6)}
        last = int(rec["weight"].steps[-1])
        fields = [("step", "{:,d}", len(f"{last:,d}"))] + [names[name] for name in self.scores_]
        self.readout_ = Readout(fig, (0.96, 0.95), fields, ha="right")
        self.animate(*self.readout_.moving())

    def caption(self, step: int) -> None:
        self.readout_.update(step, *(float(s.values[snapshot_at(s.steps, step)]) for s in self.scores_.values()))

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
    def small_panel(cls, ax, recording, config, shared, cell):
        """One configuration of a sweep: its weight vector as a row of cells, on the shared scale."""
        weight = recording["weight"]
        w = np.asarray(weight.values, dtype=float).reshape(len(weight), -1)
        kinds = _inputs(recording.metadata, w.shape[1])
        col_kind = {c: kind for kind, cols in kinds.items() for c in cols}
        panel = HeatmapPanel(ax, weight.steps, w, cmap=config.cmap, vmin=shared.get("vmin"), vmax=shared.get("vmax"),
                             row_labels=["W"], col_labels=[str(c) for c in range(w.shape[1])],
                             col_colors=[KIND_COLORS[col_kind.get(c, "noise")] for c in range(w.shape[1])],
                             # a shared scale needs one colorbar per row; separate scales one per run
                             colorbar="weight" if cell[1] == cell[3] - 1 or not shared else None, square=True)
        ax.tick_params(labelsize="x-small")
        return panel

    # -- static figure -------------------------------------------------------------------
    def write_figures(self, stem: Path) -> list[Path]:
        """The 3-D scatter of the first three input coordinates, coloured by class, twice:
        at native scale and on equal axes [-30, 30]^3 (how thin the noise dimensions are)."""
        rec = self.recording
        if "data/x" not in rec or "data/y" not in rec:
            return []
        x = np.asarray(rec["data/x"].values[0], dtype=float)[:, :3]
        y = np.asarray(rec["data/y"].values[0])
        o = self.options
        fig = Figure(figsize=((o.width + 0.01) / o.dpi, (o.height + 0.01) / o.dpi), dpi=o.dpi)
        FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        titles = ("native scale: every axis fitted to its data", "equal axes [-30, 30]$^3$: the noise axis is flat")
        for j, title in enumerate(titles):
            ax = fig.add_subplot(1, 2, j + 1, projection="3d")
            for cls, (name, color, marker) in enumerate(CLASS_STYLE):
                pts = x[y == cls]
                ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=6, color=color, marker=marker, label=name,
                           depthshade=False)
            if j == 1:
                for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
                    setter(-30, 30)
                ax.set_box_aspect((1, 1, 1))
            ax.set_xlabel("x0 (label)")
            ax.set_ylabel("x1")
            ax.set_zlabel("x2 (noise)")
            ax.set_title(title, fontsize="medium")
            ax.legend(loc="upper left", fontsize="small")
        fig.suptitle("The data: the first three of the 15 input coordinates", fontsize="large", weight="bold")
        fig.canvas.draw()
        path = Path(f"{stem}_scatter.png")
        with open_writer(path) as writer:
            writer.write(np.asarray(fig.canvas.buffer_rgba())[:, :, :3])
        return [writer.path]


if __name__ == "__main__":
    main("mass_shuffle")
