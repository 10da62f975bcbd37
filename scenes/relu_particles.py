"""Neurons of a two-layer ReLU network travelling to the teacher's neurons.

Run: ``python -m scenes.relu_particles`` (writes ``outputs/relu_particles.mp4``);
``--help`` lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynamics.recording import Recording

from .particles import ParticlesScene, ParticlesSceneConfig
from .registry import register

__all__ = ["ReluParticlesScene", "ReluParticlesSceneConfig"]


@dataclass(frozen=True)
class ReluParticlesSceneConfig(ParticlesSceneConfig):
    """What the particle picture shows.

    Attributes
    ----------
    show : str
        The series drawn as particles: ``positions``, the student neurons ``a_i w_i``.
    limit : float
        The particle axes span [-limit, limit] on both axes, fixed for the whole movie (0:
        fitted to the run).
    trail : int
        0 keeps every earlier position as a faint grey dot (the whole path); k > 0 keeps
        only the last k positions.
    curve : str
        The curve beside the particles: ``loss`` (on held-out samples), ``rel_error``, or
        "" for none.
    rays : bool
        A ray from the origin through each teacher neuron: a ReLU neuron ``a_j w_j`` is a
        direction, which a student reaches along the ray (--no-rays: the dots only).
    """

    show: str = "positions"
    limit: float = 2.0
    curve: str = "loss"
    rays: bool = True


@register(
    "relu_particles",
    experiment="dynamics.experiments.relu_particles",
    description="Train a two-layer ReLU student on a ReLU teacher and animate each student neuron "
    "as the particle a_i * w_i: do the neurons, started near zero, travel to the teacher's "
    "neurons?",
)
class ReluParticlesScene(ParticlesScene):
    """Student neurons a_i w_i as particles with their paths, the teacher's neurons, the loss.

    Reads series ``positions`` (T, m, 2) and, when present, ``loss`` (T,), and the metadata
    entries ``teacher.positions`` (M, 2) and ``caption``.
    """

    Config = ReluParticlesSceneConfig
    title = "Student neurons travel to the teacher's neurons"
    neutral_title = "Student neurons $a_i w_i$ over training"
    labels = ("student neuron $a_i w_i$", "teacher neuron $a_j w_j$")
    xlabel, ylabel = "first coordinate of $a_i w_i$", "second coordinate of $a_i w_i$"
    curve_labels = {
        "loss": "loss on held-out samples",
        "rel_error": "relative error on held-out samples",
    }
    step_label = "SGD step"

    def curve_label(self, name: str | None) -> str:
        """The experiment's labels (its loss is measured on held-out samples, its steps are
        SGD steps) on a recording of the experiment; on anyone else's the series' own name
        and "step": a user's ``loss`` is whatever their loop logged."""
        if self.recording.metadata.get("experiment") == "relu_particles":
            return super().curve_label(name)
        return "step" if name is None else name

    @classmethod
    def references(cls, recording: Recording, name: str):
        """The teacher's neurons ``a_j w_j`` (metadata ``teacher.positions``), if there is one."""
        teacher = (recording.metadata.get("teacher") or {}).get("positions")
        if teacher is None or name != "positions":
            return super().references(recording, name)
        return np.asarray(teacher, dtype=float).reshape(-1, 2), cls.labels[1]

    @classmethod
    def small_panel(cls, ax, recording: Recording, config, shared: dict, cell):
        """One run of a sweep, labelled beneath with how far its particles went and what
        its curve did: ``particles moved 3% · loss 0.41 -> 2.1e-05`` (the drawn particles'
        ``||P_T - P_0|| / ||P_0||`` from the first to the last snapshot; the curve's first
        and last values), so a sweep over ``scaling`` shows lazy particles that stay while
        the loss falls as far as under mean-field."""
        panel = super().small_panel(ax, recording, config, shared, cell)
        positions = recording[cls.series_name(recording, config)].values
        first, last = (np.asarray(positions[i], dtype=float) for i in (0, -1))
        start = float(np.linalg.norm(first))
        parts = []
        if start > 0:
            parts.append(f"particles moved {np.linalg.norm(last - first) / start:.0%}")
        name = config.curve if config.curve in recording else ""
        if name and recording[name].shape == () and len(recording[name]):
            values = recording[name].values
            label = cls.curve_labels.get(name, name).removesuffix(" on held-out samples")
            parts.append(f"{label} {float(values[0]):.2g} → {float(values[-1]):.2g}")
        if parts:
            ax.set_xlabel(" · ".join(parts), fontsize="small")
        return panel

    def heading(self) -> str:
        refs, _ = self.references(self.recording, self.config.show)
        if refs is None:
            return self.neutral_title
        if (self.recording.metadata.get("config") or {}).get("scaling") == "lazy":
            return "Lazy scaling: the student neurons barely leave their start"
        return self.title

    @classmethod
    def example(cls, frames: int = 12, n: int = 5, seed: int = 0) -> Recording:
        """The particles example with the teacher metadata a run of the experiment writes."""
        rec = ParticlesScene.example(frames, n, seed)
        meta = {
            "experiment": "relu_particles",
            "teacher": {"positions": [[1.0, 1.0], [-1.0, 0.5]]},
            "caption": f"m = {n} students, M = 2 teachers, initial radius R = 0.05 · mean-field "
            "step 0.5, "
            "batch 20 (an example recording)",
        }
        return Recording(dict(rec.items()), meta)


if __name__ == "__main__":
    from .cli import main

    main("relu_particles")
