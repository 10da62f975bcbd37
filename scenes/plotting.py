"""Panels shared by scenes: each builds its artists on an axes once and updates them per frame.

A panel works on arrays indexed by snapshot ``t`` (step is the first axis) and never on
pyplot's global state; a scene maps its frames to snapshots and composes panels.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.axes import Axes

__all__ = ["ParticlePanel", "CurvePanel", "COLORS"]

COLORS = {
    "particle": "#1f5fbf",
    "particle_edge": "#0b2550",
    "path": "#8c8c8c",
    "reference": "#d62728",
    "ray": "black",
    "curve": "#1f5fbf",
}


class ParticlePanel:
    """Particles in the plane with their paths, plus reference points with rays from the origin.

    Parameters
    ----------
    ax : Axes
    positions : (T, n, 2) array
        Particle positions at each snapshot (may be a memmap; rows are read on demand).
    references : (k, 2) array, optional
        Fixed reference points (teacher neurons), drawn as red dots with a ray from the origin.
    limit : float
        Axes span ``[-limit, limit]`` on both axes, fixed for the whole movie.
    trail : int
        0: every earlier position stays as a faint dot (the whole path, drawn
        incrementally into the background); k > 0: only the last k positions.
    """

    def __init__(self, ax: Axes, positions: np.ndarray, references: np.ndarray | None = None, *,
                 limit: float = 2.0, trail: int = 0, particle_size: float = 70, path_size: float = 3,
                 labels: tuple[str, str] = ("student neuron $a_i w_i$", "teacher neuron $a_j w_j$")):
        self.ax, self.positions, self.limit, self.trail = ax, positions, float(limit), int(trail)
        self.references = None if references is None else np.asarray(references, dtype=float).reshape(-1, 2)
        n = positions.shape[1]
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.grid(True, color="#e6e6e6", linewidth=0.8, zorder=0)
        ax.axhline(0, color="#bdbdbd", linewidth=0.8, zorder=0.5)
        ax.axvline(0, color="#bdbdbd", linewidth=0.8, zorder=0.5)
        if self.references is not None:
            for p in self.references:
                far = p / max(np.linalg.norm(p), 1e-12) * limit * 1.5  # past the corner of the box
                ax.plot([0, far[0]], [0, far[1]], color=COLORS["ray"], linewidth=1.2, zorder=1)
            ax.scatter(self.references[:, 0], self.references[:, 1], s=particle_size * 1.1, color=COLORS["reference"],
                       edgecolor="black", linewidth=0.8, zorder=5, label=labels[1])
        empty = np.zeros((0, 2))
        self.path = ax.scatter(empty[:, 0], empty[:, 1], s=path_size, color=COLORS["path"], alpha=0.55,
                               linewidths=0, zorder=2)
        self.particles = ax.scatter(np.zeros(n), np.zeros(n), s=particle_size, color=COLORS["particle"],
                                    edgecolor=COLORS["particle_edge"], linewidth=0.8, zorder=6, label=labels[0])
        ax.legend(loc="upper left", fontsize="small", framealpha=0.9).set_zorder(10)

    def moving(self) -> list[Any]:
        """Artists redrawn every frame."""
        return [self.particles] + ([self.path] if self.trail else [])

    def stamped(self) -> list[Any]:
        """Artists drawn once into the background per new snapshot range."""
        return [] if self.trail else [self.path]

    def draw(self, t: int) -> None:
        """Show snapshot ``t``."""
        self.particles.set_offsets(np.asarray(self.positions[t]))
        if self.trail:
            lo = max(0, t - self.trail + 1)
            self.path.set_offsets(np.asarray(self.positions[lo : t + 1]).reshape(-1, 2))

    def stamp(self, t_lo: int, t_hi: int) -> list[Any]:
        """Put the positions of snapshots ``t_lo..t_hi-1`` on the path artist and return it."""
        if self.trail or t_hi <= t_lo:
            return []
        self.path.set_offsets(np.asarray(self.positions[t_lo:t_hi]).reshape(-1, 2))
        return [self.path]


class CurvePanel:
    """Curves over steps that grow frame by frame, with a dot at the current step.

    Parameters
    ----------
    ax : Axes
    steps : (T,) int array
    values : (T,) or (T, k) array
        One curve per column.
    labels : sequence of str, optional
        One per curve; a legend is drawn when given.
    log : bool
        Logarithmic y axis (limits from the positive values).
    ylabel : str
    """

    def __init__(self, ax: Axes, steps: np.ndarray, values: np.ndarray, *, labels: Sequence[str] | None = None,
                 log: bool = False, ylabel: str = "", xlabel: str = "step", colors: Sequence[str] | None = None):
        self.ax = ax
        self.steps = np.asarray(steps)
        values = np.asarray(values, dtype=float)
        self.values = values.reshape(len(values), -1)
        k = self.values.shape[1]
        colors = colors or [COLORS["curve"]] + [f"C{j}" for j in range(1, k)]
        finite = self.values[np.isfinite(self.values)]
        if log:
            ax.set_yscale("log")
            finite = finite[finite > 0]
        if finite.size:
            lo, hi = finite.min(), finite.max()
            if log:
                ax.set_ylim(lo / 2, hi * 2)
            else:
                pad = 0.05 * (hi - lo or 1)
                ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(self.steps[0], max(self.steps[-1], self.steps[0] + 1))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, color="#e6e6e6", linewidth=0.8)
        self.lines = [ax.plot([], [], color=colors[j], linewidth=1.8, label=None if labels is None else labels[j])[0]
                      for j in range(k)]
        self.dots = [ax.plot([], [], "o", color=colors[j], markersize=6)[0] for j in range(k)]
        if labels is not None:
            ax.legend(loc="upper right", fontsize="small")

    def moving(self) -> list[Any]:
        return [*self.lines, *self.dots]

    def draw_until(self, step: int) -> None:
        """Show the curves up to ``step`` with a dot on the last point."""
        n = int(np.searchsorted(self.steps, step, side="right"))
        for j, (line, dot) in enumerate(zip(self.lines, self.dots)):
            line.set_data(self.steps[:n], self.values[:n, j])
            dot.set_data(self.steps[n - 1 : n], self.values[n - 1 : n, j])
