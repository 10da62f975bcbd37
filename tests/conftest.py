"""Shared fixtures: headless matplotlib, and the scenes' example recordings under the names
the older tests use."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from dynamics.recording import Recording  # noqa: E402


def make_particle_recording(frames: int = 12, n: int = 5, seed: int = 0) -> Recording:
    from scenes.relu_particles import ReluParticlesScene

    return ReluParticlesScene.example(frames, n, seed)


def make_mass_recording(frames: int = 12, seed: int = 0) -> Recording:
    from scenes.mass_shuffle import MassShuffleScene

    return MassShuffleScene.example(frames, seed)


def make_distributions_recording(frames: int = 12, seed: int = 0) -> Recording:
    from scenes.distributions import DistributionsScene

    return DistributionsScene.example(frames, seed)


def make_spiral_recording(
    frames: int = 12, grid: int = 40, n: int = 60, seed: int = 0
) -> Recording:
    from scenes.spiral import SpiralScene

    return SpiralScene.example(frames, grid, n, seed)


def make_classifier_recording(
    frames: int = 12, grid: int = 30, n: int = 40, seed: int = 0
) -> Recording:
    from scenes.classifiers import ClassifiersScene

    return ClassifiersScene.example(frames, grid, n, seed)


@pytest.fixture
def particle_recording() -> Recording:
    return make_particle_recording()


@pytest.fixture(scope="session")
def zoo_recording(tmp_path_factory):
    """``zoo_recording(name)``: ``(recording, weights, grads)`` of the zoo member ``name``
    (tests/zoo/), recorded once per session."""
    from zoo import build, record

    root = tmp_path_factory.mktemp("zoo")
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = record(build(name), root / f"{name}.rec")
        return cache[name]

    return get


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (setup.cfg): one worker per core, at most 8 (each imports torch and
    matplotlib: many more would cost memory, not time)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 8))


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for a module's browser tests (Playwright's sync API allows one
    driver at a time); skipped, or failed under NNDYNAMICS_REQUIRE_BROWSER, where there is
    none (tests/test_player.py's ``browser``)."""
    from test_player import CHROMIUM, browser

    api = browser()
    with api.sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chrome
        finally:
            chrome.close()
