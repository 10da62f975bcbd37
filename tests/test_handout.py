"""Handouts: one page (counted by pdfium), a labelled panel per keyframe, ink in every
panel (the page rasterised by pdfium), vectors for scenes with small panels."""

import numpy as np
import pypdfium2 as pdfium
import pytest

from scenes.base import RenderOptions
from scenes.curves import CurvesScene
from scenes.handout import handout_figure, keyframe_steps
from scenes.particles import ParticlesScene

SMALL = {"width": 320, "height": 180, "dpi": 30, "progress": False, "workers": 1}


def particles(**options):
    return ParticlesScene(ParticlesScene.example(), options=RenderOptions(**SMALL, **options))


def page_pixels(path, scale: float = 1.5):
    """The PDF's pages rasterised by pdfium (as a viewer or printer draws them)."""
    pdf = pdfium.PdfDocument(str(path))
    pages = [pdf[i].render(scale=scale).to_numpy()[:, :, :3] for i in range(len(pdf))]
    images = [
        sum(1 for obj in pdf[i].get_objects() if obj.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE)
        for i in range(len(pdf))
    ]
    return pages, images


def panel_regions(fig, axes, image):
    """Each panel's pixels in ``image`` (a raster of the whole page), from its axes box."""
    h, w = image.shape[:2]
    regions = []
    for ax in axes:
        box = ax.get_position()
        regions.append(
            image[
                round((1 - box.y1) * h) : round((1 - box.y0) * h),
                round(box.x0 * w) : round(box.x1 * w),
            ]
        )
    return regions


def test_keyframes_are_the_chapters_between_the_first_and_the_last_step():
    scene = particles(chapters=((35, "Halfway"), (110, "Last")))
    assert keyframe_steps(scene) == [(0.0, "start"), (40.0, "Halfway"), (110.0, "Last")]
    assert [s for s, _ in keyframe_steps(particles())] == [0, 20, 40, 70, 90, 110]
    assert [s for s, _ in keyframe_steps(scene, count=3)] == [0, 60, 110]
    with pytest.raises(ValueError, match="1 to 12 keyframes"):
        keyframe_steps(scene, count=13)


def test_a_pdf_handout_is_one_vector_page_with_ink_in_every_labelled_panel(tmp_path):
    scene = particles(chapters=((35, "Halfway"),))
    path = scene.handout(tmp_path / "handout.pdf")
    pages, images = page_pixels(path)
    assert len(pages) == 1
    assert images == [0]  # particles, paths and references are vectors, not a picture
    fig, axes = handout_figure(scene)
    assert [ax.get_title(loc="left") for ax in axes] == [
        "step 0",
        "step 40 · Halfway",
        "step 110",
    ]
    regions = panel_regions(fig, axes, pages[0])
    for region in regions:
        ink = np.any(region < 200, axis=2).mean()
        assert ink > 0.01, ink  # axes, ticks, particles
        blue = (region[:, :, 2] > 150) & (region[:, :, 0] < 90)  # the particles' fill
        assert blue.sum() > 20
    # the particles move: every panel differs from the others
    for a, b in zip(regions, regions[1:]):
        n = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        assert np.abs(a[: n[0], : n[1]].astype(int) - b[: n[0], : n[1]]).mean() > 0.5


def test_a_png_handout_and_a_scene_without_small_panels(tmp_path):
    import imageio.v3 as iio

    scene = CurvesScene(CurvesScene.example(), options=RenderOptions(**SMALL))
    png = iio.imread(scene.handout(tmp_path / "curves.png", count=4))
    fig, axes = handout_figure(scene, count=4)
    assert png.shape[1] == round(fig.get_figwidth() * 200)  # 200 dpi
    for region in panel_regions(fig, axes, png[:, :, :3]):
        assert np.any(region < 200, axis=2).mean() > 0.01
    pages, images = page_pixels(scene.handout(tmp_path / "curves.pdf", count=4))
    assert len(pages) == 1 and images == [4]  # its rendered frames, one per panel


def test_the_command_line_writes_a_handout_and_refuses_a_bad_one_before_work(tmp_path, capsys):
    from scenes.cli import main

    rec = ParticlesScene.example().save(tmp_path / "p.rec")
    out = tmp_path / "p.mp4"
    base = [str(rec), "--out", str(out), "--quality", "draft", "--quiet", "--workers", "1"]
    main("particles", [*base, "--handout", str(tmp_path / "h.pdf"), "--handout-frames", "4"])
    pages, _ = page_pixels(tmp_path / "h.pdf")
    assert len(pages) == 1
    out.unlink()
    for flags, message in [
        (["--handout", str(tmp_path / "h.svg")], "a handout is a .pdf or .png file"),
        (["--handout", str(tmp_path / "x.pdf"), "--handout-frames", "40"], "between 1 and 12"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main("particles", [*base, *flags])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not out.exists() and not (tmp_path / "x.pdf").exists()


def test_a_spiral_handout_shows_each_keyframes_own_accuracy_not_the_runs_final(tmp_path):
    """Each keyframe panel reads the accuracy at its own step (it printed the run's final
    'train accuracy 1.000' under every keyframe, step 0 included)."""
    from scenes.handout import write_handout
    from scenes.spiral import SpiralScene

    rec = SpiralScene.example()
    scene = SpiralScene(rec, options=RenderOptions(**SMALL))
    fig, axes = handout_figure(scene)
    acc = rec["train_accuracy"]
    keys = keyframe_steps(scene)
    assert len(axes) == len(keys) >= 2
    for ax, (step, _) in zip(axes, keys):
        i = int(np.searchsorted(acc.steps, step, side="right")) - 1
        assert ax.get_xlabel().startswith(f"train accuracy {acc.values[i]:.3f}"), ax.get_xlabel()
    labels = {ax.get_xlabel() for ax in axes}
    assert len(labels) == len(axes)  # the accuracy moves from keyframe to keyframe
    path = write_handout(scene, tmp_path / "spiral.pdf")
    text = pdfium.PdfDocument(str(path))[0].get_textpage().get_text_range()
    assert f"train accuracy {acc.values[0]:.3f}" in text
    assert "final" not in text
