"""Moving layers drawn straight into the frame buffer instead of as matplotlib artists.

A frame of the particle movie redraws a few artists over a cached background. Measured
on the benchmark scene (200 particles, 30-position trails): the legend cost 24 ms of a
50 ms frame, the readout's texts 10 ms, the scatters 4 ms, although none changes shape.
Here each is drawn once by matplotlib and then reused (14 ms a frame in all):

* :class:`StaticLayer` draws artists that never change (a legend, reference rays and
  dots) once into a transparent RGBA image, and blits that image each frame (Agg's
  ``draw_image``, C). It keeps its place in the drawing order: artists below it are
  drawn before it, above it after.
* :class:`SpriteScatter` draws equal markers at moving positions by compositing one
  pre-rendered marker image (a *sprite*, drawn by matplotlib in the same axes) into the
  canvas buffer with a numba kernel, instead of stroking one path per marker.
* :class:`GlyphText` draws a changing monospace text from glyphs rendered once.

All are matplotlib artists, so the frame engine treats them like any other moving
artist. ``tests/test_raster.py`` compares their pixels with matplotlib's own drawing.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numba as nb
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["StaticLayer", "SpriteScatter", "GlyphText"]


def _buffer(renderer) -> np.ndarray:
    """The Agg renderer's RGBA pixels as a writable (height, width, 4) uint8 view."""
    return np.asarray(renderer.buffer_rgba())


class StaticLayer(Artist):
    """Artists that never change, drawn once into an RGBA image and blitted every frame.

    Parameters
    ----------
    artists : sequence of Artist
        Drawn in the given order into a transparent layer the first time the layer is
        drawn (they are marked animated, so the cached background leaves them out).
    zorder : float
        Where the layer sits among the moving artists (default: the highest of its
        artists).
    """

    def __init__(self, artists: Sequence[Artist], zorder: float | None = None):
        super().__init__()
        self.artists = list(artists)
        for artist in self.artists:
            artist.set_animated(True)
        self.set_zorder(
            max((a.get_zorder() for a in self.artists), default=0) if zorder is None else zorder
        )
        self.image: np.ndarray | None = None
        self.origin = (0, 0)

    def _render(self, renderer) -> None:
        buf = _buffer(renderer)
        saved = buf.copy()
        buf[:] = 0  # transparent: the artists' own colours and coverage, straight alpha
        for artist in self.artists:
            artist.draw(renderer)
        layer = buf.copy()
        buf[:] = saved
        rows = np.flatnonzero(layer[..., 3].any(axis=1))
        cols = np.flatnonzero(layer[..., 3].any(axis=0))
        if len(rows) == 0:
            self.image = layer[:0, :0]
            return
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        self.image = np.ascontiguousarray(layer[r0:r1, c0:c1])
        self.origin = (int(c0), int(buf.shape[0] - r1))  # draw_image: from the bottom left

    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        if self.image is None:
            self._render(renderer)
        if self.image.size == 0:
            return
        gc = renderer.new_gc()
        renderer.draw_image(gc, *self.origin, self.image[::-1])
        gc.restore()


def _sprite(ax: Axes, renderer, style: dict) -> tuple[np.ndarray, int]:
    """Premultiplied float32 RGBA image ``(S, S, 4)`` of one marker, drawn by matplotlib in
    ``ax`` with the renderer the frames use, and the row/column ``c`` of its centre pixel.

    Drawn in the real axes rather than a scratch figure so that every rule of Agg's
    (which pixel a marker centres on, snapping, anti-aliasing) is the one the frames
    would get: Agg centres a marker on pixel ``round(x)``; the sample marker sits at
    ``P + 0.3`` of a pixel ``P`` in the middle of the axes, so its centre pixel is ``P``.
    """
    dpi = renderer.dpi
    diameter = math.sqrt(style["size"]) * dpi / 72 + style["linewidth"] * dpi / 72
    side = int(math.ceil(diameter)) + 4
    c = side // 2
    buf = _buffer(renderer)
    height = buf.shape[0]
    x0, y0, x1, y1 = ax.bbox.extents
    col, row = int((x0 + x1) / 2), int(height - (y0 + y1) / 2)
    xy = ax.transData.inverted().transform([[col + 0.3, height - row - 0.3]])
    dot = ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=style["size"],
        color=style["facecolor"],
        edgecolors=style["edgecolor"],
        linewidths=style["linewidth"],
        alpha=style["alpha"],
    )
    saved = buf.copy()
    try:
        buf[:] = 0
        dot.draw(renderer)
        patch = buf[row - c : row - c + side, col - c : col - c + side].astype(np.float32) / 255
    finally:
        buf[:] = saved
        dot.remove()
    patch[..., :3] *= patch[..., 3:]
    return patch, c


class SpriteScatter(Artist):
    """Equal circle markers at moving positions, composited into the frame buffer.

    Looks like ``ax.scatter(x, y, s=size, c=facecolor, edgecolors=edgecolor,
    linewidths=linewidth)`` (clipped to the axes); positions are quantised to
    ``1 / PHASES`` of a pixel.

    Parameters
    ----------
    ax : Axes
    size, facecolor, edgecolor, linewidth
        As for :meth:`~matplotlib.axes.Axes.scatter` (one marker style for all points).
    zorder : float
    label : str
        Legend entry (a proxy artist for the legend is available as :attr:`proxy`).
    """

    def __init__(
        self,
        ax: Axes,
        *,
        size: float,
        facecolor: Any,
        edgecolor: Any = "none",
        linewidth: float = 0.0,
        zorder: float = 2,
        label: str | None = None,
        alpha: float | None = None,
    ):
        super().__init__()
        self.ax = ax
        self.set_zorder(zorder)
        self.set_animated(True)
        self.style = dict(
            size=size, facecolor=facecolor, edgecolor=edgecolor, linewidth=linewidth, alpha=alpha
        )
        self.offsets = np.zeros((0, 2))
        self._sprites: np.ndarray | None = None
        # an empty scatter in the same style (it draws nothing): the legend's handle
        self.proxy = ax.scatter(
            np.zeros(0),
            np.zeros(0),
            s=size,
            color=facecolor,
            edgecolors=edgecolor,
            linewidths=linewidth,
            label=label,
            zorder=zorder,
        )

    def set_offsets(self, xy) -> None:
        """Positions in data coordinates, ``(n, 2)``."""
        self.offsets = np.asarray(xy, dtype=float).reshape(-1, 2)

    def draw(self, renderer) -> None:
        if not self.get_visible() or len(self.offsets) == 0:
            return
        if self._sprites is None:
            sprite, self._center = _sprite(self.ax, renderer, self.style)
            self._sprites = sprite
        buf = _buffer(renderer)
        height = buf.shape[0]
        px = self.ax.transData.transform(self.offsets)
        x0, y0, x1, y1 = self.ax.bbox.extents  # clip box, pixels from the bottom left
        # Agg's clip box also covers the row and column just past the far edges
        clip_r0, clip_r1 = int(round(height - y1)), int(round(height - y0)) + 1
        clip_c0, clip_c1 = int(round(x0)), int(round(x1)) + 1
        cols = px[:, 0]
        rows = height - px[:, 1]
        # Agg centres a marker on pixel (round(H - y), round(x)) (rows from the top)
        whole = np.rint(np.c_[rows, cols]).astype(np.int64)
        tops = whole[:, 0] - self._center
        lefts = whole[:, 1] - self._center
        finite = np.isfinite(px).all(axis=1)
        _composite(
            buf,
            self._sprites,
            tops[finite],
            lefts[finite],
            np.array([clip_r0, clip_r1, clip_c0, clip_c1], np.int64),
        )


@nb.njit(cache=True)
def _composite(buf, sprite, tops, lefts, clip):
    """Each marker in turn, ``dst = src + dst (1 - alpha)`` (premultiplied ``src``), inside
    the clip box ``(r0, r1, c0, c1)``, rounded to uint8 after every marker as Agg does."""
    side = sprite.shape[0]
    for k in range(tops.shape[0]):
        sp = sprite
        for dy in range(side):
            r = tops[k] + dy
            if r < clip[0] or r >= clip[1]:
                continue
            for dx in range(side):
                c = lefts[k] + dx
                if c < clip[2] or c >= clip[3]:
                    continue
                a = sp[dy, dx, 3]
                if a <= 0:
                    continue
                for ch in range(3):
                    v = sp[dy, dx, ch] * 255 + buf[r, c, ch] * (1 - a)
                    buf[r, c, ch] = min(255, int(v + 0.5))
                buf[r, c, 3] = max(buf[r, c, 3], min(255, int(a * 255 + 0.5)))


class GlyphText(Artist):
    """A one-line monospace text that changes every frame, drawn from cached glyphs.

    Each character is rendered once by matplotlib (same font, size, colour and
    alignment as ``fig.text(x, y, s, ha="right", va="center", family="monospace")``)
    and then composited at ``x - (n - k) * advance`` for character ``k`` of ``n``;
    glyph origins are rounded to whole pixels (matplotlib places them at fractions of a
    pixel: glyph edges may differ by a level or two of anti-aliasing).

    Parameters
    ----------
    fig : Figure
    xy : (float, float)
        The right end of the text and its vertical centre, in figure coordinates.
    advance : float
        Width of one character in pixels (monospace).
    **style
        Text properties (``fontsize``, ``color``, ``family``...).
    """

    def __init__(self, fig: Figure, xy: tuple[float, float], advance: float, **style: Any):
        super().__init__()
        self.set_figure(fig)
        self.set_animated(True)
        self.xy, self.advance, self.style = xy, float(advance), style
        self.text = ""
        self._glyphs: dict[str, tuple[np.ndarray, int, int]] = {}

    def set_text(self, text: str) -> None:
        self.text = str(text)

    def get_text(self) -> str:
        return self.text

    def _glyph(self, ch: str, dpi: float, frac_y: float) -> tuple[np.ndarray, int, int]:
        """Premultiplied RGBA sprite of ``ch`` and its offset from the anchor pixel."""
        if ch not in self._glyphs:
            side = int(math.ceil(self.advance)) * 3 + 8
            fig = Figure(figsize=(side / dpi, side / dpi), dpi=dpi)
            fig.patch.set_alpha(0)
            FigureCanvasAgg(fig)
            ax_x, ax_y = side // 3, side // 2 + frac_y  # anchor (pixels from the bottom left)
            fig.text(ax_x / side, ax_y / side, ch, ha="left", va="center", **self.style)
            fig.canvas.draw()
            rgba = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float32) / 255
            rgba[..., :3] *= rgba[..., 3:]
            # offset of the sprite's top-left from the anchor, in buffer rows / cols
            self._glyphs[ch] = (rgba, -(side - side // 2), -(side // 3))
        return self._glyphs[ch]

    def draw(self, renderer) -> None:
        if not self.get_visible() or not self.text:
            return
        buf = _buffer(renderer)
        height, width = buf.shape[:2]
        x = self.xy[0] * width
        y = self.xy[1] * height
        frac_y = y - math.floor(y)
        row = height - math.floor(y)  # the anchor's row in the buffer (rows from the top)
        n = len(self.text)
        for k, ch in enumerate(self.text):
            if ch == " ":
                continue
            sprite, dr, dc = self._glyph(ch, renderer.dpi, frac_y)
            col = int(round(x - (n - k) * self.advance))
            top, left = row + dr, col + dc
            _composite(
                buf,
                sprite,
                np.array([top], np.int64),
                np.array([left], np.int64),
                np.array([0, height, 0, width], np.int64),
            )
