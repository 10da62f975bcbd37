"""The movie clock: which training step each frame of a movie shows.

A movie has two lengths that need not agree: the recording's (its snapshots, 50 or 5000)
and the lecture's (the slot a slide allows). By default a movie has one frame per snapshot
(every ``stride``-th), so its length is the snapshot count over fps, and each frame shows a
recorded step exactly. :func:`frame_steps` puts frames on a clock instead, when asked:

* ``duration`` seconds: ``round(duration * fps)`` frames whatever the number of snapshots
  (more frames than snapshots: frames fall between snapshots, and panels blend the two
  around them, :func:`scenes.plotting.interpolated`; fewer: snapshots are skipped);
* ``time``, how movie time ``t`` (0 at the first frame, 1 at the last before the hold)
  maps to the training step between the first and last snapshot ``s0``, ``s1``:

  - ``linear``: the step grows in proportion to ``t``;
  - ``log``: ``log(1 + step)`` does (with log-spaced snapshots the natural clock: every
    decade of training gets the same screen time);
  - ``power:K``: ``step - s0`` is proportional to ``t**K``; ``K > 1`` slows the start (the
    mean-field papers' power-law time), ``K < 1`` the end;

* ``hold`` seconds of the last frame repeated at the end.

Steps are floats on a clock (between snapshots), and exactly ``s0`` and ``s1`` at the ends.
The clock is computed once from the timeline and the options, so every worker process
renders the same frame ``i``.
"""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["TIME_MAPPINGS", "parse_time", "warp", "frame_steps"]

#: The movie-time mappings ``--time`` takes (``power`` with its exponent: ``power:2``).
TIME_MAPPINGS = ("linear", "log", "power:K")


def parse_time(spec: str) -> tuple[str, float]:
    """``"linear"`` -> ``("linear", 1.0)``, ``"log"`` -> ``("log", 0.0)``, ``"power:2"`` ->
    ``("power", 2.0)``. Raises ValueError naming the choices for anything else, and for a
    power that is not a positive finite number."""
    text = str(spec).strip().lower()
    if text == "linear":
        return "linear", 1.0
    if text == "log":
        return "log", 0.0
    m = re.fullmatch(r"power:(.+)", text)
    if m:
        try:
            k = float(m.group(1))
        except ValueError:
            k = math.nan
        if not (math.isfinite(k) and 0 < k <= 100):
            raise ValueError(
                f"time power:K needs an exponent K between 0 and 100 (K > 1 slows the start), "
                f"got {spec!r}"
            )
        return "power", k
    raise ValueError(f"time must be linear, log or power:K (e.g. power:2), got {spec!r}")


def warp(t: np.ndarray, s0: float, s1: float, time: str = "linear") -> np.ndarray:
    """Training steps at movie times ``t`` in [0, 1] between steps ``s0`` and ``s1``, by the
    ``time`` mapping (see the module docstring); ``warp(0) = s0`` and ``warp(1) = s1``."""
    kind, k = parse_time(time)
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    if kind == "log":
        offset = min(s0, 0.0)  # log(1 + step) needs step >= 0; shift a timeline that starts below
        a, b = np.log1p(s0 - offset), np.log1p(s1 - offset)
        steps = offset + np.expm1(a + t * (b - a))
    else:
        steps = s0 + t**k * (s1 - s0)
    steps = np.clip(steps, s0, s1)
    steps[t == 0.0] = s0  # exact ends: the first and last frame show recorded snapshots
    steps[t == 1.0] = s1
    return np.maximum.accumulate(steps) if len(steps) else steps


def frame_steps(
    steps: np.ndarray,
    *,
    fps: float,
    duration: float = 0.0,
    time: str = "linear",
    hold: float = 0.0,
    frames: int | None = None,
) -> np.ndarray:
    """The training step of every frame of a movie on the clock, as floats.

    Parameters
    ----------
    steps : (T,) increasing array
        The timeline's recorded steps (only the first and the last matter).
    fps : float
        Frames per second.
    duration : float
        Seconds before the hold: ``max(1, round(duration * fps))`` frames; 0: ``frames``.
    time : str
        ``linear``, ``log`` or ``power:K``.
    hold : float
        Seconds the last frame is repeated: ``round(hold * fps)`` more frames.
    frames : int, optional
        Frames before the hold when ``duration`` is 0 (the default movie's count).
    """
    steps = np.asarray(steps)
    if duration > 0:
        n = max(1, round(duration * fps))
    elif frames is not None:
        n = max(1, int(frames))
    else:
        raise ValueError("frame_steps needs a duration or a number of frames")
    s0, s1 = float(steps[0]), float(steps[-1])
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.ones(1)
    play = warp(t, s0, s1, time)
    return np.concatenate([play, np.full(round(hold * fps), play[-1])])
