"""Benchmark: what the curvature instruments cost, as multiples of one training step measured
in the same run.

Sharpness (``dynamics.curvature.sharpness``, what the recorder's ``Sharpness`` quantity calls
at each capture): a tanh MLP 10-W-W-1 (``--width`` W, default 128: 18 049 parameters,
float32) trained by full-batch gradient descent on 512 points of ``y = sin(sum x)``, MSE
loss, one torch thread; with lr 0.05 (the sharpness rises to about 7, far below 2 / lr =
40) and lr 0.35 (2 / lr = 5.7: the sharpness ends near it, about 6.3: the edge of
stability). Every ``every`` steps, right after the update, the top-``k`` Hessian eigenvalues
of the training loss on the training batch are measured twice on the same parameters:

* warm -- started from the previous measurement's eigenvectors (as the quantity does);
* cold -- from a random vector.

Per repeat (a fresh model, its own seed): the mean number of Hessian-vector products per
measurement (warm: every measurement but the first, which has nothing to start from), the
median wall time of a measurement and of a training step (forward, backward, optimizer
step), and their ratio. Printed: the median over repeats of each figure, and the largest
relative difference between the warm and cold eigenvalues (both stop at ``tol=1e-6``).

Target (issue 28): a warm-started measurement costs at most ~20 HVPs on average.

Run: ``python benchmarks/instruments.py`` (about 80 s here); ``--repeats 3 --steps 30`` for a
quick look.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from dynamics.curvature import sharpness  # noqa: E402

SETTINGS = [(0.05, 1, 1), (0.05, 1, 10), (0.05, 3, 1), (0.35, 1, 1)]  # (lr, k, every)


def repeat(seed: int, k: int, every: int, steps: int, lr: float, width: int) -> dict:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(10, width), torch.nn.Tanh(), torch.nn.Linear(width, width),
        torch.nn.Tanh(), torch.nn.Linear(width, 1),
    )  # fmt: skip
    x = torch.randn(512, 10)
    y = torch.sin(x.sum(1, keepdim=True))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    previous, step_s, warm, cold, gap = None, [], [], [], 0.0
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
        step_s.append(time.perf_counter() - t0)
        if step % every:
            continue
        t0 = time.perf_counter()
        w = sharpness(model, F.mse_loss, (x, y), k, init=previous)
        t1 = time.perf_counter()
        c = sharpness(model, F.mse_loss, (x, y), k)
        t2 = time.perf_counter()
        if previous is not None:
            warm.append((w.hvps, t1 - t0))
        cold.append((c.hvps, t2 - t1))
        previous = w.vectors
        gap = max(gap, float(((w.values - c.values).abs() / c.values.abs()).max()))
    one = statistics.median(step_s)
    return {
        "warm hvps": statistics.mean(h for h, _ in warm),
        "cold hvps": statistics.mean(h for h, _ in cold),
        "warm x step": statistics.median(t for _, t in warm) / one,
        "cold x step": statistics.median(t for _, t in cold) / one,
        "step ms": one * 1e3,
        "gap": gap,
        "last": float(c.values[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    w, n = a.width, 10 * a.width + a.width * a.width + 3 * a.width + 1
    print(
        f"sharpness of a 10-{w}-{w}-1 tanh MLP ({n} parameters), full-batch GD, "
        f"{a.steps} steps, median over {a.repeats} repeats, {a.threads} thread(s)"
    )
    head = ("lr", "k", "every", "HVPs warm", "HVPs cold", "warm x step", "cold x step")
    print("  ".join(f"{h:>11}" for h in head), "  step ms  sharpness  |warm-cold|/cold")
    for lr, k, every in SETTINGS:
        runs = [repeat(seed, k, every, a.steps, lr, a.width) for seed in range(a.repeats)]
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        row = (lr, k, every, *(f"{med[key]:.1f}" for key in list(med)[:4]))
        print(
            "  ".join(f"{v:>11}" for v in row),
            f"{med['step ms']:8.2f}  {med['last']:9.2f}  {max(r['gap'] for r in runs):16.1e}",
        )
    print("HVPs: Hessian-vector products per measurement (warm: all but the first, which has")
    print("no previous eigenvectors); x step: a measurement's median time / a training step's;")
    print("sharpness: the top eigenvalue at the last step; |warm-cold|/cold: the largest seen")


if __name__ == "__main__":
    main()
