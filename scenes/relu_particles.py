"""Neurons of a two-layer ReLU network travelling to the teacher's neurons.

Run: ``python -m scenes.relu_particles`` (writes ``outputs/relu_particles.mp4``);
``--help`` lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from .base import Scene
from .cli import main, register
from .plotting import CurvePanel, ParticlePanel

__all__ = ["ReluParticlesScene", "ReluParticlesSceneConfig"]


@dataclass(frozen=True)
class ReluParticlesSceneConfig:
    """What the particle picture shows.

    Attributes
    ----------
    limit : float
        The particle axes span [-limit, limit] on both axes, fixed for the whole movie.
    trail : int
        0 keeps every earlier position as a faint grey dot (the whole path); k > 0 keeps
        only the last k positions.
    show_loss : bool
        Draw the held-out loss curve beside the particles.
    """

    limit: float = 2.0
    trail: int = 0
    show_loss: bool = True

    def __post_init__(self):
        if not self.limit > 0:
            raise ValueError(f"limit must be positive, got {self.limit}")
        if self.trail < 0:
            raise ValueError(f"trail must be >= 0, got {self.trail}")


@register(
    "relu_particles",
    experiment="dynamics.experiments.relu_particles",
    description="Train a two-layer ReLU student on a ReLU teacher and animate each student neuron "
    "as the particle a_i * w_i: do the neurons, started near zero, travel to the teacher's neurons?",
)
class ReluParticlesScene(Scene):
    """Student particles ``a_i w_i`` with their paths, teacher neurons with rays, the loss.

    Reads series ``positions`` (T, m, 2) and ``loss`` (T,), and the metadata entries
    ``teacher.positions`` (M, 2) and ``config`` when present.
    """

    requires = ("positions", "loss")
    timeline = "positions"
    Config = ReluParticlesSceneConfig

    def setup(self, fig: Figure) -> None:
        cfg, rec = self.config, self.recording
        meta = rec.metadata
        positions = rec["positions"]
        loss = rec["loss"]
        self.steps_ = positions.steps
        self.loss_index_ = np.atleast_1d(loss.nearest_index(self.steps_))
        self.loss_values_ = np.asarray(loss.values, dtype=float)
        teacher = (meta.get("teacher") or {}).get("positions")
        fig.patch.set_facecolor("white")
        if cfg.show_loss:
            ax = fig.add_axes((0.035, 0.07, 0.5, 0.83))
            curve_ax = fig.add_axes((0.62, 0.14, 0.35, 0.68))
        else:
            ax = fig.add_axes((0.25, 0.07, 0.5, 0.83))
        self.panel_ = ParticlePanel(ax, positions.values, teacher, limit=cfg.limit, trail=cfg.trail)
        ax.set_xlabel("first coordinate of $a_i w_i$")
        ax.set_ylabel("second coordinate of $a_i w_i$")
        c = meta.get("config", {})
        title = "Student neurons travel to the teacher's neurons"
        lines = [
            ", ".join(s for s in (f"m = {c['width']} students" if "width" in c else "",
                                  f"M = {c['teachers']} teachers" if "teachers" in c else "",
                                  f"initial radius R = {c['radius']:g}" if "radius" in c else "") if s),
            ", ".join(s for s in (f"{c['scaling']} step {c['step']:g}" if "scaling" in c else "",
                                  f"batch {c['batch']}" if "batch" in c else "") if s),
        ]
        fig.text(0.035, 0.955, title, fontsize="x-large", weight="bold", va="center")
        fig.text(0.62, 0.955, "\n".join(l for l in lines if l), fontsize="medium", color="#444444", va="center")
        self.label_ = fig.text(0.62, 0.875, "", fontsize="large", family="monospace", va="center")
        self.animate(*self.panel_.moving(), self.label_)
        self.stamped(*self.panel_.stamped())
        self.curve_ = None
        if cfg.show_loss:
            self.curve_ = CurvePanel(curve_ax, loss.steps, self.loss_values_, log=True,
                                     ylabel="loss on held-out samples", xlabel="SGD step")
            self.animate(*self.curve_.moving())

    def draw_frame(self, i: int) -> None:
        t = int(self.frames_[i])
        self.panel_.draw(t)
        step = int(self.steps_[t])
        loss = self.loss_values_[self.loss_index_[t]]
        self.label_.set_text(f"step {step:>7,d}   loss {loss:.2e}")
        if self.curve_ is not None:
            self.curve_.draw_until(step)

    def stamp(self, lo: int, hi: int):
        t_lo = 0 if lo == 0 else int(self.frames_[lo - 1]) + 1  # include snapshots skipped by --stride
        return self.panel_.stamp(t_lo, int(self.frames_[hi - 1]) + 1)


if __name__ == "__main__":
    main("relu_particles")
