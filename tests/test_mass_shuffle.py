"""Mass shuffling (docs/experiments.md section 2): data, gradients, the reference outcome, and the
movie."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import make_mass_recording

from dynamics.experiments import mass_shuffle as ms
from scenes.base import RenderOptions
from scenes.mass_shuffle import MassShuffleScene, MassShuffleSceneConfig
from scenes.plotting import get_cmap

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)


def final_weights(rec):
    return np.asarray(rec["weight"].values[-1, 0], dtype=float)


def noise_ratio(w):
    """mean |W[2:]| / W[0]: how much of the weight mass sits on the noise coordinates."""
    return np.abs(w[2:]).mean() / w[0]


_RUNS = {}


def run_cached(**overrides):
    key = tuple(sorted(overrides.items()))
    if key not in _RUNS:
        _RUNS[key] = ms.run(ms.Config(**overrides))
    return _RUNS[key]


# -- data and model ----------------------------------------------------------------------


def test_data_scales_labels_and_stratified_split():
    cfg = ms.Config(seed=3)
    x, y, train, test = ms.make_data(cfg)
    assert x.shape == (1000, 15) and x.dtype == torch.float32
    assert 8 < x[:, :2].std() < 12 and 0.008 < x[:, 2:].std() < 0.012
    assert torch.equal(y, (x[:, 0] >= 0).float())
    assert len(test) == 200 and len(train) == 800
    assert (
        set(train.tolist()).isdisjoint(test.tolist())
        and len(set(train.tolist()) | set(test.tolist())) == 1000
    )
    share = float(y.mean())
    assert (
        abs(float(y[train].mean()) - share) < 0.002 and abs(float(y[test].mean()) - share) < 0.005
    )
    x2, y2, train2, _ = ms.make_data(cfg)
    assert torch.equal(x, x2) and torch.equal(train, train2)  # same seed, same data


def test_curved_boundary_uses_x1():
    x, y, _, _ = ms.make_data(ms.Config(variant="curved", curvature=0.3))
    expected = x[:, 0] >= 0.3 * (x[:, 1] ** 2 - 100) / 10
    assert torch.equal(y, expected.float())
    assert (y != (x[:, 0] >= 0).float()).float().mean() > 0.05  # the labels really differ


def test_closed_form_gradients_equal_autograd():
    x, y, train, _ = ms.make_data(ms.Config(seed=1))
    x, y = x[train].double(), y[train].double()
    model = ms.LogisticRegression(15, torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        model.weight.mul_(3)  # away from the symmetric start
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    gw, gb = torch.autograd.grad(loss, [model.weight, model.bias])
    model.set_grads(x, y)
    torch.testing.assert_close(model.weight.grad, gw, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(model.bias.grad, gb, rtol=1e-12, atol=1e-15)


def test_glorot_uniform_init_and_zero_bias():
    model = ms.LogisticRegression(15, torch.Generator().manual_seed(0))
    limit = (6 / 16) ** 0.5
    assert model.weight.shape == (1, 15) and float(model.weight.detach().abs().max()) <= limit
    assert float(model.bias.detach()) == 0.0


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"variant": "wavy"}, "variant"),
        ({"lr": -1.0}, "lr"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"steps": 0}, "steps"),
        ({"noise_scale": 0.0}, "noise_scale"),
    ],
)
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        ms.Config(**bad)


def test_recording_contents_and_reproducibility():
    cfg = ms.Config(steps=205, record_every=40, scalar_every=10, seed=4)
    a, b = ms.run(cfg), ms.run(cfg)
    np.testing.assert_array_equal(
        a["weight"].steps, [0, 40, 80, 120, 160, 200, 205]
    )  # ends on the last step
    assert a["weight"].values.shape == (7, 1, 15) and a["bias"].values.shape == (7, 1)
    np.testing.assert_array_equal(a["train_loss"].steps, np.r_[np.arange(0, 201, 10), 205])
    assert a["data/x"].values.shape == (1, 1000, 15) and int(a["data/test"].values[0].sum()) == 200
    assert a.metadata["lr"] == 1e-4 and a.metadata["inputs"]["label"] == [0]
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name].values), np.asarray(b[name].values))


# -- the reference outcome (docs/experiments.md section 2) -------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adam_moves_every_weight_noise_included(seed):
    rec = run_cached(seed=seed)
    w = final_weights(rec)
    assert float(rec["test_accuracy"].values[-1]) >= 0.99
    assert 2 <= w[0] <= 3, w[0]
    assert abs(w[1]) <= 0.1, w[1]
    assert noise_ratio(w) >= 0.8, noise_ratio(w)


@pytest.mark.slow
def test_gradient_descent_leaves_the_noise_weights_where_they_started():
    rec = run_cached(optimizer="gd", lr=0.01)
    w0, w = np.asarray(rec["weight"].values[0, 0], dtype=float), final_weights(rec)
    assert float(rec["test_accuracy"].values[-1]) >= 0.99 and w[0] > 3
    moved = np.abs(w - w0)
    # the noise weights move by less than 5% of what W[0] moves (Adam: ~100%)
    assert moved[2:].mean() <= 0.05 * moved[0], (moved[2:].mean(), moved[0])
    adam = run_cached(seed=0)
    adam_moved = np.abs(final_weights(adam) - np.asarray(adam["weight"].values[0, 0], dtype=float))
    assert adam_moved[2:].mean() >= 0.8 * adam_moved[0]


@pytest.mark.slow
def test_curved_boundary_costs_the_linear_model_accuracy():
    linear, curved = run_cached(seed=0), run_cached(seed=0, variant="curved")
    for split in ("train_accuracy", "test_accuracy"):
        assert float(curved[split].values[-1]) < float(linear[split].values[-1]) - 0.05
    assert 0.8 <= float(curved["train_accuracy"].values[-1]) <= 0.95


# -- the scene ------------------------------------------------------------------------------


@pytest.mark.parametrize("view", ["all", "heatmap", "curves", "averaged"])
def test_every_view_renders_frames_of_the_chosen_size(view):
    scene = MassShuffleScene(make_mass_recording(), MassShuffleSceneConfig(view=view), DRAFT)
    frames = [scene.frame(i) for i in (0, 5, -1)]
    assert {f.shape for f in frames} == {(360, 640, 3)}
    assert not np.array_equal(frames[0], frames[-1])  # something moves
    np.testing.assert_array_equal(frames[1], scene.frame(5, blit=False))


def test_bad_view_and_colormap_are_refused():
    with pytest.raises(ValueError, match="view must be one of"):
        MassShuffleSceneConfig(view="side")
    with pytest.raises(ValueError, match="unknown colormap 'hott'"):
        MassShuffleSceneConfig(cmap="hott")
    assert MassShuffleSceneConfig(cmap="rocket").cmap == "rocket"  # seaborn's maps by name


@pytest.mark.parametrize("cmap", ["hot", "viridis"])
def test_decoded_heatmap_movie_shows_the_largest_weight_colour_in_the_w0_cell(tmp_path, cmap):
    rec = make_mass_recording()
    w = np.asarray(rec["weight"].values[:, 0], dtype=float)
    assert w[-1].argmax() == 0 and w.max() == w[-1, 0]  # W[0] ends as the largest weight of the run
    scene = MassShuffleScene(rec, MassShuffleSceneConfig(view="heatmap", cmap=cmap), DRAFT)
    path = scene.render(tmp_path / "heat.mp4")
    frames = iio.imread(path, index=None)
    assert frames.shape == (12, 360, 640, 3)
    heat = scene.panels_[0]
    cm = get_cmap(cmap)
    for col in (0, int(w[-1].argmin())):
        x, y = heat.cell_center(0, col)
        expected = np.array(cm(heat.norm(w[-1, col]))[:3]) * 255
        patch = (
            frames[-1, int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3]
            .reshape(-1, 3)
            .astype(float)
        )
        assert np.abs(patch.mean(0) - expected).max() < 12, (col, patch.mean(0), expected)
    x, y = heat.cell_center(0, 0)
    np.testing.assert_allclose(np.array(cm(1.0)[:3]) * 255, frames[-1, int(y), int(x)], atol=12)


def test_scatter_figure_is_written_beside_the_movie(tmp_path):
    scene = MassShuffleScene(make_mass_recording(), None, DRAFT)
    (path,) = scene.write_figures(tmp_path / "movie")
    assert path == tmp_path / "movie_scatter.png"
    image = iio.imread(path)
    assert image.shape == (360, 640, 3)
    # both classes' colours appear
    for color in ("#1f77b4", "#e6550d"):
        rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(image.astype(int) - rgb).max(axis=2) < 30).sum() > 20, color


@pytest.mark.parametrize("noise_mean", ["abs", "signed"])
def test_averaged_cells_show_the_noise_weights_mass_or_their_signed_mean(noise_mean):
    """The lesson is where the mass goes: the noise cell reads mean |W[2:]| (weights of
    mixed signs average to about 0 as they grow), the signed mean on request."""
    rec = make_mass_recording()
    config = MassShuffleSceneConfig(view="averaged", noise_mean=noise_mean)
    scene = MassShuffleScene(rec, config, DRAFT)
    scene.frame(-1)
    (cells,) = scene.panels_
    w = np.asarray(rec["weight"].values[-1, 0], dtype=float)
    noise = rec.metadata["inputs"]["noise"]
    expected = np.abs(w[noise]).mean() if noise_mean == "abs" else w[noise].mean()
    assert abs(np.abs(w[noise]).mean() - w[noise].mean()) > 0.1  # the two readings differ
    assert cells.texts[-1].get_text() == f"{expected:+.2f}"
    label = "mean |W[2:]|" if noise_mean == "abs" else "mean of W[2:]"
    assert [t.get_text() for t in cells.ax.get_xticklabels()][-1] == label
    with pytest.raises(ValueError, match="noise_mean must be one of abs, signed"):
        MassShuffleSceneConfig(noise_mean="mass")
