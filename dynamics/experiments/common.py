"""Helpers every experiment module shares: seed streams, library versions, data splits."""

from __future__ import annotations

import contextlib
import math
import os
import platform

import numpy as np
import torch

__all__ = [
    "stream_seed",
    "library_versions",
    "stratified_split",
    "one_torch_thread",
    "check_finite",
    "available_memory",
]


def stream_seed(seed: int, stream: str) -> int:
    """An independent torch seed for each named random stream of a run.

    Streams (data, initialisation, split, teacher ...) never share random numbers, even
    when two seeds are equal: in the ReLU particles run a shared stream made the student's
    first neurons copies of the teacher's when ``teacher_seed == seed``.
    """
    key = [int(seed) & 0xFFFFFFFF, *stream.encode()]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0] >> 1)


def library_versions() -> dict[str, str]:
    """Versions that a recording notes so a run can be reproduced."""
    import matplotlib

    from .. import __version__

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "matplotlib": matplotlib.__version__,
        "nndynamics": __version__,
    }


def stratified_split(labels: torch.Tensor, test_fraction: float, generator: torch.Generator):
    """Indices ``(train, test)`` that keep each class's share in both parts.

    Each class is shuffled with ``generator`` and its first ``round(test_fraction * n_c)``
    members go to the test part. Both index tensors are sorted.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    train, test = [], []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        k = round(test_fraction * len(members))
        test.append(members[:k])
        train.append(members[k:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values


@contextlib.contextmanager
def one_torch_thread():
    """Run the block on one torch thread, then restore the previous count.

    The experiments' ops are small: on a shared 2-core machine a second thread mostly
    adds contention (PERFORMANCE.md: 9x slower steps with another busy process), and
    sweeps run one experiment per core.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def available_memory() -> int | None:
    """Bytes of memory a new allocation can use now (Linux ``MemAvailable``; else the
    physical memory; None when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_finite(step: int, hint: str = "try a smaller --lr", **values: float) -> None:
    """Stop a diverged run: raise FloatingPointError naming the step and the series.

    Called right after the values are logged, so the recording keeps every snapshot up to
    and including the bad one; leaving the recorder's ``with`` block by the exception
    closes it marked incomplete (a sweep reports the point as failed, and reruns it).
    """
    for name, value in values.items():
        if not math.isfinite(value):
            raise FloatingPointError(
                f"training diverged: {name} is {value} at step {step} (series {name!r}; {hint})"
            )


def milestone_chapters(recording, milestones) -> list[list]:
    """Chapters at the moments an experiment knows: ``[step, title]`` of the first snapshot
    at which each milestone holds, by step (milestones never reached, or whose series is
    missing, are left out). Written into ``metadata["chapters"]``, they are the chapters a
    movie of the run gets by default (``--chapter`` replaces them).

    ``milestones``: ``(series, rule, level, title)`` with rule ``"fraction"`` (the series
    falls to ``level`` times its first value or below, e.g. 0.1: it fell 10x) or
    ``"above"`` (it reaches ``level`` or more, e.g. an accuracy of 0.9).
    """
    chapters = []
    for name, rule, level, title in milestones:
        if name not in recording:
            continue
        series = recording[name]
        values = np.asarray(series.values, dtype=float)
        if values.ndim != 1 or len(values) < 2:
            continue
        if rule == "fraction":
            hit = np.flatnonzero(values[1:] <= level * values[0]) + 1
        elif rule == "above":
            hit = np.flatnonzero(values >= level)
        else:
            raise ValueError(f"unknown milestone rule {rule!r}; use 'fraction' or 'above'")
        if len(hit):
            chapters.append([int(series.steps[hit[0]]), title])
    return sorted(chapters, key=lambda c: c[0])
