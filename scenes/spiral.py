"""How a deep ReLU MLP carves a decision boundary between two interleaved spirals.

Run: ``python -m scenes.spiral`` (writes ``outputs/spiral.mp4`` and the static figure of
the final network, ``outputs/spiral_final.png``); ``--help`` lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from matplotlib.figure import Figure

from dynamics.limits import check_limits
from dynamics.recording import Recording, Series
from dynamics.similarity import probe_series

from .base import Cell, Field, PanelScene, figure_to_png, new_figure
from .plotting import (
    CLASS_MARKERS,
    CurvesPanel,
    DecisionFieldPanel,
    get_cmap,
    level_lines,
    snapshot_at,
)
from .registry import register
from .representations import ProjectionPanel, projected_points

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
    layers : bool
        Where the recording has a probe of the hidden layers (``probe/...``, as the
        experiment records by default), draw each layer's probe points beside the field:
        on the first two principal axes of the layer's final snapshot, fitted once (fixed
        over the movie), coloured by class; --no-layers leaves them out.
    """

    cmap: str = "RdBu_r"
    markers: bool = True
    marker_size: float = 14.0
    layers: bool = True

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "marker_size": (0, 1000),
    }

    def __post_init__(self):
        get_cmap(self.cmap)  # fail early, with the list of names
        if not self.marker_size > 0:
            raise ValueError(f"marker_size must be positive, got {self.marker_size}")
        check_limits(self, self.LIMITS)


@register(
    "spiral",
    experiment="dynamics.experiments.spiral",
    description="Train a 2-1024-32-16-4-1 ReLU MLP on two interleaved spirals and watch its class "
    "probability field and 0.5 decision boundary take shape, next to the loss.",
)
class SpiralScene(PanelScene):
    """The probability field with its 0.5 contour and the data, the loss, the accuracy.

    Reads series ``field`` (T, ny, nx) and, when present, ``loss`` and ``bce`` (for the
    loss panel), ``train_accuracy``, ``prob`` (T, n) and ``data/x``, ``data/y``, the probe
    series (kind ``probe``, with ``probe/labels``: the hidden layers' view, at most
    :attr:`max_layers`), and the metadata entries ``grid.extent`` and ``caption``.
    """

    requires = ("field",)
    Config = SpiralSceneConfig
    title = "Two spirals: a deep ReLU network carves a boundary"
    readout = (Field("loss", "loss", "{:.4f}"), Field("train_accuracy", "train acc", "{:.3f}"))
    small_multiples = True
    small_panel_aspect = 1.0  # the field is drawn with equal axes
    #: Hidden layers drawn side by side (the first ones the probe recorded).
    max_layers = 4

    def check(self) -> None:
        super().check()
        self._extent()  # names what is missing before anything is drawn

    def probed_layers(self) -> list[str]:
        """The probe series the layers' view draws (none with ``layers`` off, or without a
        probe or its labels)."""
        rec = self.recording
        if not self.config.layers or "probe/labels" not in rec:
            return []
        return probe_series(rec)[: self.max_layers]

    @classmethod
    def small_panel(cls, ax, recording, config, shared, cell: Cell):
        """One configuration of a sweep (``--sweep activation=relu,none``): its probability
        field, boundary and points, with the final training accuracy."""
        return DecisionFieldPanel.small(ax, recording, config)

    def handout_panels(self, sheet, cell: Cell, shared: dict):
        """A keyframe of the handout: the probability field, its boundary and the data on
        labelled axes with the colour scale, beside the loss with a cursor at the step."""
        from .handout import curves_panel, main_and_curves

        cfg, rec = self.config, self.recording

        def main(ax):
            x, y = self._data()
            field = rec["field"]
            panel = DecisionFieldPanel(
                ax,
                field.steps,
                field.values,
                self._extent(),
                x=x if cfg.markers else None,
                y=y,
                cmap=cfg.cmap,
                marker_size=max(3, cfg.marker_size / 2),
                legend=False,  # the page's legend names the classes once
            )
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
            return panel

        names = [n for n in ("loss", "bce") if n in rec]
        labels = {"loss": "objective (cross-entropy + L2)", "bce": "cross-entropy"}
        return main_and_curves(
            sheet,
            main,
            (
                lambda ax: curves_panel(
                    ax,
                    rec,
                    names,
                    labels=[labels[n] for n in names],
                    ylabel="minibatch loss",
                    xlabel="Adam step",
                )
            )
            if names
            else None,
            colorbar=True,
        )

    def build(self, fig: Figure):
        cfg, rec = self.config, self.recording
        field = rec["field"]
        extent = self._extent()
        x, y = self._data()
        layers = self.probed_layers()
        # a square field on the left, two curves on the right (beneath the hidden layers,
        # where there are some); fractions keep the layout at every 16:9 frame size
        ax = fig.add_axes((0.04, 0.07, 0.48, 0.74))
        panels = [
            DecisionFieldPanel(
                ax,
                field.steps,
                field.values,
                extent,
                x=x if cfg.markers else None,
                y=y,
                cmap=cfg.cmap,
                marker_size=cfg.marker_size,
            )
        ]
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        if layers:
            panels += self._layer_panels(fig, layers)
        loss_box, acc_box = (
            ((0.62, 0.33, 0.35, 0.17), (0.62, 0.08, 0.35, 0.15))
            if layers
            else ((0.64, 0.48, 0.33, 0.33), (0.64, 0.08, 0.33, 0.28))
        )
        if "loss" in rec:
            loss_ax = fig.add_axes(loss_box)
            names = [n for n in ("loss", "bce") if n in rec]
            steps = rec["loss"].steps
            values = np.stack([np.asarray(rec[n].values, dtype=float) for n in names], axis=1)
            labels = {"loss": "objective (cross-entropy + L2)", "bce": "cross-entropy"}
            panels.append(
                CurvesPanel(
                    loss_ax,
                    steps,
                    values,
                    labels=[labels[n] for n in names],
                    log=True,
                    ylabel="minibatch loss",
                    xlabel="",
                    legend_loc="upper right",
                )
            )
        if "train_accuracy" in rec:
            acc_ax = fig.add_axes(acc_box)
            acc = rec["train_accuracy"]
            panels.append(
                CurvesPanel(
                    acc_ax, acc.steps, acc.values, ylabel="train accuracy", xlabel="Adam step"
                )
            )
            acc_ax.set_ylim(min(0.4, float(np.min(acc.values)) - 0.02), 1.02)
        return panels

    def _layer_panels(self, fig: Figure, names: list[str]) -> list[ProjectionPanel]:
        """A row of square panels, one per probed hidden layer, right of the field and above
        the curves: its probe points on the first two principal axes of its final snapshot
        (fitted once, so nothing flickers: :func:`~scenes.representations.projected_points`),
        coloured by class with the colours of the field's two ends."""
        rec, cmap = self.recording, get_cmap(self.config.cmap)
        labels = np.asarray(rec["probe/labels"].values[-1])
        palette = np.array([cmap(0.1), cmap(0.9)])  # class 0, class 1: as the field
        colors = palette[(labels >= 0.5).astype(int)]
        width, height = fig.get_size_inches()
        left, right, gap = 0.565, 0.975, 0.01  # figure fractions
        side = (right - left - gap * (self.max_layers - 1)) / self.max_layers  # a square:
        tall = side * width / height  # as tall, in figure height, as it is wide
        bottom = 0.765 - tall
        panels = []
        for k, name in enumerate(names):
            series = rec[name]
            ax = fig.add_axes((left + k * (side + gap), bottom, side, tall))
            _, points = projected_points(series, len(series) - 1)
            panel = ProjectionPanel(ax, series.steps, points, colors)
            panel.dots.set_sizes([7.0])
            panel.dots.set_linewidths(0)
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            ax.tick_params(length=0)
            units = int(np.prod(series.shape[1:]))
            ax.set_title(f"layer {k + 1} · {units:,d} units", fontsize="small", pad=3)
            panels.append(panel)
        fig.text(
            left, 0.80, "hidden layers: the probe points on each layer's final principal axes",
            fontsize="small", color="#444444", va="bottom",
        )  # fmt: skip
        return panels

    def _extent(self) -> tuple[float, float, float, float]:
        grid = self.recording.metadata.get("grid") or {}
        if "extent" not in grid:
            raise KeyError(
                "recording metadata has no grid extent ('grid': {'extent': [x0, x1, y0, y1]})"
            )
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
        panel_xs = (
            extent[0] + (np.arange(last.shape[1]) + 0.5) * (extent[1] - extent[0]) / last.shape[1]
        )
        panel_ys = (
            extent[2] + (np.arange(last.shape[0]) + 0.5) * (extent[3] - extent[2]) / last.shape[0]
        )
        if "prob" in rec:
            p = np.asarray(rec["prob"].values[snapshot_at(rec["prob"].steps, step)], dtype=float)
        else:  # the field at the cell that holds each point
            col = np.clip(
                ((x[:, 0] - extent[0]) / (extent[1] - extent[0]) * last.shape[1]).astype(int),
                0,
                last.shape[1] - 1,
            )
            row = np.clip(
                ((x[:, 1] - extent[2]) / (extent[3] - extent[2]) * last.shape[0]).astype(int),
                0,
                last.shape[0] - 1,
            )
            p = last[row, col]
        predicted = (p >= 0.5).astype(int)
        fig = new_figure(self.options)
        fig.patch.set_facecolor("white")
        cmap = get_cmap(cfg.cmap)
        colors = (cmap(0.1), cmap(0.9))  # the two ends of the field's map
        accuracy = float((predicted == y).mean())
        titles = (
            "ground truth",
            f"predicted classes (accuracy {accuracy:.3f})",
            "decision boundary p = 0.5",
        )
        line = level_lines(panel_xs, panel_ys, last)
        for j, (title, labels) in enumerate(zip(titles, (y, predicted, y))):
            ax = fig.add_axes((0.045 + j * 0.325, 0.05, 0.29, 0.76), anchor="N")
            if j == 2:
                ax.imshow(
                    last,
                    extent=extent,
                    origin="lower",
                    cmap=cmap,
                    vmin=0,
                    vmax=1,
                    interpolation="nearest",
                    alpha=0.35,
                )
                ax.plot(line[:, 0], line[:, 1], color="black", linewidth=2.0, label="p = 0.5")
            for cls in (0, 1):
                pts = x[labels == cls]
                style = (
                    dict(CLASS_MARKERS[cls])
                    if j == 2
                    else {
                        "marker": "o^"[cls],
                        "color": colors[cls],
                        "edgecolor": "none",
                        "linewidths": 0,
                    }
                )
                ax.scatter(
                    pts[:, 0], pts[:, 1], s=cfg.marker_size * 0.8, label=f"class {cls}", **style
                )
            ax.set_xlim(extent[:2])
            ax.set_ylim(extent[2:])
            ax.set_aspect("equal")
            ax.set_title(title, fontsize="medium", pad=22)
            ax.set_xlabel("$x_1$")
            if j == 0:
                ax.set_ylabel("$x_2$")
            ax.legend(
                loc="lower left",
                bbox_to_anchor=(0.0, 1.0),
                ncol=3,
                fontsize="small",
                frameon=False,
                borderaxespad=0.2,
                handletextpad=0.5,
                columnspacing=1.0,
            )
        fig.text(
            0.045,
            0.95,
            f"The network after {step:,d} steps",
            fontsize="large",
            weight="bold",
            va="center",
        )
        fig.text(0.045, 0.905, self.subtitle(), fontsize="medium", color="#444444", va="center")
        return [figure_to_png(fig, Path(f"{stem}_final.png"))]

    @classmethod
    def example(cls, frames: int = 12, grid: int = 40, n: int = 60, seed: int = 0) -> Recording:
        """A decision field that sharpens and turns, ``p = sigmoid(k_t (x cos a_t + y sin a_t))``
        on a ``grid x grid`` lattice over [-4, 4]^2, two small spirals of points, loss every
        step and accuracy with the field."""
        rng = np.random.default_rng(seed)
        extent = [-4.0, 4.0, -4.0, 4.0]
        c = -4 + (np.arange(grid) + 0.5) * 8 / grid
        gx, gy = np.meshgrid(c, c)  # row 0 at the bottom (y = c[0])
        t = np.linspace(0, 1, frames)
        k, a = 0.2 + 3 * t, 0.8 * t
        field = 1 / (
            1
            + np.exp(
                -k[:, None, None] * (gx * np.cos(a)[:, None, None] + gy * np.sin(a)[:, None, None])
            )
        )
        theta = rng.uniform(1, 2.5, n // 2) * np.pi
        arm = np.stack([theta * np.cos(theta), theta * np.sin(theta)], axis=1) / 2.5
        x = np.concatenate([-arm, arm]).astype(np.float32)
        y = np.repeat([0.0, 1.0], n // 2).astype(np.float32)
        steps = np.arange(frames, dtype=np.int64) * 25
        fine = np.arange(steps[-1] + 1, dtype=np.int64)
        loss = np.geomspace(0.7, 0.05, len(fine))
        prob = 1 / (
            1 + np.exp(-k[:, None] * (x[:, 0] * np.cos(a)[:, None] + x[:, 1] * np.sin(a)[:, None]))
        )
        once = np.zeros(1, np.int64)
        series = {
            "field": Series(steps, field.astype(np.float32), kind="derived"),
            "prob": Series(steps, prob.astype(np.float32), kind="derived"),
            "train_accuracy": Series(steps, np.linspace(0.5, 0.9, frames), kind="scalar"),
            "loss": Series(fine, loss, kind="scalar"),
            "bce": Series(fine, loss * 0.8, kind="scalar"),
            "data/x": Series(once, x[None], kind="data"),
            "data/y": Series(once, y[None], kind="data"),
        }
        meta = {
            "grid": {"size": grid, "extent": extent, "points": "cell centres", "origin": "lower"},
            "caption": "2-8-1 MLP, ReLU, Adam lr 0.001, batch 100, L2 0.001 (an example recording)",
        }
        return Recording(series, meta)


if __name__ == "__main__":
    from .cli import main

    main("spiral")
