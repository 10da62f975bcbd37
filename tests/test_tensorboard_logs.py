"""TensorBoard event files in, recordings and movies out (dynamics.tensorboard)."""

import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard")  # SummaryWriter needs it; reading does not
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torch.utils.tensorboard.summary import make_histogram  # noqa: E402

from dynamics import RecordingError, load  # noqa: E402
from dynamics.export import to_tensorboard  # noqa: E402
from dynamics.tensorboard import TensorBoardWarning, from_tensorboard, runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = 300


def _tensors(step):
    g = torch.Generator().manual_seed(step)
    weight = torch.randn(500, generator=g) * (1 + step / 100)
    grad = torch.randn(64, generator=g) / (step + 1)
    return weight, grad


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    w = SummaryWriter(str(root / "exp1"))
    for step in range(STEPS):
        w.add_scalar("train/loss", 1.0 / (step + 1), step)
        if step % 10 == 0:
            w.add_scalar("lr", 0.1 * 0.99**step, step)
            weight, grad = _tensors(step)
            w.add_histogram("fc1.weight", weight, step)
            w.add_histogram("grad/fc1.weight", grad, step)
    w.close()
    return root


def test_every_scalar_and_every_histogram_bucket_is_what_was_written(logdir, tmp_path):
    bins = SummaryWriter(str(tmp_path / "bins")).default_bins  # what add_histogram used
    rec = load(logdir / "exp1")  # dynamics.load reads a log directory too
    loss = rec["train/loss"]
    assert loss.kind == "scalar" and loss.steps.tolist() == list(range(STEPS))
    np.testing.assert_array_equal(loss.values, [np.float32(1.0 / (s + 1)) for s in range(STEPS)])
    assert rec["lr"].steps.tolist() == list(range(0, STEPS, 10))
    for step_index, step in enumerate(range(0, STEPS, 10)):
        weight, grad = _tensors(step)
        for tag, tensor in (("fc1.weight", weight), ("grad/fc1.weight", grad)):
            h = make_histogram(tensor.numpy().astype(float), bins)
            k = len(h.bucket)
            counts = rec[f"hist/{tag}"].values[step_index]
            edges = rec[f"edges/{tag}"].values[step_index]
            np.testing.assert_array_equal(counts[:k], h.bucket)
            assert not counts[k:].any()  # padding: empty buckets
            np.testing.assert_array_equal(edges[1 : k + 1], h.bucket_limit)
            mean, std, lo, hi = rec[f"stats/{tag}"].values[step_index]
            x = tensor.double().numpy()
            assert (lo, hi) == (x.min(), x.max())
            assert mean == pytest.approx(x.mean(), abs=1e-9)
            assert std == pytest.approx(x.std(), rel=1e-6)
    assert rec["hist/grad/fc1.weight"].of == "gradient"
    assert rec["hist/grad/fc1.weight"].source == "fc1.weight"
    assert list(runs(logdir)) == ["exp1"]


def test_our_own_export_round_trips_exactly(tmp_path, zoo_recording):
    rec, _, _ = zoo_recording("mlp")
    to_tensorboard(rec, tmp_path / "tb")
    back = from_tensorboard(tmp_path / "tb")
    np.testing.assert_array_equal(back["loss"].values, rec["loss"].values.astype(np.float32))
    for name in ["0.weight", "grad/2.bias", "act/1"]:
        np.testing.assert_array_equal(back[f"hist/{name}"].values, rec[f"hist/{name}"].values)
        np.testing.assert_array_equal(back[f"edges/{name}"].values, rec[f"edges/{name}"].values)
        np.testing.assert_allclose(back[f"stats/{name}"].values, rec[f"stats/{name}"].values)
        assert back[f"hist/{name}"].of == rec[f"hist/{name}"].of


def test_render_a_log_directory_into_a_movie_that_decodes(logdir, tmp_path):
    out = tmp_path / "tb.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "scenes.render", str(logdir), "--out", str(out)]
        + ["--quality", "draft", "--duration", "2", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    frames = iio.imread(out)
    assert frames.shape[0] >= 10 and frames.shape[1:] == (360, 640, 3)
    # the distributions are drawn in the bands' orange, the loss curve in its blue
    last = frames[-1].astype(int)
    orange = (last[..., 0] > 200) & (last[..., 1] < 170) & (last[..., 2] < 120)
    blue = (last[..., 2] > 150) & (last[..., 0] < 90)
    assert orange.sum() > 500 and blue.sum() > 50
    assert not np.array_equal(frames[0], frames[-1])  # the curves grow


def test_a_damaged_or_truncated_log_loads_its_good_records_with_one_warning(logdir, tmp_path):
    (src,) = list((logdir / "exp1").glob("events.out.tfevents.*"))
    data = src.read_bytes()
    # truncated: a run still writing
    cut = tmp_path / "cut" / src.name
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.warns(TensorBoardWarning, match="truncated record") as caught:
        rec = from_tensorboard(cut.parent)
    assert len(caught) == 1
    n = len(rec["train/loss"])
    assert 100 < n < STEPS and rec["train/loss"].steps.tolist() == list(range(n))
    # a flipped byte in one record's data: that record is skipped, the rest read
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    bad = tmp_path / "flip" / src.name
    bad.parent.mkdir()
    bad.write_bytes(bytes(flipped))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = from_tensorboard(bad.parent)
    assert len(caught) == 1 and issubclass(caught[0].category, TensorBoardWarning)
    assert STEPS - 2 <= len(rec["train/loss"]) <= STEPS
    # nothing readable: one line
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="no TensorBoard event files"):
        from_tensorboard(tmp_path / "empty")
