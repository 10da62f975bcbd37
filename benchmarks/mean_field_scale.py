"""Benchmark: the mean-field limit at m = 100 000 neurons, trained and rendered as a density.

What is measured, in one run:

* the whole command a user runs, ``python -m scenes.relu_particles --width 100000
  --batch 10 --frames F --samples-per-frame S --view density`` (10 000 SGD steps with the
  defaults below, 1280x720, final quality), timed as a subprocess: wall time and its
  peak resident memory (``ru_maxrss`` of the child, which includes the encoder it starts);
* the baseline for the training step, in this process: the same SGD steps with torch ops
  (``_TorchTrainer``, what the experiment ran before the fused kernels, and what it runs
  on a GPU) against the fused CPU kernels (``_CpuTrainer``), each for ``--probe-steps``
  steps at the same width, as a ratio.

Targets (issue 12): wall <= 120 s and peak memory <= 3 GB on the 2-core machine.

Run: ``python benchmarks/mean_field_scale.py`` (about 2 minutes); ``--help`` for flags.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dynamics.experiments.relu_particles import (  # noqa: E402
    ReluParticlesConfig,
    TwoLayerReLU,
    _CpuTrainer,
    _TorchTrainer,
    draw_neurons,
)


def probe(width: int, steps: int, batch: int) -> dict[str, float]:
    """Seconds per SGD step at ``width`` (float32), torch ops against the fused kernels."""
    out = {}
    for name, trainer_cls in (("torch ops", _TorchTrainer), ("fused kernels", _CpuTrainer)):
        g = torch.Generator().manual_seed(0)
        a, w, b = draw_neurons(width, 2, g)
        student = TwoLayerReLU(a, w * 0.05, b * 0.05).float()
        trainer = trainer_cls(student)
        x = torch.randn(steps * batch, 2, generator=g)
        y = torch.randn(steps * batch, generator=g)
        trainer.frame(x[:batch], y[:batch], batch, 0.5 * width)  # compile / warm up
        t = time.perf_counter()
        trainer.frame(x, y, batch, 0.5 * width)
        out[name] = (time.perf_counter() - t) / steps
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=100_000, help="neurons m (default: 100000)")
    p.add_argument("--frames", type=int, default=100, help="movie frames (default: 100)")
    p.add_argument(
        "--samples-per-frame",
        type=int,
        default=1000,
        help="fresh samples a frame; steps = frames x samples / batch (default: 1000)",
    )
    p.add_argument("--batch", type=int, default=10, help="mini-batch (default: 10)")
    p.add_argument(
        "--probe-steps", type=int, default=200, help="steps of the per-step probe (default: 200)"
    )
    p.add_argument("--still", type=Path, help="also write the last frame as a PNG here")
    a = p.parse_args()
    steps = a.frames * a.samples_per_frame // a.batch
    ReluParticlesConfig(width=a.width, frames=a.frames, batch=a.batch)  # validate early

    per_step = probe(a.width, a.probe_steps, a.batch)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mean_field.mp4"
        cmd = [
            sys.executable, "-m", "scenes.relu_particles",
            "--width", str(a.width), "--batch", str(a.batch), "--frames", str(a.frames),
            "--samples-per-frame", str(a.samples_per_frame), "--view", "density",
            "--quality", "final", "--out", str(out), "--quiet", "--no-figures",
        ]  # fmt: skip
        if a.still:
            cmd += ["--still", str(a.still)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode:
            sys.exit(f"the command failed:\n{proc.stderr}")
        size = out.stat().st_size
    peak_gb = after.ru_maxrss * 1024 / 2**30  # Linux: KiB; the largest child of this run
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(f"m = {a.width:,}, {steps:,} SGD steps (batch {a.batch}), {a.frames} frames, 1280x720")
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}")
    print()
    print("per SGD step (float32, same width, this process):")
    for name, sec in per_step.items():
        print(f"  {name:14s} {sec * 1e3:8.2f} ms")
    ratio = per_step["torch ops"] / per_step["fused kernels"]
    print(f"  fused kernels / torch ops: {ratio:.1f}x faster")
    print()
    print("the whole command (training + density render + encode):")
    print(f"  wall {wall:7.1f} s   (target <= 120 s: {'MET' if wall <= 120 else 'NOT MET'})")
    print(f"  peak {peak_gb:7.2f} GB  (target <= 3 GB: {'MET' if peak_gb <= 3 else 'NOT MET'})")
    print(f"  CPU  {cpu:7.1f} s   movie {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
