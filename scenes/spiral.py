"""How a deep ReLU MLP carves a decision boundary between two interleaved spirals.

Run: ``python -m scenes.spiral`` (writes ``outputs/spiral.mp4`` and the static figure of
the final network, ``outputs/spiral_final.png``); ``--help`` lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .base import PanelScene
from .cli import main, register
from .plotting import CLASS_MARKERS, CurvesPanel, DecisionFieldPanel, Readout, get_cmap, level_lines, snapshot_at
from .writers import open_writer

__all__ = ["SpiralScene", "SpiralSceneConfig"]


@dataclass(frozen=True)
class SpiralSceneConfig:
    """What the two-spiral movie shows.

    Attributes
    ----------
    cmap : str
        Colormap of the probability field, any matplotlib or seaborn name; a diverging map
        ("RdBu_r", "coolwarm", "vlag") puts the 0.5 boundary at its neutral middle.
    markers : bool
        Draw the data points on the field.
    marker_size : float
        Area of the data markers in points^2.
    """

    cmap: str = "RdBu_r"
    markers: bool = True
    marker_size: float = 14.0

    def __post_init__(self):
        get_cmap(self.cmap)  # fail early, with the list of names
        if not self.marker_size > 0:
            raise ValueError(f"marker_size must be positive, got {self.marker_size}")


def _describe(meta: dict) -> str:
    c = meta.get("config", {})
    widths = meta.get("widths")
    parts = []
    if widths:
        act = {"relu": "ReLU", "none": "no activation (a linear map)"}.get(c.get("activation"), c.get("activation"))
        parts.append("-".join(str(w) for w in widths) + " MLP" + (f", {act}" if act else ""))
    if "lr" in c:
        parts.append(f"Adam lr {c['lr']:g}, batch {c.get('batch', '?')}, L2 {c.get('l2', 0):g}")
    return ", ".join(parts)


@register(
    "spiral",
    experiment="dynamics.experiments.spiral",
    description="Train a 2-1024-32-16-4-1 ReLU MLP on two interleaved spirals and watch its class "
    "probability field and 0.5 decision boundary take shape, next to the loss.",
)
class SpiralScene(PanelScene):
    """The probability field with its 0.5 contour and the data, the loss, the accuracy.

    Reads series ``field`` (T, ny, nx) and, when present, ``loss`` and ``bce`` (for the
    loss panel), ``train_accuracy``, ``prob`` (T, n) and ``data/x``, ``data/y``, and the
    metadata entries ``grid.extent``, ``config`` and ``widths``.
    """

    requires = ("field",)
    timeline = "field"
    Config = SpiralSceneConfig
    title = "Two spirals: a deep ReLU network carves a boundary"

    small_panel_aspect = 1.0  # the field is drawn with equal axes

    @classmethod
    def small_panel(cls, ax, recording, config, shared, cell):
        """One configuration of a sweep (``--sweep activation=relu,none``): its probability
        field, boundary and points, with the final training accuracy."""
        return DecisionFieldPanel.small(ax, recording, config)

    def build(self, fig: Figure):
        cfg, rec, meta = self.config, self.recording, self.recording.metadata
        field = rec["field"]
        extent = self._extent()
        x, y = self._data()
        fig.patch.set_facecolor("white")
        # a square field on the left, two curves on the right; fractions keep the layout
        # at every 16:9 frame size
        ax = fig.add_axes((0.04, 0.07, 0.48, 0.74))
        panels = [DecisionFieldPanel(ax, field.steps, field.values, extent, x=x if cfg.markers else None, y=y,
                                     cmap=cfg.cmap, marker_size=cfg.marker_size)]
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        self.scores_ = {}
        if "loss" in rec:
            loss_ax = fig.add_axes((0.64, 0.48, 0.33, 0.33))
            names = [n for n in ("loss", "bce") if n in rec]
            steps = rec["loss"].steps
            values = np.stack([np.asarray(rec[n].values, dtype=float) for n in names], axis=1)
            labels = {"loss": "objective (cross-entropy + L2)", "bce": "cross-entropy"}
            panels.append(CurvesPanel(loss_ax, steps, values, labels=[labels[n] for n in names], log=True,
                                      ylabel="minibatch loss", xlabel="", legend_loc="upper right"))
            self.scores_["loss"] = rec["loss"]
        if "train_accuracy" in rec:
            acc_ax = fig.add_axes((0.64, 0.08, 0.33, 0.28))
            acc = rec["train_accuracy"]
            panels.append(CurvesPanel(acc_ax, acc.steps, acc.values, ylabel="train accuracy", xlabel="Adam step"))
            acc_ax.set_ylim(min(0.4, float(np.min(acc.values)) - 0.02), 1.02)
            self.scores_["train_accuracy"] = acc
        fig.text(0.04, 0.955, self.title, fontsize="x-large",
                 weight="bold", va="center")
        fig.text(0.04, 0.905, _describe(meta), fontsize="medium", color="#444444", va="center")
        last = int(field.steps[-1])
        fields = [("step", "{:,d}", max(5, len(f"{last:,d}")))]
        fields += [f for n, f in (("loss", ("loss", "{:.4f}", 6)), ("train_accuracy", ("train acc", "{:.3f}", 5)))
                   if n in self.scores_]
        self.readout_ = Readout(fig, (0.97, 0.905), fields, ha="right")
        self.animate(*self.readout_.moving())
        return panels

    def caption(self, step: int) -> None:
        self.readout_.update(step, *(float(s.values[snapshot_at(s.steps, step)]) for s in self.scores_.values()))

    def _extent(self) -> tuple[float, float, float, float]:
        grid = self.recording.metadata.get("grid") or {}
        if "extent" not in grid:
            raise KeyError("recording metadata has no grid extent ('grid': {'extent': [x0, x1, y0, y1]})")
        return tuple(float(v) for v in grid["extent"])

    def _data(self):
        rec = self.recording
        if "data/x" not in rec or "data/y" not in rec:
            return None, None
        return np.asarray(rec["data/x"].values[0], dtype=float), np.asarray(rec["data/y"].values[0])

    # -- static figure -------------------------------------------------------------------
    def write_figures(self, stem: Path) -> list[Path]:
        """The reference's pictures of the final network, side by side: the ground truth,
        the predicted classes of the data points and the 0.5 decision contour."""
        x, y = self._data()
        if x is None:
            return []
        rec, cfg = self.recording, self.config
        field = rec["field"]
        last = np.asarray(field.values[-1], dtype=float)
        step = int(field.steps[-1])
        extent = self._extent()
        panel_xs = extent[0] + (np.arange(last.shape[1]) + 0.5) * (extent[1] - extent[0]) / last.shape[1]
        panel_ys = extent[2] + (np.arange(last.shape[0]) + 0.5) * (extent[3] - extent[2]) / last.shape[0]
        if "prob" in rec:
            p = np.asarray(rec["prob"].values[snapshot_at(rec["prob"].steps, step)], dtype=float)
        else:  # the field at the cell that holds each point
            col = np.clip(((x[:, 0] - extent[0]) / (extent[1] - extent[0]) * last.shape[1]).astype(int), 0, last.shape[1] - 1)
            row = np.clip(((x[:, 1] - extent[2]) / (extent[3] - extent[2]) * last.shape[0]).astype(int), 0, last.shape[0] - 1)
            p = last[row, col]
        predicted = (p >= 0.5).astype(int)
        o = self.options
        fig = Figure(figsize=((o.width + 0.01) / o.dpi, (o.height + 0.01) / o.dpi), dpi=o.dpi)
        FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        cmap = get_cmap(cfg.cmap)
        colors = (cmap(0.1), cmap(0.9))  # the two ends of the field's map
        accuracy = float((predicted == y).mean())
        titles = ("ground truth", f"predicted classes (accuracy {accuracy:.3f})", "decision boundary p = 0.5")
        line = level_lines(panel_xs, panel_ys, last)
        for j, (title, labels) in enumerate(zip(titles, (y, predicted, y))):
            ax = fig.add_axes((0.045 + j * 0.325, 0.05, 0.29, 0.76), anchor="N")
            if j == 2:
                ax.imshow(last, extent=extent, origin="lower", cmap=cmap, vmin=0, vmax=1, interpolation="nearest",
                          alpha=0.35)
                ax.plot(line[:, 0], line[:, 1], color="black", linewidth=2.0, label="p = 0.5")
            for cls in (0, 1):
                pts = x[labels == cls]
                style = dict(CLASS_MARKERS[cls]) if j == 2 else {"marker": "o^"[cls], "color": colors[cls],
                                                                 "edgecolor": "none", "linewidths": 0}
                ax.scatter(pts[:, 0], pts[:, 1], s=cfg.marker_size * 0.8, label=f"class {cls}", **style)
            ax.set_xlim(extent[:2])
            ax.set_ylim(extent[2:])
            ax.set_aspect("equal")
            ax.set_title(title, fontsize="medium", pad=22)
            ax.set_xlabel("$x_1$")
            if j == 0:
                ax.set_ylabel("$x_2$")
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, fontsize="small", frameon=False,
                      borderaxespad=0.2, handletextpad=0.5, columnspacing=1.0)
        fig.text(0.045, 0.95, f"The network after {step:,d} steps", fontsize="large", weight="bold", va="center")
        fig.text(0.045, 0.905, _describe(rec.metadata), fontsize="medium", color="#444444", va="center")
        fig.canvas.draw()
        path = Path(f"{stem}_final.png")
        with open_writer(path) as writer:
            writer.write(np.asarray(fig.canvas.buffer_rgba())[:, :, :3])
        return [writer.path]


if __name__ == "__main__":
    main("spiral")
