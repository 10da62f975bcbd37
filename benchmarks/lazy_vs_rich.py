"""Lazy versus rich training, measured: how far the parameters travel as the width m grows.

For each scaling (``mean-field``: output ``(1/m) sum_i ...``, learning rate ``step * m``;
``lazy``: the NTK scaling of Chizat, Oyallon & Bach 2019, output ``(1/sqrt m) sum_i ...``,
learning rate ``step``; see ``dynamics.experiments.relu_particles.learning_rate``), each
width m and each student seed, the teacher-student run of the particle experiment is trained
from the same initialisation (radius 1, the usual one; step 0.5, batch 20, the same teacher,
the same number of frames whatever m), and printed:

* ``movement``: ``||theta_T - theta_0|| / ||theta_0||`` over all parameters ``a, w, b``
  (``relu_particles.movement``);
* ``rel_error``: the held-out relative error at the start and at the end (the loss must
  fall under both scalings: a lazy network that does not train would not move either).

Then, per scaling, the least-squares slope of ``log movement`` against ``log m`` over every
run (all seeds). Theory: 0 under mean-field (each particle moves O(1)), -1/2 under lazy
(each moves O(1/sqrt m) while the output moves O(1)).

Run: ``python benchmarks/lazy_vs_rich.py`` (m = 100, 1 000, 10 000, 3 seeds, 100 frames:
about 2 minutes on one core); ``--widths 100 1000 10000 100000`` adds the widest (about 5
minutes more).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamics.experiments.relu_particles import (  # noqa: E402
    ReluParticlesConfig,
    movement,
    run,
)

SCALINGS = ("mean-field", "lazy")


def slope(widths, values) -> float:
    """Least-squares slope of ``log values`` against ``log widths``."""
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--radius", type=float, default=1.0)
    parser.add_argument("--step", type=float, default=0.5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"radius {args.radius:g}, step {args.step:g}, batch 20, {args.frames} frames, "
        f"seeds 0..{args.seeds - 1}"
    )
    print(f"{'scaling':>10} {'m':>8} {'seed':>4} {'movement':>10} {'rel_error start':>16} "
          f"{'rel_error end':>14} {'time':>7}")  # fmt: skip
    exponents = {}
    for scaling in SCALINGS:
        ms, moves = [], []
        for m in args.widths:
            for seed in range(args.seeds):
                config = ReluParticlesConfig(
                    width=m, radius=args.radius, step=args.step, scaling=scaling,
                    frames=args.frames, seed=seed, eval_samples=2_000,
                    params_every=args.frames,  # the start and the end are all it needs
                )  # fmt: skip
                t = time.perf_counter()
                recording = run(config)
                err = np.asarray(recording["rel_error"].values)
                ms.append(m)
                moves.append(movement(recording))
                print(
                    f"{scaling:>10} {m:>8,} {seed:>4} {moves[-1]:>10.4f} {err[0]:>16.3g} "
                    f"{err[-1]:>14.3g} {time.perf_counter() - t:>6.1f}s",
                    flush=True,
                )
        exponents[scaling] = slope(ms, moves)
        means = [np.mean([v for w, v in zip(ms, moves) if w == m]) for m in args.widths]
        print(
            f"{scaling}: mean movement by m "
            + ", ".join(f"{m:,}: {v:.4f}" for m, v in zip(args.widths, means))
            + f"; fitted exponent {exponents[scaling]:+.3f}"
        )
    print(
        "exponents: "
        + ", ".join(f"{k} {v:+.3f}" for k, v in exponents.items())
        + " (theory: mean-field 0, lazy -0.5)"
    )
    return exponents


if __name__ == "__main__":
    main()
