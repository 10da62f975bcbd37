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

* ``hold`` seconds of the last frame repeated at the end;
* chapters (:func:`parse_chapter`, :func:`insert_chapters`): at the first frame that reaches
  a chapter's step the movie holds for a set time while the chapter's title is shown.

Steps are floats on a clock (between snapshots), and exactly ``s0`` and ``s1`` at the ends.
The clock is computed once from the timeline and the options, so every worker process
renders the same frame ``i``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

__all__ = [
    "TIME_MAPPINGS",
    "parse_time",
    "warp",
    "frame_steps",
    "parse_chapter",
    "insert_chapters",
    "MAX_CHAPTER_TITLE",
]

#: The longest chapter title (characters): a title card is one line on the frame.
MAX_CHAPTER_TITLE = 60

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


def parse_chapter(spec: Any) -> tuple[int, str]:
    """``"500:Loss falls"`` -> ``(500, "Loss falls")``; a ``(step, title)`` pair passes through
    checked. The step is a non-negative integer (``1e4`` and ``10,000`` are accepted), the
    title one line of at most :data:`MAX_CHAPTER_TITLE` characters. Raises ValueError."""
    if isinstance(spec, str):
        step_text, sep, title = spec.partition(":")
        if not sep:
            raise ValueError(f"a chapter is STEP:TITLE (e.g. 500:Loss falls), got {spec!r}")
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        step_text, title = spec
    else:
        raise ValueError(f"a chapter is STEP:TITLE or a (step, title) pair, got {spec!r}")
    try:
        value = float(str(step_text).replace(",", "").replace("_", "").strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0 and value == int(value) and value < 2**62):
        raise ValueError(f"a chapter's step must be a whole number >= 0, got {step_text!r}")
    title = str(title).strip()
    if not title or "\n" in title:
        raise ValueError(f"a chapter needs a one-line title after the colon, got {spec!r}")
    if len(title) > MAX_CHAPTER_TITLE:
        raise ValueError(
            f"chapter title {title[:20]!r}... has {len(title)} characters; at most "
            f"{MAX_CHAPTER_TITLE} fit on a title card"
        )
    return int(value), title


def insert_chapters(
    steps: np.ndarray, chapters: Sequence[tuple[int, str]], hold: int, show: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Where chapters fall in a movie whose frame ``j`` shows step ``steps[j]`` (increasing).

    A chapter at step ``s`` starts at the first frame showing a step >= ``s`` (the last frame
    if none does). That frame is repeated ``hold`` more times, and its title card is shown on
    it and its repeats (with ``hold`` 0, on it and the next ``show - 1`` frames instead).

    Returns ``order`` (for each frame of the new movie, the frame of the old one it repeats),
    ``card`` (the chapter shown on each new frame, -1 for none) and ``starts`` (the new
    frame where each chapter begins, in the order of ``chapters``).
    """
    steps = np.asarray(steps, dtype=float)
    n = len(steps)
    at = [min(int(np.searchsorted(steps, step, side="left")), n - 1) for step, _ in chapters]
    by_frame: dict[int, list[int]] = {}
    for k, j in enumerate(at):
        by_frame.setdefault(j, []).append(k)
    order: list[int] = []
    card: list[int] = []
    starts = [0] * len(chapters)
    for j in range(n):
        for k in by_frame.get(j, ()):
            starts[k] = len(order)
            order += [j] * (1 + hold)
            card += [k] * (1 + hold)
        if j not in by_frame:
            order.append(j)
            card.append(-1)
    card_arr = np.asarray(card, dtype=np.int64)
    if hold == 0:  # no pause: the title stays up while the movie plays on
        for k, start in enumerate(starts):
            span = card_arr[start : start + max(1, show)]
            span[span == -1] = k
    return np.asarray(order, dtype=np.int64), card_arr, starts
