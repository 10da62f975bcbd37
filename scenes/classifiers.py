"""Decision functions of small classifiers: the probability field, the scores, the gradient check.

Run: ``python -m scenes.classifiers`` (writes ``outputs/classifiers.mp4``); ``--help``
lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from matplotlib.figure import Figure

from dynamics.limits import check_limits
from dynamics.recording import Recording, Series

from .base import Cell, Field, PanelScene
from .plotting import CurvesPanel, DecisionFieldPanel, get_cmap
from .registry import register

__all__ = ["ClassifiersScene", "ClassifiersSceneConfig"]

SPLIT_COLORS = ["#1f5fbf", "#e6550d"]  # train, test


@dataclass(frozen=True)
class ClassifiersSceneConfig:
    """What the classifier movie shows.

    Attributes
    ----------
    cmap : str
        Colormap of the probability field (matplotlib or seaborn name).
    markers : bool
        Draw the training points on the field.
    marker_size : float
        Area of the data markers in points^2.
    """

    cmap: str = "RdBu_r"
    markers: bool = True
    marker_size: float = 24.0

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "marker_size": (0, 1000),
    }

    def __post_init__(self):
        get_cmap(self.cmap)
        if not self.marker_size > 0:
            raise ValueError(f"marker_size must be positive, got {self.marker_size}")
        check_limits(self, self.LIMITS)


@register(
    "classifiers",
    experiment="dynamics.experiments.classifiers",
    description="Train a softmax perceptron or a small network on blobs, two moons or circles and "
    "watch "
    "its class probability field, train/test scores and a finite-difference gradient check over "
    "training.",
)
class ClassifiersScene(PanelScene):
    """Probability field with the training points; loss, accuracy and gradient-check curves.

    Reads series ``field`` and, when present, ``train_loss``, ``test_loss``,
    ``train_accuracy``, ``test_accuracy``, ``grad_error``, ``data/x``, ``data/y``,
    ``data/test``, and the metadata entries ``grid.extent`` and ``caption``.
    """

    requires = ("field",)
    Config = ClassifiersSceneConfig
    title = "Decision function of a small classifier"
    readout = (Field("train_loss", "loss", "{:.4f}"), Field("test_accuracy", "test acc", "{:.3f}"))
    small_multiples = True
    small_panel_aspect = 1.0  # the field is drawn with equal axes

    @classmethod
    def small_panel(cls, ax, recording, config, shared, cell: Cell):
        """One configuration of a sweep (``--sweep hidden=2,5,10,15,20,50``): its probability
        field, 0.5 boundary and training points, with the final test accuracy."""
        return DecisionFieldPanel.small(ax, recording, config)

    def handout_panels(self, sheet, cell: Cell, shared: dict):
        """A keyframe of the handout: the probability field, its boundary and the training
        points on labelled axes with the colour scale, beside the train and test loss with
        a cursor at the step."""
        from .handout import curves_panel, main_and_curves

        cfg, rec = self.config, self.recording

        def main(ax):
            panel = DecisionFieldPanel.from_recording(
                ax,
                rec,
                markers=cfg.markers,
                cmap=cfg.cmap,
                marker_size=max(3, cfg.marker_size / 2),
                class_labels=("class 0 (train)", "class 1 (train)"),
                legend=False,  # the page's legend names the classes once
            )
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
            return panel

        names = [n for n in ("train_loss", "test_loss") if n in rec]
        return main_and_curves(
            sheet,
            main,
            (
                lambda ax: curves_panel(
                    ax,
                    rec,
                    names,
                    labels=[n.replace("_", " ") for n in names],
                    ylabel="loss",
                    xlabel="iteration",
                    colors=SPLIT_COLORS,
                )
            )
            if names
            else None,
            colorbar=True,
        )

    def build(self, fig: Figure):
        cfg, rec = self.config, self.recording
        ax = fig.add_axes((0.04, 0.07, 0.48, 0.74))
        panels = [
            DecisionFieldPanel.from_recording(
                ax,
                rec,
                markers=cfg.markers,
                cmap=cfg.cmap,
                marker_size=cfg.marker_size,
                class_labels=("class 0 (train)", "class 1 (train)"),
            )
        ]
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        rows = [
            ("loss", ("train_loss", "test_loss"), False),
            ("accuracy", ("train_accuracy", "test_accuracy"), False),
        ]
        rows = [(label, [n for n in names if n in rec], log) for label, names, log in rows]
        rows = [r for r in rows if r[1]]
        if "grad_error" in rec:
            rows.append(("gradient check", ["grad_error"], True))
        height = 0.74 / max(len(rows), 1)
        for k, (label, names, log) in enumerate(rows):
            cax = fig.add_axes(
                (0.64, 0.07 + (len(rows) - 1 - k) * height + 0.05, 0.33, height - 0.08)
            )
            steps = rec[names[0]].steps
            values = np.stack([np.asarray(rec[n].values, dtype=float) for n in names], axis=1)
            labels = [n.split("_")[0] for n in names] if len(names) > 1 else None
            ylabel = "relative error" if names == ["grad_error"] else label
            panels.append(
                CurvesPanel(
                    cax,
                    steps,
                    values,
                    labels=labels,
                    log=log,
                    ylabel=ylabel,
                    xlabel="iteration" if k == len(rows) - 1 else "",
                    colors=SPLIT_COLORS,
                    legend_loc="upper right" if label == "loss" else "lower right",
                )
            )
            if names == ["grad_error"]:
                cax.set_title(
                    "autograd vs finite differences (h = 1e-4)", fontsize="small", loc="left"
                )
        return panels

    @classmethod
    def example(cls, frames: int = 12, grid: int = 30, n: int = 40, seed: int = 0) -> Recording:
        """The spiral example's field on a small lattice, two blobs of train/test points,
        scores at the field's steps and a gradient-check error at every iteration."""
        from .spiral import SpiralScene

        rng = np.random.default_rng(seed)
        spiral = SpiralScene.example(frames, grid)
        x = np.concatenate(
            [rng.normal(-1.5, 0.5, (n // 2, 2)), rng.normal(1.5, 0.5, (n // 2, 2))]
        ).astype(np.float32)
        y = np.repeat([0.0, 1.0], n // 2).astype(np.float32)
        test = np.zeros(n, bool)
        test[::5] = True
        steps = spiral["field"].steps
        fine = np.arange(steps[-1] + 1, dtype=np.int64)
        once = np.zeros(1, np.int64)
        series = {
            "field": spiral["field"],
            "train_loss": Series(steps, np.geomspace(0.7, 0.1, frames), kind="scalar"),
            "test_loss": Series(steps, np.geomspace(0.7, 0.2, frames), kind="scalar"),
            "train_accuracy": Series(steps, np.linspace(0.5, 1.0, frames), kind="scalar"),
            "test_accuracy": Series(steps, np.linspace(0.5, 0.9, frames), kind="scalar"),
            "grad_error": Series(fine, 10.0 ** rng.uniform(-11, -8, len(fine)), kind="scalar"),
            "data/x": Series(once, x[None], kind="data"),
            "data/y": Series(once, y[None], kind="data"),
            "data/test": Series(once, test[None], kind="data"),
        }
        meta = {
            "grid": spiral.metadata["grid"],
            "caption": "blobs, 1 hidden layer(s) of 10 relu units, SGD, lr 0.1 (an example "
            "recording)",
        }
        return Recording(series, meta)


if __name__ == "__main__":
    from .cli import main

    main("classifiers")
