"""Handouts: a movie's keyframes as a grid on one printed page (PDF or PNG).

A lecture's movie is gone when the slide changes; the handout keeps its key moments. The
keyframes are the movie's chapters, between its first and last step (or ``count`` evenly
spaced steps when it has none, or when ``count`` is given). Each panel is labelled with its
training step (and the chapter's title).

Scenes that can draw one run as a small panel (``small_multiples``: every seeded scene)
are drawn as vectors: each keyframe is the scene's own small panel with matplotlib
artists (``raster = False``), so the PDF stays sharp at any zoom. Other scenes (``curves``,
``render``) are placed as their rendered frames. The file appears whole or not at all.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .writers import check_writable

__all__ = [
    "HANDOUT_FORMATS",
    "write_handout",
    "handout_figure",
    "keyframe_steps",
    "check_handout_path",
]

#: Handout formats by extension: a vector PDF, or a PNG at 200 dpi.
HANDOUT_FORMATS = (".pdf", ".png")
#: A4 landscape, in inches.
PAGE = (11.69, 8.27)
#: Panels per handout: at most this many keyframes fit on one legible page.
MAX_KEYFRAMES = 12
#: Keyframes of a movie without chapters.
DEFAULT_COUNT = 6


def check_handout_path(path: str | os.PathLike) -> Path:
    """Validate a handout path before any work: ``.pdf`` or ``.png``, a writable folder."""
    path = Path(path)
    if path.suffix.lower() not in HANDOUT_FORMATS:
        raise ValueError(
            f"a handout is a .pdf or .png file, got {path.suffix or '(no extension)'!r} in {path}"
        )
    return check_writable(path, "handout")


def keyframe_steps(scene, count: int | None = None) -> list[tuple[float, str]]:
    """``(step, label)`` of the handout's panels: the first frame's step, each chapter's and
    the last frame's (without repeats), or with ``count`` (or no chapters) ``count``
    evenly spaced frames of the movie's play (2 to :data:`MAX_KEYFRAMES`)."""
    if count is not None and not 1 <= count <= MAX_KEYFRAMES:
        raise ValueError(f"a handout holds 1 to {MAX_KEYFRAMES} keyframes, got {count}")
    steps = np.asarray(scene.frame_steps_, dtype=float)
    first, last = float(steps[0]), float(steps[-1])
    if count is None and scene.chapters_:
        keys = [(first, "start")]
        for frame, (_, title) in zip(scene.chapter_frames_, scene.chapters_):
            keys.append((float(steps[frame]), title))  # the step the chapter's frame shows
        keys.append((last, "end"))
        unique: list[tuple[float, str]] = []
        for step, label in keys:  # a chapter at the first or last step replaces start / end
            if unique and unique[-1][0] == step:
                if unique[-1][1] in ("start", "end"):
                    unique[-1] = (step, label)
                continue
            unique.append((step, label))
        return unique[:MAX_KEYFRAMES]
    n = count or DEFAULT_COUNT
    order = np.unique(np.linspace(0, len(steps) - 1, n).round().astype(int))
    return [(float(steps[i]), "") for i in order]


def _grid(n: int) -> tuple[int, int]:
    cols = 1 if n == 1 else 2 if n <= 4 else 3 if n <= 9 else 4
    return math.ceil(n / cols), cols


def _vector_scene(scene_cls: type) -> type:
    """The same scene drawing with matplotlib artists only (no frame-buffer layers)."""
    return type(scene_cls.__name__, (scene_cls,), {"raster": False, "__module__": __name__})


def write_handout(scene, path: str | os.PathLike, *, count: int | None = None) -> Path:
    """Write ``scene``'s keyframes (:func:`keyframe_steps`) as a grid on one page: a vector
    PDF or a 200-dpi PNG, by the extension of ``path``. Returns the path written."""
    path = check_handout_path(path)
    fig, _ = handout_figure(scene, count=count)
    return _save(fig, path)


def handout_figure(scene, *, count: int | None = None) -> tuple[Figure, list[Any]]:
    """The handout page as a figure, and the axes of its panels in keyframe order."""
    from .base import Cell, PanelScene, fit_to_aspect

    keys = keyframe_steps(scene, count)
    rows, cols = _grid(len(keys))
    fig = Figure(figsize=PAGE)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    heading = scene.heading() if isinstance(scene, PanelScene) else type(scene).__name__
    fig.text(0.04, 0.955, heading, fontsize="x-large", weight="bold", va="center")
    subtitle = scene.subtitle() if isinstance(scene, PanelScene) else ""
    if subtitle:
        fig.text(0.04, 0.915, subtitle, fontsize="small", color="#444444", va="center")
    vector = isinstance(scene, PanelScene) and scene.small_multiples and hasattr(scene, "config")
    vector = vector and not getattr(scene, "recordings", None)  # a sweep's grid: its frames
    top, bottom, hspace = 0.86, 0.05, (0.4 if vector else 0.2)
    wspace = 0.3 if vector else 0.06
    aspect = scene.small_panel_aspect if vector else scene.options.width / scene.options.height
    left, right = fit_to_aspect(
        fig, rows, cols, aspect, top=top, bottom=bottom, left=0.06, right=0.97,
        hspace=hspace, wspace=wspace,
    )  # fmt: skip
    gs = fig.add_gridspec(
        rows, cols, top=top, bottom=bottom, left=left, right=right, hspace=hspace, wspace=wspace
    )
    if vector:
        cls = _vector_scene(type(scene))
        shared = cls.sweep_scales([scene.recording], scene.config)
    axes = []
    for k, (step, label) in enumerate(keys):
        r, c = divmod(k, cols)
        ax = fig.add_subplot(gs[r, c])
        axes.append(ax)
        if vector:
            cell = Cell(r, c, rows, cols)
            panel = cls.small_panel(ax, scene.recording, scene.config, shared, cell)
            _still(panel, step)
        else:
            frame = scene.frame(int(np.searchsorted(scene.frame_steps_, step, side="left")))
            ax.imshow(frame, interpolation="antialiased")
            ax.set_axis_off()
        ax.set_title(_label(step, label), fontsize="medium", loc="left")
    return fig, axes


def _label(step: float, label: str) -> str:
    text = f"step {int(round(step)):,d}"
    return f"{text} · {label}" if label and label not in ("start", "end") else text


def _still(panel: Any, step: float) -> None:
    """Draw a panel at ``step`` once, as a picture: its permanent marks up to the step, its
    moving artists at it, every artist kept in the figure's own drawing."""
    marks: Sequence[Any] = panel.stamp(0, int(math.floor(step)) + 1)
    panel.draw(step if step != int(step) else int(step))
    for artist in [*panel.moving(), *panel.stamped(), *marks]:
        artist.set_animated(False)
    readout = getattr(panel, "readout", None)  # the step's own figure, not the run's
    text = readout(step) if readout is not None else None
    if text:
        panel.ax.set_xlabel(text, fontsize="small")


def _save(fig: Figure, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        if path.suffix.lower() == ".pdf":
            fig.savefig(tmp, format="pdf", metadata={"Creator": "nndynamics"})
        else:
            fig.savefig(tmp, format="png", dpi=200)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
