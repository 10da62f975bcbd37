"""Neurons of a two-layer ReLU network travelling to the teacher's neurons.

Run: ``python -m scenes.relu_particles`` (writes ``outputs/relu_particles.mp4``);
``--help`` lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from .base import PanelScene
from .cli import main, register
from .plotting import CurvesPanel, ParticlePanel, Readout, snapshot_at

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
class ReluParticlesScene(PanelScene):
    """Student particles ``a_i w_i`` with their paths, teacher neurons with rays, the loss.

    Reads series ``positions`` (T, m, 2) and ``loss`` (T,), and the metadata entries
    ``teacher.positions`` (M, 2) and ``config`` when present.
    """

    requires = ("positions", "loss")
    timeline = "positions"
    Config = ReluParticlesSceneConfig
    title = "Student neurons travel to the teacher's neurons"
    small_panel_aspect = 1.0  # the particle axes are square

    def build(self, fig: Figure):
        cfg, rec = self.config, self.recording
        meta = rec.metadata
        positions, loss = rec["positions"], rec["loss"]
        self.loss_ = loss
        teacher = (meta.get("teacher") or {}).get("positions")
        fig.patch.set_facecolor("white")
        if cfg.show_loss:
            ax = fig.add_axes((0.035, 0.07, 0.5, 0.83))
            curve_ax = fig.add_axes((0.62, 0.14, 0.35, 0.68))
        else:
            ax = fig.add_axes((0.25, 0.07, 0.5, 0.83))
        panels = [ParticlePanel(ax, positions.steps, positions.values, teacher, limit=cfg.limit, trail=cfg.trail)]
        ax.set_xlabel("first coordinate of $a_i w_i$")
        ax.set_ylabel("second coordinate of $a_i w_i$")
        c = meta.get("config", {})
        title = self.title
        lines = [
            ", ".join(s for s in (f"m = {c['width']} students" if "width" in c else "",
                                  f"M = {c['teachers']} teachers" if "teachers" in c else "",
                                  f"initial radius R = {c['radius']:g}" if "radius" in c else "") if s),
            ", ".join(s for s in (f"{c['scaling']} step {c['step']:g}" if "scaling" in c else "",
                                  f"batch {c['batch']}" if "batch" in c else "") if s),
        ]
        fig.text(0.035, 0.955, title, fontsize="x-large", weight="bold", va="center")
        fig.text(0.62, 0.955, "\n".join(l for l in lines if l), fontsize="medium", color="#444444", va="center")
        last = int(positions.steps[-1])
        self.readout_ = Readout(fig, (0.62, 0.875), [("step", "{:,d}", max(7, len(f"{last:,d}"))), ("loss", "{:.2e}", 8)])
        self.animate(*self.readout_.moving())
        if cfg.show_loss:
            panels.append(CurvesPanel(curve_ax, loss.steps, loss.values, log=True,
                                      ylabel="loss on held-out samples", xlabel="SGD step"))
        return panels

    @classmethod
    def small_panel(cls, ax, recording, config, shared, cell):
        """One configuration of a sweep: its particles, paths and teacher, on the shared limits."""
        positions = recording["positions"]
        teacher = (recording.metadata.get("teacher") or {}).get("positions")
        rows, cols = cell[2], cell[3]
        scale = 1 / max(rows, cols)
        panel = ParticlePanel(ax, positions.steps, positions.values, teacher, limit=config.limit, trail=config.trail,
                              particle_size=max(12, 70 * scale), path_size=max(1, 3 * scale), legend=False)
        ax.tick_params(labelsize="x-small")
        return panel

    def caption(self, step: int) -> None:
        self.readout_.update(step, float(self.loss_.values[snapshot_at(self.loss_.steps, step)]))


if __name__ == "__main__":
    main("relu_particles")
