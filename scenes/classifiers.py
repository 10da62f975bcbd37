"""Decision functions of small classifiers: the probability field, the scores, the gradient check.

Run: ``python -m scenes.classifiers`` (writes ``outputs/classifiers.mp4``); ``--help``
lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from .base import PanelScene
from .cli import main, register
from .plotting import CurvesPanel, DecisionFieldPanel, Readout, get_cmap, snapshot_at

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

    def __post_init__(self):
        get_cmap(self.cmap)
        if not self.marker_size > 0:
            raise ValueError(f"marker_size must be positive, got {self.marker_size}")


def _describe(meta: dict) -> str:
    c = meta.get("config", {})
    if not c:
        return ""
    if c.get("model") == "perceptron":
        model = "softmax perceptron"
    else:
        model = f"{c.get('depth', 1)} hidden layer(s) of {c.get('hidden')} {c.get('activation')} units"
    opt = "SGD, one sample per step" if c.get("optimizer") == "sgd" else "full-batch gradient descent"
    lr = meta.get("lr")
    return f"{c.get('dataset')}, {model}, {opt}" + (f", lr {lr:g}" if lr else "") + \
        (f", L2 {c['l2']:g}" if c.get("l2") else "")


@register(
    "classifiers",
    experiment="dynamics.experiments.classifiers",
    description="Train a softmax perceptron or a small network on blobs, two moons or circles and watch "
    "its class probability field, train/test scores and a finite-difference gradient check over training.",
)
class ClassifiersScene(PanelScene):
    """Probability field with the training points; loss, accuracy and gradient-check curves.

    Reads series ``field`` and, when present, ``train_loss``, ``test_loss``,
    ``train_accuracy``, ``test_accuracy``, ``grad_error``, ``data/x``, ``data/y``,
    ``data/test``, and the metadata entries ``grid.extent``, ``config``, ``lr``.
    """

    requires = ("field",)
    timeline = "field"
    Config = ClassifiersSceneConfig
    title = "Decision function of a small classifier"

    small_panel_aspect = 1.0  # the field is drawn with equal axes

    @classmethod
    def small_panel(cls, ax, recording, config, shared, cell):
        """One configuration of a sweep (``--sweep hidden=2,5,10,15,20,50``): its probability
        field, 0.5 boundary and training points, with the final test accuracy."""
        return DecisionFieldPanel.small(ax, recording, config)

    def build(self, fig: Figure):
        cfg, rec, meta = self.config, self.recording, self.recording.metadata
        fig.patch.set_facecolor("white")
        ax = fig.add_axes((0.04, 0.07, 0.48, 0.74))
        panels = [DecisionFieldPanel.from_recording(ax, rec, markers=cfg.markers, cmap=cfg.cmap,
                                                    marker_size=cfg.marker_size,
                                                    class_labels=("class 0 (train)", "class 1 (train)"))]
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        rows = [("loss", ("train_loss", "test_loss"), False), ("accuracy", ("train_accuracy", "test_accuracy"), False)]
        rows = [(label, [n for n in names if n in rec], log) for label, names, log in rows]
        rows = [r for r in rows if r[1]]
        if "grad_error" in rec:
            rows.append(("gradient check", ["grad_error"], True))
        height = 0.74 / max(len(rows), 1)
        for k, (label, names, log) in enumerate(rows):
            cax = fig.add_axes((0.64, 0.07 + (len(rows) - 1 - k) * height + 0.05, 0.33, height - 0.08))
            steps = rec[names[0]].steps
            values = np.stack([np.asarray(rec[n].values, dtype=float) for n in names], axis=1)
            labels = [n.split("_")[0] for n in names] if len(names) > 1 else None
            ylabel = "relative error" if names == ["grad_error"] else label
            panels.append(CurvesPanel(cax, steps, values, labels=labels, log=log, ylabel=ylabel,
                                      xlabel="iteration" if k == len(rows) - 1 else "", colors=SPLIT_COLORS,
                                      legend_loc="upper right" if label == "loss" else "lower right"))
            if names == ["grad_error"]:
                cax.set_title("autograd vs finite differences (h = 1e-4)", fontsize="small", loc="left")
        fig.text(0.04, 0.955, self.title, fontsize="x-large", weight="bold",
                 va="center")
        fig.text(0.04, 0.905, _describe(meta), fontsize="medium", color="#444444", va="center")
        self.scores_ = {n: rec[n] for n in ("train_loss", "test_accuracy") if n in rec}
        last = int(rec["field"].steps[-1])
        fields = [("step", "{:,d}", max(5, len(f"{last:,d}")))]
        fields += [f for n, f in (("train_loss", ("loss", "{:.4f}", 6)), ("test_accuracy", ("test acc", "{:.3f}", 5)))
                   if n in self.scores_]
        self.readout_ = Readout(fig, (0.97, 0.955), fields, ha="right")
        self.animate(*self.readout_.moving())
        return panels

    def caption(self, step: int) -> None:
        self.readout_.update(step, *(float(s.values[snapshot_at(s.steps, step)]) for s in self.scores_.values()))


if __name__ == "__main__":
    main("classifiers")
