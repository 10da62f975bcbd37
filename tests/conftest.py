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


@pytest.fixture
def particle_recording() -> Recording:
    return make_particle_recording()
