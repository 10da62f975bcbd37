"""Small classifiers (docs/experiments.md section 4): data sets, models, gradient check, outcomes,
scene."""

import math
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import make_classifier_recording

from dynamics.experiments import classifiers as cl
from dynamics.recorder import RecorderWarning
from scenes.base import RenderOptions
from scenes.classifiers import ClassifiersScene
from scenes.cli import main

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)


@pytest.mark.parametrize("dataset", ["blobs", "moons", "circles"])
def test_data_sets_are_balanced_split_and_have_the_right_shape(dataset):
    x, y, train, test = cl.make_data(cl.Config(dataset=dataset, points=200))
    assert x.shape == (200, 2) and x.dtype == torch.float64
    assert int((y == 0).sum()) == 100 and int((y == 1).sum()) == 100
    assert len(test) == 40 and len(train) == 160 and int(y[test].sum()) == 20
    assert set(train.tolist()).isdisjoint(test.tolist())


def test_noise_free_geometry():
    x, y, _, _ = cl.make_data(cl.Config(dataset="circles", noise=0.0))
    r = x.norm(dim=1)
    torch.testing.assert_close(r[y == 0], torch.ones(100, dtype=torch.float64))
    torch.testing.assert_close(r[y == 1], torch.full((100,), 0.5, dtype=torch.float64))
    x, y, _, _ = cl.make_data(cl.Config(dataset="moons", noise=0.0))
    torch.testing.assert_close(x[y == 0].norm(dim=1), torch.ones(100, dtype=torch.float64))
    torch.testing.assert_close(
        (x[y == 1] - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1),
        torch.ones(100, dtype=torch.float64),
    )
    x, y, _, _ = cl.make_data(cl.Config(dataset="blobs", noise=0.0))
    assert torch.all(x[y == 0] == -1.5) and torch.all(x[y == 1] == 1.5)


def test_model_widths_and_init():
    assert cl.Config(model="perceptron").widths == (2, 2)
    assert cl.Config(hidden=5, depth=3).widths == (2, 5, 5, 5, 2)
    model = cl.Classifier((2, 7, 2), "tanh", torch.Generator().manual_seed(0))
    for layer in model.layers:
        assert float(layer.weight.detach().abs().max()) <= math.sqrt(
            6 / (layer.in_features + layer.out_features)
        )
        assert float(layer.bias.detach().abs().max()) == 0.0
    assert cl.Config(model="perceptron").learning_rate == 0.01 and cl.Config().learning_rate == 0.1


def test_perceptron_gradient_equals_the_closed_form():
    x, y, _, _ = cl.make_data(cl.Config(dataset="blobs"))
    model = cl.Classifier((2, 2), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.layers[0].bias.copy_(torch.tensor([0.2, -0.1], dtype=torch.float64))
    cl.objective(model, x, y, 0.01).backward()
    W, b = model.layers[0].weight.detach(), model.layers[0].bias.detach()
    r = torch.softmax(x @ W.T + b, dim=1) - torch.nn.functional.one_hot(y, 2).double()
    torch.testing.assert_close(
        model.layers[0].weight.grad, r.T @ x / len(x) + 0.01 * W, rtol=1e-12, atol=1e-14
    )
    torch.testing.assert_close(model.layers[0].bias.grad, r.mean(0), rtol=1e-12, atol=1e-14)


def test_gradient_check_is_tiny_for_correct_gradients_and_catches_wrong_ones():
    x, y, _, _ = cl.make_data(cl.Config())
    model = cl.Classifier((2, 8, 8, 2), "tanh", torch.Generator().manual_seed(2))
    cl.objective(model, x, y, 0.01).backward()
    assert cl.gradient_check(model, x, y, 0.01) < 1e-8
    with torch.no_grad():
        model.layers[1].weight.grad[0, 0] += 0.05
    assert cl.gradient_check(model, x, y, 0.01) > 1e-3


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"dataset": "spirals"}, "dataset must be one of blobs, moons, circles"),
        ({"model": "cnn"}, "model"),
        ({"activation": "gelu"}, "activation must be one of relu, tanh, sigmoid"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"hidden": 0}, "hidden"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        cl.Config(**bad)


def test_recording_contents_and_reproducibility():
    cfg = cl.Config(iterations=35, record_every=10, grid=12)
    a, b = cl.run(cfg), cl.run(cfg)
    np.testing.assert_array_equal(a["field"].steps, [0, 10, 20, 30, 35])
    np.testing.assert_array_equal(a["test_accuracy"].steps, [0, 10, 20, 30, 35])
    assert a["field"].values.shape == (5, 12, 12)
    np.testing.assert_array_equal(a["grad_error"].steps, np.arange(35))
    assert int(a["data/test"].values[0].sum()) == 40
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name].values), np.asarray(b[name].values))
    assert "grad_error" not in cl.run(cl.Config(iterations=5, grid=4, grad_check=False))


def test_reference_outcomes():
    fast = dict(grad_check=False, grid=8, record_every=1000)
    blobs = cl.run(cl.Config(model="perceptron", dataset="blobs", **fast))
    assert float(blobs["test_accuracy"].values[-1]) >= 0.95
    moons = cl.run(cl.Config(**fast))
    assert float(moons["train_accuracy"].values[-1]) >= 0.85
    circles = cl.run(cl.Config(model="perceptron", dataset="circles", **fast))
    assert float(circles["train_accuracy"].values[-1]) <= 0.7  # no line separates the circles
    # tanh is smooth: the gradient check stays tiny at every iteration of the default run
    tanh = cl.run(cl.Config(activation="tanh", grid=8, record_every=1000, iterations=300))
    assert float(np.max(tanh["grad_error"].values)) < 1e-6


def test_scene_draws_only_training_points_and_the_command_line_runs(tmp_path):
    scene = ClassifiersScene(make_classifier_recording(), None, DRAFT)
    frame = scene.frame(-1)
    assert frame.shape == (360, 640, 3)
    field = scene.panels_[0]
    assert sum(len(p.get_offsets()) for p in field.points) == 32  # 40 points, every 5th held out
    out = tmp_path / "c.mp4"
    assert (
        main(
            "classifiers",
            [
                "--iterations",
                "20",
                "--record-every",
                "10",
                "--grid",
                "10",
                "--quality",
                "draft",
                "--quiet",
                "--out",
                str(out),
            ],
        )
        == out
    )
    assert iio.imread(out, index=None).shape == (3, 360, 640, 3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_moons_a_16_unit_network_reaches_095_and_the_perceptron_stays_5_points_below(seed):
    # full-batch gradient descent for both, 3000 iterations, on the same data and split
    common = dict(
        dataset="moons",
        optimizer="gd",
        iterations=3000,
        grad_check=False,
        grid=8,
        record_every=1000,
        seed=seed,
    )
    mlp = cl.run(cl.Config(model="mlp", hidden=16, **common))
    perceptron = cl.run(cl.Config(model="perceptron", **common))
    np.testing.assert_array_equal(
        mlp["data/test"].values[0], perceptron["data/test"].values[0]
    )  # same split
    acc_mlp, acc_p = (
        float(mlp["test_accuracy"].values[-1]),
        float(perceptron["test_accuracy"].values[-1]),
    )
    assert acc_mlp >= 0.95, acc_mlp
    assert acc_p <= acc_mlp - 0.05, (acc_p, acc_mlp)


@pytest.mark.parametrize(
    "model",
    [
        dict(model="perceptron"),
        dict(activation="relu"),
        dict(activation="tanh"),
        dict(activation="sigmoid"),
        dict(depth=3, hidden=8),
    ],
)
def test_gradient_check_stays_below_1e6_for_every_model(model):
    with warnings.catch_warnings():  # a NaN gradient check (a ReLU kink) is not a fault
        warnings.simplefilter("error", RecorderWarning)
        rec = cl.run(cl.Config(iterations=300, grid=8, record_every=1000, **model))
    err = np.asarray(rec["grad_error"].values)
    assert len(err) == 300
    assert np.nanmax(err) < 1e-6, np.nanmax(err)
    # NaN only where a perturbation straddles a ReLU kink: rare with one sample per step
    assert (
        np.isnan(err).mean() < 0.05
        if model.get("activation", "relu") == "relu" and "model" not in model
        else not np.isnan(err).any()
    )
