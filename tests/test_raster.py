"""Layers drawn straight into the frame buffer against matplotlib's own drawing, and the
density view of many particles."""

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.particles import ParticlesScene, ParticlesSceneConfig
from scenes.plotting import DENSITY_FROM, MASS_COLORS, ParticlePanel
from scenes.raster import GlyphText, SpriteScatter, StaticLayer
from scenes.relu_particles import ReluParticlesScene, ReluParticlesSceneConfig

matplotlib.use("Agg")


def axes(size=4, dpi=100):
    fig = Figure(figsize=(size, size), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    return fig, ax


def pixels(fig):
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)


STYLES = [  # the particle marker and the path dot of the particle scenes
    dict(size=70, facecolor="#1f5fbf", edgecolor="#0b2550", linewidth=0.8, alpha=None),
    dict(size=3, facecolor="#8c8c8c", edgecolor="none", linewidth=0.0, alpha=0.55),
]


@pytest.mark.parametrize("style, tolerance", [(STYLES[0], 1), (STYLES[1], 50)])
def test_sprites_match_matplotlib_scatter(style, tolerance):
    """Markers one by one at random sub-pixel positions (some half outside the axes, some
    over the spines): each composited sprite equals matplotlib's scatter within
    ``tolerance`` levels. The opaque particle marker is exact to rounding; the small
    translucent path dot (alpha 0.55) is off by up to 20 levels over white and 50 over
    a dark spine, in single pixels (Agg rounds its coverage differently there)."""
    points = np.random.default_rng(0).uniform(-1.05, 1.05, (14, 2))
    worst = 0
    for p in points:
        fig, ax = axes()
        ref = ax.scatter(
            [p[0]], [p[1]], s=style["size"], color=style["facecolor"],
            edgecolors=style["edgecolor"], linewidths=style["linewidth"], alpha=style["alpha"],
            zorder=6,  # above the spines, as the scenes draw particles
        )  # fmt: skip
        fig.canvas.draw()
        expected = pixels(fig)
        ref.remove()
        fig.canvas.draw()
        sprite = SpriteScatter(ax, **style)
        sprite.set_offsets([p])
        fig.draw_artist(sprite)
        worst = max(worst, int(np.abs(pixels(fig) - expected).max()))
    assert worst <= tolerance


def test_overlapping_sprites_composite_in_order():
    """Later markers cover earlier ones, as in one scatter call."""
    rng = np.random.default_rng(1)
    pts = rng.normal(0, 0.05, (200, 2))  # a dense clump: many overlaps
    fig, ax = axes()
    ax.scatter(pts[:, 0], pts[:, 1], s=70, color="#1f5fbf", edgecolors="#0b2550", linewidths=0.8)
    ax.collections[0].set_zorder(6)
    fig.canvas.draw()
    expected = pixels(fig)
    fig2, ax2 = axes()
    fig2.canvas.draw()
    sprite = SpriteScatter(ax2, **STYLES[0])
    sprite.set_offsets(pts)
    fig2.draw_artist(sprite)
    diff = np.abs(pixels(fig2) - expected).max(-1)
    assert diff.max() <= 2 and diff.mean() < 0.05


def test_static_layer_blits_what_the_artists_draw():
    fig, ax = axes()
    (ray,) = ax.plot([0, 1], [0, 0.7], color="black", linewidth=1.2, zorder=3)
    ax.scatter([0.5], [0.35], s=80, color="#d62728", edgecolor="black", label="ref", zorder=4)
    legend = ax.legend(loc="upper left")
    fig.canvas.draw()
    expected = pixels(fig)
    for artist in (ray, *ax.collections, legend):
        artist.set_visible(True)
    layer = StaticLayer([ray, *ax.collections, legend])
    fig.canvas.draw()  # the layer's artists are animated: not in the background
    background = pixels(fig)
    assert np.abs(background - expected).max() > 100  # they really were left out
    fig.draw_artist(layer)
    diff = np.abs(pixels(fig) - expected).max(-1)
    assert diff.max() <= 3, diff.max()


def test_glyph_text_matches_matplotlib_text():
    fig = Figure(figsize=(4, 1), dpi=100)
    FigureCanvasAgg(fig)
    style = dict(fontsize="large", family="monospace", color="black")
    probe = fig.text(0.5, 0.5, "0" * 10, **style)
    advance = probe.get_window_extent(fig.canvas.get_renderer()).width / 10
    probe.remove()
    for value in ("12,345", "3.14e-02", "-7"):
        fig.texts.clear()
        fig.text(0.9, 0.5, value, ha="right", va="center", **style)
        fig.canvas.draw()
        expected = pixels(fig)
        fig.texts.clear()
        fig.canvas.draw()
        glyphs = GlyphText(fig, (0.9, 0.5), advance, **style)
        glyphs.set_text(value)
        fig.draw_artist(glyphs)
        got = pixels(fig)
        ink_expected, ink_got = (255 - expected).sum(), (255 - got).sum()
        assert abs(ink_got - ink_expected) / ink_expected < 0.03, value  # same glyphs
        cols = np.flatnonzero((got < 200).any(axis=(0, 2)))
        cols_ref = np.flatnonzero((expected < 200).any(axis=(0, 2)))
        assert abs(cols[0] - cols_ref[0]) <= 1 and abs(cols[-1] - cols_ref[-1]) <= 1, value


def test_particle_scene_frames_match_the_matplotlib_drawing():
    """Whole frames of the particle movie, raster layers against matplotlib artists only:
    sprites, layers and glyphs differ at most at the readout's glyph edges."""
    rng = np.random.default_rng(0)
    T, n = 12, 60
    ends = rng.uniform(-1.5, 1.5, (n, 2))
    pos = (np.linspace(0.02, 1, T)[:, None, None] * ends).astype(np.float32)
    steps = np.arange(T) * 10
    rec = Recording(
        {"positions": Series(steps, pos), "loss": Series(steps, np.geomspace(1, 1e-3, T))},
        {"teacher": {"positions": [[1.0, 1.0], [-1.0, 0.5]]}},
    )
    plain = type("Plain", (ReluParticlesScene,), {"raster": False})
    for trail in (0, 5):
        cfg = ReluParticlesSceneConfig(trail=trail)
        fast = ReluParticlesScene(rec, cfg, RenderOptions(progress=False))
        slow = plain(rec, cfg, RenderOptions(progress=False))
        for i in (0, 6, T - 1):
            diff = np.abs(fast.frame(i).astype(int) - slow.frame(i).astype(int)).max(-1)
            assert (diff > 32).mean() < 0.001 and diff.mean() < 1.0, (trail, i, diff.mean())


# -- the density view ------------------------------------------------------------------


def particles_recording(n=5000, T=6, seed=0, signed=True):
    rng = np.random.default_rng(seed)
    pos = rng.normal(0, 0.6, (T, n, 2)).astype(np.float32)
    mass = rng.normal(0, 1, (T, n)) if signed else np.abs(rng.normal(0, 1, (T, n)))
    steps = np.arange(T) * 100
    return Recording(
        {
            "positions": Series(steps, pos, kind="derived"),
            "mass": Series(steps, mass.astype(np.float32), kind="derived"),
            "loss": Series(steps, np.geomspace(1, 1e-2, T), kind="scalar"),
        },
        {"mass": {"positions": "mass"}},
    )


def test_density_image_mass_equals_the_particles_mass():
    rec = particles_recording()
    fig, ax = axes()
    panel = ParticlePanel(
        ax, rec["positions"].steps, rec["positions"].values, limit=1.0,
        mass=rec["mass"].values, view="density", bins=64,
    )  # fmt: skip
    for t in range(len(rec["positions"].steps)):
        pos, mass = rec["positions"].values[t], rec["mass"].values[t].astype(float)
        inside = (np.abs(pos) < 1.0).all(axis=1)
        assert 0.5 < inside.mean() < 1  # some particles fall outside the box and are left out
        p, q = panel.density(t)
        np.testing.assert_allclose(p.sum(), mass[inside & (mass > 0)].sum(), rtol=1e-9)
        np.testing.assert_allclose(q.sum(), -mass[inside & (mass < 0)].sum(), rtol=1e-9)
    wide = ParticlePanel(
        ax, rec["positions"].steps, rec["positions"].values, limit=100.0,
        mass=rec["mass"].values, view="density",
    )  # fmt: skip
    p, q = wide.density(0)
    np.testing.assert_allclose(p.sum() + q.sum(), np.abs(rec["mass"].values[0]).sum(), rtol=1e-6)
    unit = ParticlePanel(ax, rec["positions"].steps, rec["positions"].values, limit=100.0)
    assert unit.view == "density" and unit.density(0)[0].sum() == 5000  # no mass: 1 each


def test_density_view_draws_both_signs_and_no_artist_per_particle():
    counts = []
    for n in (DENSITY_FROM + 1, 40_000):
        rec = particles_recording(n=n, T=3)
        scene = ParticlesScene(rec, ParticlesSceneConfig(limit=2.0), RenderOptions(progress=False))
        frame = scene.frame(-1)
        assert scene.panels_[0].view == "density"  # auto: above DENSITY_FROM particles
        counts.append(len(scene.panels_[0].ax.get_children()))
        colours = frame.reshape(-1, 3).astype(int)
        for hexcol in MASS_COLORS:
            rgb = np.array(matplotlib.colors.to_rgb(hexcol)) * 255
            assert (np.abs(colours - rgb).max(axis=1) < 40).sum() > 50, hexcol
    assert counts[0] == counts[1]
    few = ParticlesScene(particles_recording(n=DENSITY_FROM, T=2), ParticlesSceneConfig())
    few.frame(0)
    assert few.panels_[0].view == "particles"


def test_density_view_draws_a_sample_of_particles_as_dots():
    rec = particles_recording(n=3000, T=2)
    cfg = ParticlesSceneConfig(limit=2.0, view="density", dots=100)
    scene = ParticlesScene(rec, cfg, RenderOptions(progress=False))
    scene.frame(-1)
    panel = scene.panels_[0]
    assert len(panel.subset) == 100 and len(panel.particles.offsets) == 100
    with pytest.raises(ValueError, match="view must be one of"):
        ParticlesSceneConfig(view="heat")
