"""Two-spiral MLP (docs/experiments.md section 3): data, model, loss, the reference outcome, the
field panel."""

import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import make_spiral_recording

from dynamics.experiments import spiral as sp
from dynamics.experiments.common import stream_seed
from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.cli import main
from scenes.plotting import CLASS_MARKERS, get_cmap, level_lines
from scenes.spiral import SpiralScene, SpiralSceneConfig

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)

_RUNS = {}


def run_cached(**overrides):
    """Full 3000-step runs, shared between tests; the field only at the start and the end."""
    key = tuple(sorted(overrides.items()))
    if key not in _RUNS:
        _RUNS[key] = sp.run(sp.Config(field_every=3000, grid=50, **overrides))
    return _RUNS[key]


# -- data ------------------------------------------------------------------------------------


def test_data_follows_the_formula_from_the_same_uniforms():
    cfg = sp.Config(seed=5)
    x, y = sp.make_data(cfg)
    assert x.shape == (1000, 2) and x.dtype == torch.float32 and y.dtype == torch.float32
    g = torch.Generator().manual_seed(stream_seed(5, "data"))
    u = torch.rand(1000, generator=g, dtype=torch.float64).numpy()
    noise = torch.rand(1000, 2, generator=g, dtype=torch.float64).numpy()
    theta = (1 + 1.75 * u) * 2 * np.pi
    arm = np.stack([theta * np.cos(theta), theta * np.sin(theta)], axis=1)
    expected = np.concatenate([-arm[:500], arm[500:]]) + 0.5 * noise
    np.testing.assert_allclose(x.numpy(), expected.astype(np.float32), rtol=0, atol=0)
    np.testing.assert_array_equal(y.numpy(), np.repeat([0.0, 1.0], 500))
    x2, _ = sp.make_data(cfg)
    assert torch.equal(x, x2)
    assert not torch.equal(x, sp.make_data(sp.Config(seed=6))[0])


def test_data_statistics():
    x, y = sp.make_data(sp.Config(seed=0))
    x, y = x.double().numpy(), y.numpy()
    assert (y == 0).sum() == 500 and (y == 1).sum() == 500
    # undo the noise on the known arm: the radius without noise lies in [2 pi, 5.5 pi]
    r = np.linalg.norm(x, axis=1)
    assert r.min() >= 2 * np.pi - 0.5 * math.sqrt(2) and r.max() <= 5.5 * np.pi + 0.5 * math.sqrt(2)
    # one-sided noise: each class's mean shifts by +0.25 per coordinate relative to the
    # noise-free arms, which are mirror images (class 0 = -class 1 in distribution)
    shift = (x[y == 0].mean(0) + x[y == 1].mean(0)) / 2
    assert np.all(np.abs(shift - 0.25) < 0.6), shift


# -- model and loss ------------------------------------------------------------------------


def test_model_layers_glorot_init_and_zero_biases():
    model = sp.SpiralMLP(sp.Config().widths, generator=torch.Generator().manual_seed(0))
    sizes = [(layer.in_features, layer.out_features) for layer in model.layers]
    assert sizes == [(2, 1024), (1024, 32), (32, 16), (16, 4), (4, 1)]
    assert sum(p.numel() for p in model.parameters()) == 36473
    for layer in model.layers:
        limit = math.sqrt(6 / (layer.in_features + layer.out_features))
        w = layer.weight.detach()
        assert float(w.abs().max()) <= limit and float(w.abs().max()) > 0.9 * limit
        assert abs(float(w.var()) - limit**2 / 3) < 0.35 * limit**2 / 3  # uniform(-l, l) variance
        assert float(layer.bias.detach().abs().max()) == 0.0
    assert model(torch.zeros(7, 2)).shape == (7,)


def test_without_relu_the_network_is_affine():
    model = sp.SpiralMLP(sp.Config().widths, "none", torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        for layer in model.layers:
            layer.bias.normal_(generator=torch.Generator().manual_seed(1))
        a, b = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
        f = lambda v: model(v)  # noqa: E731
        zero = f(torch.zeros(5, 2, dtype=torch.float64))
        torch.testing.assert_close(f(a + b) - zero, (f(a) - zero) + (f(b) - zero))
    relu = sp.SpiralMLP(sp.Config().widths, "relu", torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        assert not torch.allclose(
            relu(a) + relu(-a), 2 * relu(torch.zeros(5, 2, dtype=torch.float64))
        )


def test_objective_is_mean_bce_plus_half_l2_of_the_weights():
    model = sp.SpiralMLP((2, 6, 3, 1), generator=torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        for layer in model.layers:
            layer.bias.fill_(0.3)  # biases must not enter the penalty
    x = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = (torch.arange(9) % 2).double()
    loss, bce = sp.objective(model, x, y, 0.01)
    w1, w2, w3 = (layer.weight.detach() for layer in model.layers)
    b1, b2, b3 = (layer.bias.detach() for layer in model.layers)
    h = torch.relu(torch.relu(x @ w1.T + b1) @ w2.T + b2)
    p = torch.sigmoid(h @ w3.T + b3)[:, 0]
    hand_bce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    hand = hand_bce + 0.01 * ((w1**2).sum() + (w2**2).sum() + (w3**2).sum()) / 2
    torch.testing.assert_close(bce.detach(), hand_bce, rtol=1e-12, atol=0)
    torch.testing.assert_close(loss.detach(), hand, rtol=1e-12, atol=0)


def test_grid_points_are_cell_centres_row_major_from_the_bottom():
    g = sp.grid_points([0.0, 4.0, 10.0, 12.0], 4).reshape(4, 4, 2)
    np.testing.assert_allclose(g[0, :, 0], [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(g[:, 0, 1], [10.25, 10.75, 11.25, 11.75])


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"activation": "tanh"}, "activation must be one of relu, none"),
        ({"points": 999}, "points must be even"),
        ({"hidden": "1024,x"}, "hidden must be positive widths"),
        ({"hidden": "8,0"}, "hidden must be positive"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"l2": -1.0}, "l2 must be >= 0"),
        ({"grid": 1}, "grid"),
        ({"field_every": 0}, "field_every must be a positive integer"),
        ({"noise": float("nan")}, "noise"),
    ],
)
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        sp.Config(**bad)


def test_recording_contents_and_reproducibility():
    cfg = sp.Config(steps=60, field_every=25, grid=20, batch=100, hidden="16,8", seed=3)
    a, b = sp.run(cfg), sp.run(cfg)
    for name in ("field", "prob", "train_accuracy"):
        np.testing.assert_array_equal(a[name].steps, [0, 25, 50, 60])  # ends on the last step
    assert a["field"].values.shape == (4, 20, 20) and a["prob"].values.shape == (4, 1000)
    np.testing.assert_array_equal(a["loss"].steps, np.arange(61))
    assert a["data/x"].values.shape == (1, 1000, 2)
    meta = a.metadata
    assert (
        meta["widths"] == [2, 16, 8, 1]
        and meta["grid"]["size"] == 20
        and len(meta["grid"]["extent"]) == 4
    )
    assert {"train_s", "field_s", "total_s"} <= set(meta["timing"])
    x, y = np.asarray(a["data/x"].values[0]), np.asarray(a["data/y"].values[0])
    acc = ((np.asarray(a["prob"].values[-1]) >= 0.5) == y).mean()
    assert float(a["train_accuracy"].values[-1]) == pytest.approx(acc)
    x0, x1, y0, y1 = meta["grid"]["extent"]
    assert x0 < x[:, 0].min() and x1 > x[:, 0].max() and y0 < x[:, 1].min() and y1 > x[:, 1].max()
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name].values), np.asarray(b[name].values))


# -- the reference outcome (docs/experiments.md section 3) ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_network_separates_the_spirals(seed):
    rec = run_cached(seed=seed)
    acc = rec["train_accuracy"]
    assert int(acc.steps[-1]) == 3000
    assert float(acc.values[-1]) >= 0.99, float(acc.values[-1])


@pytest.mark.slow
def test_the_same_network_without_relu_cannot():
    rec = run_cached(seed=0, activation="none")
    assert float(rec["train_accuracy"].values[-1]) <= 0.70, float(rec["train_accuracy"].values[-1])


# -- the field panel and the scene ---------------------------------------------------------


def halves_recording(frames: int = 6, grid: int = 40) -> Recording:
    """A field that is 1 on the right half of [-4, 4]^2 and 0 on the left, from the start,
    with one point of each class at known places."""
    field = np.zeros((frames, grid, grid), np.float32)
    field[:, :, grid // 2 :] = 1
    steps = np.arange(frames, dtype=np.int64) * 10
    x = np.array([[-2.0, -2.0], [2.0, -2.0]], np.float32)
    y = np.array([0.0, 1.0], np.float32)
    series = {
        "field": Series(steps, field),
        "data/x": Series(np.zeros(1, np.int64), x[None]),
        "data/y": Series(np.zeros(1, np.int64), y[None]),
    }
    return Recording(series, {"grid": {"size": grid, "extent": [-4.0, 4.0, -4.0, 4.0]}})


@pytest.mark.parametrize("cmap", ["RdBu_r", "viridis"])
def test_decoded_movie_shows_the_field_colours_the_boundary_and_the_markers(tmp_path, cmap):
    scene = SpiralScene(halves_recording(), SpiralSceneConfig(cmap=cmap, marker_size=400), DRAFT)
    frames = iio.imread(scene.render(tmp_path / "f.mp4"), index=None)
    assert frames.shape == (6, 360, 640, 3)
    panel = scene.panels_[0]
    cm = get_cmap(cmap)

    def colour_at(x, y):
        px, py = panel.to_pixel(x, y)
        patch = (
            frames[-1, int(py) - 2 : int(py) + 3, int(px) - 2 : int(px) + 3]
            .reshape(-1, 3)
            .astype(float)
        )
        return patch.mean(0)

    for (x, y), value in (((-2.0, 2.5), 0.0), ((2.0, 2.5), 1.0)):
        expected = np.array(cm(value)[:3]) * 255
        assert np.abs(colour_at(x, y) - expected).max() < 12, (x, y, colour_at(x, y), expected)
    # the 0.5 contour runs along x = 0: dark on the boundary line, nowhere near it the field colour
    px, py = panel.to_pixel(0.0, 2.5)
    strip = frames[-1, int(py), int(px) - 4 : int(px) + 5].astype(int)
    assert strip.max(axis=1).min() < 80, strip
    # a dark filled circle at (-2, -2) and a white triangle at (2, -2), on top of the field
    assert colour_at(-2.0, -2.0).max() < 60, colour_at(-2.0, -2.0)
    assert colour_at(2.0, -2.1).min() > 200, colour_at(2.0, -2.1)
    assert CLASS_MARKERS[0]["marker"] == "o" and CLASS_MARKERS[1]["color"] == "white"


def test_level_lines_follow_a_straight_boundary_and_split_separate_lines():
    xs = ys = np.linspace(-1, 1, 21)
    gx, gy = np.meshgrid(xs, ys)
    line = level_lines(xs, ys, 1 / (1 + np.exp(-5 * gx)))
    np.testing.assert_allclose(line[:, 0], 0, atol=1e-9)
    assert level_lines(xs, ys, np.zeros((21, 21))).shape == (0, 2)
    two = level_lines(xs, ys, (np.abs(gx) > 0.5).astype(float))  # two vertical lines
    assert np.isnan(two[:, 0]).sum() == 1
    assert sorted(set(np.round(two[~np.isnan(two[:, 0]), 0], 6))) == pytest.approx(
        [-0.55, 0.55], abs=0.06
    )


def test_field_moves_between_frames_and_blitting_equals_redraw():
    scene = SpiralScene(make_spiral_recording(), None, DRAFT)
    first, last = scene.frame(0), scene.frame(-1)
    assert not np.array_equal(first, last)
    np.testing.assert_array_equal(last, scene.frame(-1, blit=False))
    assert SpiralScene(make_spiral_recording(), SpiralSceneConfig(markers=False), DRAFT).frame(
        -1
    ).shape == (360, 640, 3)


def test_final_figure_is_written_beside_the_movie(tmp_path):
    scene = SpiralScene(make_spiral_recording(), None, DRAFT)
    (path,) = scene.write_figures(tmp_path / "movie")
    assert path == tmp_path / "movie_final.png"
    assert iio.imread(path).shape == (360, 640, 3)


def test_bad_scene_values_are_refused():
    with pytest.raises(ValueError, match="unknown colormap"):
        SpiralSceneConfig(cmap="RdBuu")
    with pytest.raises(ValueError, match="marker_size"):
        SpiralSceneConfig(marker_size=0)


def test_command_line_trains_renders_and_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "s.mp4"
    assert (
        main(
            "spiral",
            [
                "--steps",
                "50",
                "--field-every",
                "25",
                "--grid",
                "30",
                "--hidden",
                "32,8",
                "--quality",
                "draft",
                "--quiet",
                "--out",
                str(out),
            ],
        )
        == out
    )
    assert capsys.readouterr().out.split() == [str(out), str(tmp_path / "s_final.png")]
    assert iio.imread(out, index=None).shape == (3, 360, 640, 3)  # steps 0, 25, 50


def test_command_line_bad_value_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main("spiral", ["--activation", "tanh"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "activation must be one of relu, none" in err and "\n" not in err


# -- the probe of the hidden layers and the layers' view ------------------------------------

SMALL = dict(steps=60, field_every=20, grid=12, batch=100, hidden="16,8,4", seed=1)


@pytest.fixture(scope="module")
def probed():
    """A small run with its default probe, and the same run without one."""
    return sp.run(sp.Config(**SMALL)), sp.run(sp.Config(probe=0, **SMALL))


def test_the_probe_records_each_hidden_layer_and_leaves_the_run_as_it_was(probed):
    rec, bare = probed
    assert sorted(rec.of_kind("probe")) == ["probe/hidden.0", "probe/hidden.1", "probe/hidden.2"]
    assert not bare.of_kind("probe") and "probe/inputs" not in bare
    for name in bare:  # the same training, bit for bit: no random number drawn, no mode left
        np.testing.assert_array_equal(np.asarray(rec[name].values), np.asarray(bare[name].values))
        np.testing.assert_array_equal(rec[name].steps, bare[name].steps)
    idx = sp.probe_indices(sp.Config(**SMALL))
    assert idx.tolist() == list(range(0, 1000, 5))  # 200 points, 100 of each class
    x, y = (np.asarray(rec[k].values[0]) for k in ("data/x", "data/y"))
    np.testing.assert_array_equal(rec["probe/inputs"].values[0], x[idx])
    np.testing.assert_array_equal(rec["probe/labels"].values[0], y[idx])
    assert (y[idx] == 1).sum() == 100
    # each snapshot is the hidden layers' output, recomputed from the recorded parameters
    model = sp.SpiralMLP(rec.metadata["widths"])
    for t, step in enumerate(rec["probe/hidden.0"].steps):
        assert step == rec["field"].steps[t]
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(rec[name].values[t])))
            h = torch.from_numpy(x[idx])
            for k in range(3):
                h = torch.relu(model.layers[k](h))
                got = np.asarray(rec[f"probe/hidden.{k}"].values[t], dtype=np.float64)
                assert rec[f"probe/hidden.{k}"].values.dtype == np.float16
                np.testing.assert_allclose(got, h.numpy(), rtol=2e-3, atol=2e-3)


def test_the_movie_draws_the_layers_on_axes_fitted_once_and_without_them_as_before(probed):
    from scenes.representations import Projection

    rec, bare = probed
    scene = SpiralScene(rec, None, DRAFT)
    assert scene.probed_layers() == ["probe/hidden.0", "probe/hidden.1", "probe/hidden.2"]
    scene.frame(0)
    layers = [p for p in scene.panels_ if type(p).__name__ == "ProjectionPanel"]
    assert len(layers) == 3
    for name, panel in zip(scene.probed_layers(), layers):
        values = np.asarray(rec[name].values, dtype=np.float64)
        fitted = Projection.fit(values[-1])  # the final snapshot's axes, for every frame
        np.testing.assert_allclose(panel.points, np.stack([fitted(v) for v in values]))
    # without the view (--no-layers, or a recording with no probe): the old layout exactly
    plain = SpiralScene(rec, SpiralSceneConfig(layers=False), DRAFT)
    assert plain.probed_layers() == []
    for i in (0, -1):
        np.testing.assert_array_equal(plain.frame(i), SpiralScene(bare, None, DRAFT).frame(i))
        assert not np.array_equal(plain.frame(i), scene.frame(i))
