"""Distributions experiment (docs/experiments.md section 5): generated digits, the CNN, and the
Adam-vs-gradient-descent comparison the reference reports."""

import numpy as np
import pytest
import torch

from dynamics.experiments import distributions as ds
from dynamics.experiments.digits import make_digits


def test_generated_digits_are_balanced_reproducible_and_distinct():
    x, y = make_digits(200, size=16, seed=1)
    assert x.shape == (200, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert np.bincount(y, minlength=10).tolist() == [20] * 10
    x2, y2 = make_digits(200, size=16, seed=1)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(make_digits(200, seed=2)[0], x)
    # images of different digits differ more than images of the same digit, on average
    means = np.stack([x[y == d].mean(0) for d in range(10)])
    within = np.mean([np.abs(x[y == d] - means[d]).mean() for d in range(10)])
    between = np.mean([np.abs(means[a] - means[b]).mean() for a in range(10) for b in range(a)])
    assert between > 0.3 * within


def test_cnn_shapes_and_inits():
    model = ds.DigitsCNN(16, "tanh")
    assert model(torch.zeros(3, 1, 16, 16)).shape == (3, 10)
    assert model.fc1.in_features == 64 * 4 * 4 and model.fc1.out_features == 1024
    model.initialise("truncnormal", torch.Generator().manual_seed(0))
    w = model.conv2.weight.detach()
    assert (
        float(w.abs().max()) <= 0.2
        and 0.07 < float(w.std()) < 0.1
        and float(model.fc1.bias.detach()[0]) == pytest.approx(0.1)
    )
    model.initialise("glorot", torch.Generator().manual_seed(0))
    assert float(model.fc1.bias.detach().abs().max()) == 0.0


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"optimizer": "sgdm"}, "optimizer"),
        ({"activation": "gelu"}, "activation"),
        ({"image_size": 18}, "multiple of 4"),
        ({"batch": 10_000}, "exceed"),
    ],
)
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        ds.Config(**bad)


@pytest.mark.slow
def test_adam_beats_gradient_descent_after_the_same_steps():
    common = dict(steps=200, train_size=3000, test_size=1000, record_every=50, eval_every=100)
    adam = ds.run(ds.Config(optimizer="adam", **common))
    gd = ds.run(ds.Config(optimizer="gd", **common))
    acc_adam, acc_gd = (
        float(adam["test_accuracy"].values[-1]),
        float(gd["test_accuracy"].values[-1]),
    )
    assert acc_adam > acc_gd + 0.2, (acc_adam, acc_gd)
    # every weight, bias, gradient and module output is summarised on the schedule
    for name in ("conv1.weight", "fc2.bias"):
        np.testing.assert_array_equal(adam[f"stats/{name}"].steps, [0, 50, 100, 150, 200])
    np.testing.assert_array_equal(
        adam["stats/grad/fc1.weight"].steps, [50, 100, 150, 200]
    )  # none before step 1
    for name in ("act/conv1", "act/act3"):  # the training forward pass after each scheduled step
        np.testing.assert_array_equal(adam[f"stats/{name}"].steps, [0, 50, 100, 150])
    assert len(adam["loss"]) == 200 and adam["test_accuracy"].steps.tolist() == [0, 100, 200]


# -- the scene --------------------------------------------------------------------------------

import imageio.v3 as iio  # noqa: E402
from conftest import make_distributions_recording  # noqa: E402

from scenes.base import RenderOptions  # noqa: E402
from scenes.cli import main  # noqa: E402
from scenes.distributions import DistributionsScene, DistributionsSceneConfig  # noqa: E402
from scenes.plotting import histogram_percentiles  # noqa: E402
from scenes.sweep import SweepScene  # noqa: E402

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)


def test_percentiles_from_histograms_match_the_values():
    rng = np.random.default_rng(0)
    values = rng.normal(size=100_000)
    counts, edges = np.histogram(values, bins=200)
    got = histogram_percentiles(counts[None], edges, [0, 7, 50, 93, 100])[0]
    np.testing.assert_allclose(got, np.percentile(values, [0, 7, 50, 93, 100]), atol=0.02)


def test_dashboard_and_comparison_render():
    rec = make_distributions_recording()
    scene = DistributionsScene(rec, DistributionsSceneConfig(), DRAFT)
    assert scene.frame(-1).shape == (360, 640, 3) and len(scene.panels_) == 9
    grid = SweepScene(
        DistributionsScene,
        [rec, make_distributions_recording(seed=1)],
        {"optimizer": ["adam", "gd"]},
        options=DRAFT,
    )
    assert grid.frame(5).shape == (360, 640, 3)
    with pytest.raises(KeyError, match="nothing"):
        DistributionsScene(rec, DistributionsSceneConfig(tensors="act/nothing"), DRAFT)


@pytest.mark.slow
def test_default_command_compares_four_runs_and_writes_ridge_plots(tmp_path):
    args = [
        "--steps",
        "3",
        "--train-size",
        "60",
        "--test-size",
        "20",
        "--batch",
        "10",
        "--record-every",
        "1",
        "--eval-every",
        "1",
        "--quality",
        "draft",
        "--quiet",
        "--jobs",
        "1",
        "--sweep-dir",
        str(tmp_path / "sw"),
        "--out",
        str(tmp_path / "d.mp4"),
    ]
    main("distributions", args)
    assert len(list((tmp_path / "sw").glob("*.rec"))) == 4  # optimizer x activation
    assert iio.imread(tmp_path / "d.mp4", index=None).shape == (3, 360, 640, 3)  # loss at steps 1-3
    assert iio.imread(tmp_path / "d_ridge.png").shape[:2] == (360, 640)
    main("distributions", [*args, "--single", "--out", str(tmp_path / "one.gif")])
    assert not (tmp_path / "one.rec").exists() and (tmp_path / "one_ridge.png").exists()
