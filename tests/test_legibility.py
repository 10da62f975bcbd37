"""Legible at every size a notebook shows: glyph and marker sizes measured in frame pixels.

Every registered scene draws a frame of its example recording at the ``notebook`` preset
(what ``Scene.show`` and Jupyter use); every text drawn into that frame is measured (its
cap height in pixels, and that of its mathtext sub- and superscripts), every marker a
legend names is measured across, and no two texts may overlap or leave the frame. The
measure itself is checked against the ink of a rendered "H".

``draft`` (640x360 at dpi 50) is for tests and quick looks and is not claimed legible: its
small text has a cap height of 4.2 px and the spiral's class markers are 2.6 px across.
"""

from contextlib import contextmanager

import numpy as np
import pytest
from matplotlib import cbook
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.mathtext import MathTextParser
from matplotlib.text import Text
from matplotlib.textpath import TextPath

from scenes.base import QUALITY_PRESETS, RenderOptions, Scene
from scenes.raster import GlyphText, SpriteScatter
from scenes.registry import discover
from scenes.writers import Mp4Writer

SCENES = discover()
NOTEBOOK = RenderOptions.preset_for("notebook", progress=False, workers=1)

#: Smallest cap height (the height of "H") of any text, in frame pixels: text under ~9 px
#: is not read from the back of a lecture hall (issue 26).
MIN_CAP_PX = 9.0
#: Smallest cap height of a mathtext sub- or superscript (70% of its text, as in print: an
#: axis's exponent in 10^-3 is 10.6 px at notebook, the legend's indices in a_i w_i 8.9 px).
MIN_SCRIPT_CAP_PX = 8.5
#: Smallest width of a marker that a legend names: a circle and a triangle are told apart
#: from about 7 px across (the spiral's classes are 2.6 px at draft, 7.8 px at notebook).
MIN_MARKER_PX = 7.0
TICK_MARKERS = {0, 1, 2, 3}  # TICKLEFT, TICKRIGHT, TICKUP, TICKDOWN: an axis's tick lines


def cap_height_px(prop: FontProperties, dpi: float) -> float:
    """Cap height in pixels of ``prop`` (its size in points) at ``dpi``: the height of the
    outline of "H" in that font."""
    return TextPath((0, 0), "H", prop=prop).get_extents().height * dpi / 72


def smallest_size_pt(text: str, prop: FontProperties) -> float:
    """The smallest font size (points) of any glyph of ``text``: its own size, or for
    mathtext (``$10^{-3}$``) the size of its smallest glyph (an exponent is 0.7 of it)."""
    if not cbook.is_math_text(text):
        return prop.get_size_in_points()
    parsed = MathTextParser("path").parse(text, dpi=72, prop=prop)
    return min(size for _, size, *_ in parsed.glyphs)


@contextmanager
def drawn_artists(fig: Figure):
    """Record the texts, glyph texts and markers drawn into ``fig`` while the block runs:
    ``{"text": [(Text, window extent)], "glyphs": [GlyphText], "markers": [(label, px)]}``
    (the last extent of each artist; a text drawn elsewhere, a glyph cache, is left out)."""
    texts, glyphs, markers = {}, {}, {}
    draw_text, draw_glyphs = Text.draw, GlyphText.draw
    draw_line, draw_points, draw_sprites = Line2D.draw, PathCollection.draw, SpriteScatter.draw

    def text(self, renderer):
        draw_text(self, renderer)
        if self.figure is fig and self.get_visible() and self.get_text().strip():
            texts[id(self)] = (self, self.get_window_extent(renderer))

    def glyph_text(self, renderer):
        draw_glyphs(self, renderer)
        if self.figure is fig and self.get_visible() and self.get_text().strip():
            glyphs[id(self)] = self

    def line(self, renderer):
        draw_line(self, renderer)
        if self.figure is fig and self.get_visible() and self.get_marker() not in TICK_MARKERS:
            if self.get_marker() not in (None, "None", "", " "):
                markers[id(self)] = (self.get_label(), self.get_markersize() * fig.dpi / 72)

    def points(self, renderer):
        draw_points(self, renderer)
        sizes = self.get_sizes()
        if self.figure is fig and self.get_visible() and len(sizes):
            across = np.sqrt(np.median(sizes)) * fig.dpi / 72  # s is the area in points^2
            markers[id(self)] = (self.get_label(), across)

    def sprites(self, renderer):
        draw_sprites(self, renderer)
        if self.get_visible():
            markers[id(self)] = (self.get_label(), np.sqrt(self.style["size"]) * fig.dpi / 72)

    Text.draw, GlyphText.draw = text, glyph_text
    Line2D.draw, PathCollection.draw, SpriteScatter.draw = line, points, sprites
    found = {"text": [], "glyphs": [], "markers": []}
    try:
        yield found
    finally:
        Text.draw, GlyphText.draw = draw_text, draw_glyphs
        Line2D.draw, PathCollection.draw, SpriteScatter.draw = draw_line, draw_points, draw_sprites
        found["text"] = list(texts.values())
        found["glyphs"] = list(glyphs.values())
        found["markers"] = list(markers.values())


def measure(scene: Scene, i: int) -> dict:
    """Draw frame ``i`` of ``scene`` from scratch and record what was drawn."""
    scene._build(blit=False)
    with drawn_artists(scene._fig) as found:
        scene.frame(i, blit=False)
    return found


@pytest.fixture(scope="module", params=sorted(SCENES))
def notebook_frame(request):
    cls = SCENES[request.param].scene
    scene = cls(cls.example(), None, NOTEBOOK)
    return request.param, scene, measure(scene, len(scene) // 2)


def test_the_cap_height_measure_matches_the_ink_of_a_rendered_h():
    dpi = 100
    fig = Figure(figsize=(1, 1), dpi=dpi)
    FigureCanvasAgg(fig)
    text = fig.text(0.2, 0.3, "H", fontsize=20)
    fig.canvas.draw()
    ink = np.asarray(fig.canvas.buffer_rgba())[..., 0] < 128
    rows = np.flatnonzero(ink.any(axis=1))
    measured = cap_height_px(text.get_fontproperties(), dpi)
    assert abs((rows[-1] - rows[0] + 1) - measured) <= 1.0, (rows, measured)
    # mathtext: an exponent is smaller than its base
    prop = FontProperties(size=10)
    assert smallest_size_pt(r"$\mathdefault{10^{-3}}$", prop) == pytest.approx(7.0)
    assert smallest_size_pt("10", prop) == 10


def test_the_notebook_preset_keeps_the_final_layout_at_a_larger_scale():
    """Same inches as ``final`` (so every scene's layout is the one tuned for lectures),
    1.5x the pixels per point."""
    final, notebook = QUALITY_PRESETS["final"], QUALITY_PRESETS["notebook"]
    for side in ("width", "height"):
        assert notebook[side] / notebook["dpi"] == final[side] / final["dpi"]
    assert notebook["dpi"] == 1.5 * final["dpi"]
    assert set(Mp4Writer.QUALITY) == set(QUALITY_PRESETS)  # --quality takes every name


def test_every_text_is_legible(notebook_frame):
    name, scene, found = notebook_frame
    dpi = scene.options.dpi
    assert found["text"], f"{name}: no text drawn"
    small = []
    for text, _ in found["text"]:
        prop = text.get_fontproperties()
        px = cap_height_px(prop, dpi)
        script = prop.copy()
        script.set_size(smallest_size_pt(text.get_text(), prop))
        script_px = cap_height_px(script, dpi)
        if px < MIN_CAP_PX or script_px < MIN_SCRIPT_CAP_PX:
            small.append(f"{text.get_text()!r}: {px:.1f} px (scripts {script_px:.1f} px)")
    for glyphs in found["glyphs"]:  # the readout's numbers
        prop = FontProperties(size=glyphs.style.get("fontsize"), family=glyphs.style["family"])
        px = cap_height_px(prop, dpi)
        if px < MIN_CAP_PX:
            small.append(f"{glyphs.get_text()!r}: {px:.1f} px")
    assert not small, f"{name}: cap height under {MIN_CAP_PX} px ({MIN_SCRIPT_CAP_PX}): {small}"


def test_every_named_marker_is_large_enough_to_tell_apart(notebook_frame):
    name, _, found = notebook_frame
    named = [(label, px) for label, px in found["markers"] if label and label[0] != "_"]
    small = [f"{label!r}: {px:.1f} px" for label, px in named if px < MIN_MARKER_PX]
    assert not small, f"{name}: markers under {MIN_MARKER_PX} px across: {small}"


def test_no_two_texts_overlap_and_none_leaves_the_frame(notebook_frame):
    name, scene, found = notebook_frame
    boxes = [(text.get_text(), box) for text, box in found["text"]]
    width, height = scene.options.width, scene.options.height
    outside = [s for s, b in boxes if b.x0 < 0 or b.y0 < 0 or b.x1 > width or b.y1 > height]
    assert not outside, f"{name}: texts leave the {width}x{height} frame: {outside}"
    overlaps = [
        (a, b)
        for k, (a, box_a) in enumerate(boxes)
        for b, box_b in boxes[k + 1 :]
        if min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0) > 0
        and min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0) > 0
    ]
    assert not overlaps, f"{name}: texts overlap: {overlaps}"
