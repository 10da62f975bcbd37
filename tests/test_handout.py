"""Handouts, read back by pdfium (as a viewer or a printer reads them): one landscape page
of A4 or US Letter, a cell per keyframe whose header shows the keyframe's step and the
readout the recording has at that step, every text at least 8 pt, no ink at the page's
edge, every cell's drawing inside its cell, vectors (no page-sized picture)."""

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from scenes.base import RenderOptions
from scenes.curves import CurvesScene
from scenes.handout import PAPERS, handout_figure, keyframe_steps, save_page
from scenes.particles import ParticlesScene
from scenes.registry import discover

SMALL = {"width": 320, "height": 180, "dpi": 30, "progress": False, "workers": 1}
POINTS = 72  # PDF units per inch


def particles(**options):
    return ParticlesScene(ParticlesScene.example(), options=RenderOptions(**SMALL, **options))


def seeded():
    """Every registered scene with an example recording (the seeded ones and the rest)."""
    out = []
    for name, entry in discover().items():
        try:
            entry.scene.example()
        except NotImplementedError:
            continue
        out.append(name)
    return out


def read_page(path, scale: float = 1.0):
    """The PDF's one page: its pixels (pdfium's rendering at ``scale`` x 72 dpi), its text
    objects' font sizes, its image count, its size in points and its text page."""
    pdf = pdfium.PdfDocument(str(path))
    assert len(pdf) == 1
    page = pdf[0]
    objects = list(page.get_objects(max_depth=8))
    sizes = [o.get_font_size() for o in objects if o.type == pdfium_c.FPDF_PAGEOBJ_TEXT]
    images = sum(1 for o in objects if o.type == pdfium_c.FPDF_PAGEOBJ_IMAGE)
    pixels = page.render(scale=scale).to_numpy()[:, :, :3]
    return pixels, sizes, images, page.get_size(), page.get_textpage()


def cell_text(textpage, fig, box) -> str:
    """The text pdfium finds inside ``box`` (page fractions) of a page of ``fig``'s size."""
    w, h = fig.get_size_inches() * POINTS
    return textpage.get_text_bounded(box.x0 * w, box.y0 * h, box.x1 * w, box.y1 * h)


def expected_readout(scene, step: float) -> list[str]:
    """``label value`` of each readout field, read from the recording itself: its last
    snapshot at or before ``step``, formatted as the movie's header formats it."""
    out = []
    for f in scene.readout_fields():
        if f.series not in scene.recording:
            continue
        s = scene.recording[f.series]
        steps = np.asarray(s.steps)
        before = np.flatnonzero(steps <= step)
        if len(before):
            v = np.asarray(s.values[before[-1]], dtype=float)
            value = f.fmt.format(float(v if f.index is None else v.reshape(-1)[f.index]))
        else:
            value = "not yet"
        out.append(f"{f.label} {value}")
    return out


def check_page(path, scene, fig, keyframes, paper="a4"):
    """What every handout must hold (see the module docstring)."""
    pixels, sizes, images, size, textpage = read_page(path)
    assert size == pytest.approx(tuple(v * POINTS for v in PAPERS[paper]), abs=0.5)
    # nothing clipped at the page's edge: its outer 0.25 inch is white, and there is ink
    edge = round(0.25 * POINTS)
    ink = np.any(pixels < 235, axis=2)
    assert not ink[:edge].any() and not ink[-edge:].any()
    assert not ink[:, :edge].any() and not ink[:, -edge:].any()
    # the cells fill the page: the ink spans most of the room within the margins
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert (rows[-1] - rows[0]) / ink.shape[0] > 0.8 and (cols[-1] - cols[0]) / ink.shape[1] > 0.85
    # every text at least 8 pt printed (the page is printed at its own size)
    assert sizes and min(sizes) >= 8.0 - 1e-3, sorted(sizes)[:5]
    # each cell: its step, its chapter and the readout the recording has at its step
    renderer = fig.canvas.get_renderer()
    page_box = fig.bbox
    for kf in keyframes:
        text = " ".join(cell_text(textpage, fig, kf.box).split())
        assert f"step {int(round(kf.step)):,d}" in text, text
        for field in expected_readout(scene, kf.step):
            assert field in text, (field, text)
        # what the scene drew lies inside its cell: nothing reaches into the next one
        cell = kf.box.transformed(fig.transFigure).padded(1.0)
        for ax in kf.axes:
            tight = ax.get_tightbbox(renderer)
            assert cell.containsx(tight.x0) and cell.containsx(tight.x1), (ax, tight, cell)
            assert cell.containsy(tight.y0) and cell.containsy(tight.y1), (ax, tight, cell)
        assert page_box.contains(*kf.box.transformed(fig.transFigure).p0)
    page_text = textpage.get_text_range()
    assert "final" not in page_text  # never the run's final figures
    return images


def test_keyframes_are_the_chapters_between_the_first_and_the_last_step():
    scene = particles(chapters=((35, "Halfway"), (110, "Last")))
    assert keyframe_steps(scene) == [(0.0, "start"), (40.0, "Halfway"), (110.0, "Last")]
    assert [s for s, _ in keyframe_steps(particles())] == [0, 20, 40, 70, 90, 110]
    assert [s for s, _ in keyframe_steps(scene, count=3)] == [0, 60, 110]
    with pytest.raises(ValueError, match="1 to 12 keyframes"):
        keyframe_steps(scene, count=13)
    curves = CurvesScene(CurvesScene.example(), options=RenderOptions(**SMALL))
    assert len(keyframe_steps(curves)) == 4  # drawn whole in each cell: fewer, larger cells


@pytest.mark.parametrize("name", seeded())
def test_each_scenes_handout_carries_its_keyframes_readouts_legibly(name, tmp_path):
    """Every scene with an example: one A4 page, each keyframe's own readout, 8 pt text,
    a white margin, the cells filling the page, each drawing inside its cell."""
    entry = discover()[name]
    rec = entry.scene.example()
    scene = entry.scene(rec, options=RenderOptions(**SMALL, chapters=((35, "Halfway"),)))
    fig, keyframes = handout_figure(scene)
    assert [kf.label for kf in keyframes] == [label for _, label in keyframe_steps(scene)]
    assert any(kf.label == "Halfway" and "Halfway" in kf.title for kf in keyframes)
    path = save_page(fig, tmp_path / f"{name}.pdf")  # as scene.handout(path) writes it
    check_page(path, scene, fig, keyframes)
    if scene.readout_fields():  # the readout moves from keyframe to keyframe
        assert len({kf.texts[-1].get_text() for kf in keyframes}) == len(keyframes)


def test_small_panel_scenes_draw_the_main_panel_beside_a_curve_with_a_cursor(tmp_path):
    """relu_particles: the particles with axis labels, the loss beside them with a cursor
    at each keyframe's step, one legend for the page naming students, teachers, loss."""
    from scenes.plotting import CurvesPanel
    from scenes.relu_particles import ReluParticlesScene

    scene = ReluParticlesScene(ReluParticlesScene.example(), options=RenderOptions(**SMALL))
    fig, keyframes = handout_figure(scene)
    for kf in keyframes:
        main, curve = kf.axes[:2]
        assert main.get_xlabel() and main.get_ylabel()
        assert curve.get_xlabel() == "SGD step" and curve.get_ylabel()
        (panel,) = [p for p in kf.panels if isinstance(p, CurvesPanel)]
        assert panel.cursor.get_xdata()[0] == kf.step
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == 3 and any("student" in t for t in labels) and "loss" in labels
    _, _, images, _, _ = read_page(save_page(fig, tmp_path / "relu.pdf"))
    assert images == 0  # particles, paths, curves: vectors


def test_the_flagships_labels_are_the_experiments_only_on_its_recordings():
    """A user's own recording drawn by the flagship scene (the README's loop) shows its
    series' name and "step", not the experiment's "loss on held-out samples", "SGD step"."""
    from dynamics.recording import Recording
    from scenes.relu_particles import ReluParticlesScene

    example = ReluParticlesScene.example()
    mine = Recording(dict(example.items()), {})
    expected = {"experiment": ("SGD step", "loss on held-out samples"), "mine": ("step", "loss")}
    for rec, labels in ((example, expected["experiment"]), (mine, expected["mine"])):
        scene = ReluParticlesScene(rec, options=RenderOptions(**SMALL))
        _, keyframes = handout_figure(scene)
        curve = keyframes[0].axes[1]
        assert (curve.get_xlabel(), curve.get_ylabel()) == labels



def test_a_letter_page_and_a_png_at_300_dpi(tmp_path):
    import imageio.v3 as iio

    from scenes.spiral import SpiralScene

    scene = SpiralScene(SpiralScene.example(), options=RenderOptions(**SMALL))
    fig, keyframes = handout_figure(scene, paper="letter", count=2)
    assert tuple(fig.get_size_inches()) == pytest.approx(PAPERS["letter"])
    path = scene.handout(tmp_path / "spiral.pdf", paper="Letter", count=2)
    check_page(path, scene, fig, keyframes, paper="letter")
    png = iio.imread(scene.handout(tmp_path / "spiral.png", count=2))
    assert png.shape[:2] == pytest.approx((PAPERS["a4"][1] * 300, PAPERS["a4"][0] * 300), abs=1)
    with pytest.raises(ValueError, match="paper must be one of a4, letter"):
        scene.handout(tmp_path / "x.pdf", paper="legal")
    assert not (tmp_path / "x.pdf").exists()


def test_a_sweeps_handout_draws_its_grid_as_vectors_without_repeating_the_title(tmp_path):
    from scenes.sweep import SweepScene

    recs = [ParticlesScene.example(seed=s) for s in (0, 1)]
    scene = SweepScene(ParticlesScene, recs, {"seed": [0, 1]}, options=RenderOptions(**SMALL))
    fig, keyframes = handout_figure(scene)
    path = save_page(fig, tmp_path / "sweep.pdf")
    images = check_page(path, scene, fig, keyframes)
    assert images == 0
    _, _, _, _, textpage = read_page(path)
    assert textpage.get_text_range().count(scene.heading()) == 1  # the page's title, once
    for kf in keyframes:
        assert len(kf.axes) == 2  # both runs in every keyframe


def test_the_command_line_writes_a_handout_and_refuses_a_bad_one_before_work(tmp_path, capsys):
    from scenes.cli import main

    rec = ParticlesScene.example().save(tmp_path / "p.rec")
    out = tmp_path / "p.mp4"
    base = [str(rec), "--out", str(out), "--quality", "draft", "--quiet", "--workers", "1"]
    main(
        "particles",
        [*base, "--handout", str(tmp_path / "h.pdf"), "--handout-frames", "2", "--paper", "letter"],
    )
    _, _, _, size, _ = read_page(tmp_path / "h.pdf")
    assert size == pytest.approx((11 * POINTS, 8.5 * POINTS), abs=0.5)
    out.unlink()
    for flags, message in [
        (["--handout", str(tmp_path / "h.svg")], "a handout is a .pdf or .png file"),
        (["--handout", str(tmp_path / "x.pdf"), "--handout-frames", "40"], "between 1 and 12"),
        (["--handout", str(tmp_path / "x.pdf"), "--paper", "legal"], "--paper must be a4 or"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main("particles", [*base, *flags])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not out.exists() and not (tmp_path / "x.pdf").exists()


def test_the_font_size_pdfium_reads_is_the_printed_size(tmp_path):
    """The check above reads sizes as pdfium reports them: a text's size in points times
    its matrix's scale, what a printer prints (a 10 pt text reads 10)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    fig.text(0.1, 0.5, "ten points", fontsize=10)
    fig.savefig(tmp_path / "t.pdf")
    _, sizes, _, _, _ = read_page(tmp_path / "t.pdf")
    assert sizes == pytest.approx([10.0])
