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
