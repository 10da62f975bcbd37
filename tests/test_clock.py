"""Time control: --duration, --time, --hold and interpolation between snapshots, checked on
written files (frame counts by the bundled ffmpeg) and on drawn pixels."""

import subprocess

import numpy as np
import pytest

from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.clock import frame_steps, parse_time, warp
from scenes.weights import WeightsScene

SMALL = {"width": 320, "height": 180, "dpi": 30, "progress": False, "workers": 1}


def weights_recording(snapshots: int, shape=(3, 4), seed: int = 0, last: int | None = None):
    """One weight matrix drifting over ``snapshots`` snapshots (steps 0 .. ``last``), and a loss."""
    rng = np.random.default_rng(seed)
    last = last if last is not None else 10 * (snapshots - 1)
    steps = np.unique(np.linspace(0, last, snapshots).round().astype(np.int64))
    t = np.linspace(0, 1, len(steps))[:, None, None]
    start, drift = rng.normal(0, 0.3, shape), rng.normal(0, 0.6, shape)
    w = Series(steps, (start + t * drift).astype(np.float32), kind="parameter", source="w")
    loss = Series(steps, np.geomspace(1, 1e-2, len(steps)), kind="scalar")
    return Recording({"w": w, "loss": loss}, {"caption": "a drifting matrix"})


def encoded_frames(path) -> int:
    """Frames in an MP4, counted by the bundled ffmpeg (stream copy: packets, no decoding)."""
    import imageio_ffmpeg

    err = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-i", str(path)]
        + ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
        capture_output=True,
        text=True,
    ).stderr
    return int(
        [line for line in err.splitlines() if "frame=" in line][-1].split("frame=")[1].split()[0]
    )


def readout_step(scene) -> str:
    """The step the drawn readout shows (its first value text)."""
    return scene.readout_.texts[0].get_text()


@pytest.mark.parametrize("snapshots", [50, 5000])
def test_duration_gives_a_movie_that_long_whatever_the_snapshots(tmp_path, snapshots):
    from scenes.cli import main

    rec = weights_recording(snapshots).save(tmp_path / "w.rec")
    out = tmp_path / "w.mp4"
    main(
        "weights",
        [str(rec), "--out", str(out), "--duration", "10", "--quality", "draft", "--size",
         "320x180", "--dpi", "30", "--quiet", "--workers", "1", "--no-figures"],
    )  # fmt: skip
    assert abs(encoded_frames(out) - 10 * 30) <= 1  # 10 s at 30 fps, within one frame


def test_hold_adds_identical_last_frames(tmp_path):
    from scenes.writers import Mp4Writer

    rec = weights_recording(12)
    for clock in ({}, {"duration": 1.0}):
        plain = WeightsScene(rec, options=RenderOptions(**SMALL, **clock))
        held = WeightsScene(rec, options=RenderOptions(**SMALL, **clock, hold=2))
        assert len(held) == len(plain) + 2 * 30
        frames = list(held.iter_frames())
        last = plain.frame(-1)
        for f in frames[len(plain) - 1 :]:
            np.testing.assert_array_equal(f, last)
        assert not np.array_equal(frames[len(plain) - 2], last)
        if clock:  # and the written movie is 2 s longer
            path = held.render(Mp4Writer(tmp_path / "held.mp4", 30, preset="ultrafast"))
            assert encoded_frames(path) == len(plain) + 60 == 90


def test_log_and_power_time_spend_more_frames_early():
    rec = weights_recording(200, last=100_000)
    shown = {}
    for time in ("linear", "log", "power:2", "power:0.5"):
        scene = WeightsScene(rec, options=RenderOptions(**SMALL, duration=1, time=time))
        steps = []
        for i in range(len(scene)):
            scene.frame(i)
            text = readout_step(scene)
            steps.append(int(text.replace(",", "")))  # an integer, as drawn
            assert steps[-1] == scene.frame_step(i)
        assert steps[0] == 0 and steps[-1] == 100_000
        assert all(b >= a for a, b in zip(steps, steps[1:])), time  # monotone
        shown[time] = np.array(steps)
    half = {k: int(np.median(v)) for k, v in shown.items()}
    assert abs(half["linear"] - 50_000) <= 2000
    assert half["power:2"] < 30_000 < 70_000 < half["power:0.5"]
    assert half["log"] < 1_000  # log(1 + step) halfway: about sqrt(100,001)
    # log time puts most frames in the first percent of training
    assert (shown["log"] < 1_000).sum() > len(shown["log"]) / 2 > (shown["linear"] < 1_000).sum()


def test_a_frame_between_two_snapshots_blends_the_heatmap():
    a = np.array([[-0.8, -0.4, 0.0, 0.4], [0.8, 0.2, -0.2, 0.6], [0.1, -0.6, 0.5, -0.1]])
    b = -a[::-1]
    rec = Recording(
        {"w": Series(np.array([0, 10]), np.stack([a, b]).astype(np.float32), kind="parameter")}
    )
    # 3 frames at 30 fps: movie times 0, 1/2, 1 -> steps 0, 5, 10
    scene = WeightsScene(rec, options=RenderOptions(**SMALL, duration=0.1))
    np.testing.assert_allclose(scene.frame_steps_, [0, 5, 10])
    middle = scene.frame(1)
    panel = scene.panels_[0]
    assert scene.frame_step(1) == 5 and readout_step(scene) == "5"
    stored = np.asarray(rec["w"].values, dtype=float)  # float32 snapshots, as the panel reads
    for (r, c), va, vb in zip(np.ndindex(a.shape), stored[0].ravel(), stored[1].ravel()):
        x, y = panel.cell_center(r, c)
        got = middle[int(round(y)), int(round(x))].astype(int)
        want = np.array(panel.cmap(panel.norm(0.5 * (va + vb)), bytes=True)[:3], dtype=int)
        assert np.abs(got - want).max() <= 1, (r, c, got, want)
        if abs(va - vb) > 0.3:  # not a snapshot: it differs from both ends
            ends = [
                np.array(panel.cmap(panel.norm(v), bytes=True)[:3], dtype=int) for v in (va, vb)
            ]
            assert min(np.abs(got - e).max() for e in ends) > 10


def test_curves_grow_to_the_interpolated_point():
    from matplotlib.figure import Figure

    from scenes.plotting import CurvesPanel, bracket, interpolated

    steps, values = np.array([0, 10, 30]), np.array([[1.0, 5.0], [3.0, 1.0], [4.0, 0.0]])
    assert bracket(steps, 20.0) == (1, 2, 0.5)
    assert bracket(steps, 20) == (1, 1, 0.0)  # an int step: the snapshot at or before it
    assert bracket(steps, 10.0) == (1, 1, 0.0) and bracket(steps, 99.0) == (2, 2, 0.0)
    np.testing.assert_allclose(interpolated(values, steps, 5.0), [2.0, 3.0])
    np.testing.assert_allclose(interpolated(values, steps, 5), [1.0, 5.0])
    panel = CurvesPanel(Figure().add_subplot(), steps, values)
    panel.draw(20.0)
    x, y = panel.lines[1].get_data()
    np.testing.assert_allclose(x, [0, 10, 20])
    np.testing.assert_allclose(y, [5.0, 1.0, 0.5])
    np.testing.assert_allclose(panel.dots[0].get_data(), [[20.0], [3.5]])
    panel.draw(10)
    np.testing.assert_allclose(panel.lines[0].get_data(), [[0, 10], [1.0, 3.0]])


@pytest.mark.parametrize(
    "name",
    [
        "particles",
        pytest.param("mass_shuffle", marks=pytest.mark.slow),
        pytest.param("spiral", marks=pytest.mark.slow),
    ],
)
def test_clock_frames_are_deterministic_and_workers_give_the_same_frames(name):
    from scenes.registry import get

    scene_cls = get(name).scene
    opts = RenderOptions(**{**SMALL, "workers": 2}, duration=0.5, time="power:2", hold=0.1)
    scene = scene_cls(scene_cls.example(), None, opts)
    assert scene.interpolates_ and len(scene) == 15 + 3
    serial = list(scene.iter_frames(workers=1))
    parallel = list(scene.iter_frames(workers=2, block=4))
    assert len({f.shape for f in serial + parallel}) == 1
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)
    for i in (7, 14, -1):  # blitted frames equal full redraws (stamps on a clock)
        np.testing.assert_array_equal(scene.frame(i, blit=False), serial[i][:, :, :3])
    steps = [scene.frame_step(i) for i in range(len(scene))]
    assert all(isinstance(s, int) for s in steps) and steps == sorted(steps)


def test_default_movie_is_one_frame_per_snapshot_exactly():
    rec = weights_recording(12)
    scene = WeightsScene(rec, options=RenderOptions(**SMALL))
    assert not scene.interpolates_
    np.testing.assert_array_equal(scene.frames_, np.arange(12))
    np.testing.assert_array_equal(scene.frame_steps_, scene.steps_)
    assert scene.panel_step(3) == 30 and isinstance(scene.panel_step(3), int)


def test_clock_maps_time_to_steps():
    t = np.linspace(0, 1, 5)
    np.testing.assert_allclose(warp(t, 0, 100), [0, 25, 50, 75, 100])
    np.testing.assert_allclose(warp(t, 0, 100, "power:2"), [0, 6.25, 25, 56.25, 100])
    log = warp(t, 0, 9999, "log")
    assert log[0] == 0 and log[-1] == 9999
    np.testing.assert_allclose(log[2], 99, rtol=1e-9)  # log(1 + step) halfway
    assert warp(t, 1000, 5000, "log")[-1] == 5000
    steps = frame_steps(np.array([0, 7, 50]), fps=30, duration=2, hold=0.5, time="log")
    assert len(steps) == 60 + 15 and steps[59] == 50 and (steps[59:] == 50).all()
    assert parse_time(" Power:1.5 ") == ("power", 1.5)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"duration": -1}, "duration must be between 0 and 3600 seconds, got -1"),
        ({"hold": -0.5}, "hold must be between 0 and 3600"),
        ({"duration": float("nan")}, "duration must be between"),
        ({"time": "power:0"}, "power:K needs an exponent K between 0 and 100"),
        ({"time": "power:x"}, "power:K needs an exponent"),
        ({"time": "cubic"}, "time must be linear, log or power:K"),
        ({"duration": 5, "stride": 2}, "give stride or duration, not both"),
    ],
)
def test_bad_time_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as exc:
        RenderOptions(**options)
    assert "\n" not in str(exc.value)


def test_cli_prints_a_bad_time_as_one_line(tmp_path, capsys):
    from scenes.cli import main

    rec = weights_recording(5).save(tmp_path / "w.rec")
    for flags in (["--duration", "-1"], ["--time", "power:0"], ["--time", "cubic"]):
        with pytest.raises(SystemExit) as exc:
            main("weights", [str(rec), "--out", str(tmp_path / "w.mp4"), "--quiet", *flags])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("python -m scenes.weights: error:") and "\n" not in err
    assert not (tmp_path / "w.mp4").exists()
