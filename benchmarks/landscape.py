"""Benchmark: a 51 x 51 loss landscape of the spiral MLP, batched against the naive way, in the
same run.

The network is the spiral experiment's (2-1024-32-16-4-1 ReLU, 36 473 float32 parameters),
its loss the training objective (BCE + L2) on all 1 000 points, as
``dynamics.experiments.spiral.landscape_loss`` rebuilds them. A short run (``--steps``,
default 300, parameters recorded every 10 steps) gives the path; the plane is its PCA plane.

* batched -- ``dynamics.landscape.of_experiment(recording, size=51)``: the whole landscape
  (snapshots read, PCA, the 2 601 grid losses through ``functional_call`` under ``vmap`` in
  tuned chunks, and the losses along the path), and its grid part alone;
* naive -- the same 2 601 grid points, each loaded into the model with
  ``vector_to_parameters`` (or ``load_state_dict``) and evaluated with the model's own
  forward pass under ``torch.no_grad``.

The grid alone is timed both ways in ``--blocks`` blocks, each block done by every way in
turn (which goes first alternates), so that the load of a shared machine falls on both
alike. Printed: the median over ``--repeats`` of each time, the ratio naive / batched on
the grid, the chunks the tuning chose (0: one point at a time, no vmap), and the largest
relative difference between the two grids.

Target (issue 28): the 51 x 51 landscape in about 10 s or less on this 2-core machine.

Run: ``python benchmarks/landscape.py`` (about a minute here); ``--recording RUN.rec`` to use
a saved spiral run instead of training one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from dynamics import load  # noqa: E402
from dynamics.curvature import trainable  # noqa: E402
from dynamics.experiments import classifiers, spiral  # noqa: E402
from dynamics.landscape import loss_grid, of_experiment, rebuild, snapshots  # noqa: E402


def grid_points(info: dict) -> torch.Tensor:
    a0, a1, b0, b1 = info["extent"]
    n = info["size"]
    b, a = np.meshgrid(np.linspace(b0, b1, n), np.linspace(a0, a1, n), indexing="ij")
    return torch.from_numpy(np.stack([a.ravel(), b.ravel()], axis=1))


def naive(model, evaluate, origin, D, points, how: str) -> np.ndarray:
    """Each point loaded into the model, then ``evaluate(model)``, its loss by the model's own
    forward pass: the way without batching."""
    names, params = trainable(model)
    sizes = [p.numel() for p in params]
    out = np.empty(len(points))
    with torch.no_grad():
        for k, (a, b) in enumerate(points.tolist()):
            flat = (origin + a * D[0] + b * D[1]).to(params[0].dtype)
            if how == "vector_to_parameters":
                torch.nn.utils.vector_to_parameters(flat, model.parameters())
            else:
                state = {n: t.view(p.shape) for n, t, p in zip(names, flat.split(sizes), params)}
                model.load_state_dict(state, strict=False)
            out[k] = float(evaluate(model))
    return out


def compare(rec, evaluate, a, ways) -> None:
    """Time the whole landscape of ``rec`` and its grid both ways; print the medians."""
    model, _, _ = rebuild(rec)
    steps, flat, _ = snapshots(rec, model)
    times: dict[str, list[float]] = {"whole": [], "batched": [], **{w: [] for w in ways}}
    gap, chunks = 0.0, []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        out = of_experiment(rec, size=a.size)
        times["whole"].append(time.perf_counter() - t0)
        info = out.metadata["landscape"]["landscape"]
        chunks.append(info["chunk"])
        D = torch.from_numpy(np.asarray(out["landscape/directions"].values[-1]))
        points, origin = grid_points(info), flat[-1]
        m, loss, _ = rebuild(rec)
        # the grid again, in blocks, each computed by every way in turn: a load that comes
        # and goes on a shared machine falls on all of them alike
        spent, plain = dict.fromkeys(["batched", *ways], 0.0), {}
        for b, block in enumerate(points.split(max(1, len(points) // a.blocks))):
            order = ["batched", *ways] if b % 2 == 0 else [*ways, "batched"]  # either goes first
            for how in order:
                t0 = time.perf_counter()
                if how == "batched":
                    grid, _, _ = loss_grid(m, loss, origin, D, block, chunk=info["chunk"])
                else:
                    plain[how] = naive(model, evaluate, origin, D, block, how)
                spent[how] += time.perf_counter() - t0
            for how in ways:
                gap = max(gap, float(np.max(np.abs(plain[how] - grid) / np.abs(grid))))
        for k, v in spent.items():
            times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"  whole landscape (PCA, tuned chunk, grid, path): {med['whole']:7.2f} s  "
          f"(chunks chosen: {chunks})")  # fmt: skip
    print(f"  grid alone, the way the tuning chose:           {med['batched']:7.2f} s")
    for how in ways:
        ratio = med[how] / med["batched"]
        print(f"  grid alone, naive ({how}):{' ' * (27 - len(how))}{med[how]:7.2f} s  "
              f"= {ratio:.2f}x the batched time")  # fmt: skip
    print(f"  largest relative difference between the grids: {gap:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", type=Path, default=None, help="a saved spiral run")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=51)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=8, help="blocks the grid is timed in")
    parser.add_argument("--load-state-dict", action="store_true",
                        help="also time the naive way with load_state_dict")  # fmt: skip
    parser.add_argument(
        "--small", action="store_true", help="also the classifiers' 2-10-2 MLP on 160 points"
    )
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    ways = ["vector_to_parameters"] + (["load_state_dict"] if a.load_state_dict else [])
    if a.recording is not None:
        rec = load(a.recording)
    else:
        rec = spiral.run(spiral.SpiralConfig(steps=a.steps, field_every=10, grid=20))
    config = spiral.SpiralConfig(**rec.metadata["config"])
    x, y = spiral.make_data(config)
    n = sum(int(np.prod(rec[k].shape)) for k in rec.of_kind("parameter"))
    print(
        f"spiral MLP {'-'.join(map(str, config.widths))} ({n} parameters), {config.points} "
        f"points, {a.size} x {a.size} grid, path of {len(rec['layers.0.bias'])} snapshots, "
        f"{a.threads} thread(s), median of {a.repeats} repeats"
    )
    compare(rec, lambda m: spiral.objective(m, x, y, config.l2)[0], a, ways)
    if a.small:
        cc = classifiers.ClassifiersConfig(
            optimizer="gd", iterations=200, grad_check=False, grid=20
        )
        small = classifiers.run(cc)
        xs, ys, train, _ = classifiers.make_data(cc)
        print(f"classifiers MLP {'-'.join(map(str, cc.widths))} (float64), {len(train)} points, "
              f"same grid, path of {len(small['layers.0.bias'])} snapshots")  # fmt: skip
        fit = lambda m: classifiers.objective(m, xs[train], ys[train], cc.l2)  # noqa: E731
        compare(small, fit, a, ways)


if __name__ == "__main__":
    main()
