"""The particle scene in detail: ink where particles are, paths beneath teachers, stride,
files decoded back, stills, notebooks, odd sizes (every scene's contract: test_scene_contract)."""

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import make_particle_recording

from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.plotting import COLORS
from scenes.registry import get

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)


def scene_for(name, recording=None, options=DRAFT, **config):
    entry = get(name)
    recording = recording or entry.scene.example()
    return entry.scene(recording, entry.scene.Config(**config) if config else None, options)


def test_parallel_workers_give_the_same_frames_in_order():
    scene = scene_for(
        "relu_particles", options=RenderOptions.preset_for("draft", progress=False, stride=1)
    )
    serial = list(scene.iter_frames(workers=1))
    parallel = list(scene.iter_frames(workers=2, block=3))
    assert len(parallel) == len(serial)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def data_to_pixel(scene, xy):
    ax = scene.panels_[0].ax
    x, y = ax.transData.transform(xy)
    return int(round(scene.options.height - y)), int(round(x))


def hex_rgb(color):
    import matplotlib.colors as mc

    return np.array(mc.to_rgb(color)) * 255


def test_particle_pixels_and_background():
    rec = make_particle_recording()
    scene = scene_for("relu_particles", rec)
    frame = scene.frame(-1)
    np.testing.assert_array_equal(frame[0, 0], [255, 255, 255])  # background at the corner
    for p in np.asarray(rec["positions"].values[-1]):
        r, c = data_to_pixel(scene, p)
        assert np.abs(frame[r, c].astype(int) - hex_rgb(COLORS["particle"])).max() < 40, p
    # the path: the start of particle 0 stays as a grey dot once it has moved on
    r, c = data_to_pixel(scene, rec["positions"].values[0][0])
    assert np.abs(frame[r, c].astype(int) - 255).max() > 40


def test_path_stays_beneath_teacher_dots():
    # particle 0 starts on a teacher neuron and moves away: its stamped path dot must not
    # cover the teacher's red dot (the background is drawn before the path is stamped)
    rec = make_particle_recording()
    teacher = np.asarray(rec.metadata["teacher"]["positions"][0])
    positions = np.array(rec["positions"].values)
    positions[:, 0] = teacher + np.linspace(0, 1, len(positions))[:, None] * [0.6, -0.9]
    rec = Recording(
        {"positions": Series(rec["positions"].steps, positions), "loss": rec["loss"]}, rec.metadata
    )
    scene = scene_for("relu_particles", rec, trail=0)
    frame = scene.frame(-1)
    r, c = data_to_pixel(scene, teacher)
    assert np.abs(frame[r, c].astype(int) - hex_rgb(COLORS["reference"])).max() < 40, frame[r, c]


def test_stride_keeps_first_and_last_snapshot():
    opts = RenderOptions.preset_for("draft", progress=False, workers=1, stride=5)
    scene = scene_for("relu_particles", options=opts)
    assert list(scene.frames_) == [0, 5, 10, 11]
    np.testing.assert_array_equal(scene.frame(-1), scene_for("relu_particles").frame(-1))


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_rendered_file_has_particle_colour_where_a_particle_is(tmp_path, ext):
    rec = make_particle_recording()
    scene = scene_for(
        "relu_particles", rec, options=RenderOptions.preset_for("draft", progress=False)
    )
    path = scene.render(tmp_path / f"p{ext}")
    frames = iio.imread(path, index=None)
    assert frames.shape == (12, 360, 640, 3)
    scene.frame(-1)
    target = hex_rgb(COLORS["particle"])
    for p in np.asarray(rec["positions"].values[-1]):
        r, c = data_to_pixel(scene, p)
        assert np.abs(frames[-1, r, c].astype(int) - target).max() < 45, (p, frames[-1, r, c])


def test_still_and_notebook_html(tmp_path):
    scene = scene_for("relu_particles")
    png = scene.still(tmp_path / "s.png", 3)
    np.testing.assert_array_equal(iio.imread(png)[..., :3], scene.frame(3))
    html = scene.with_options(stride=4)._repr_html_()
    assert 'class="nnd-player"' in html and "data:video/mp4;base64," in html
    assert "max-width:1920px" in html  # the inline notebook preset, fitting the cell


def test_missing_series_is_named():
    from dynamics.recording import Recording

    rec = make_particle_recording()
    broken = Recording({"loss": rec["loss"]}, rec.metadata)
    with pytest.raises(KeyError, match="'positions'"):
        scene_for("relu_particles", broken)


@pytest.mark.parametrize("size, dpi", [((1366, 768), 96), ((1920, 1080), 150), ((854, 480), 72)])
def test_odd_dpi_combinations_give_the_exact_frame_size(size, dpi):
    opts = RenderOptions(width=size[0], height=size[1], dpi=dpi, progress=False, workers=1)
    assert scene_for("relu_particles", options=opts).frame(0).shape == (size[1], size[0], 3)
