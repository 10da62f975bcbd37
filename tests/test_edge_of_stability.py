"""Gradient descent at the edge of stability (docs/experiments.md section 6): the data, the
runs side by side, the recorded sharpness against a direct computation, the expected outcome
(fast at one seed; over five seeds under -m slow), the scene's reading of a recording."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dynamics.capture import Recorder, Sharpness
from dynamics.curvature import sharpness
from dynamics.experiments import edge_of_stability as eos
from dynamics.experiments.common import stream_seed
from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.cli import main
from scenes.edge_of_stability import EdgeOfStabilityScene, runs_of

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)
SHORT = eos.Config(lrs="0.1,0.05", points=100, steps=40, sharpness_every=20)


@pytest.fixture(scope="module")
def short():
    return eos.run(SHORT)


# -- config and data ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lrs", ["", "0.1,x", "0.1,0", "0.1,-1", "nan", "inf", "1e9", "0.1,0.1", "1,2,3,4,5,6,7"]
)
def test_bad_step_sizes_are_refused_with_their_rule(lrs):
    with pytest.raises(ValueError, match="lrs must be"):
        eos.Config(lrs=lrs)


def test_bad_step_sizes_on_the_command_line_give_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main("edge_of_stability", ["--lrs", "0.1,0.1", "--out", str(tmp_path / "x.mp4"), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "lrs must be 1 to 6 different step sizes" in err and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_data_are_labelled_by_the_sphere_from_their_own_stream():
    cfg = eos.Config(points=300, dim=5, seed=3)
    x, y = eos.make_data(cfg)
    g = torch.Generator().manual_seed(stream_seed(3, "data"))
    expected = torch.randn(300, 5, generator=g)
    assert torch.equal(x, expected)
    np.testing.assert_array_equal(y.numpy(), np.where((x.numpy() ** 2).sum(1) > 5, 1.0, -1.0))
    assert 0.3 < float((y > 0).float().mean()) < 0.6  # both classes well represented
    assert not torch.equal(x, eos.make_data(dataclasses.replace(cfg, seed=4))[0])


# -- the runs ----------------------------------------------------------------------------------


def test_same_seed_gives_the_same_recording(short):
    again = eos.run(SHORT)
    assert sorted(short.keys()) == sorted(again.keys())
    for name in short.keys():
        np.testing.assert_array_equal(short[name].steps, again[name].steps)
        np.testing.assert_array_equal(
            np.asarray(short[name].values), np.asarray(again[name].values)
        )
    other = eos.run(dataclasses.replace(SHORT, seed=1))
    assert not np.array_equal(other["lr=0.1/loss"].values, short["lr=0.1/loss"].values)


def test_series_schedules_and_metadata(short):
    assert [r["sharpness"] for r in short.metadata["runs"]] == [
        "lr=0.1/sharpness",
        "lr=0.05/sharpness",
    ]
    for r in short.metadata["runs"]:
        s = short[r["sharpness"]]
        np.testing.assert_array_equal(s.steps, [0, 20, 40])
        assert s.shape == (1,) and s.kind == "curvature"
        np.testing.assert_array_equal(short[f"{r['sharpness']}/edge"].values, [2 / r["lr"]] * 3)
        np.testing.assert_array_equal(short[r["loss"]].steps, np.arange(41))
    assert short["members.1.layers.0.weight"].steps.tolist() == [0, 20, 40]
    # one start for every step size: the copies' first parameters are equal, then part
    w0, w1 = (np.asarray(short[f"members.{k}.layers.0.weight"].values) for k in (0, 1))
    np.testing.assert_array_equal(w0[0], w1[0])
    assert not np.array_equal(w0[-1], w1[-1])
    assert short.metadata["experiment"] == "edge_of_stability"


def load_member(recording, k, index, widths):
    net = eos.TanhMLP(widths)
    state = {
        name: torch.from_numpy(np.array(recording[f"members.{k}.{name}"].values[index]))
        for name, _ in net.named_parameters()
    }
    net.load_state_dict(state)
    return net


def test_recorded_sharpness_and_loss_match_a_direct_computation(short):
    """From the recorded parameters of each run: the loss, exactly; the top Hessian eigenvalue
    of a cold start at tol 1e-10 (the recording's warm start stops at 1e-3), to 1e-5."""
    x, y = eos.make_data(SHORT)
    for k, r in enumerate(short.metadata["runs"]):
        s = short[r["sharpness"]]
        for index, step in enumerate(s.steps):
            net = load_member(short, k, index, SHORT.widths)
            with torch.no_grad():
                loss = F.mse_loss(net(x), y)
            assert float(short[r["loss"]].at(int(step))) == pytest.approx(float(loss), rel=1e-6)
            direct = sharpness(net, F.mse_loss, (x, y), tol=1e-10, max_hvps=400).values[0]
            assert float(s.values[index][0]) == pytest.approx(float(direct), rel=1e-5)


def test_runs_side_by_side_train_as_each_alone(short):
    """A run trained beside another takes the same steps as alone: same losses, same
    parameters (the stacked model's sum of losses gives each copy its own gradient)."""
    alone = eos.run(dataclasses.replace(SHORT, lrs="0.05"))
    np.testing.assert_array_equal(alone["lr=0.05/loss"].values, short["lr=0.05/loss"].values)
    np.testing.assert_array_equal(
        alone["members.0.layers.1.weight"].values, short["members.1.layers.1.weight"].values
    )
    np.testing.assert_allclose(
        alone["lr=0.05/sharpness"].values, short["lr=0.05/sharpness"].values, rtol=1e-5
    )


def test_chapters_mark_where_each_run_first_reaches_its_edge():
    rec = Recording(
        {
            "a/sharpness": Series(
                np.array([0, 10, 20, 30]), np.array([[1.0], [19.0], [20.5], [19.9]])
            ),
            "b/sharpness": Series(
                np.array([0, 10, 20, 30]), np.array([[1.0], [2.0], [3.0], [4.0]])
            ),
        },
        {},
    )
    runs = [
        {"lr": 0.1, "edge": 20.0, "sharpness": "a/sharpness"},
        {"lr": 0.02, "edge": 100.0, "sharpness": "b/sharpness"},
    ]
    assert eos.edge_chapters(rec, runs) == [[20, "lr 0.1: the sharpness reaches 2/lr = 20"]]


# -- the expected outcome ----------------------------------------------------------------------


def test_summary_figures_follow_their_definitions():
    steps = np.arange(0, 101, 10)
    lam = np.array([5, 10, 18, 21, 19, 20, 22, 19, 20, 21, 20.0])
    loss = np.linspace(1, 0.1, 101)
    loss[50] = 2.0
    rec = Recording(
        {"s": Series(steps, lam[:, None]), "l": Series(np.arange(101), loss)},
        {"runs": [{"lr": 0.1, "edge": 20.0, "sharpness": "s", "loss": "l"}]},
    )
    (f,) = eos.summary(rec)
    assert f["reached"] == 30 and f["peak"] == pytest.approx(22 / 20)
    assert f["late"] == pytest.approx(np.median([20, 22, 19, 20, 21, 20]) / 20)  # steps >= 50
    assert f["loss_reached"] == loss[30] and f["loss_end"] == loss[-1] and f["loss_rises"] == 1
    assert eos.criteria(f, control=False) == {"peak": True, "hovers": True, "loss falls": True}
    assert eos.criteria(f, control=True) == {"below": False}


def test_one_seed_reaches_the_edge_and_the_control_does_not():
    """Seed 0, the default network and data, 600 steps: lr 0.1 reaches 2/lr = 20, hovers
    there over steps 300-600 while its loss falls; lr 0.02 stays below 100."""
    rec = eos.run(eos.Config(lrs="0.1,0.02", steps=600))
    edge, control = eos.summary(rec)
    assert eos.criteria(edge, control=False) == {"peak": True, "hovers": True, "loss falls": True}
    assert edge["loss_rises"] > 0  # not monotonically
    assert eos.criteria(control, control=True) == {"below": True}
    assert control["loss_rises"] == 0


@pytest.mark.slow
def test_five_seeds_at_two_step_sizes_reach_the_edge_and_the_control_does_not():
    """The default runs (lr 0.1, 0.05 and the control 0.02; 1500 steps) over seeds 0-4: every
    claim of the expected outcome holds for every seed (docs/experiments.md section 6)."""
    failed = []
    for seed in range(5):
        for f in eos.summary(eos.run(eos.Config(seed=seed))):
            held = eos.criteria(f, control=f["lr"] == 0.02)
            if not all(held.values()):
                failed.append((seed, f, held))
            if f["lr"] != 0.02:
                assert f["loss_rises"] > 0  # the loss falls, but not monotonically
    assert failed == []


# -- the scene ---------------------------------------------------------------------------------


def test_scene_draws_each_runs_edge_in_its_colour(short):
    scene = EdgeOfStabilityScene(short, options=DRAFT)
    scene.frame(len(scene) - 1)
    ax = scene.panels_[0].ax
    curves = [p.lines[0] for p in scene.panels_[:2]]
    edges = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert sorted(float(line.get_ydata()[0]) for line in edges) == [20.0, 40.0]
    for curve, r in zip(curves, short.metadata["runs"]):
        (edge,) = [line for line in edges if float(line.get_ydata()[0]) == r["edge"]]
        assert edge.get_color() == curve.get_color()
        np.testing.assert_array_equal(curve.get_ydata(), short[r["sharpness"]].values[:, 0])
    assert ax.get_ylim() == (0.0, pytest.approx(1.08 * 40))  # the highest edge, with room
    loss_ax = scene.panels_[2].ax
    assert loss_ax is not ax and loss_ax.get_xlim() == ax.get_xlim()  # one timeline
    assert [line.get_color() for p in scene.panels_[2:4] for line in p.lines] == [
        c.get_color() for c in curves
    ]


def test_scene_reads_a_recording_of_the_sharpness_quantity_by_its_kinds(tmp_path):
    """A recording of one's own run (Sharpness with the optimizer, a logged loss), with no
    metadata about runs: one run named after its series, its line at the recorded edge
    (2/lr = 8), the loss beneath."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.25)
    rec = Recorder(
        model,
        opt,
        params=None,
        schedule=5,
        quantities=[Sharpness(F.mse_loss, (x, y), optimizer=opt)],
    )
    with rec:
        for _ in range(20):
            loss = F.mse_loss(model(x), y)
            rec.log(loss=loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
    runs = runs_of(rec.recording)
    assert runs == [{"lr": None, "edge": 8.0, "sharpness": "sharpness", "loss": "loss"}]
    scene = EdgeOfStabilityScene(rec.recording, options=DRAFT)
    out = scene.still(tmp_path / "own.png")
    ax = scene.panels_[0].ax
    assert [float(line.get_ydata()[0]) for line in ax.lines if line.get_linestyle() == "--"] == [8]
    assert "sharpness:  edge = 8" in [t.get_text() for t in ax.texts]
    import imageio.v3 as iio

    assert iio.imread(out).shape[:2] == (360, 640)
    with pytest.raises(ValueError, match="the recording has no runs"):
        runs_of(Recording({"loss": Series(np.arange(3), np.ones(3))}, {}))


# -- the landscape -----------------------------------------------------------------------------


def start_and_plane(recording):
    """The plane's origin (run 0's parameters at its first snapshot, flat, float64) and its
    directions ``(2, P)``."""
    info = recording.metadata["landscape"]["landscape"]
    origin = torch.cat(
        [
            torch.from_numpy(
                np.asarray(recording[f"members.0.{n}"].values[0], dtype=float)
            ).reshape(-1)
            for n in info["names"]
        ]
    )
    D = torch.from_numpy(np.asarray(recording["landscape/directions"].values[-1]))
    return origin, D


def loss_of(flat, config):
    """The training loss of a fresh network loaded with ``flat`` (float64, cast to float32)."""
    x, y = eos.make_data(config)
    net = eos.TanhMLP(config.widths)
    torch.nn.utils.vector_to_parameters(flat.float(), net.parameters())
    with torch.no_grad():
        return float(F.mse_loss(net(x), y))


def test_one_plane_through_the_common_start_holds_every_run(short):
    """One plane for both runs: through their common start (every path begins at (0, 0)),
    spanned by the top two principal directions of all their snapshots' displacements from
    it (the same plane as a direct SVD), each path their exact projection onto it."""
    info = short.metadata["landscape"]["landscape"]
    assert info["origin"] == "start" and info["directions"] == "pca"
    assert [p["label"] for p in info["paths"]] == ["lr=0.1", "lr=0.05"]
    assert info["extent"][1] - info["extent"][0] == pytest.approx(
        info["extent"][3] - info["extent"][2]
    )  # square: drawn with equal aspect it fills a square panel
    origin, D = start_and_plane(short)
    np.testing.assert_allclose((D @ D.T).numpy(), np.eye(2), atol=1e-12)
    flats = []
    for k, p in enumerate(info["paths"]):
        flat = torch.cat(
            [
                torch.from_numpy(np.asarray(short[f"members.{k}.{n}"].values, dtype=float)).reshape(
                    3, -1
                )
                for n in info["names"]
            ],
            dim=1,
        )
        flats.append(flat)
        coords = np.asarray(short[p["path"]].values)
        np.testing.assert_array_equal(short[p["path"]].steps, [0, 20, 40])
        np.testing.assert_array_equal(coords[0], [0.0, 0.0])
        np.testing.assert_allclose(coords, ((flat - origin) @ D.T).numpy(), atol=1e-12)
    X = torch.cat(flats) - origin
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose((D.T @ D).numpy(), (Vh[:2].T @ Vh[:2]).numpy(), atol=1e-10)
    np.testing.assert_allclose(
        info["explained_variance"], (S[:2] ** 2 / (S**2).sum()).numpy(), rtol=1e-10
    )


def test_landscape_grid_and_path_losses_are_the_models_losses(short):
    """A grid point's loss is the loss of a network loaded with the start plus its
    coordinates along the two directions; each path's loss at a snapshot is the loss the
    run recorded at that step, and at its projection the loss of the projected point."""
    info = short.metadata["landscape"]["landscape"]
    origin, D = start_and_plane(short)
    grid = np.asarray(short["landscape"].values[-1])
    n = info["size"]
    a0, a1, b0, b1 = info["extent"]
    alphas, betas = np.linspace(a0, a1, n), np.linspace(b0, b1, n)
    for i, j in [(0, 0), (n - 1, n - 1), (n // 2, 3), (7, n - 2)]:
        want = loss_of(origin + alphas[j] * D[0] + betas[i] * D[1], SHORT)
        assert grid[i, j] == pytest.approx(want, rel=1e-5)
    for p, r in zip(info["paths"], short.metadata["runs"]):
        steps = np.asarray(short[p["path"]].steps)
        recorded = [float(short[r["loss"]].at(int(s))) for s in steps]
        np.testing.assert_allclose(short[f"{p['path']}/loss"].values, recorded, rtol=1e-5)
        coords = torch.from_numpy(np.asarray(short[p["path"]].values))
        plane = [loss_of(origin + c @ D, SHORT) for c in coords]
        np.testing.assert_allclose(short[f"{p['path']}/plane_loss"].values, plane, rtol=1e-5)


def test_same_seed_gives_the_same_landscape_metadata(short):
    again = eos.run(SHORT)
    assert "landscape" in again and "landscape/lr=0.05/path/plane_loss" in again
    drop = {"seconds"}  # the time it took
    one, two = (
        {k: v for k, v in r.metadata["landscape"]["landscape"].items() if k not in drop}
        for r in (short, again)
    )
    assert one == two


def test_no_landscape_grid_writes_no_landscape():
    rec = eos.run(dataclasses.replace(SHORT, landscape_grid=0, steps=20))
    assert "landscape" not in rec.metadata and not rec.of_kind("landscape")
    assert not rec.of_kind("path")


def test_the_landscape_command_draws_an_older_recording_on_one_plane(tmp_path, capsys):
    """A recording made without a landscape gets one from the experiment's hooks: the same
    plane, through the common start, with both runs' paths."""
    cfg = dataclasses.replace(SHORT, landscape_grid=0)
    eos.run(cfg, path=tmp_path / "old.rec")
    saved = tmp_path / "with.rec"
    out = main(
        "landscape",
        [str(tmp_path / "old.rec"), "--grid", "9", "--save", str(saved), "--out",
         str(tmp_path / "l.png"), "--quiet"],
    )  # fmt: skip
    assert out.exists() and "computed the landscape (9 x 9 losses" in capsys.readouterr().err
    from dynamics import load

    rec = load(saved)
    info = rec.metadata["landscape"]["landscape"]
    assert info["origin"] == "start" and [p["path"] for p in info["paths"]] == [
        "landscape/lr=0.1/path",
        "landscape/lr=0.05/path",
    ]
    for p, r in zip(info["paths"], rec.metadata["runs"]):
        steps = np.asarray(rec[p["path"]].steps)
        recorded = [float(rec[r["loss"]].at(int(s))) for s in steps]
        np.testing.assert_allclose(rec[f"{p['path']}/loss"].values, recorded, rtol=1e-5)
    # the plane the experiment computes (up to rounding: the grid's chunks, the threads)
    made = eos.run(dataclasses.replace(SHORT, landscape_grid=9))
    np.testing.assert_allclose(
        info["extent"], made.metadata["landscape"]["landscape"]["extent"], rtol=1e-12
    )
    for name in ("landscape/directions", "landscape/lr=0.05/path"):
        np.testing.assert_allclose(rec[name].values, made[name].values, atol=1e-12)
    np.testing.assert_allclose(rec["landscape"].values, made["landscape"].values, rtol=1e-5)


def colour_near(frame, xy, rgb, radius=4, tol=40):
    """Whether a pixel within ``radius`` of ``xy`` (pixels, from the top left) has colour
    ``rgb`` (0-255) within ``tol`` per channel."""
    x, y = int(round(xy[0])), int(round(xy[1]))
    part = frame[y - radius : y + radius + 1, x - radius : x + radius + 1, :3].astype(int)
    return bool((np.abs(part - np.asarray(rgb)) <= tol).all(axis=-1).any())


def test_scene_draws_each_runs_path_in_its_colour_up_to_the_cursor(short):
    """The landscape column: each run's path grows up to the frame's step in the run's
    colour (that of its sharpness curve), its current point there; --no-landscape and a
    recording without a landscape leave the column out."""
    from matplotlib.colors import to_rgb

    from scenes.landscape import LandscapePanel

    options = RenderOptions.preset_for("final", progress=False, workers=1)
    scene = EdgeOfStabilityScene(short, options=options)
    scene.frame(0)
    (panel,) = [p for p in scene.panels_ if isinstance(p, LandscapePanel)]
    curves = [p.lines[0] for p in scene.panels_[:2]]
    h = scene.options.height
    for i in (0, len(scene) // 2, len(scene) - 1):
        frame = scene.frame(i)
        step = scene.panel_step(i)
        for k, (line, dot, curve) in enumerate(zip(panel.lines, panel.dots, curves)):
            assert line.get_color() == dot.get_color() == curve.get_color()
            coords = np.asarray(short[f"landscape/lr={(0.1, 0.05)[k]:g}/path"].values)
            _, now = panel.position(step, k)
            assert dot.get_xydata()[0] == pytest.approx(now)
            drawn = int(np.searchsorted([0, 20, 40], step, side="right"))
            np.testing.assert_allclose(line.get_xydata()[:drawn], coords[:drawn])
            x, y = panel.ax.transData.transform(now)
            rgb = [int(255 * c) for c in to_rgb(curve.get_color())]
            if i == len(scene) - 1 or k == 0:  # (run 1's point is under run 0's at the start)
                assert colour_near(frame, (x, h - y), rgb), (i, k)
    for other in (
        EdgeOfStabilityScene(
            short, EdgeOfStabilityScene.Config(landscape=False), options=DRAFT
        ),
        EdgeOfStabilityScene(
            Recording({k: s for k, s in short.items() if not k.startswith("landscape")},
                      {k: v for k, v in short.metadata.items() if k != "landscape"}),
            options=DRAFT,
        ),
    ):  # fmt: skip
        other.frame(len(other) - 1)
        assert not [p for p in other.panels_ if isinstance(p, LandscapePanel)]
        assert len(other.panels_) == 4  # two sharpness curves, two losses
