"""Shared fixtures: headless matplotlib, a small synthetic particle recording."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest

from dynamics.recording import Recording, Series


def make_particle_recording(frames: int = 12, n: int = 5, seed: int = 0) -> Recording:
    """Particles on straight lines from near the origin to known end points."""
    rng = np.random.default_rng(seed)
    ends = rng.uniform(-1.5, 1.5, size=(n, 2))
    t = np.linspace(0, 1, frames)[:, None, None]
    positions = (0.05 * ends + t * 0.95 * ends).astype(np.float32)
    steps = np.arange(frames, dtype=np.int64) * 10
    loss = np.geomspace(1e-1, 1e-4, frames)
    meta = {"teacher": {"positions": [[1.0, 1.0], [-1.0, 0.5]]},
            "config": {"width": n, "teachers": 2, "radius": 0.05, "scaling": "mean-field", "step": 0.5, "batch": 20}}
    return Recording({"positions": Series(steps, positions), "loss": Series(steps, loss)}, meta)


def make_mass_recording(frames: int = 12, seed: int = 0) -> Recording:
    """A logistic-regression-like recording: W[0] grows to the largest weight, W[1] shrinks
    to 0, the noise weights drift apart; scalars on a finer step grid than the weights."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, frames)[:, None]
    start = rng.uniform(-0.6, 0.6, 15)
    drift = np.concatenate([[3.0], [-start[1]], rng.uniform(-1.5, 1.5, 13)])
    weight = (start + t * drift)[:, None, :].astype(np.float32)
    steps = np.arange(frames, dtype=np.int64) * 40
    fine = np.arange(4 * (frames - 1) + 1, dtype=np.int64) * 10
    x = np.concatenate([10 * rng.standard_normal((200, 2)), 0.01 * rng.standard_normal((200, 13))], axis=1)
    series = {
        "weight": Series(steps, weight),
        "train_accuracy": Series(fine, np.linspace(0.5, 1.0, len(fine))),
        "test_accuracy": Series(fine, np.linspace(0.5, 0.99, len(fine))),
        "train_loss": Series(fine, np.geomspace(0.7, 0.03, len(fine))),
        "data/x": Series(np.zeros(1, np.int64), x[None].astype(np.float32)),
        "data/y": Series(np.zeros(1, np.int64), (x[:, 0] >= 0)[None].astype(np.float32)),
    }
    meta = {"inputs": {"label": [0], "signal": [0, 1], "noise": list(range(2, 15))},
            "config": {"optimizer": "adam"}, "lr": 1e-4, "boundary": "x[0] >= 0"}
    return Recording(series, meta)


def make_distributions_recording(frames: int = 12, seed: int = 0) -> Recording:
    """Summaries of three tensors whose spread shrinks over training, loss and accuracy."""
    from dynamics.summaries import Summarizer

    rng = np.random.default_rng(seed)
    steps = np.arange(frames, dtype=np.int64) * 10
    summ = Summarizer(bins=20)
    series = {"loss": Series(steps, np.geomspace(2.3, 0.3, frames)),
              "test_accuracy": Series(steps[::3], np.linspace(0.1, 0.9, len(steps[::3])))}
    import torch

    for name, scale in (("act/fc1", 3.0), ("act/act3", 1.0), ("conv2.weight", 0.1)):
        stats, hist, edges = [], [], []
        for t in range(frames):
            values = rng.normal(0, scale * (1 - 0.5 * t / frames), 2000)
            if name == "act/act3":
                values = np.maximum(values, 0)
            s, h, e = summ(torch.from_numpy(values))
            stats.append(s.numpy()), hist.append(h.numpy()), edges.append(e.numpy())
        series[f"stats/{name}"] = Series(steps, np.array(stats))
        series[f"hist/{name}"] = Series(steps, np.array(hist))
        series[f"edges/{name}"] = Series(steps, np.array(edges))
    meta = {"config": {"optimizer": "adam", "lr": 1e-4, "activation": "relu", "init": "truncnormal"}}
    return Recording(series, meta)


def make_spiral_recording(frames: int = 12, grid: int = 40, n: int = 60, seed: int = 0) -> Recording:
    """A decision field that sharpens and turns: ``p = sigmoid(k_t (x cos a_t + y sin a_t))``
    on a ``grid x grid`` lattice over [-4, 4]^2, two small spirals of points, loss every
    step and accuracy with the field."""
    rng = np.random.default_rng(seed)
    extent = [-4.0, 4.0, -4.0, 4.0]
    c = -4 + (np.arange(grid) + 0.5) * 8 / grid
    gx, gy = np.meshgrid(c, c)  # row 0 at the bottom (y = c[0])
    t = np.linspace(0, 1, frames)
    k, a = 0.2 + 3 * t, 0.8 * t
    field = 1 / (1 + np.exp(-k[:, None, None] * (gx * np.cos(a)[:, None, None] + gy * np.sin(a)[:, None, None])))
    theta = rng.uniform(1, 2.5, n // 2) * np.pi
    arm = np.stack([theta * np.cos(theta), theta * np.sin(theta)], axis=1) / 2.5
    x = np.concatenate([-arm, arm]).astype(np.float32)
    y = np.repeat([0.0, 1.0], n // 2).astype(np.float32)
    steps = np.arange(frames, dtype=np.int64) * 25
    fine = np.arange(steps[-1] + 1, dtype=np.int64)
    loss = np.geomspace(0.7, 0.05, len(fine))
    prob = 1 / (1 + np.exp(-k[:, None] * (x[:, 0] * np.cos(a)[:, None] + x[:, 1] * np.sin(a)[:, None])))
    series = {
        "field": Series(steps, field.astype(np.float32)),
        "prob": Series(steps, prob.astype(np.float32)),
        "train_accuracy": Series(steps, np.linspace(0.5, 0.9, frames)),
        "loss": Series(fine, loss),
        "bce": Series(fine, loss * 0.8),
        "data/x": Series(np.zeros(1, np.int64), x[None]),
        "data/y": Series(np.zeros(1, np.int64), y[None]),
    }
    meta = {"grid": {"size": grid, "extent": extent, "points": "cell centres", "origin": "lower"},
            "widths": [2, 8, 1], "config": {"activation": "relu", "lr": 1e-3, "batch": 100, "l2": 1e-3}}
    return Recording(series, meta)


def make_classifier_recording(frames: int = 12, grid: int = 30, n: int = 40, seed: int = 0) -> Recording:
    """The spiral field on a small lattice, two blobs of train/test points, scores at the
    field's steps and a gradient-check error at every iteration."""
    rng = np.random.default_rng(seed)
    spiral = make_spiral_recording(frames, grid)
    x = np.concatenate([rng.normal(-1.5, 0.5, (n // 2, 2)), rng.normal(1.5, 0.5, (n // 2, 2))]).astype(np.float32)
    y = np.repeat([0.0, 1.0], n // 2).astype(np.float32)
    test = np.zeros(n, bool)
    test[::5] = True
    steps = spiral["field"].steps
    fine = np.arange(steps[-1] + 1, dtype=np.int64)
    once = np.zeros(1, np.int64)
    series = {
        "field": spiral["field"],
        "train_loss": Series(steps, np.geomspace(0.7, 0.1, frames)),
        "test_loss": Series(steps, np.geomspace(0.7, 0.2, frames)),
        "train_accuracy": Series(steps, np.linspace(0.5, 1.0, frames)),
        "test_accuracy": Series(steps, np.linspace(0.5, 0.9, frames)),
        "grad_error": Series(fine, 10.0 ** rng.uniform(-11, -8, len(fine))),
        "data/x": Series(once, x[None]), "data/y": Series(once, y[None]), "data/test": Series(once, test[None]),
    }
    meta = {"grid": spiral.metadata["grid"], "lr": 0.1,
            "config": {"dataset": "blobs", "model": "mlp", "hidden": 10, "depth": 1, "activation": "relu",
                       "optimizer": "sgd", "l2": 0.0}}
    return Recording(series, meta)


# A small recording for every registered scene, so registry-wide tests cover each one.
SAMPLE_RECORDINGS = {"relu_particles": make_particle_recording, "mass_shuffle": make_mass_recording,
                     "distributions": make_distributions_recording, "spiral": make_spiral_recording,
                     "classifiers": make_classifier_recording}


@pytest.fixture
def particle_recording() -> Recording:
    return make_particle_recording()
