"""The loss landscape around a recording (dynamics.landscape, scenes.landscape): every grid
loss against the model loaded with that point's parameters (float64), a trajectory planted in
a plane recovered exactly, filter-normalised directions, the command line on a spiral run, the
scene's frames and the dashboard's panel."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from dynamics import Recorder, Recording, Series, load
from dynamics.landscape import (
    landscape,
    pca_directions,
    random_directions,
    rebuild,
    snapshots,
)
from scenes.base import RenderOptions
from scenes.landscape import LandscapeScene, LandscapeSceneConfig

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)
FINAL = RenderOptions.preset_for("final", progress=False, workers=1)


def mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
        torch.nn.Linear(8, 1),
    ).double()  # fmt: skip


def data(n=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return x, torch.sin(x.sum(1, keepdim=True))


def trained(steps=30, lr=0.1):
    """A float64 MLP trained by full-batch GD, every parameter recorded at every step."""
    model, (x, y) = mlp(), data()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with Recorder(model, opt, params="*", schedule=1) as rec:
        for _ in range(steps):
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            rec.log(loss=loss.item())
            loss.backward()
            opt.step()
    return model, (x, y), rec.recording


def loss_loaded(model, flat, x, y):
    """The loss of a copy of ``model`` with ``flat`` loaded into its parameters."""
    other = copy.deepcopy(model)
    vector_to_parameters(flat, other.parameters())
    with torch.no_grad():
        return float(F.mse_loss(other(x), y))


def grid_point(out, i, j, name="landscape"):
    """The flat parameters of grid cell (row i, column j)."""
    info = out.metadata["landscape"][name]
    a0, a1, b0, b1 = info["extent"]
    n = info["size"]
    a, b = np.linspace(a0, a1, n)[j], np.linspace(b0, b1, n)[i]
    D = torch.from_numpy(np.asarray(out[f"{name}/directions"].values[-1]))
    origin = torch.cat(
        [torch.from_numpy(np.asarray(out[k].values[-1])).reshape(-1) for k in info["names"]]
    )
    return origin + a * D[0] + b * D[1]


@pytest.mark.parametrize("directions", ["pca", "random"])
def test_every_grid_loss_is_the_loss_of_the_model_loaded_with_that_point(directions):
    model, (x, y), rec = trained()
    before = parameters_to_vector(model.parameters()).clone()
    rng = torch.random.get_rng_state()
    out = landscape(rec, model, F.mse_loss, (x, y), directions=directions, size=9, seed=5)
    grid = np.asarray(out["landscape"].values[-1])
    assert grid.shape == (9, 9)
    for i, j in [(0, 0), (0, 8), (8, 0), (4, 4), (2, 7), (8, 8), (5, 1)]:
        want = loss_loaded(model, grid_point(out, i, j), x, y)
        assert grid[i, j] == pytest.approx(want, rel=1e-12, abs=1e-15)
    # the model and the global random state are untouched
    assert torch.equal(parameters_to_vector(model.parameters()), before)
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_a_loss_of_the_parameters_with_a_penalty_and_without_vmap_gives_the_same_grid():
    model, (x, y), rec = trained()
    weights = [n for n, p in model.named_parameters() if p.dim() == 2]

    def objective(params):
        fit = F.mse_loss(functional_call(model, params, (x,)), y)
        return fit + 0.01 * sum(params[w].pow(2).sum() for w in weights)

    fast = landscape(rec, model, objective, size=6, chunk=8)
    slow = landscape(rec, model, objective, size=6, vectorize=False)
    tuned = landscape(rec, model, objective, size=6)  # the way chosen by timing: same numbers
    assert fast.metadata["landscape"]["landscape"]["vectorized"]
    assert not slow.metadata["landscape"]["landscape"]["vectorized"]
    for other in (slow, tuned):
        for name in ("landscape", "landscape/path/loss", "landscape/path/plane_loss"):
            np.testing.assert_allclose(fast[name].values, other[name].values, rtol=1e-13)
    g = np.asarray(fast["landscape"].values[-1])
    flat = grid_point(fast, 3, 2)
    other = copy.deepcopy(model)
    vector_to_parameters(flat, other.parameters())
    with torch.no_grad():
        penalty = sum(p.pow(2).sum() for n, p in other.named_parameters() if n in weights)
        want = float(F.mse_loss(other(x), y) + 0.01 * penalty)
    assert g[3, 2] == pytest.approx(want, rel=1e-12)


def planted(T=15, seed=0):
    """A trajectory that lies in a plane through its final point, along two orthonormal
    directions mixed over every parameter, with its losses recorded beside it."""
    model, (x, y) = mlp(seed), data()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    final = parameters_to_vector(model.parameters()).detach()
    g = torch.Generator().manual_seed(seed + 7)
    Q, _ = torch.linalg.qr(torch.randn(final.numel(), 2, generator=g, dtype=torch.float64))
    t = torch.linspace(0, 1, T, dtype=torch.float64)
    a, b = -3 * (1 - t) ** 2, 1.5 * torch.sin(3 * t) * (1 - t)  # ends at (0, 0)
    flat = final + a[:, None] * Q[:, 0] + b[:, None] * Q[:, 1]
    steps = np.arange(T, dtype=np.int64) * 10
    series, start = {}, 0
    for n, s in zip(names, shapes):
        k = int(np.prod(s))
        values = flat[:, start : start + k].reshape(T, *s).numpy()
        series[n] = Series(steps, values, kind="parameter", source=n)
        start += k
    losses = np.array([loss_loaded(model, row, x, y) for row in flat])
    series["loss"] = Series(steps, losses, kind="scalar")
    return model, (x, y), Recording(series, {}), flat, Q


def test_a_trajectory_in_a_plane_is_recovered_exactly_with_its_losses():
    model, (x, y), rec, flat, Q = planted()
    out = landscape(rec, model, F.mse_loss, (x, y), size=5)
    info = out.metadata["landscape"]["landscape"]
    explained = np.asarray(info["explained_variance"])
    assert explained.sum() == pytest.approx(1.0, abs=1e-12)
    assert explained[0] > explained[1] > 0.01
    assert info["in_plane"] == pytest.approx(1.0, abs=1e-12)
    D = torch.from_numpy(np.asarray(out["landscape/directions"].values[-1]))
    np.testing.assert_allclose((D @ D.T).numpy(), np.eye(2), atol=1e-12)
    # the same plane: the projectors onto span(D) and span(Q) agree
    np.testing.assert_allclose((D.T @ D).numpy(), (Q @ Q.T).numpy(), atol=1e-12)
    # each snapshot is exactly origin + coords @ D
    coords = np.asarray(out["landscape/path"].values)
    back = flat[-1] + torch.from_numpy(coords) @ D
    np.testing.assert_allclose(back.numpy(), flat.numpy(), rtol=0, atol=1e-12)
    assert np.all(coords[0] <= 0) and np.all(coords[-1] == 0)
    # the losses along the path are the recorded ones, in the plane as at the snapshots
    recorded = np.asarray(rec["loss"].values)
    np.testing.assert_allclose(out["landscape/path/loss"].values, recorded, rtol=1e-12)
    np.testing.assert_allclose(out["landscape/path/plane_loss"].values, recorded, rtol=1e-11)
    np.testing.assert_array_equal(out["landscape/path"].steps, rec["loss"].steps)


def test_pca_of_a_straight_path_keeps_it_all_on_the_first_direction():
    flat = torch.zeros(6, 40, dtype=torch.float64)
    u = torch.linspace(-1, 1, 40, dtype=torch.float64)
    flat += torch.linspace(2, 0, 6, dtype=torch.float64)[:, None] * u
    plane = pca_directions(flat)
    assert plane.explained[0] == pytest.approx(1.0, abs=1e-12) and plane.explained[1] < 1e-20
    assert abs(float(plane.directions[0] @ plane.directions[1])) < 1e-12
    with pytest.raises(ValueError, match="never moved"):
        pca_directions(torch.ones(4, 10, dtype=torch.float64))


def convnet():
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 5),
    ).double()  # fmt: skip


def test_filter_normalised_directions_are_seeded_and_match_each_filters_norm():
    model = convnet()
    rng = torch.random.get_rng_state()
    d = random_directions(model, seed=11)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert torch.equal(d, random_directions(model, seed=11))
    assert not torch.allclose(d, random_directions(model, seed=12))
    assert not torch.allclose(d[0], d[1])
    start = 0
    for name, p in model.named_parameters():
        k = p.numel()
        for row in d[:, start : start + k]:
            part = row.reshape(p.shape)
            if p.dim() == 1:  # biases and batch-norm scales: zero
                assert torch.all(part == 0), name
            else:  # each filter (slice along the first axis) as long as the weights' filter
                got = part.flatten(1).norm(dim=1)
                want = p.detach().flatten(1).norm(dim=1)
                torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        start += k
    assert start == d.shape[1]


def test_random_landscapes_are_reproducible_and_default_to_one_filter_norm_each_way():
    model, (x, y), rec = trained(steps=5)
    kw = dict(directions="random", size=5, seed=4, chunk=5)  # tuned: equal up to rounding
    one = landscape(rec, model, F.mse_loss, (x, y), **kw)
    two = landscape(rec, model, F.mse_loss, (x, y), **kw)
    np.testing.assert_array_equal(
        one["landscape/directions"].values, two["landscape/directions"].values
    )
    np.testing.assert_array_equal(one["landscape"].values, two["landscape"].values)
    info = one.metadata["landscape"]["landscape"]
    assert info["extent"] == [-1.0, 1.0, -1.0, 1.0] and info["seed"] == 4
    other = landscape(rec, model, F.mse_loss, (x, y), directions="random", size=5, seed=5)
    assert not np.array_equal(one["landscape"].values, other["landscape"].values)


def test_bad_arguments_and_missing_parameters_are_refused():
    model, (x, y), rec = trained(steps=3)
    with pytest.raises(ValueError, match="directions must be one of"):
        landscape(rec, model, F.mse_loss, (x, y), directions="hessian")
    with pytest.raises(ValueError, match="size must be"):
        landscape(rec, model, F.mse_loss, (x, y), size=1)
    with pytest.raises(ValueError, match="extent must be"):
        landscape(rec, model, F.mse_loss, (x, y), extent=[1, 0, 0, 1])
    partial = Recording({k: s for k, s in rec.items() if k != "2.weight"}, {})
    with pytest.raises(ValueError, match="no snapshots of the model's parameters 2.weight"):
        snapshots(partial, model)


# -- reference experiments and the command line ------------------------------------------


def tiny_spiral(path):
    from dynamics.experiments import spiral

    config = spiral.SpiralConfig(points=40, hidden="8,4", steps=24, field_every=6, grid=8)
    return spiral, config, spiral.run(config, path=path)


def test_a_spiral_recording_rebuilds_its_objective(tmp_path):
    spiral, config, rec = tiny_spiral(tmp_path / "s.rec")
    model, loss, what = rebuild(load(tmp_path / "s.rec"))
    assert "BCE + L2" in what and "40 points" in what
    x, y = spiral.make_data(config)
    for step in (0, 24):
        params = {n: torch.from_numpy(rec[n].at(step).copy()) for n, _ in model.named_parameters()}
        other = copy.deepcopy(model)
        other.load_state_dict(params)
        with torch.no_grad():
            want = float(spiral.objective(other, x, y, config.l2)[0])
            assert float(loss(params)) == pytest.approx(want, rel=1e-6)


def test_command_line_computes_saves_and_draws_a_spiral_landscape(tmp_path, capsys):
    from scenes.cli import main

    spiral, config, _ = tiny_spiral(tmp_path / "s.rec")
    saved = tmp_path / "with.rec"
    out = main(
        "landscape",
        [str(tmp_path / "s.rec"), "--grid", "7", "--save", str(saved), "--out",
         str(tmp_path / "l.png"), "--quiet"],
    )  # fmt: skip
    assert out.exists() and out.stat().st_size > 10_000
    err = capsys.readouterr().err
    assert "computed the landscape (7 x 7 losses" in err and str(saved) in err
    rec = load(saved)
    assert rec["landscape"].shape == (7, 7) and rec["landscape/path"].shape == (2,)
    assert list(rec["landscape/path"].steps) == [0, 6, 12, 18, 24]
    # the loss at the final snapshot is the training objective on all the data there
    model, _, _ = rebuild(rec)
    params = {n: torch.from_numpy(rec[n].at(24).copy()) for n, _ in model.named_parameters()}
    model.load_state_dict(params)
    x, y = spiral.make_data(config)
    with torch.no_grad():
        want = float(spiral.objective(model, x, y, config.l2)[0])
    assert float(rec["landscape/path/loss"].values[-1]) == pytest.approx(want, rel=1e-6)
    # the saved landscape is drawn as it is (no model needed): same grid, same picture
    again = main("landscape", [str(saved), "--out", str(tmp_path / "m.png"), "--quiet"])
    assert "computed" not in capsys.readouterr().err
    import imageio.v3 as iio

    np.testing.assert_array_equal(iio.imread(out), iio.imread(again))


@pytest.mark.parametrize(
    "metadata, says",
    [
        ({}, "says no reference experiment"),
        ({"experiment": "relu_particles", "config": {}}, "that experiment cannot rebuild"),
    ],
)
def test_command_line_refuses_a_recording_it_cannot_rebuild_in_one_line(
    tmp_path, capsys, metadata, says
):
    from scenes.cli import main

    _, _, rec = trained(steps=3)
    path = Recording(dict(rec.items()), metadata).save(tmp_path / "r.rec")
    with pytest.raises(SystemExit) as exc:
        main("landscape", [str(path), "--out", str(tmp_path / "x.png"), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "dynamics.landscape.landscape(recording, model, loss_fn, batch)" in err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


# -- the scene and the dashboard -----------------------------------------------------------


def red_centroid(frame, box, hide):
    """Centre (x, y from the top) of the current point's red pixels inside ``box``, those
    in ``hide`` (the legend's marker) left out."""
    x0, y0, x1, y1 = box
    part = frame.astype(int)
    red = (part[..., 0] > 180) & (part[..., 1] < 80) & (part[..., 2] < 80)
    red[hide[1] : hide[3], hide[0] : hide[2]] = False
    red = red[y0:y1, x0:x1]
    ys, xs = np.nonzero(red)
    assert len(xs) > 10
    return x0 + xs.mean(), y0 + ys.mean()


def test_the_current_point_follows_the_path_frame_by_frame():
    rec = LandscapeScene.example()
    scene = LandscapeScene(rec, None, FINAL)
    scene.frame(0)
    panel = scene.panels_[0]
    ax = panel.ax
    h = scene.options.height
    bb = ax.get_window_extent()
    box = (int(bb.x0), int(h - bb.y1), int(bb.x1), int(h - bb.y0))
    lb = ax.get_legend().get_window_extent()
    legend = (int(lb.x0), int(h - lb.y1), int(lb.x1) + 1, int(h - lb.y0) + 1)
    coords = np.asarray(rec["landscape/path"].values)
    for i in (0, 3, 6, len(scene) - 1):
        t = scene.frames_[i]
        x, y = ax.transData.transform(coords[t])
        cx, cy = red_centroid(scene.frame(i), box, legend)
        assert abs(cx - x) < 2.5 and abs(cy - (h - y)) < 2.5, (i, cx, cy, x, h - y)


def test_the_surface_view_moves_and_blitting_equals_redraw():
    rec = LandscapeScene.example()
    scene = LandscapeScene(rec, LandscapeSceneConfig(view="surface"), DRAFT)
    first, last = scene.frame(0), scene.frame(len(scene) - 1)
    assert not np.array_equal(first, last)
    np.testing.assert_array_equal(last, scene.frame(len(scene) - 1, blit=False))


def test_subtitle_says_the_explained_variance_and_axes_name_the_directions():
    scene = LandscapeScene(LandscapeScene.example(), None, DRAFT)
    assert "82.0% + 18.0% of its variance" in scene.subtitle()
    scene.frame(0)
    ax = scene.panels_[0].ax
    assert ax.get_xlabel() == "PC1 (82.0% of the path's variance)"
    assert ax.get_ylabel() == "PC2 (18.0% of the path's variance)"


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="view must be one of"):
        LandscapeSceneConfig(view="3d")
    with pytest.raises(ValueError, match="grid must be between 2 and 2,000"):
        LandscapeSceneConfig(grid=1)


def test_the_dashboard_draws_a_landscape_panel_and_no_path_heatmap():
    from scenes.render import DashboardScene, plan

    rec = LandscapeScene.example()
    rec = Recording(
        {**dict(rec.items()), "loss": Series(rec["landscape/path/loss"].steps,
                                             rec["landscape/path/loss"].values, kind="scalar")},
        rec.metadata,
    )  # fmt: skip
    assert [(v.how, v.name) for v in plan(rec)] == [("landscape", "landscape"), ("curve", "loss")]
    scene = DashboardScene(rec, None, DRAFT)
    assert not np.array_equal(scene.frame(0), scene.frame(len(scene) - 1))


# -- several paths on one plane --------------------------------------------------------------


def planted_runs(T=12):
    """Two copies of one network (parameters under ``a.`` and ``b.``) leaving one start along
    paths that lie in one plane through it."""
    model, (x, y) = mlp(), data()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    start = parameters_to_vector(model.parameters()).detach()
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(start.numel(), 2, generator=g, dtype=torch.float64))
    t = torch.linspace(0, 1, T, dtype=torch.float64)
    ends = {"a.": (2.0, 0.5), "b.": (1.0, -0.8)}
    series, flats = {}, {}
    steps = np.arange(T, dtype=np.int64) * 5
    for prefix, (u, v) in ends.items():
        flat = start + (u * t)[:, None] * Q[:, 0] + (v * torch.sin(2 * t))[:, None] * Q[:, 1]
        flats[prefix] = flat
        begin = 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            values = flat[:, begin : begin + k].reshape(T, *s).numpy()
            series[prefix + n] = Series(steps, values, kind="parameter", source=prefix + n)
            begin += k
    return model, (x, y), Recording(series, {}), flats, Q


def test_several_paths_from_one_start_share_one_plane_exactly():
    model, (x, y), rec, flats, Q = planted_runs()
    out = landscape(
        rec, model, F.mse_loss, (x, y), size=5, paths={"run a": "a.", "run b": "b."},
        origin="start", square=True,
    )  # fmt: skip
    info = out.metadata["landscape"]["landscape"]
    assert info["origin"] == "start" and info["origin_step"] == 0
    assert [p["path"] for p in info["paths"]] == ["landscape/run a/path", "landscape/run b/path"]
    assert sum(info["explained_variance"]) == pytest.approx(1.0, abs=1e-12)
    assert info["in_plane"] == pytest.approx(1.0, abs=1e-12)
    a0, a1, b0, b1 = info["extent"]
    assert a1 - a0 == pytest.approx(b1 - b0)  # square
    D = torch.from_numpy(np.asarray(out["landscape/directions"].values[-1]))
    np.testing.assert_allclose((D.T @ D).numpy(), (Q @ Q.T).numpy(), atol=1e-12)
    start = flats["a."][0]
    for label, prefix in (("run a", "a."), ("run b", "b.")):
        coords = np.asarray(out[f"landscape/{label}/path"].values)
        np.testing.assert_array_equal(coords[0], [0.0, 0.0])  # every path leaves the start
        back = start + torch.from_numpy(coords) @ D
        np.testing.assert_allclose(back.numpy(), flats[prefix].numpy(), atol=1e-12)
        want = [loss_loaded(model, row, x, y) for row in flats[prefix]]
        np.testing.assert_allclose(out[f"landscape/{label}/path/loss"].values, want, rtol=1e-12)
        np.testing.assert_allclose(
            out[f"landscape/{label}/path/plane_loss"].values, want, rtol=1e-11
        )
    # signed so that the paths run out of the start towards positive coordinates
    both = np.concatenate([np.asarray(out[p["path"]].values) for p in info["paths"]])
    assert (both.mean(axis=0) > 0).all()
    # a grid point is the loss of the model loaded with the start plus its coordinates
    grid = np.asarray(out["landscape"].values[-1])
    alphas, betas = np.linspace(a0, a1, 5), np.linspace(b0, b1, 5)
    for i, j in [(0, 4), (3, 1)]:
        want = loss_loaded(model, start + alphas[j] * D[0] + betas[i] * D[1], x, y)
        assert grid[i, j] == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="origin must be one of"):
        landscape(rec, model, F.mse_loss, (x, y), paths={"run a": "a."}, origin="middle")
    with pytest.raises(ValueError, match="paths must map non-empty labels"):
        landscape(rec, model, F.mse_loss, (x, y), paths={"": "a."})
    with pytest.raises(ValueError, match="parameters c.0.weight"):
        landscape(rec, model, F.mse_loss, (x, y), paths={"run c": "c."})


def test_the_scene_draws_several_paths_with_equal_aspect_by_default():
    from scenes.edge_of_stability import EdgeOfStabilityScene

    rec = EdgeOfStabilityScene.example()
    scene = LandscapeScene(rec, None, DRAFT)
    scene.frame(len(scene) - 1)
    panel = scene.panels_[0]
    assert len(panel.lines) == 3 and [line.get_color() for line in panel.lines] == [
        "C0", "C1", "C2",
    ]  # fmt: skip
    assert panel.ax.get_aspect() == 1.0  # a unit is as long along both directions
    assert [t.get_text() for t in panel.ax.get_legend().get_texts()][:3] == [
        "lr=0.1", "lr=0.05", "lr=0.02",
    ]  # fmt: skip
    for line, name in zip(panel.lines, ("lr=0.1", "lr=0.05", "lr=0.02")):
        np.testing.assert_allclose(line.get_xydata()[:-1], rec[f"landscape/{name}/path"].values)
    assert [f.label for f in scene.readout_fields()] == [
        "lr 0.1: loss", "lr 0.05: loss", "lr 0.02: loss",
    ]  # fmt: skip
    assert scene.heading() == "The loss landscape around the runs"
    stretched = LandscapeScene(rec, LandscapeSceneConfig(equal_aspect=False), DRAFT)
    stretched.frame(0)
    assert stretched.panels_[0].ax.get_aspect() == "auto"
