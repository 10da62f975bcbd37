"""Benchmark: a 3x3 ReLU-particles sweep on the default process pool vs one run after another.

Both sides run the same nine configurations (``--radius`` x ``--width`` over the default
config, ``--frames`` frames each) and write one recording per configuration:

* sequential -- ``relu_particles.run(config, path=...)`` nine times in this process;
* pool       -- ``dynamics.sweep.Sweep(...).run()`` with its default process pool (one
                worker per usable core, started by this call and counted).

Prints both wall times and the ratio (target: pool at least 1.6x faster on 2 cores),
checks that both sides wrote identical recordings, and prints, per configuration, the
held-out relative error and the share of the student's mass aligned with a teacher
neuron (``relu_particles.alignment``): the figures behind the README's "What the sweep
shows".

Run: ``python benchmarks/sweep_speedup.py`` (about 4 minutes at the defaults on 2 cores);
``--help`` for the flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing

from dynamics import load  # noqa: E402
from dynamics.experiments import relu_particles as rp  # noqa: E402
from dynamics.sweep import Sweep, grid_points, usable_cpus  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--radius", type=floats, default=[0.01, 0.1, 1.0], help="radii R (rows)")
    p.add_argument("--width", type=ints, default=[5, 20, 100], help="student widths m (columns)")
    p.add_argument(
        "--frames", type=int, default=rp.Config.frames, help="frames per run (the default config's)"
    )
    p.add_argument(
        "--jobs", type=int, default=None, help="pool workers (default: one per usable core)"
    )
    p.add_argument(
        "--tmp",
        type=Path,
        default=None,
        help="folder for the recordings (default: a temporary one)",
    )
    args = p.parse_args()

    base = rp.Config(frames=args.frames)
    grid = {"radius": args.radius, "width": args.width}
    tmp = args.tmp or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    jobs = args.jobs or usable_cpus()
    print(
        f"{len(grid_points(grid))} configurations: radius {args.radius} x width {args.width}, "
        f"{args.frames} frames each; pool of {jobs} workers; usable cores: {usable_cpus()}; "
        f"recordings in {tmp}"
    )

    seq_root = tmp / "sequential"
    shutil.rmtree(seq_root, ignore_errors=True)
    seq_root.mkdir(parents=True)
    t = time.perf_counter()
    seq_paths = []
    for i, overrides in enumerate(grid_points(grid)):
        path = seq_root / f"{i:03d}.rec"
        rp.run(dataclasses.replace(base, **overrides), path=path, overwrite=True)
        seq_paths.append(path)
    t_seq = time.perf_counter() - t
    print(f"sequential (one after another, this process): {t_seq:7.1f} s")

    pool_root = tmp / "pool"
    shutil.rmtree(pool_root, ignore_errors=True)
    t = time.perf_counter()
    result = Sweep("dynamics.experiments.relu_particles", base, grid, root=pool_root).run(jobs=jobs)
    t_pool = time.perf_counter() - t
    print(f"pool (dynamics.sweep, default executor):     {t_pool:7.1f} s")
    ratio = t_seq / t_pool
    print(f"speed-up: {ratio:.2f}x -> target >= 1.6x: {'MET' if ratio >= 1.6 else 'NOT MET'}")

    same = True
    for point, path in zip(result.points, seq_paths):
        a, b = load(point.path), load(path)
        same &= point.status == "done" and all(
            np.array_equal(np.asarray(a[k].values), np.asarray(b[k].values)) for k in a
        )
    print(f"identical recordings on both sides: {same}")

    print(
        "\nper configuration (final snapshot): held-out relative error, share of the student's "
        "mass within 10 degrees of a teacher neuron's line, run time in the pool"
    )
    print(f"{'radius':>8} {'width':>6} {'rel. error':>11} {'aligned':>8} {'seconds':>8}")
    for point in result.points:
        m = rp.alignment(load(point.path))
        o = point.overrides
        print(
            f"{o['radius']:>8g} {o['width']:>6d} {m['rel_error']:>11.2e} {m['aligned']:>8.2f} "
            f"{point.seconds:>8.1f}"
        )


if __name__ == "__main__":
    main()
