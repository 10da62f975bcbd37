"""Writers: frames reach the encoder, files decode back, nothing partial is left at the target."""

import imageio.v3 as iio
import numpy as np
import pytest

from scenes.writers import GifWriter, Mp4Writer, check_output_path, open_writer

RED, WHITE = (220, 30, 30), (255, 255, 255)


def moving_square_frames(n=9, h=72, w=128):
    for i in range(n):
        f = np.full((h, w, 3), WHITE, np.uint8)
        f[20:40, 10 + 8 * i : 30 + 8 * i] = RED
        yield f


@pytest.mark.parametrize("ext, tol", [(".mp4", 30), (".gif", 10)])
def test_written_file_decodes_to_the_frames(tmp_path, ext, tol):
    path = tmp_path / f"clip{ext}"
    with open_writer(path, fps=12, **({"preset": "ultrafast"} if ext == ".mp4" else {})) as w:
        for f in moving_square_frames():
            w.write(f)
    frames = iio.imread(path, index=None)
    assert frames.shape == (9, 72, 128, 3)
    for i in (0, 8):
        assert (
            np.abs(frames[i, 30, 20 + 8 * i].astype(int) - RED).max() < tol
        )  # the square moved here
        assert np.abs(frames[i, 65, 5].astype(int) - WHITE).max() < tol
    assert not list(tmp_path.glob(".*tmp*"))


def test_gif_loops(tmp_path):
    from PIL import Image

    path = tmp_path / "loop.gif"
    with GifWriter(path, fps=10) as w:
        for f in moving_square_frames(3):
            w.write(f)
    assert Image.open(path).info["loop"] == 0


def test_interrupted_render_leaves_no_file_at_target(tmp_path):
    path = tmp_path / "movie.mp4"
    path.write_bytes(b"previous good movie")
    with pytest.raises(KeyboardInterrupt):
        with Mp4Writer(path, fps=10, preset="ultrafast") as w:
            for i, f in enumerate(moving_square_frames()):
                w.write(f)
                if i == 4:
                    raise KeyboardInterrupt
    assert path.read_bytes() == b"previous good movie"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.mp4"]  # temp file removed


def test_frame_checks(tmp_path):
    w = Mp4Writer(tmp_path / "odd.mp4")
    with pytest.raises(ValueError, match="even frame sizes"):
        w.write(np.zeros((71, 128, 3), np.uint8))
    w.abort()
    w = GifWriter(tmp_path / "x.gif")
    w.write(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="earlier frames were"):
        w.write(np.zeros((8, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        w.write(np.zeros((8, 8, 3), np.float32))
    w.abort()
    with pytest.raises(TypeError, match="unknown options"):
        GifWriter(tmp_path / "x.gif", quality=3)


def test_output_path_checks(tmp_path):
    with pytest.raises(ValueError, match="unknown output extension '.avi'"):
        check_output_path(tmp_path / "a.avi")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create output folder"):
        check_output_path(blocker / "sub" / "a.mp4")
    assert check_output_path(tmp_path / "new" / "a.gif").parent.is_dir()


def test_a_truncated_mp4_never_reaches_the_target_and_an_older_file_survives(tmp_path, monkeypatch):
    """What a full disk does to the encoder's output: the file is checked before it moves."""
    target = tmp_path / "movie.mp4"
    target.write_bytes(b"an older movie")
    finish = Mp4Writer._finish

    def finish_then_lose_the_tail(self):
        finish(self)
        data = self.tmp_path.read_bytes()
        self.tmp_path.write_bytes(data[: len(data) // 3])

    monkeypatch.setattr(Mp4Writer, "_finish", finish_then_lose_the_tail)
    rng = np.random.default_rng(0)
    with pytest.raises(OSError, match="frames"):
        with Mp4Writer(target, fps=10, preset="ultrafast") as w:
            for _ in range(40):
                w.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    assert target.read_bytes() == b"an older movie"
    assert [p.name for p in tmp_path.iterdir()] == ["movie.mp4"]


def test_a_failing_write_gives_one_line_exit_1_and_no_file(tmp_path, monkeypatch, capsys):
    from scenes.cli import main
    from scenes.particles import ParticlesScene

    rec = ParticlesScene.example().save(tmp_path / "p.rec")

    def disk_full(self, frame):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Mp4Writer, "_write", disk_full)
    out = tmp_path / "p.mp4"
    with pytest.raises(SystemExit) as exc:
        main(
            "particles",
            [str(rec), "--out", str(out), "--quality", "draft", "--quiet", "--workers", "1"],
        )
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "\n" not in err
    assert not out.exists() and not list(tmp_path.glob(".p.*"))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_a_full_disk_gives_one_line_exit_1_and_no_file(tmp_path, fmt):
    """A real 1 MiB tmpfs, where the test may mount one (root on Linux); skipped elsewhere."""
    import subprocess
    import sys

    from dynamics.recording import Recording, Series

    small = tmp_path / "small"
    small.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    try:
        noise = np.random.default_rng(0).normal(0, 1, (120, 400, 2)).astype(np.float32)
        rec = Recording({"p": Series(np.arange(120), noise)}).save(tmp_path / "noise.rec")
        out = small / f"p.{fmt}"
        proc = subprocess.run(
            [sys.executable, "-m", "scenes.particles", str(rec), "--out", str(out), "--quiet"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1, proc.stderr[-500:]
        last = proc.stderr.strip().splitlines()[-1]
        assert (
            last.startswith("python -m scenes.particles: error:") and "Traceback" not in proc.stderr
        )
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


PATCHES = [(230, 0, 0), (0, 200, 0), (0, 0, 220), (128, 128, 128), (40, 40, 40), (250, 250, 250)]


def ffmpeg_info(path) -> str:
    """The ``Video:`` line that the bundled ffmpeg prints for ``path``."""
    import subprocess

    import imageio_ffmpeg

    err = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
    ).stderr
    return next(line for line in err.splitlines() if "Video:" in line)


def decode_bt709(path, width, height) -> np.ndarray:
    """Every frame of ``path`` as RGB, converted with an explicit BT.709 limited-range matrix
    (what a player that reads the tags does), not with ffmpeg's guess."""
    import subprocess

    import imageio_ffmpeg

    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path)]
        + ["-vf", "scale=in_color_matrix=bt709:in_range=tv,format=rgb24"]
        + ["-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


@pytest.mark.parametrize("width, height", [(1280, 720), (640, 360)])
@pytest.mark.parametrize("channels", [3, 4])
def test_mp4_is_bt709_tagged_and_converted_with_bt709(tmp_path, width, height, channels):
    """The tags say BT.709 at every size, and the conversion really used BT.709: patches
    decoded with the BT.709 matrix match the source (BT.601 would shift red by ~20)."""
    frame = np.zeros((height, width, channels), np.uint8)
    frame[..., 3:] = 255
    k = len(PATCHES)
    for j, colour in enumerate(PATCHES):
        frame[:, j * width // k : (j + 1) * width // k, :3] = colour
    path = tmp_path / "colours.mp4"
    with Mp4Writer(path, fps=10, preset="ultrafast", crf=18) as w:
        for _ in range(3):
            w.write(frame)
    info = ffmpeg_info(path)
    assert "yuv420p(tv, bt709," in info, info  # range tv; matrix, primaries, transfer bt709
    assert f"{width}x{height}" in info
    decoded = decode_bt709(path, width, height)
    assert len(decoded) == 3
    for j, colour in enumerate(PATCHES):
        centre = decoded[-1, height // 4 : 3 * height // 4, (2 * j + 1) * width // (2 * k)]
        error = np.abs(centre.astype(int) - colour).max()
        assert error <= 4, (colour, centre[0], error)


def gif_durations_ms(path) -> list[int]:
    """The delay of every frame of a GIF, as Pillow decodes it (milliseconds)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return [frame.info["duration"] for frame in ImageSequence.Iterator(im)]


@pytest.mark.parametrize("fps", [30, 24, 25, 12, 7, 50])
@pytest.mark.parametrize("hold", [0, 10])
def test_gif_lasts_as_long_as_the_movie(tmp_path, fps, hold):
    """Sum of the decoded delays = frames / fps within one frame (30 ms each made GIFs 11%
    fast); identical held frames that Pillow merges keep their time."""
    n = 40
    frames = list(moving_square_frames(n - hold, h=32, w=48 + 8 * n))
    frames += [frames[-1]] * hold
    path = tmp_path / "timed.gif"
    with GifWriter(path, fps=fps) as w:
        for f in frames:
            w.write(f)
    durations = gif_durations_ms(path)
    assert n - hold <= len(durations) <= n  # Pillow may merge the held frames into one
    # within half a centisecond, far inside the one frame asked for
    assert abs(sum(durations) - 1000 * n / fps) <= 5
    assert min(durations) >= 20  # no delay a player would slow down


def test_gif_delays_follow_the_movie_clock():
    from scenes.writers import gif_delays

    assert gif_delays(6, 30) == [3, 4, 3, 3, 4, 3]
    assert gif_delays(4, 25) == [4, 4, 4, 4]
    for fps in (7, 12, 23.976, 29.97, 30, 48, 50):
        delays = gif_delays(1000, fps)
        ends = np.cumsum(delays)
        assert np.abs(ends - np.arange(1, 1001) * 100 / fps).max() <= 0.5
        assert min(delays) >= 2


@pytest.mark.parametrize("fps", [51, 60, 120])
def test_gif_refuses_an_fps_it_cannot_play(tmp_path, fps):
    with pytest.raises(ValueError, match="a GIF plays at most 50 fps"):
        open_writer(tmp_path / "fast.gif", fps)
    assert not list(tmp_path.iterdir())


def test_cli_refuses_a_fast_gif_in_one_line(tmp_path, capsys):
    from scenes.cli import main
    from scenes.particles import ParticlesScene

    rec = ParticlesScene.example().save(tmp_path / "p.rec")
    with pytest.raises(SystemExit) as exc:
        main("particles", [str(rec), "--out", str(tmp_path / "p.gif"), "--fps", "60", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "a GIF plays at most 50 fps" in err and "\n" not in err
