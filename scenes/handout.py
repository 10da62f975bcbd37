"""Handouts: a movie's keyframes on one printed page (a vector PDF, or a 300-dpi PNG).

A lecture's movie is gone when the slide changes; the handout keeps its key moments. The
keyframes are the movie's chapters, between its first and last step (or ``count`` evenly
spaced steps when it has none, or when ``count`` is given).

Each keyframe is a cell of the page: a header line with its step (and chapter) and the
step's own readout (the movie's header values at that step, never the run's final
figures), above what the movie shows at that step. What that is, the scene declares in
:meth:`scenes.base.PanelScene.handout_panels`, as it declares its small panels: scenes
with small panels draw theirs beside their curves with a cursor at the step
(:func:`main_and_curves`); other scenes (``curves``, ``render``, ``layers``, a sweep's
grid) draw their movie's own layout. Everything is drawn with matplotlib artists, so the
PDF stays sharp at any zoom (pictures inside panels, a probability field or a large
heatmap, are resampled at :data:`DPI`), without the movie's page title in every cell.

The page is A4 or US Letter in landscape (``paper``), filled by the cells below a header
(title, subtitle, one legend for the page); every text is at least :data:`MIN_FONT_PT`
printed, every panel is fitted inside its cell, and the cells inside the margins. The
file appears whole or not at all.
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, SubFigure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from .writers import check_writable

__all__ = [
    "HANDOUT_FORMATS",
    "PAPERS",
    "MIN_FONT_PT",
    "Keyframe",
    "write_handout",
    "handout_figure",
    "keyframe_steps",
    "readout_at",
    "main_and_curves",
    "check_handout_path",
    "check_paper",
    "save_page",
]

#: Handout formats by extension: a vector PDF, or a PNG at :data:`DPI`.
HANDOUT_FORMATS = (".pdf", ".png")
#: Landscape page sizes (width, height) in inches: A4 (297 x 210 mm) and US Letter.
PAPERS = {"a4": (297 / 25.4, 210 / 25.4), "letter": (11.0, 8.5)}
#: No text on a handout is smaller than this, printed (points).
MIN_FONT_PT = 8.0
#: Resolution of a PNG handout, and of the pictures inside a PDF's panels (dots per inch).
DPI = 300
#: White border of the page, in inches (printers do not print the outer ~5 mm).
MARGIN = 0.4
#: Panels per handout: at most this many keyframes fit on one legible page.
MAX_KEYFRAMES = 12
#: Keyframes of a movie without chapters: small panels beside their curves, or (scenes
#: drawn whole, a dashboard or a sweep's grid, in each cell) fewer, larger cells.
DEFAULT_COUNT = 6
DEFAULT_COUNT_WHOLE = 4
#: Type sizes of a handout (points): the base makes matplotlib's smallest relative size in
#: common use, "x-small" (0.694 of it), print at MIN_FONT_PT; labels, titles and legends
#: are set a little above it, and any text still smaller is raised to it (:func:`legible`).
STYLE = {
    "font.size": MIN_FONT_PT / 0.694,
    "axes.titlesize": 9.6,
    "axes.labelsize": 8.8,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": 8.8,
}
#: matplotlib's mathtext draws sub- and superscripts at this fraction of the text's size.
SCRIPT_SHRINK = 0.7
_SCRIPT = re.compile(r"\$[^$]*[_^][^$]*\$")
#: Gaps between cells, and the room of a cell's header line (inches).
GAP = (0.3, 0.22)


def check_handout_path(path: str | os.PathLike) -> Path:
    """Validate a handout path before any work: ``.pdf`` or ``.png``, a writable folder."""
    path = Path(path)
    if path.suffix.lower() not in HANDOUT_FORMATS:
        raise ValueError(
            f"a handout is a .pdf or .png file, got {path.suffix or '(no extension)'!r} in {path}"
        )
    return check_writable(path, "handout")


def check_paper(paper: str) -> str:
    """``paper`` in lower case if it names a page size of :data:`PAPERS`, else ValueError."""
    name = str(paper).strip().lower()
    if name not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)}, got {paper!r}")
    return name


def keyframe_steps(scene, count: int | None = None) -> list[tuple[float, str]]:
    """``(step, label)`` of the handout's panels: the first frame's step, each chapter's and
    the last frame's (without repeats), or with ``count`` (or no chapters) ``count``
    evenly spaced frames of the movie's play (1 to :data:`MAX_KEYFRAMES`; without
    chapters :data:`DEFAULT_COUNT`, or :data:`DEFAULT_COUNT_WHOLE` for a scene drawn whole
    in each cell)."""
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
    n = count or (
        DEFAULT_COUNT if getattr(scene, "small_multiples", False) else DEFAULT_COUNT_WHOLE
    )
    order = np.unique(np.linspace(0, len(steps) - 1, n).round().astype(int))
    return [(float(steps[i]), "") for i in order]


def readout_at(scene, step: float) -> list[tuple[str, str]]:
    """``(label, value)`` of the scene's readout at ``step``: each field's last snapshot at
    or before it, formatted as the movie's header shows it ("not yet" before the first)."""
    from .base import PanelScene

    if not isinstance(scene, PanelScene):
        return []
    out = []
    for f in scene.readout_fields():
        if f.series not in scene.recording:
            continue
        s = scene.recording[f.series]
        steps = np.asarray(s.steps)
        i = int(np.searchsorted(steps, step, side="right")) - 1
        out.append((f.label, f.fmt.format(f.pick(s.values[i])) if i >= 0 else "not yet"))
    return out


@dataclass
class Keyframe:
    """One keyframe's cell of the page.

    Attributes
    ----------
    step : float
        The training step it shows.
    label : str
        Its chapter's title ("start", "end" or "" where it has none).
    readout : list of (str, str)
        The step's readout, :func:`readout_at`.
    box : Bbox
        The whole cell, header line included, in page fractions.
    sheet : SubFigure
        The cell below its header line, on which the scene drew.
    panels : list
        What the scene's :meth:`~scenes.base.PanelScene.handout_panels` returned.
    texts : list of Text
        The header line: the step (and chapter), then the readout.
    """

    step: float
    label: str
    readout: list[tuple[str, str]]
    box: Bbox
    sheet: Any
    panels: list[Any] = field(default_factory=list)
    texts: list[Any] = field(default_factory=list)

    @property
    def axes(self) -> list[Any]:
        """The axes the scene drew on (in the order it made them)."""
        return list(self.sheet.axes)

    @property
    def title(self) -> str:
        """``step 1,200 · Chapter`` as printed."""
        return self.texts[0].get_text()


class Sheet(SubFigure):
    """A part of the page that a scene draws on as on a figure of its own (fractions of
    it in ``add_axes``, ``text``, ``legend`` and ``transFigure``), with the size it will
    print at."""

    def __init__(self, parent, subplotspec, template: Sequence[Any] | None = None):
        super().__init__(parent, subplotspec)
        self.transFigure = self.transSubfigure  # "figure fractions" are the sheet's
        #: The axes positions of the page's first keyframe: every keyframe draws the same
        #: panels in a cell of the same size, so later ones take its fitted layout.
        self.template = template

    def follow(self) -> bool:
        """Place the axes as in :attr:`template` (True), if it has as many (else False:
        they need fitting), with the same step ticks."""
        if self.template is None or len(self.template) != len(self.axes):
            return False
        from .plotting import axes_titles

        for ax, (box, locator, titles) in zip(self.axes, self.template):
            ax.set_position(box)
            ax.xaxis.set_major_locator(copy.copy(locator))
            for loc, title in axes_titles(ax).items():  # as fitted: smaller, shorter or dropped
                text, size = titles.get(loc, ("", None))
                title.set_text(text)
                if size:
                    title.set_fontsize(size)
        return True

    def layout(self) -> list[tuple[Any, Any, dict]]:
        """What :meth:`follow` copies to the next keyframes: each axes' position, x ticks and
        titles as fitted (a smaller font, shortened or dropped)."""
        from .plotting import axes_titles

        return [
            (
                ax.get_position(),
                ax.xaxis.get_major_locator(),
                {loc: (t.get_text(), t.get_fontsize()) for loc, t in axes_titles(ax).items()},
            )
            for ax in self.axes
        ]

    def get_size_inches(self) -> np.ndarray:
        return np.array(self.bbox.size) / self.dpi


def write_handout(
    scene, path: str | os.PathLike, *, count: int | None = None, paper: str = "a4"
) -> Path:
    """Write ``scene``'s keyframes (:func:`keyframe_steps`) on one landscape page of
    ``paper`` (:data:`PAPERS`): a vector PDF or a 300-dpi PNG, by the extension of
    ``path``. Returns the path written."""
    paper = check_paper(paper)
    path = check_handout_path(path)
    fig, _ = handout_figure(scene, count=count, paper=paper)
    return save_page(fig, path)


def handout_figure(
    scene, *, count: int | None = None, paper: str = "a4"
) -> tuple[Figure, list[Keyframe]]:
    """The handout page as a figure, and its keyframes' cells in keyframe order."""
    with matplotlib.rc_context(STYLE):
        return _page(scene, keyframe_steps(scene, count), PAPERS[check_paper(paper)])


def _page(scene, keys: list[tuple[float, str]], size: tuple[float, float]):
    from .base import Cell, PanelScene

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    renderer = fig.canvas.get_renderer()
    w, h = size
    top = 1 - MARGIN / h  # figure fraction, from the bottom
    heading = scene.heading() if isinstance(scene, PanelScene) else type(scene).__name__
    title = fig.text(MARGIN / w, top, heading, fontsize=15, weight="bold", va="top")
    top = _below(fig, title, renderer, 0.06)
    subtitle = scene.subtitle() if isinstance(scene, PanelScene) else ""
    if subtitle:
        text = fig.text(MARGIN / w, top, subtitle, fontsize=9.6, color="#444444", va="top")
        _shorten(text, (w - 2 * MARGIN) * fig.dpi, renderer)
        top = _below(fig, text, renderer, 0.04)
    legend_top = top
    top -= 0.3 / h  # the page's legend goes here, once the first cell has made its handles

    vec = _vector(scene)
    aspect = vec.handout_aspect()
    bottom, left, right = MARGIN / h, MARGIN / w, 1 - MARGIN / w
    rows, cols = _grid(len(keys), aspect, (right - left) * w, (top - bottom) * h)
    shared = vec.sweep_scales([vec.recording], vec.config) if vec.small_multiples else {}
    gap_x, gap_y = GAP[0] / w, GAP[1] / h
    cell_w = (right - left - gap_x * (cols - 1)) / cols
    cell_h = (top - bottom - gap_y * (rows - 1)) / rows
    keyframes = []
    for k, (step, label) in enumerate(keys):
        r, c = divmod(k, cols)
        x0, y1 = left + c * (cell_w + gap_x), top - r * (cell_h + gap_y)
        box = Bbox.from_extents(x0, y1 - cell_h, x0 + cell_w, y1)
        keyframes.append(Keyframe(step, label, readout_at(scene, step), box, None))
    depth = _cell_headers(fig, keyframes, renderer)
    template = None
    for k, kf in enumerate(keyframes):
        box = kf.box
        sheet = Sheet(fig, _spec(fig, box.x0, box.y0, box.x1, box.y1 - depth), template)
        fig.subfigs.append(sheet)
        kf.sheet = sheet
        kf.panels = list(vec.handout_panels(sheet, Cell(*divmod(k, cols), rows, cols), shared))
        for panel in kf.panels:
            _still(panel, kf.step)
        legible(sheet)
        if not sheet.follow():
            _fit_sheet(sheet, renderer)
        if template is None:
            template = sheet.layout()
    _page_legend(fig, keyframes[0].sheet, legend_top, renderer)
    legible(fig)
    return fig, keyframes


def _below(fig, text, renderer, gap_in: float) -> float:
    """The figure fraction ``gap_in`` inches below ``text``."""
    return (text.get_window_extent(renderer).y0 - gap_in * fig.dpi) / fig.bbox.height


def _shorten(text, room_px: float, renderer) -> None:
    """Cut ``text`` at its end (with an ellipsis) until it is at most ``room_px`` wide."""
    s = text.get_text()
    while len(s) > 4 and text.get_window_extent(renderer).width > room_px:
        s = s[:-2] + "\u2026"
        text.set_text(s)


def _spec(fig, x0: float, y0: float, x1: float, y1: float):
    """The middle cell of a 3 x 3 grid spec of ``fig`` whose ratios make it cover
    ``x0..x1`` x ``y0..y1`` (fractions): a subfigure takes its place from the ratios."""
    tiny = 1e-6
    widths = [max(x0, tiny), x1 - x0, max(1 - x1, tiny)]
    heights = [max(1 - y1, tiny), y1 - y0, max(y0, tiny)]
    grid = fig.add_gridspec(
        3, 3, width_ratios=widths, height_ratios=heights, left=0, right=1, bottom=0, top=1
    )
    return grid[1, 1]


def _grid(n: int, aspect: float, width: float, height: float) -> tuple[int, int]:
    """``(rows, cols)`` of ``n`` cells in ``width x height`` inches whose drawings, of
    ``aspect`` (width / height, below a header line), come out largest."""
    best = None
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        if (rows - 1) * cols >= n:  # a whole empty row
            continue
        w = (width - GAP[0] * (cols - 1)) / cols
        h = (height - GAP[1] * (rows - 1)) / rows - 0.3
        scale = min(w / aspect, h)
        if best is None or scale > best[0] + 1e-9:
            best = (scale, rows, cols)
    return best[1], best[2]


def _cell_headers(fig, keyframes: list[Keyframe], renderer) -> float:
    """Write each cell's header: its step and chapter, then the step's readout on the
    right, or (in every cell, where one does not fit) on lines of their own under them,
    as many fields a line as fit, none cut. Returns the depth of the deepest header, in
    figure fractions: every cell's drawing starts that far below its top."""
    width = keyframes[0].box.width * fig.bbox.width
    rows: list[tuple[Any, Any, list[str]]] = []
    for kf in keyframes:
        text = f"step {int(round(kf.step)):,d}"
        if kf.label and kf.label not in ("start", "end"):
            text += f" \u00b7 {kf.label}"
        head = fig.text(kf.box.x0, kf.box.y1, text, fontsize=10, weight="bold", va="top")
        _shorten(head, width, renderer)
        kf.texts = [head]
        fields = [f"{label} {value}" for label, value in kf.readout]
        out = None
        if fields:
            style = dict(fontsize=9, family="monospace", ha="right", va="top")
            out = fig.text(kf.box.x1, kf.box.y1, "   ".join(fields), **style)
            kf.texts.append(out)
        rows.append((head, out, fields))
    inline = all(
        out is None
        or out.get_window_extent(renderer).width
        <= width - head.get_window_extent(renderer).width - 12
        for head, out, _ in rows
    )
    depth = 0.0
    for kf, (head, out, fields) in zip(keyframes, rows):
        bottom = head.get_window_extent(renderer).y0
        if out is not None and not inline:
            out.set_position((kf.box.x0, (bottom - 2) / fig.bbox.height))
            out.set_horizontalalignment("left")
            lines = [fields[0]]
            for f in fields[1:]:
                out.set_text(lines[-1] + "   " + f)
                if out.get_window_extent(renderer).width <= width:
                    lines[-1] += "   " + f
                else:
                    lines.append(f)
            out.set_text("\n".join(lines))
        if out is not None:
            bottom = min(bottom, out.get_window_extent(renderer).y0)
        depth = max(depth, kf.box.y1 - bottom / fig.bbox.height)
    return depth + 0.06 * fig.dpi / fig.bbox.height


def _vector(scene):
    """A copy of ``scene`` that draws with matplotlib artists only (no frame-buffer layers,
    :attr:`~scenes.base.PanelScene.raster` off), on the whole of a sheet (no header band);
    a sweep's cells too."""
    vec = copy.copy(scene)
    vec.__class__ = _vector_class(type(scene))
    if getattr(vec, "scene_cls", None) is not None:  # a sweep draws another scene's cells
        vec.scene_cls = _vector_class(vec.scene_cls)
    return vec


def _vector_class(cls: type) -> type:
    attrs = {"raster": False, "header_bottom": 0.97, "__module__": __name__}
    return type(cls.__name__, (cls,), attrs)


def _still(panel: Any, step: float) -> None:
    """Draw a panel at ``step`` once, as a picture: its permanent marks up to the step, its
    moving artists at it, every artist kept in the figure's own drawing."""
    marks: Sequence[Any] = panel.stamp(0, int(math.floor(step)) + 1)
    panel.draw(step if step != int(step) else int(step))
    for artist in [*panel.moving(), *panel.stamped(), *marks]:
        artist.set_animated(False)
    readout = getattr(panel, "readout", None)  # a sweep cell's own figure at the step,
    text = readout(step) if readout is not None else None  # not the run's final one
    if text:
        panel.ax.set_xlabel(text)


def _all_axes(root) -> list[Any]:
    """Every axes of ``root`` (a figure, a sheet or axes), of its sheets, and their insets
    and colorbars."""
    from matplotlib.axes import Axes

    found: list[Any] = []
    todo = [root] if isinstance(root, Axes) else [*root.axes, *_sheets(root)]
    while todo:
        item = todo.pop(0)
        if isinstance(item, Axes):
            found.append(item)
            todo.extend(item.child_axes)
        else:  # a sheet
            todo.extend([*item.axes, *_sheets(item)])
    return found


def _sheets(fig) -> list[Any]:
    return list(getattr(fig, "subfigs", []))


def _texts(root) -> list[Any]:
    """The texts of ``root`` (a figure or a sheet) and of its axes, but tick labels: titles,
    axis labels, offsets, annotations, legends, the figure's own texts and legends."""
    from matplotlib.axis import Axis
    from matplotlib.legend import Legend

    texts: list[Any] = []
    figures = [root] if not hasattr(root, "child_axes") else []
    for fig in figures:
        figures.extend(_sheets(fig))
        texts.extend(fig.texts)
        for legend in fig.legends:
            texts.extend([*legend.get_texts(), legend.get_title()])
    for ax in _all_axes(root):
        for child in ax.get_children():
            if isinstance(child, Text):
                texts.append(child)
            elif isinstance(child, Axis):
                texts.extend([child.label, child.get_offset_text()])
            elif isinstance(child, Legend):
                texts.extend([*child.get_texts(), child.get_title()])
    return texts


def legible(root, size: float = MIN_FONT_PT) -> None:
    """Raise every text of ``root`` (a figure, a sheet or axes) to at least ``size``
    points: tick labels (also those made later), labels, titles, legends, annotations.
    Sub- and superscripts included: log axes are labelled ``1e-03`` (not 10 to a small
    exponent), and a label with a script (``$x_1$``) is set large enough for its script."""
    from matplotlib.ticker import LogFormatter

    for ax in _all_axes(root):
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            if axis.get_scale() == "log" and type(axis.get_major_formatter()) is not LogFormatter:
                axis.set_major_formatter(LogFormatter())
                axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
            for which, ticks in (("major", axis.majorTicks), ("minor", axis.minorTicks)):
                sizes = [t.label1.get_fontsize() for t in ticks[:1]]
                if sizes and sizes[0] < size:
                    ax.tick_params(axis=name, which=which, labelsize=size)
    for text in _texts(root):
        s = text.get_text()
        least = size / SCRIPT_SHRINK if _SCRIPT.search(s) else size
        if s and text.get_fontsize() < least:
            text.set_fontsize(least)


def _tight(sheet, renderer) -> Bbox | None:
    boxes = [ax.get_tightbbox(renderer) for ax in sheet.axes]
    boxes += [leg.get_window_extent(renderer) for leg in sheet.legends]
    boxes += [t.get_window_extent(renderer) for t in sheet.texts if t.get_text()]
    boxes = [b for b in boxes if b is not None and b.width > 0]
    return Bbox.union(boxes) if boxes else None


def _fit_sheet(sheet, renderer, pad_px: float = 2.0, rounds: int = 8) -> None:
    """Scale and move every axes of ``sheet`` together, so that all it draws (tick labels,
    titles, colorbars, legends) lies inside the sheet: nothing crosses into the next cell
    or off the page."""
    target = sheet.bbox.padded(-pad_px)
    for _ in range(rounds):
        tight = _tight(sheet, renderer)
        if tight is None or (
            tight.x0 >= target.x0 - 0.5
            and tight.y0 >= target.y0 - 0.5
            and tight.x1 <= target.x1 + 0.5
            and tight.y1 <= target.y1 + 0.5
        ):
            return
        axes = list(sheet.axes)
        inner = Bbox.union([ax.get_window_extent(renderer) for ax in axes])
        x0 = target.x0 + max(inner.x0 - tight.x0, 0)
        x1 = target.x1 - max(tight.x1 - inner.x1, 0)
        y0 = target.y0 + max(inner.y0 - tight.y0, 0)
        y1 = target.y1 - max(tight.y1 - inner.y1, 0)
        # only shrink (or keep): where the content already fits a side, keep that side
        x0, x1 = max(x0, inner.x0) if tight.x0 >= target.x0 else x0, x1
        x1 = min(x1, inner.x1) if tight.x1 <= target.x1 else x1
        y0 = max(y0, inner.y0) if tight.y0 >= target.y0 else y0
        y1 = min(y1, inner.y1) if tight.y1 <= target.y1 else y1
        if x1 - x0 < 8 or y1 - y0 < 8:
            return  # nothing sensible fits: leave it
        sx, sy = (x1 - x0) / inner.width, (y1 - y0) / inner.height
        to_sheet = sheet.transSubfigure.inverted()
        for ax in axes:
            b = ax.get_window_extent(renderer)
            nx0, ny0 = x0 + (b.x0 - inner.x0) * sx, y0 + (b.y0 - inner.y0) * sy
            nx1, ny1 = x0 + (b.x1 - inner.x0) * sx, y0 + (b.y1 - inner.y0) * sy
            (fx0, fy0), (fx1, fy1) = to_sheet.transform([(nx0, ny0), (nx1, ny1)])
            ax.set_position((fx0, fy0, fx1 - fx0, fy1 - fy0))


def _page_legend(fig, sheet, top: float, renderer) -> None:
    """One legend for the page, in the header under the subtitle: the labelled artists of
    the first keyframe (every cell draws the same) that no legend of its own names, each
    name once."""
    named = {t.get_text() for legend in sheet.legends for t in legend.get_texts()}
    seen: dict[str, Any] = {}
    for ax in _all_axes(sheet):
        if ax.get_legend() is not None:
            named.update(t.get_text() for t in ax.get_legend().get_texts())
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label and not label.startswith("_") and label not in (*seen, *named):
                seen[label] = handle
    if not seen:
        return
    w = fig.bbox.width
    for ncol in range(len(seen), 0, -1):
        legend = fig.legend(
            list(seen.values()),
            list(seen),
            loc="upper left",
            bbox_to_anchor=(MARGIN / fig.get_figwidth(), top),
            ncol=ncol,
            frameon=False,
            fontsize=9,
            borderaxespad=0.0,
            borderpad=0.0,
            handletextpad=0.5,
            columnspacing=1.6,
        )
        box = legend.get_window_extent(renderer)
        if box.x1 <= w - MARGIN * fig.dpi or ncol == 1:
            return
        legend.remove()


# -- what scenes declare ------------------------------------------------------------------
def main_and_curves(
    sheet,
    main: Callable[[Any], Any],
    curves: Callable[[Any], Any] | None,
    *,
    aspect: float | None = 1.0,
    colorbar: bool = False,
    stacked: bool = False,
    share: float = 0.5,
) -> list[Any]:
    """A keyframe laid out as its main panel (``main(ax)`` draws it and returns the panel)
    beside its curves (``curves(ax)``, e.g. a :class:`~scenes.plotting.CurvesPanel` with
    ``reveal="cursor"``), each fitted with its labels into its own part of ``sheet``.

    ``aspect``: width / height of the main panel's box (None: it takes what is left);
    ``colorbar``: the main panel has one beside it; ``stacked``: the main panel above the
    curves (a wide one, such as a row of weights), ``share`` of the height, instead of
    left of them."""
    from .plotting import CurvesPanel, DistributionPanel, fit_into, thin_step_ticks

    w, h = sheet.get_size_inches()
    if curves is None:
        parts = [Bbox.from_extents(0, 0, 1, 1)]
    elif stacked:
        parts = [Bbox.from_extents(0, 1 - share, 1, 1), Bbox.from_extents(0, 0, 1, 1 - share)]
    else:
        room = 0.9 + (0.75 if colorbar else 0.15)  # tick and axis labels (and a colorbar)
        main_w = min(0.58 * w, (h - 0.55) * aspect + room) if aspect else share * w
        parts = [Bbox.from_extents(0, 0, main_w / w, 1), Bbox.from_extents(main_w / w, 0, 1, 1)]
    made = []
    for part, draw in zip(parts, (main, curves)):
        ax = sheet.add_axes(part.bounds)  # the whole part: fitting shrinks it to its labels
        made.append((ax, part, draw(ax)))
    legible(sheet)
    if not sheet.follow():
        for ax, part, panel in made:
            fit_into(ax, part)
            if isinstance(panel, (CurvesPanel, DistributionPanel)):  # x: training steps
                thin_step_ticks(ax)
    return [panel for _, _, panel in made]


def curves_panel(
    ax,
    recording,
    names: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
    ylabel: str = "",
    xlabel: str = "step",
    colors: Sequence[str] | None = None,
    log: bool | None = None,
):
    """The series ``names`` of ``recording`` (those it has, on the first one's steps; of a
    series of vectors its element 0, as a readout ``Field(index=0)`` shows) as whole curves
    with a cursor at the keyframe's step, labelled for the page's legend (no legend of
    their own); log axes where every value is positive and they span two decades (``log``
    None)."""
    from .plotting import CurvesPanel

    pairs = [(n, lab) for n, lab in zip(names, labels or names) if n in recording]
    steps = np.asarray(recording[pairs[0][0]].steps)
    values = np.stack([_on_steps(recording[n], steps) for n, _ in pairs], axis=1)  # (T, k)
    if log is None:
        finite = values[np.isfinite(values)]
        log = bool(finite.size and finite.min() > 0 and finite.max() / finite.min() >= 100)
    panel = CurvesPanel(
        ax,
        steps,
        values,
        labels=[lab for _, lab in pairs],
        log=log,
        ylabel=ylabel,
        xlabel=xlabel,
        colors=colors,
        reveal="cursor",
        legend=False,
    )
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo))  # a cursor at an end shows whole
    return panel


def _on_steps(series, steps: np.ndarray) -> np.ndarray:
    """``series``'s values at ``steps`` (its last snapshot at or before each)."""
    own = np.asarray(series.steps)
    at = np.maximum(np.searchsorted(own, steps, side="right") - 1, 0)
    return np.asarray(series.values, dtype=float).reshape(len(own), -1)[at, 0]


def save_page(fig: Figure, path: str | os.PathLike) -> Path:
    """Write a handout page (:func:`handout_figure`) to ``path``, a PDF or a PNG at
    :data:`DPI` by its extension; the file appears whole or not at all."""
    path = check_handout_path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with matplotlib.rc_context(STYLE):
            if path.suffix.lower() == ".pdf":
                fig.savefig(tmp, format="pdf", dpi=DPI, metadata={"Creator": "nndynamics"})
            else:
                fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
