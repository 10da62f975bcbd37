"""Scene base classes: the frame engine (:class:`Scene`), the scene contract (:class:`PanelScene`).

:class:`Scene` owns the figure, the frame loop, blitting, worker processes and the hand-off
to a writer. It calls three hooks:

* ``setup(fig)`` builds every artist once; artists that change between frames are passed
  to :meth:`Scene.animate` and are left out of the cached background;
* ``draw_frame(i)`` updates the animated artists for frame ``i`` (``set_offsets``,
  ``set_data``, ``set_text``), nothing else;
* ``stamp(lo, hi)``: permanent marks (a particle's path) for frames ``lo..hi-1``, drawn
  once into the background and kept for every later frame, so a whole path costs one draw
  per frame, not one per past position.

It draws the static background once, then per frame restores it, draws only the animated
artists and hands the canvas buffer to the writer. Frames are split into blocks rendered
by worker processes, and encoded in order by the parent.

:class:`PanelScene` is what every registered scene subclasses. A subclass *declares* what
it reads and shows, and builds panels; the base class acts on the declarations:

* ``requires`` (series names) or :meth:`PanelScene.check` (anything else): checked before
  anything is drawn, with an error naming what is missing and what is there;
* ``series_fields`` (config fields that name series, ``show`` by default): every name is
  resolved by :func:`resolve_series` before :meth:`PanelScene.check` runs, so a scene
  takes the names its titles show (a summary's label such as ``activation fc1`` as well
  as its series ``stats/act/fc1``) and a misspelt one fails in one line that suggests
  the closest names (``optional_series``: those whose default a recording may lack);
* :meth:`Scene.note` (:meth:`Scene.note_choice`): a scene that chooses what to draw itself
  says what it chose and what else there was (``notes_``; the command line prints each
  note on stderr), and its title names it;
* :meth:`PanelScene.timeline`: the one source of the training steps that frames show;
* ``title`` (or :meth:`PanelScene.heading`), the subtitle (the recording's
  ``metadata["caption"]``, written by the experiment that knows its config) and ``readout``
  (series shown as numbers beside the step): drawn and updated by the base class;
* ``compare_scene``: the scene that draws several recordings given together (the
  dashboard's: :class:`scenes.compare.CompareScene`, overlaid curves and side-by-side
  distributions of runs on one timeline);
* ``small_multiples``: the scene can draw one run as a cell of a sweep's grid
  (:meth:`PanelScene.small_panel`, given a :class:`Cell`); ``sweep_scales`` and
  ``sweep_figures`` refine it;
* :meth:`PanelScene.example`: a small recording the scene draws, for its conformance test.

A subclass never overrides ``__init__``, never picks a codec and never parses an
experiment's config.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import html
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dynamics.recording import Recording
from dynamics.sweep import usable_cpus

from .clock import frame_steps, insert_chapters, parse_chapter, parse_time
from .writers import Writer, open_writer

__all__ = [
    "RenderOptions",
    "Scene",
    "PanelScene",
    "Cell",
    "Field",
    "QUALITY_PRESETS",
    "grid_axes",
    "fit_to_aspect",
    "new_figure",
    "series_aliases",
    "resolve_series",
    "closest_names",
]

# Named presets of what a frame is; each writer has its own presets of the same names for
# its encoder (scenes.writers). All three are the same 12.8 x 7.2 inch figure, so a scene
# has one layout, and text is sized in points: the cap height of "small" text (legends,
# captions, 8.3 pt) is 4.2 px at draft, 8.4 px at final, 12.7 px at notebook, and the
# smallest text of any scene ("x-small" labels, tick exponents) 3.5, 7.0 and 10.5 px
# (tests/test_legibility.py measures every scene at notebook, subscripts included).
# * draft: tests and quick looks; not legible (4 px glyphs);
# * final: lecture movies, the command line's default;
# * notebook: what Scene.show and Jupyter show: every text at least 9 px high (a legend's
#   subscripts 8.9 px), native on a 1080p projector (a 500-frame player of a moving
#   decision field is 1.5 MB, 1.1 MB at draft; rendering and encoding it takes 4x as long
#   as draft).
QUALITY_PRESETS = {
    "draft": {"width": 640, "height": 360, "dpi": 50},
    "final": {"width": 1280, "height": 720, "dpi": 100},
    "notebook": {"width": 1920, "height": 1080, "dpi": 150},
}


#: The largest frame (width, height) a render accepts: 8K UHD.
MAX_SIZE = (7680, 4320)


@dataclass(frozen=True)
class RenderOptions:
    """How frames are made (independent of what a scene draws and of how it is encoded).

    Attributes
    ----------
    width, height : int
        Frame size in pixels; both must be even (H.264 with yuv420p needs it), at most
        7680x4320.
    dpi : float
        Dots per inch, 10 to 1000: the figure is ``width/dpi`` by ``height/dpi`` inches, so a
        lower dpi at the same size gives larger text and markers. Text is sized in points,
        so glyphs are ``dpi/72`` pixels per point: the presets keep one 12.8 x 7.2 inch
        layout, where the smallest text's cap height is 3.5 px at ``draft`` (illegible),
        7 px at ``final`` and 10.5 px at ``notebook`` (see ``QUALITY_PRESETS``).
    fps : float
        Frames per second of the movie, 0.1 to 240.
    stride : int
        Render every ``stride``-th snapshot (a faster, shorter movie).
    workers : int
        Processes that render frames, 0 to 64 (0: one per CPU core but one, which the encoder
        gets, at most 4; 1: in this process).
    progress : bool
        Show a progress bar over frames.
    duration : float
        Seconds the movie plays (the final hold and chapter pauses come on top), whatever
        the number of snapshots: frames are placed on a movie clock and blend the
        snapshots around them; 0: one frame per snapshot (every stride-th), at most 3600.
    time : str
        How movie time maps to training steps: linear, log (log(1 + step) grows evenly) or
        power:K (step grows as t^K; K > 1 slows the start).
    hold : float
        Seconds the last frame stays on screen at the end, at most 3600.
    chapters : tuple of (int, str), optional
        Chapters as ``(step, title)`` pairs (or ``"STEP:TITLE"`` strings): at the first
        frame that reaches a chapter's step the movie holds while a title card shows the
        title, and the MP4 lists the chapter (with a WebVTT file beside it). None: the
        chapters the experiment chose (``metadata["chapters"]`` of the recording), if any;
        ``()``: none.
    chapter_hold : float
        Seconds the movie pauses at each chapter, its title card on the frame (0: no pause,
        the title shows for a second while the movie plays on).
    """

    width: int = 1280
    height: int = 720
    dpi: float = 100
    fps: float = 30
    stride: int = 1
    workers: int = 0
    progress: bool = True
    duration: float = 0.0
    time: str = "linear"
    hold: float = 0.0
    chapters: tuple[tuple[int, str], ...] | None = None
    chapter_hold: float = 2.0

    def __post_init__(self):
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(
                f"frame size must be even and at least 16x16 pixels, got {self.width}x{self.height}"
            )
        if self.width > MAX_SIZE[0] or self.height > MAX_SIZE[1]:
            raise ValueError(
                f"frame size {self.width}x{self.height} is larger than "
                f"{MAX_SIZE[0]}x{MAX_SIZE[1]} (8K)"
            )
        if not self.dpi > 0:
            raise ValueError(f"dpi must be positive, got {self.dpi}")
        if not 10 <= self.dpi <= 1000:
            raise ValueError(f"dpi must be between 10 and 1000, got {self.dpi}")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if not 0.1 <= self.fps <= 240:
            raise ValueError(f"fps must be between 0.1 and 240, got {self.fps}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not 0 <= self.workers <= 64:
            raise ValueError(f"workers must be between 0 and 64, got {self.workers}")
        if self.chapters is not None:
            parsed = tuple(parse_chapter(c) for c in self.chapters)
            object.__setattr__(self, "chapters", tuple(sorted(parsed, key=lambda c: c[0])))
        for name in ("duration", "hold", "chapter_hold"):
            if not 0 <= getattr(self, name) <= 3600:
                raise ValueError(
                    f"{name} must be between 0 and 3600 seconds, got {getattr(self, name)}"
                )
        parse_time(self.time)
        if self.duration and self.stride != 1:
            raise ValueError(
                "give stride or duration, not both: with a duration the clock picks the frames"
            )

    @property
    def on_clock(self) -> bool:
        """Frames are placed on a movie clock (a duration or a time mapping other than
        linear was asked for), not one per snapshot."""
        return bool(self.duration) or parse_time(self.time)[0] != "linear"

    @classmethod
    def preset_for(cls, quality: str, **overrides: Any) -> "RenderOptions":
        """Options of a named quality preset ("draft", "final" or "notebook"), with overrides."""
        if quality not in QUALITY_PRESETS:
            raise ValueError(
                f"unknown quality {quality!r}; choose one of {', '.join(QUALITY_PRESETS)}"
            )
        return cls(**{**QUALITY_PRESETS[quality], **overrides})

    def resolved_workers(self, frames: int) -> int:
        # auto: one core is left to the encoder (measured on 2 cores, 150 frames of the
        # particle benchmark: 14.2 frames/s rendering in-process, 10.9 with 2 workers)
        n = self.workers or min(usable_cpus() - 1, 4)
        return max(1, min(n, frames // 8 or 1))  # tiny renders are not worth starting processes


@dataclass(frozen=True)
class Cell:
    """Where a small panel sits in a sweep's grid (row and column from 0, of rows x cols)."""

    row: int
    col: int
    rows: int
    cols: int

    @property
    def last_row(self) -> bool:
        return self.row == self.rows - 1

    @property
    def first_col(self) -> bool:
        return self.col == 0

    @property
    def last_col(self) -> bool:
        return self.col == self.cols - 1

    @property
    def scale(self) -> float:
        """1 for a single panel, smaller for a denser grid (for marker sizes)."""
        return 1 / max(self.rows, self.cols)


@dataclass(frozen=True)
class Field:
    """One value of a scene's readout: ``Field("loss", "loss", "{:.2e}")`` shows the latest
    snapshot of series ``loss`` at or before each frame's step. A field whose series the
    recording lacks is left out. ``index``: the element of each snapshot shown, for a series
    of vectors (``0``: the top eigenvalue of a ``(T, k)`` sharpness; a scalar series is its
    own element 0)."""

    series: str
    label: str
    fmt: str = "{:.4g}"
    index: int | None = None

    def pick(self, snapshot) -> float:
        """The number shown for one snapshot of the series."""
        value = np.asarray(snapshot, dtype=float)
        return float(value if self.index is None else value.reshape(-1)[self.index])


def split_names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the comma-separated names a scene's config takes."""
    return [t.strip() for t in text.split(",") if t.strip()]


def series_aliases(recording: Recording) -> dict[str, str]:
    """Every name by which a scene takes a series, mapped to the series' own name.

    One name per series, everywhere: a series is taken by its name (``stats/act/fc1``), and
    a summarised tensor also by the label that titles show for it
    (:attr:`dynamics.recording.Summary.label`: ``activation fc1``, ``gradient of
    fc1.weight``, ``fc1.weight``), which stands for its ``stats`` series. A series' own
    name wins over a label that spells the same (a parameter and its summary).
    """
    aliases = {label: s.stats for label, s in recording.summaries().items()}
    aliases.update((name, name) for name in recording.keys())
    return aliases


def closest_names(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """The (at most ``n``) ``candidates`` closest to ``name`` (:func:`difflib.get_close_matches`),
    the best first; never empty while there are candidates (a name like none of them gets the
    least unlike ones)."""
    candidates = list(dict.fromkeys(candidates))
    return difflib.get_close_matches(name, candidates, n, 0.6) or difflib.get_close_matches(
        name, candidates, n, 0.0
    )


def resolve_series(
    recording: Recording,
    name: str,
    *,
    what: str = "series",
    aliases: dict[str, str] | None = None,
) -> str:
    """The series that ``name`` (a series name or a title's label, see
    :func:`series_aliases`) stands for.

    ``aliases`` replaces :func:`series_aliases` where a scene takes other names, or fewer
    (the summaries only, and the role its titles give each one: ``pre-activation fc1``).

    Raises
    ------
    KeyError
        One line naming ``name`` and the closest names the recording has (not all of
        them: a transformer's recording has hundreds).
    """
    aliases = series_aliases(recording) if aliases is None else aliases
    if name in aliases:
        return aliases[name]
    where = f" {recording.path}" if recording.path else ""
    close = ", ".join(repr(c) for c in closest_names(name, aliases))
    raise KeyError(
        f"recording{where} has no {what} {name!r}; closest: {close or 'none'} "
        f"({len(recording.keys())} series in all)"
    )


def frame_indices(n: int, stride: int) -> np.ndarray:
    """Every ``stride``-th of ``n`` snapshots, always ending on the last one."""
    idx = np.arange(0, n, stride)
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx


def new_figure(options: RenderOptions) -> Figure:
    """A figure with an Agg canvas of exactly ``options.width x options.height`` pixels."""
    # +0.01 px: the canvas truncates width*dpi, and 1366/96*96 can land a hair under 1366
    fig = Figure(
        figsize=((options.width + 0.01) / options.dpi, (options.height + 0.01) / options.dpi),
        dpi=options.dpi,
    )
    FigureCanvasAgg(fig)
    return fig


def figure_to_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Draw ``fig`` and write it as a PNG (whole, or not at all). Returns the path."""
    fig.canvas.draw()
    with open_writer(path) as writer:
        writer.write(np.asarray(fig.canvas.buffer_rgba()))
    return writer.path


@dataclass
class _TitleCard:
    """The chapters' title card: its band, its two texts and each chapter's ``(label,
    title)`` (the layout is the same for every chapter)."""

    box: Any
    title: Any
    label: Any
    texts: list[tuple[str, str]]


def _free_rooms(obstacles: Sequence[Any], frame: Any, *, top_only: bool) -> list[Any]:
    """Rectangles of ``frame`` that overlap none of ``obstacles`` (pixel boxes), each as wide
    as the obstacles beside it allow: for every pair of edges from the obstacles' tops and
    bottoms (``top_only``: the frame's top and any other), the gaps between the obstacles
    in that band."""
    from matplotlib.transforms import Bbox

    ys = sorted(
        {frame.y0, frame.y1}
        | {min(max(y, frame.y0), frame.y1) for b in obstacles for y in (b.y0, b.y1)}
    )
    rooms = []
    for y1 in [frame.y1] if top_only else ys:
        for y0 in (y for y in ys if y < y1):
            blocked = sorted((b.x0, b.x1) for b in obstacles if b.y0 < y1 and b.y1 > y0)
            x = frame.x0
            for a, b in [*blocked, (frame.x1, frame.x1)]:
                if min(a, frame.x1) > x:
                    rooms.append(Bbox.from_extents(x, y0, min(a, frame.x1), y1))
                x = max(x, b)
    return rooms


# Set in the parent just before worker processes fork; each worker builds its own canvas.
_WORKER_SCENE: "Scene | None" = None


def _worker_init() -> None:
    _WORKER_SCENE._build()


def _worker_render(frames: Sequence[int]) -> np.ndarray:
    return np.stack([_WORKER_SCENE._render_frame(i) for i in frames])


class Scene:
    """The frame engine: a Recording in, uint8 RGB frames out (see the module docstring).

    Parameters
    ----------
    recording : Recording
        What to draw; the scene never needs the model.
    config : dataclass, optional
        The scene's frozen config (``Config`` class attribute gives the default).
    options : RenderOptions, optional
        Frame size, dpi, fps, stride, workers.

    Attributes
    ----------
    steps_ : ndarray of int
        The training steps of the timeline (:meth:`timeline`).
    frames_ : ndarray of int
        Index into ``steps_`` of each frame: every ``stride``-th, always ending on the last,
        then the held frames; on a movie clock, the latest snapshot at or before the frame.
    frame_steps_ : ndarray of float
        The training step each frame shows: ``steps_[frames_]`` by default; on a movie
        clock (``duration`` or ``time`` in the options, :mod:`scenes.clock`) fractional
        steps between snapshots, computed once here, so every worker draws the same frame.
    interpolates_ : bool
        Frames lie on a movie clock: panels are drawn at fractional steps and blend the
        snapshots around them (:func:`scenes.plotting.interpolated`).
    chapters_ : list of (int, str)
        The movie's chapters, ``(step, title)`` by step.
    chapter_frames_ : list of int
        The frame where each chapter begins (its title card and hold follow).
    card_ : ndarray of int
        The chapter whose title card frame ``i`` shows (-1: none). The card is a band in
        free room at the top, over the heading (:meth:`cover_with_card`): it overlaps no
        other artist, so it hides no data; it counts chapters as :meth:`chapter_marks` does.
    notes_ : list of str
        What the scene chose to draw by itself, one line each (:meth:`note`); the command
        line prints them on stderr.
    """

    #: The scene's config dataclass.
    Config: ClassVar[type | None] = None
    #: Fields of the config that name series (comma-separated): resolved to series names
    #: by :func:`resolve_series` before :meth:`check` (a misspelt name fails in one line).
    series_fields: ClassVar[tuple[str, ...]] = ()
    #: Those of ``series_fields`` whose default names a series only some recordings have
    #: (the curve beside the particles: ``loss``): a recording without it draws nothing
    #: there. A name that differs from the default must be a series all the same.
    optional_series: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, recording: Recording, config: Any = None, options: RenderOptions | None = None
    ):
        self.recording = recording
        self.config = config if config is not None else (self.Config() if self.Config else None)
        self.options = options or RenderOptions()
        self.notes_: list[str] = []
        self.config = self._resolve_series_fields(self.config)
        self.check()
        self.steps_ = np.asarray(self.timeline(), dtype=np.int64)
        if len(self.steps_) == 0:
            raise ValueError("the recording has no snapshots to draw")
        o = self.options
        shown = frame_indices(len(self.steps_), o.stride)
        self.interpolates_ = o.on_clock
        if self.interpolates_:
            play = frame_steps(
                self.steps_, fps=o.fps, duration=o.duration, time=o.time, frames=len(shown)
            )
            at = np.maximum(np.searchsorted(self.steps_, play, side="right") - 1, 0)
        else:  # one frame per snapshot, exactly as recorded
            at = shown
            play = self.steps_[shown].astype(float)
        self.chapters_ = self._chapters(o.chapters)
        order, card, self.chapter_frames_ = insert_chapters(
            play, self.chapters_, round(o.chapter_hold * o.fps), round(o.fps)
        )
        held = round(o.hold * o.fps)  # the last frame, repeated (without a title card)
        order = np.concatenate([order, np.full(held, len(play) - 1, order.dtype)])
        self.frames_ = at[order]
        self.frame_steps_ = play[order]
        self.card_ = np.concatenate([card, np.full(held, -1, card.dtype)])
        self._fig: Figure | None = None

    def note(self, text: str) -> None:
        """Say what the scene chose to draw by itself (one line, no trailing period): kept in
        ``notes_``, which the command line prints on stderr."""
        self.notes_.append(text)

    def note_choice(
        self, drawn: Sequence[str], why: str, others: Sequence[str], flag: str = "--show"
    ) -> None:
        """The note of a scene that chose what to draw among more (no note when it drew
        every candidate): ``drew a, b (why); 5 more not drawn: c, d, e, ... (choose with
        --show NAME,...)``."""
        if not others:
            return
        more = f"{', '.join(others[:3])}{', ...' * (len(others) > 3)}"
        self.note(
            f"drew {', '.join(drawn)} ({why}); {len(others)} more not drawn: {more} "
            f"(choose with {flag} NAME,...)"
        )

    def _resolve_series_fields(self, config: Any) -> Any:
        """``config`` with the names in its ``series_fields`` resolved to series names."""
        if not dataclasses.is_dataclass(config) or not isinstance(self.recording, Recording):
            return config
        defaults = {f.name: f.default for f in dataclasses.fields(config)}
        changes = {}
        for field in self.series_fields:
            if field not in defaults:
                continue
            names = split_names(str(getattr(config, field)))
            wanted = names
            if field in self.optional_series and getattr(config, field) == defaults[field]:
                present = series_aliases(self.recording)
                wanted = [n for n in names if n in present]
            resolved = [resolve_series(self.recording, n) for n in wanted]
            if resolved != names:
                changes[field] = ",".join(resolved)
        return replace(config, **changes) if changes else config

    def default_chapters(self) -> list:
        """The chapters a movie of this scene gets when none are asked for: those the
        experiment wrote into the recording's ``metadata["chapters"]`` (``[step, title]``
        pairs), if any."""
        recording = getattr(self, "recording", None)
        metadata = recording.metadata if isinstance(recording, Recording) else {}
        return list(metadata.get("chapters") or [])

    def _chapters(self, asked) -> list[tuple[int, str]]:
        first, last = int(self.steps_[0]), int(self.steps_[-1])
        if asked is None:  # the experiment's own: those outside this timeline are left out
            chapters = []
            for c in self.default_chapters():
                try:
                    chapters.append(parse_chapter(c))
                except ValueError:
                    continue
            return sorted((c for c in chapters if first <= c[0] <= last), key=lambda c: c[0])
        for step, title in asked:
            if not first <= step <= last:
                raise ValueError(
                    f"chapter {step}:{title} lies outside the recorded steps "
                    f"{first:,d} to {last:,d}"
                )
        return list(asked)

    def check(self) -> None:
        """Raise KeyError or ValueError naming what is missing if the recording is not drawable."""

    def timeline(self) -> np.ndarray:
        """The training steps that frames are drawn from, increasing (one frame each, before
        ``stride``)."""
        return np.zeros(1, np.int64)

    # -- subclass interface ------------------------------------------------------------
    def setup(self, fig: Figure) -> None:
        """Build every artist once. Call :meth:`animate` on those that change per frame."""
        raise NotImplementedError

    def draw_frame(self, i: int) -> None:
        """Update the animated artists for frame ``i`` (an index into ``frames_``)."""
        raise NotImplementedError

    def stamp(self, lo: int, hi: int) -> Sequence[Any]:
        """Set up permanent marks of frames ``lo..hi-1`` and return the artists that draw them."""
        return ()

    def animate(self, *artists: Any) -> None:
        """Mark artists as moving: excluded from the cached background, redrawn every frame
        (in order of their zorder, as a full redraw would)."""
        for artist in artists:
            artist.set_animated(True)
            self._animated.append(artist)
        self._animated.sort(key=lambda a: a.get_zorder())  # stable: equal zorders keep their order

    def stamped(self, *artists: Any) -> None:
        """Mark artists that :meth:`stamp` uses to draw permanent marks into the background."""
        for artist in artists:
            artist.set_animated(True)

    def cover_with_card(self, *artists: Any) -> None:
        """Let a chapter's title card hide these figure artists while it shows (the scene's
        heading: the chapter's title takes its place). Every other artist of the figure stays
        in view: the card goes where it overlaps none of them (:meth:`_title_card`)."""
        self._card_covers.extend(artists)

    # -- frames ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame_steps_)

    def _build(self, blit: bool = True) -> None:
        o = self.options
        fig = new_figure(o)
        self._animated: list[Any] = []
        self._card_covers: list[Any] = []
        self.setup(fig)
        fig.canvas.draw()
        w, h = fig.canvas.get_width_height()
        if (w, h) != (o.width, o.height):
            raise RuntimeError(f"canvas is {w}x{h}, expected {o.width}x{o.height}")
        self._fig, self._blit = fig, blit
        self._background = fig.canvas.copy_from_bbox(fig.bbox)
        self._stamped_upto = 0  # frames < this are in the background
        self._card = self._title_card(fig) if self.chapters_ else None
        self._last: tuple[tuple, np.ndarray] | None = None  # a held frame is drawn once

    def chapter_labels(self) -> list[str]:
        """The small line of each chapter's title card, ``CHAPTER 2 OF 3  ·  STEP 1,200``:
        chapters are counted as :meth:`chapter_marks` lists them (the MP4's chapters, the
        WebVTT file, the player's buttons), the "Start" before a later first chapter
        included, so the card, the list and the buttons agree."""
        marks = self.chapter_marks()
        first = len(marks) - len(self.chapters_)  # 1 where "Start" comes first
        return [
            f"CHAPTER {first + k + 1} OF {len(marks)}  ·  STEP {step:,d}"
            for k, (step, _) in enumerate(self.chapters_)
        ]

    def _card_obstacles(self, renderer) -> list[Any]:
        """Pixel boxes of what a title card must leave in view: every artist of the figure
        (each axes with its ticks, labels, title and legend; a figure's legend; the readout)
        but those given to :meth:`cover_with_card`."""
        covers = {id(a) for a in self._card_covers}
        boxes = []
        for artist in self._fig.get_children()[1:]:  # [0] is the figure's own background
            if id(artist) in covers or not artist.get_visible():
                continue
            box = artist.get_tightbbox(renderer)
            if box is not None and box.width > 0 and box.height > 0:
                boxes.append(box)
        return boxes

    def _title_card(self, fig: Figure) -> "_TitleCard":
        """The chapters' title card, laid out once (the figure's layout is fixed): a band in
        the largest free room at the top of the frame (over the scene's heading, which it
        may cover, beside the readout, above the panels), its fonts shrunk only as far as
        the longest title needs; where the top has no room for it, the free room where it
        is largest. It overlaps no other artist of the figure, so it never hides data."""
        from matplotlib.patches import FancyBboxPatch
        from matplotlib.transforms import Bbox, IdentityTransform

        renderer = fig.canvas.get_renderer()
        frame = fig.bbox
        obstacles = self._card_obstacles(renderer)
        pixels = fig.dpi / 72
        size = 72 * 0.04 * fig.get_figheight()  # the title follows the frame's height
        pixel = dict(transform=IdentityTransform(), animated=True)
        title = fig.text(0, 0, "", va="bottom", weight="bold", color="#1a1a1a", **pixel)
        label = fig.text(0, 0, "", va="top", color="#3d5f91", **pixel)
        texts = list(zip(self.chapter_labels(), (t for _, t in self.chapters_)))

        def block(scale: float) -> tuple[float, float]:
            """Width and height of the largest chapter's two lines (and the gap between)."""
            title.set_fontsize(size * scale)
            label.set_fontsize(size * scale * 0.5)
            width = height = 0.0
            for small, big in texts:
                label.set_text(small)
                title.set_text(big)
                a, b = label.get_window_extent(renderer), title.get_window_extent(renderer)
                width = max(width, a.width, b.width)
                height = max(height, a.height + b.height)
            return width, height + 0.25 * size * scale * pixels

        em = size * pixels
        pad, air = 0.45 * em, 0.008 * frame.height  # inside the card; around every obstacle
        width, height = block(1.0)
        inner = Bbox.from_extents(air, air, frame.width - air, frame.height - air)
        grown = [
            Bbox.from_extents(b.x0 - air, b.y0 - air, b.x1 + air, b.y1 + air) for b in obstacles
        ]

        heads = [
            b
            for b in (a.get_window_extent(renderer) for a in self._card_covers if a.get_text())
            if b.width > 0
        ]

        def fit(room) -> tuple[float, float, float]:
            """The card's scale in ``room``, the room's area and where the text begins: where
            the heading it covers began, unless the text is larger from the room's edge."""
            starts = [b.x0 for b in heads if room.overlaps(b) and b.x0 > room.x0 + pad]
            best = (-np.inf, 0.0, 0.0)
            for x in [min(starts, default=room.x0 + pad), room.x0 + pad]:
                s = min(1.0, (room.x1 - pad - x) / width, (room.height - 2 * pad) / height)
                best = max(best, (s, room.width * room.height, x), key=lambda b: b[0])
            return best

        rooms = _free_rooms(grown, inner, top_only=True)
        if not rooms or max(fit(r) for r in rooms)[0] < 0.6:  # too cramped up there
            rooms += _free_rooms(grown, inner, top_only=False)
        room = max(rooms, key=fit) if rooms else inner  # (none: artists cover every pixel)
        scale, _, x = fit(room)
        for _ in range(4):  # glyphs are hinted to whole pixels: text does not scale exactly
            scale = max(scale, 0.05)
            width, height = block(scale)
            room_w, room_h = room.x1 - pad * scale - x, room.height - 2 * pad * scale
            if width <= room_w and height <= room_h:
                break
            scale *= 0.99 * min(room_w / width, room_h / height)
        pad *= scale
        # the band is as wide as its text, and as tall, or as the heading it covers in its
        # room, whichever is more (the heading never peeks out beside or below it)
        covered = [b for b in heads if room.overlaps(b)]
        y1, y0 = room.y1, room.y1 - (height + 2 * pad)
        right = max([x + width, *(b.x1 for b in covered)])
        if covered:
            y0 = min(y0, min(b.y0 for b in covered) - 0.5 * pad)
        x0, x1, y0 = max(room.x0, x - pad), min(room.x1, right + pad), max(y0, room.y0)
        middle = (y0 + y1) / 2
        label.set_position((x, middle + height / 2))
        title.set_position((x, middle - height / 2))
        box = FancyBboxPatch(
            (x0, y0), x1 - x0, y1 - y0,
            boxstyle=f"round,pad=0,rounding_size={0.3 * em * scale:.2f}",
            transform=IdentityTransform(), facecolor="#eef3fb", edgecolor="#6b8fc4",
            linewidth=1.2, animated=True,
        )  # fmt: skip
        fig.add_artist(box)
        return _TitleCard(box=box, title=title, label=label, texts=texts)

    def _draw_card(self, i: int) -> None:
        k = int(self.card_[i])
        if self._card is None or k < 0:
            return
        card = self._card
        card.label.set_text(card.texts[k][0])
        card.title.set_text(card.texts[k][1])
        for artist in (card.box, card.label, card.title):
            self._fig.draw_artist(artist)

    def _render_frame(self, i: int) -> np.ndarray:
        key = (float(self.frame_steps_[i]), int(self.frames_[i]), int(self.card_[i]))
        if self._last is not None and self._last[0] == key:  # a held frame: the same pixels
            return self._last[1].copy()
        frame = self._draw(i)
        self._last = (key, frame)
        return frame

    def _draw(self, i: int) -> np.ndarray:
        fig, canvas = self._fig, self._fig.canvas
        if not self._blit:  # reference path: everything drawn from scratch
            canvas.draw()
            for artist in self.stamp(0, i + 1):
                fig.draw_artist(artist)
        else:
            if i < self._stamped_upto:  # went backwards: rebuild the permanent layer
                canvas.draw()
                self._stamped_upto = 0
            else:
                canvas.restore_region(self._background)
            if i + 1 > self._stamped_upto:
                marks = self.stamp(self._stamped_upto, i + 1)
                for artist in marks:
                    fig.draw_artist(artist)
                self._stamped_upto = i + 1
                if marks:  # only a changed background needs caching again
                    self._background = canvas.copy_from_bbox(fig.bbox)
        self.draw_frame(i)
        for artist in self._animated:
            fig.draw_artist(artist)
        self._draw_card(i)
        return np.array(
            canvas.buffer_rgba()
        )  # RGBA: a plain copy (RGB would be a slow strided one)

    def frame(self, i: int, *, blit: bool = True) -> np.ndarray:
        """Frame ``i`` as ``(height, width, 3) uint8`` RGB (negative ``i`` counts from the end)."""
        i = range(len(self))[i]
        if self._fig is None or self._blit != blit:
            self._build(blit)
        return self._render_frame(i)[:, :, :3]

    def iter_frames(
        self, *, workers: int | None = None, block: int = 8, rgba: bool = False
    ) -> Iterator[np.ndarray]:
        """Every frame in order, ``(height, width, 3)`` RGB (``rgba=True``: 4 channels, as the
        writers take them fastest); with several workers, blocks of frames render in parallel."""
        channels = slice(None) if rgba else slice(0, 3)
        for frame in self._frames(workers, block):
            yield frame[:, :, channels]

    def _frames(self, workers: int | None, block: int) -> Iterator[np.ndarray]:
        n = len(self)
        workers = self.options.resolved_workers(n) if workers is None else workers
        if workers <= 1 or "fork" not in _start_methods():
            self._build()
            for i in range(n):
                yield self._render_frame(i)
            return
        import multiprocessing as mp

        global _WORKER_SCENE
        blocks = [range(lo, min(lo + block, n)) for lo in range(0, n, block)]
        _WORKER_SCENE = self
        pool = mp.get_context("fork").Pool(workers, initializer=_worker_init)
        try:
            pending = []
            it = iter(blocks)
            for b in it:  # keep a bounded number of blocks in flight: memory stays flat
                pending.append(pool.apply_async(_worker_render, (list(b),)))
                if len(pending) >= 2 * workers:
                    break
            for b in it:
                yield from pending.pop(0).get()
                pending.append(pool.apply_async(_worker_render, (list(b),)))
            while pending:
                yield from pending.pop(0).get()
            pool.close()
        finally:
            pool.terminate()
            _WORKER_SCENE = None

    # -- output ------------------------------------------------------------------------
    def render(self, target: Writer | str | os.PathLike, *, workers: int | None = None) -> Path:
        """Render into ``target``: a :class:`~scenes.writers.Writer` built by the caller, or a
        path (its writer is made with default encoder settings). A movie writer gets every
        frame; a still writer (PNG) gets the last one. The file appears only once complete.
        Returns the path written."""
        writer = target if isinstance(target, Writer) else open_writer(target, self.options.fps)
        if not writer.animated:
            with writer:
                writer.write(self.frame(-1))
            return writer.path
        from dynamics.progress import progress_bar

        writer.annotate(
            chapters=self.chapter_marks(),
            steps=np.round(self.frame_steps_).astype(np.int64).tolist(),
        )
        with writer:
            bar = progress_bar(
                total=len(self),
                desc=f"rendering {writer.path.name}",
                unit="frame",
                disable=not self.options.progress,
            )
            try:
                for frame in self.iter_frames(workers=workers, rgba=True):
                    writer.write(frame)
                    bar.update()
            finally:
                bar.close()
        return writer.path

    def chapter_marks(self) -> list[tuple[int, str]]:
        """``(first frame, title)`` of every chapter, as writers take them, after a chapter
        "Start" at frame 0 when the first one begins later (an MP4's chapter list always
        starts at 0: without it, players would put the first chapter's start there)."""
        marks = [(f, t) for f, (_, t) in zip(self.chapter_frames_, self.chapters_)]
        if marks and marks[0][0] > 0:
            marks.insert(0, (0, "Start"))
        return marks

    def still(self, path: str | os.PathLike, i: int = -1) -> Path:
        """Write frame ``i`` (default: the last) as a PNG. Returns the path written."""
        with open_writer(path) as writer:
            writer.write(self.frame(i))
        return writer.path

    def handout(
        self, path: str | os.PathLike, *, count: int | None = None, paper: str = "a4"
    ) -> Path:
        """Write the movie's keyframes (its chapters, or ``count`` evenly spaced frames) on
        one landscape page of ``paper`` (``a4`` or ``letter``), a vector PDF or a PNG
        (:mod:`scenes.handout`). Returns the path."""
        from .handout import write_handout

        return write_handout(self, path, count=count, paper=paper)

    def write_figures(self, stem: Path) -> list[Path]:
        """Write the scene's static companion figures (PNG) named ``<stem>_<what>.png``.

        The command line calls this after rendering the movie (``--no-figures`` skips
        it). Returns the paths written; the base class has none.
        """
        return []

    def close(self) -> None:
        """Release the figure."""
        self._fig = None

    # -- notebooks ---------------------------------------------------------------------
    def to_html(self, fmt: str = "player", *, quality: str | None = None) -> str:
        """Render into memory and return HTML that plays inline: ``"player"`` (the
        interactive player, :mod:`scenes.player`), ``"mp4"`` (a ``<video>``) or ``"gif"``
        (an ``<img>``), each at most the movie's width and shrinking to fit the cell.
        ``quality`` ("draft", "final", "notebook") renders at that preset's size and
        encoder settings instead of the scene's own options."""
        if fmt not in ("player", "mp4", "gif"):
            raise ValueError(f"fmt must be player, mp4 or gif, got {fmt!r}")
        scene = self
        if quality is not None:
            preset = RenderOptions.preset_for(quality)  # checks the name
            scene = self.with_options(width=preset.width, height=preset.height, dpi=preset.dpi)
        suffix = "html" if fmt == "player" else fmt
        with tempfile.TemporaryDirectory() as tmp:
            writer = open_writer(Path(tmp) / f"scene.{suffix}", scene.options.fps, quality=quality)
            out = scene.render(writer)
            if fmt == "player":
                return writer.html
            data = base64.b64encode(out.read_bytes()).decode("ascii")
        w = scene.options.width
        style = f'style="width:100%;max-width:{w}px;height:auto"'
        text = html.escape(scene.describe(), quote=True)  # for screen readers, and where
        if fmt == "gif":  # the picture does not load
            return f'<img {style} alt="{text}" src="data:image/gif;base64,{data}"/>'
        attrs = f'controls loop autoplay muted playsinline aria-label="{text}" title="{text}"'
        return f'<video {attrs} {style} src="data:video/mp4;base64,{data}"></video>'

    def describe(self) -> str:
        """One sentence saying what the movie shows, as a picture's alternative text: its
        heading and caption, its frames and training steps (``Where does the weight mass
        go? (logistic regression ...): an animation of 12 frames, training steps 0 to 440``)."""
        heading = self.heading() if hasattr(self, "heading") else type(self).__name__
        caption = self.subtitle() if hasattr(self, "subtitle") else ""
        steps = np.round(np.asarray(self.frame_steps_, dtype=float)).astype(np.int64)
        what = f"{heading} ({caption})" if caption else heading
        return (
            f"{what}: an animation of {len(steps)} frames, training steps "
            f"{steps[0]:,d} to {steps[-1]:,d}"
        )

    def show(self, quality: str | None = "notebook", fmt: str = "player"):
        """Display the movie in a notebook: the interactive player by default, rendered at
        the ``notebook`` preset (1920x1080 at dpi 150: the lecture layout with every text at
        least 9 px high, native on a 1080p projector; a 500-frame movie of a moving decision
        field is about 1.5 MB in the saved notebook, a moving scatter 0.6 MB).
        ``quality="draft"`` (640x360, glyphs 4 px high: not legible when projected) renders
        4x faster, ``"final"`` gives 1280x720, None the scene's own options; ``fmt="mp4"`` or
        ``"gif"`` a plain movie (a GIF has no encoder presets: take ``"draft"`` for one).
        Returns an object that Jupyter shows (``IPython.display.HTML`` when IPython is
        there)."""
        markup = self.to_html(fmt, quality=quality)
        try:
            from IPython.display import HTML
        except ImportError:
            return _Html(markup)
        return HTML(markup)

    def _repr_html_(self) -> str:
        """Jupyter shows a scene as the interactive player at the notebook preset
        (:meth:`show`)."""
        return self.to_html("player", quality="notebook")

    def with_options(self, **changes: Any) -> "Scene":
        """The same scene with some render options changed."""
        return type(self)(self.recording, self.config, replace(self.options, **changes))


class PanelScene(Scene):
    """The scene contract: panels (see :mod:`scenes.plotting`) on one timeline, under a header.

    Frame ``i`` shows training step ``steps_[frames_[i]]`` (an int) in every panel; each
    panel finds its own snapshot at or before that step, so series recorded on different
    schedules stay in step. On a movie clock (:attr:`Scene.interpolates_`) panels get the
    fractional step ``frame_steps_[i]`` (a float) and blend their own two snapshots around
    it (:func:`scenes.plotting.interpolated`); the readout shows that step rounded to an
    integer (the interpolated step, not the nearest recorded one). A subclass declares the
    class attributes below and implements :meth:`build` (make the axes and panels below the
    header, return the panels).
    """

    #: Recording series the scene reads; checked before anything is drawn.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Config fields that name series: ``show`` where the config has one (see :class:`Scene`).
    series_fields: ClassVar[tuple[str, ...]] = ("show",)
    #: Headline of the picture (also of its small multiples); see :meth:`heading`.
    title: ClassVar[str] = ""
    #: Headline of a sweep whose runs' headings differ (one that claims nothing only some of
    #: them show); empty: ``title``.
    neutral_title: ClassVar[str] = ""
    #: Series shown as numbers beside the step in the header (those present).
    readout: ClassVar[tuple[Field, ...]] = ()
    #: The scene can draw one run as a cell of a sweep (:meth:`small_panel`).
    small_multiples: ClassVar[bool] = False
    #: Width / height of one small panel, when its axes have a fixed shape (equal axes).
    small_panel_aspect: ClassVar[float | None] = None
    #: Left edge of the header texts, in figure fractions.
    header_left: ClassVar[float] = 0.04
    #: The header band ends here (figure fraction from the bottom): panels go below it.
    header_bottom: ClassVar[float] = 0.86
    #: The scene that draws several recordings given at once (``python -m scenes.NAME A B``,
    #: or a log directory of several runs) on one timeline, built from ``{name: Recording}``
    #: (:class:`scenes.compare.CompareScene`); None: the scene draws one recording.
    compare_scene: ClassVar[type | None] = None
    #: Draw what changes every frame straight into the frame buffer where a panel can
    #: (:mod:`scenes.raster`: cached glyphs, sprites, static layers); False draws it all
    #: with matplotlib artists (the reference the pixel tests compare with).
    raster: ClassVar[bool] = True

    # -- declared contract ---------------------------------------------------------------
    def check(self) -> None:
        """Require the series named in ``requires``; a subclass may check more."""
        self.recording.require(*self.requires)

    def timeline(self) -> np.ndarray:
        """The steps of the first required series (override to draw another schedule)."""
        if not self.requires:
            raise NotImplementedError(
                f"{type(self).__name__} must declare requires or define timeline()"
            )
        return np.asarray(self.recording[self.requires[0]].steps)

    def heading(self) -> str:
        """The title drawn in the header (default: ``title``)."""
        return self.title

    def subtitle(self) -> str:
        """The line under the title: the recording's ``metadata["caption"]``, which the
        experiment that made it writes (it knows its config)."""
        return str(self.recording.metadata.get("caption", ""))

    def readout_fields(self) -> Sequence[Field]:
        """The readout's fields (default: ``readout``; a scene that draws series chosen at
        run time may return those)."""
        return self.readout

    @classmethod
    def example(cls) -> Recording:
        """A small recording this scene draws (numpy only), for its conformance test and docs."""
        raise NotImplementedError(f"{cls.__name__} has no example recording")

    def build(self, fig: Figure) -> Sequence[Any]:
        """Create the axes and panels on ``fig`` below ``header_bottom``; return the panels."""
        raise NotImplementedError

    # -- small multiples -----------------------------------------------------------------
    @classmethod
    def small_panel(cls, ax, recording: Recording, config: Any, shared: dict, cell: Cell):
        """One run of a sweep drawn on ``ax`` (``shared``: what :meth:`sweep_scales` computed);
        returns its panel. Only for scenes that declare ``small_multiples``."""
        raise NotImplementedError(f"{cls.__name__} cannot be drawn as small multiples")

    @classmethod
    def sweep_scales(cls, recordings: Sequence[Recording], config: Any) -> dict:
        """What every cell of a sweep shares (axes limits, colour scales); default nothing."""
        return {}

    # -- handouts (scenes.handout) ---------------------------------------------------------
    def handout_panels(self, sheet: Any, cell: Cell, shared: dict) -> Sequence[Any]:
        """One keyframe of the handout drawn on ``sheet`` (its cell of the page below the
        cell's header line; a figure of its own fractions, with its printed size in
        ``get_size_inches``); returns the panels, which the handout draws at the keyframe's
        step. ``cell``: where it sits among the keyframes; ``shared``: :meth:`sweep_scales`
        of the recording. Default: a scene with small panels draws its :meth:`small_panel`
        beside the curve of its first scalar readout field, a cursor at the step
        (:func:`scenes.handout.main_and_curves`); any other its movie's layout (:meth:`build`)."""
        from .handout import curves_panel, main_and_curves

        rec, config = self.recording, self.config
        if not self.small_multiples:
            return self.build(sheet)
        names = [f.series for f in self.readout_fields() if f.series in rec]
        names = [n for n in names if rec[n].shape == ()][:1]
        return main_and_curves(
            sheet,
            lambda ax: self.small_panel(ax, rec, config, shared, cell),
            (lambda ax: curves_panel(ax, rec, names, ylabel=names[0])) if names else None,
            aspect=self.small_panel_aspect,
        )

    def handout_aspect(self) -> float:
        """Width / height of one keyframe's drawing on a handout (to choose the page's grid):
        a small panel and its curve side by side, or the movie's frame."""
        if self.small_multiples:
            return 2.2
        return self.options.width / self.options.height

    @classmethod
    def sweep_figures(
        cls,
        recordings: Sequence[Recording | None],
        labels: Sequence[str],
        config: Any,
        options: RenderOptions,
        stem: Path,
    ) -> list[Path]:
        """Static figures of a whole sweep (``labels``: one per run); default none."""
        return []

    # -- what the base class does with it --------------------------------------------------
    def setup(self, fig: Figure) -> None:
        fig.patch.set_facecolor("white")
        self.panels_ = list(self.build(fig))
        self._header(fig)
        for panel in self.panels_:
            self.animate(*panel.moving())
            self.stamped(*panel.stamped())

    def _header(self, fig: Figure) -> None:
        from .plotting import Readout

        left = self.header_left
        heading = fig.text(
            left, 0.955, self.heading(), fontsize="x-large", weight="bold", va="center"
        )
        self.cover_with_card(heading)  # a chapter's title takes the heading's place
        subtitle = self.subtitle()
        if subtitle:
            self.cover_with_card(
                fig.text(left, 0.905, subtitle, fontsize="medium", color="#444444", va="center")
            )
        self._readout_series = [
            (f, self.recording[f.series])
            for f in self.readout_fields()
            if f.series in self.recording
        ]
        last = int(self.steps_[-1])
        fields = [("step", "{:,d}", max(5, len(f"{last:,d}")))]
        for f, series in self._readout_series:
            at = np.searchsorted(series.steps, self.frame_steps_, side="right") - 1
            shown = [f.pick(series.values[j]) for j in np.unique(np.maximum(at, 0))]
            width = max(len(f.fmt.format(v)) for v in shown) if len(shown) else 6
            fields.append((f.label, f.fmt, width))
        self.readout_ = Readout(fig, (0.97, 0.955), fields, ha="right", raster=self.raster)
        self.animate(*self.readout_.moving())

    @staticmethod
    def _snapshot(series, step: int) -> int:
        from .plotting import snapshot_at

        return snapshot_at(series.steps, step)

    def frame_step(self, i: int) -> int:
        """The training step frame ``i`` shows, an integer: the recorded step, or on a movie
        clock the interpolated step rounded (monotone over the frames)."""
        return int(round(float(self.frame_steps_[i])))

    def panel_step(self, i: int) -> int | float:
        """What the panels' ``draw`` gets for frame ``i``: the recorded step (an int: each
        panel shows its snapshot at or before it), or on a movie clock the fractional step
        (a float: each panel blends the snapshots around it)."""
        if self.interpolates_:
            return float(self.frame_steps_[i])
        return int(self.steps_[self.frames_[i]])

    def draw_frame(self, i: int) -> None:
        step = self.panel_step(i)
        for panel in self.panels_:
            panel.draw(step)
        self.readout_.update(
            self.frame_step(i),
            *(f.pick(s.values[self._snapshot(s, step)]) for f, s in self._readout_series),
        )

    def stamp(self, lo: int, hi: int) -> list[Any]:
        # frames lo..hi-1 cover the steps after frame lo-1 up to frame hi-1 (with --stride,
        # snapshots between frames are stamped too; on a clock, those recorded by then)
        step_lo = 0 if lo == 0 else int(np.floor(self.frame_steps_[lo - 1])) + 1
        step_hi = int(np.floor(self.frame_steps_[hi - 1])) + 1
        return [a for panel in self.panels_ for a in panel.stamp(step_lo, step_hi)]


def fit_to_aspect(
    fig: Figure,
    rows: int,
    cols: int,
    aspect: float | None,
    *,
    top: float,
    bottom: float,
    left: float,
    right: float,
    hspace: float,
    wspace: float,
) -> tuple[float, float]:
    """``(left, right)`` of a ``rows x cols`` grid narrowed and centred so that cells of
    ``aspect`` (width / height) fill its height; unchanged when they already fill its width
    (or ``aspect`` is None)."""
    if aspect:
        w, h = fig.get_size_inches()
        cell_h = (top - bottom) * h / (rows + hspace * (rows - 1))
        need = cell_h * aspect * (cols + wspace * (cols - 1)) / w
        if need < right - left:
            pad = (right - left - need) / 2
            left, right = left + pad, right - pad
    return left, right


def grid_axes(
    fig: Figure,
    rows: int,
    cols: int,
    *,
    top: float = 0.86,
    bottom: float = 0.08,
    left: float = 0.06,
    right: float = 0.97,
    hspace: float = 0.35,
    wspace: float = 0.25,
    **gridspec: Any,
):
    """A ``rows x cols`` grid spec below a header band (``top`` leaves room for titles)."""
    return fig.add_gridspec(
        rows,
        cols,
        top=top,
        bottom=bottom,
        left=left,
        right=right,
        hspace=hspace,
        wspace=wspace,
        **gridspec,
    )


class _Html:
    """HTML that a notebook displays (where IPython.display is missing)."""

    def __init__(self, markup: str):
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup


def _start_methods() -> list[str]:
    import multiprocessing as mp

    return mp.get_all_start_methods()
