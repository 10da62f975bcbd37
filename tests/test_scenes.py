"""Scenes, parametrised over the registry: frame count and size, ink where particles are, blitting == redraw."""

import numpy as np
import pytest
import imageio.v3 as iio

from dynamics.recording import Recording, Series

import scenes.distributions  # noqa: F401  (registers the scenes)
import scenes.mass_shuffle  # noqa: F401
import scenes.relu_particles  # noqa: F401
import scenes.spiral  # noqa: F401
import scenes.classifiers  # noqa: F401
from conftest import SAMPLE_RECORDINGS, make_particle_recording
from scenes.base import RenderOptions, Scene
from scenes.cli import REGISTRY
from scenes.plotting import COLORS
from scenes.writers import Writer

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)


def scene_for(name, recording=None, options=DRAFT, **config):
    entry = REGISTRY[name]
    recording = recording or SAMPLE_RECORDINGS[name]()
    return entry.scene(recording, entry.scene.Config(**config) if config else None, options)


class CountingWriter(Writer):
    """A null encoder that counts what reaches it."""

    def __init__(self):
        super().__init__("/dev/null/never.mp4")
        self.seen = []

    def _write(self, frame):
        self.seen.append(frame.shape)

    def close(self):
        return self.path


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_frame_reaches_the_writer_with_one_even_size(name):
    scene = scene_for(name)
    writer = CountingWriter()
    scene.render("ignored.mp4", writer=writer, workers=1)
    assert len(writer.seen) == len(scene) == 12
    assert {shape[:2] for shape in writer.seen} == {(360, 640)} and len(set(writer.seen)) == 1


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_frames_are_deterministic_and_blitting_equals_full_redraw(name):
    scene = scene_for(name)
    blitted = [scene.frame(i) for i in range(len(scene))]
    again = scene_for(name).frame(7)
    np.testing.assert_array_equal(blitted[7], again)
    for i in (0, 5, 11):
        np.testing.assert_array_equal(blitted[i], scene.frame(i, blit=False))


def test_parallel_workers_give_the_same_frames_in_order():
    scene = scene_for("relu_particles", options=RenderOptions.preset_for("draft", progress=False, stride=1))
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
    rec = Recording({"positions": Series(rec["positions"].steps, positions), "loss": rec["loss"]}, rec.metadata)
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
    scene = scene_for("relu_particles", rec, options=RenderOptions.preset_for("draft", progress=False))
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
    assert html.startswith("<video") and "base64," in html and len(html) > 2000


def test_missing_series_is_named():
    from dynamics.recording import Recording

    rec = make_particle_recording()
    broken = Recording({"loss": rec["loss"]}, rec.metadata)
    with pytest.raises(KeyError, match="'positions'"):
        scene_for("relu_particles", broken)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_scene_renders_a_saved_recording_without_torch(tmp_path, name):
    import subprocess
    import sys
    import textwrap

    SAMPLE_RECORDINGS[name]().save(tmp_path / "r.rec")
    code = textwrap.dedent(f"""
        import sys
        sys.modules['torch'] = None
        from dynamics import load
        from scenes.base import RenderOptions
        from scenes.cli import REGISTRY
        import scenes.{name}
        opts = RenderOptions.preset_for('draft', progress=False, workers=1)
        print(REGISTRY[{name!r}].scene(load({str(tmp_path / 'r.rec')!r}), options=opts).render({str(tmp_path / 'r.gif')!r}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(iio.imread(tmp_path / "r.gif", index=None)) == 12


@pytest.mark.parametrize("size, dpi", [((1366, 768), 96), ((1920, 1080), 150), ((854, 480), 72)])
def test_odd_dpi_combinations_give_the_exact_frame_size(size, dpi):
    opts = RenderOptions(width=size[0], height=size[1], dpi=dpi, progress=False, workers=1)
    assert scene_for("relu_particles", options=opts).frame(0).shape == (size[1], size[0], 3)
