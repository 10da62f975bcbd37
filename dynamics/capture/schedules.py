"""Schedules: which training steps the recorder captures."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

__all__ = ["Schedule", "every", "at_steps", "log_spaced"]


class Schedule:
    """A predicate over training steps; ``step in schedule`` says whether to capture.

    Build one with :func:`every`, :func:`log_spaced` or :func:`at_steps`, or pass an int
    (every k steps) or a list of steps wherever a schedule is expected.
    """

    def __init__(self, contains: Callable[[int], bool], description: str):
        self._contains = contains
        self.description = description

    def __contains__(self, step: int) -> bool:
        return self._contains(int(step))

    def __repr__(self) -> str:
        return f"Schedule({self.description})"

    @staticmethod
    def coerce(spec: "Schedule | int | Iterable[int]") -> "Schedule":
        """Turn an int (every k), an iterable of steps, or a Schedule into a Schedule."""
        if isinstance(spec, Schedule):
            return spec
        if isinstance(spec, (int, np.integer)):
            return every(int(spec))
        return at_steps(spec)


def every(k: int) -> Schedule:
    """Capture at steps 0, k, 2k, ..."""
    if k < 1:
        raise ValueError(f"schedule: every k steps needs k >= 1, got {k}")
    return Schedule(lambda s: s % k == 0, f"every {k}")


def at_steps(steps: Iterable[int]) -> Schedule:
    """Capture exactly at the listed steps."""
    chosen = frozenset(int(s) for s in steps)
    if any(s < 0 for s in chosen):
        raise ValueError("schedule: steps must be >= 0")
    return Schedule(chosen.__contains__, f"{len(chosen)} listed steps")


def log_spaced(n: int, last: int) -> Schedule:
    """About ``n`` steps spaced evenly in log scale from 1 to ``last``, plus step 0."""
    if n < 1 or last < 1:
        raise ValueError(f"schedule: log_spaced needs n >= 1 and last >= 1, got n={n}, last={last}")
    steps = {0, *np.unique(np.round(np.geomspace(1, last, n)).astype(np.int64)).tolist()}
    sched = at_steps(steps)
    sched.description = f"{len(steps)} log-spaced steps up to {last}"
    return sched
