"""The mean-field limit, measured: final particle densities converge as the width m grows.

For each width m (default 1 000, 10 000, 100 000) and two student seeds, the teacher-student
run of issue 12 (R = 0.05, batch 10, mean-field step 0.5, 10 000 steps, the same teacher)
is trained and the final mass density is binned: particles ``a_i w_i`` on a 100 x 100 grid
over [-2, 2]^2, each weighing ``|a_i| ||(w_i, b_i)||`` (its share of the network's output
scale), normalised to total 1. Printed, per width:

* ``L1 seeds``: the L1 distance between the two seeds' densities (0: equal, 2: disjoint),
  the finite-m fluctuation; it should shrink as m grows (about as m^-1/2 for the noise
  part);
* ``L1 to widest``: the distance from the widest run of the same seed;
* the relative population loss (an independent numpy evaluation on 20 000 fresh inputs);
* ``in window``: the share of the particles, and of their mass, that the window holds.

``--limits 2,25`` bins the same runs over [-2, 2]^2 (the scene's axes) and [-25, 25]^2
(which holds every particle: they reach ``|a_i w_i|`` of about 24), 100 x 100 bins each.

Run: ``python benchmarks/mean_field_limit.py`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamics.experiments.relu_particles import ReluParticlesConfig, run  # noqa: E402


def final_density(recording, bins: int = 100, limit: float = 2.0) -> np.ndarray:
    """Normalised 2-D histogram of the last snapshot's particles, mass ``|a| ||(w, b)||``,
    over the window [-limit, limit]^2 (normalised over what the window holds)."""
    pos, mass = final_particles(recording)
    hist, _, _ = np.histogram2d(
        pos[:, 0], pos[:, 1], bins=bins, range=[[-limit, limit], [-limit, limit]], weights=mass
    )
    return hist / hist.sum()


def final_particles(recording) -> tuple[np.ndarray, np.ndarray]:
    """The last snapshot's particles ``a_i w_i`` and their masses ``|a_i| ||(w_i, b_i)||``."""
    a, w, b = (np.asarray(recording[k].values[-1], dtype=float) for k in ("a", "w", "b"))
    return a[:, None] * w[:, :2], np.abs(a) * np.linalg.norm(np.c_[w, b], axis=1)


def in_window(recording, limit: float) -> tuple[float, float]:
    """Shares of the particles, and of their mass, inside [-limit, limit]^2."""
    pos, mass = final_particles(recording)
    inside = np.all(np.abs(pos) <= limit, axis=1)
    return float(inside.mean()), float(mass[inside].sum() / mass.sum())


def relative_loss(recording, x: np.ndarray, chunk: int = 200) -> float:
    """Relative population loss on ``x``, in numpy float64, ``chunk`` inputs at a time (a
    (20 000, 100 000) matrix would need 16 GB)."""

    def f(a, w, b):
        a, w, b = (np.asarray(v, dtype=float) for v in (a, w, b))
        return np.concatenate(
            [
                np.maximum(x[i : i + chunk] @ w.T + b, 0) @ a / len(a)
                for i in range(0, len(x), chunk)
            ]
        )

    t = recording.metadata["teacher"]
    student = f(*(recording[k].values[-1] for k in ("a", "w", "b")))
    teacher = f(t["a"], t["w"], t["b"])
    return float(np.mean((student - teacher) ** 2) / np.mean(teacher**2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--widths",
        default="1000,10000,100000",
        help="comma-separated widths (default: %(default)s)",
    )
    p.add_argument("--seeds", type=int, default=2, help="student seeds per width (default: 2)")
    p.add_argument(
        "--limits",
        default="2",
        help="comma-separated half-widths of the density window (default: %(default)s)",
    )
    a = p.parse_args()
    limits = [float(v) for v in a.limits.split(",")]
    widths = [int(v) for v in a.widths.split(",")]
    x = np.random.default_rng(7).standard_normal((20_000, 2))
    dens: dict[tuple[int, int, float], np.ndarray] = {}
    share: dict[tuple[int, int, float], tuple[float, float]] = {}
    loss: dict[tuple[int, int], float] = {}
    for m in widths:
        for seed in range(a.seeds):
            t = time.perf_counter()
            cfg = ReluParticlesConfig(
                width=m, batch=10, frames=20, samples_per_frame=5000, seed=seed, eval_samples=1000
            )
            rec = run(cfg)
            for lim in limits:
                dens[m, seed, lim] = final_density(rec, limit=lim)
                share[m, seed, lim] = in_window(rec, lim)
            loss[m, seed] = relative_loss(rec, x)
            print(f"  trained m = {m:,} seed {seed} in {time.perf_counter() - t:.1f} s", flush=True)
    widest = widths[-1]
    for lim in limits:
        print()
        print("R = 0.05, batch 10, mean-field step 0.5, 10 000 steps, teacher seed 0;")
        print(f"window [-{lim:g}, {lim:g}]^2, 100 x 100 bins; in window: particles / mass by seed")
        print(
            f"{'m':>9}  {'L1 seeds':>9}  {'L1 to widest':>12}  {'rel. loss (seed 0)':>18}"
            "  in window"
        )
        for m in widths:
            seeds = (
                np.abs(dens[m, 0, lim] - dens[m, 1, lim]).sum() if a.seeds > 1 else float("nan")
            )
            to_widest = np.abs(dens[m, 0, lim] - dens[widest, 0, lim]).sum()
            inside = ", ".join(
                f"{share[m, s, lim][0]:.0%} / {share[m, s, lim][1]:.0%}" for s in range(a.seeds)
            )
            print(f"{m:>9,}  {seeds:9.3f}  {to_widest:12.3f}  {loss[m, 0]:18.2e}  {inside}")


if __name__ == "__main__":
    main()
