"""Scenes for recordings the project never made: weights, curves, particles and the
``python -m scenes.render`` dashboard, on recordings built by hand and by the Recorder."""

import imageio.v3 as iio
import numpy as np
import pytest

from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.cli import main
from scenes.curves import CurvesScene, norm_curves
from scenes.particles import ParticlesScene, ParticlesSceneConfig
from scenes.plotting import HeatmapPanel, matrix_view
from scenes.render import DashboardScene, plan
from scenes.weights import WeightsScene

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)
FINAL = RenderOptions.preset_for("final", progress=False, workers=1)


def _render(tmp_path, recording, *flags):
    rec = recording.save(tmp_path / "run.rec")
    out = tmp_path / "out.mp4"
    assert (
        main("render", [str(rec), "--out", str(out), "--quality", "draft", "--quiet", *flags])
        == out
    )
    return iio.imread(out, index=None)


def test_a_128x64_heatmap_has_no_cell_edges_few_ticks_and_a_colorbar_that_collides_with_nothing():
    rng = np.random.default_rng(0)
    steps = np.arange(5, dtype=np.int64)
    rec = Recording(
        {
            "fc1.weight": Series(steps, rng.normal(0, 1, (5, 128, 64)), kind="parameter"),
            "fc2.weight": Series(steps, rng.normal(0, 1, (5, 10, 128)), kind="parameter"),
        }
    )
    scene = WeightsScene(rec, None, FINAL)
    frame = scene.frame(-1).astype(int)
    fig = scene._fig
    for panel in scene.panels_:
        assert isinstance(panel, HeatmapPanel) and not panel.edged
        ax = panel.ax
        for axis in (ax.xaxis, ax.yaxis):
            shown = [
                t
                for t in axis.get_ticklabels()
                if t.get_text()
                and ax.get_xlim()[0]
                <= t.get_position()[axis is ax.yaxis]
                <= max(ax.get_xlim() + ax.get_ylim())
            ]
            assert 2 <= len(shown) <= 20
        # inside the cells: no pixel of the grey that used to outline every cell
        bb = ax.get_window_extent()
        top, left = int(fig.bbox.height - bb.y1) + 2, int(bb.x0) + 2
        inner = frame[top : int(fig.bbox.height - bb.y0) - 2, left : int(bb.x1) - 2]
        grey = np.abs(inner - [140, 140, 140]).max(axis=2) <= 8
        assert grey.sum() == 0
    renderer = fig.canvas.get_renderer()
    boxes = [
        p.ax.get_tightbbox(renderer) for p in scene.panels_
    ]  # axes with their colorbar insets and labels
    assert not boxes[0].overlaps(boxes[1])
    for b in boxes:
        assert b.x0 >= 0 and b.x1 <= fig.bbox.width and b.y0 >= 0


def test_matrix_view_reshapes_higher_ranks_by_first_axis():
    v = np.arange(2 * 4 * 3 * 5 * 5).reshape(2, 4, 3, 5, 5)
    assert matrix_view(v).shape == (2, 4, 75)
    assert matrix_view(np.zeros((3, 7))).shape == (3, 1, 7)
    np.testing.assert_array_equal(matrix_view(v)[1, 2], v[1, 2].ravel())


def test_render_a_single_scalar_series(tmp_path):
    rec = Recording({"loss": Series(np.arange(20, dtype=np.int64), np.geomspace(1, 1e-3, 20))})
    assert [v.how for v in plan(rec)] == ["curve"]
    frames = _render(tmp_path, rec)
    assert frames.shape == (20, 360, 640, 3)
    assert not np.array_equal(frames[1], frames[-1])  # the curve grows


def test_render_only_planar_points_without_metadata(tmp_path):
    t = np.linspace(0, 1, 8)[:, None, None]
    pts = (np.array([[0.1, 0.2], [0.3, -0.1], [-0.2, 0.05]]) * (1 + t)).astype(np.float32)
    rec = Recording({"points": Series(np.arange(8, dtype=np.int64) * 3, pts)})
    assert [v.how for v in plan(rec)] == ["particles"]
    frames = _render(tmp_path, rec)
    assert frames.shape == (8, 360, 640, 3)
    # limits from the data: the particles spread over the panel, not a small patch of +-2
    scene = ParticlesScene(rec, None, DRAFT)
    x0, x1 = scene.panels_[0].ax.get_xlim() if scene.frame(0) is not None else (0, 0)
    assert x1 - x0 < 1.5 and x0 < -0.4 and x1 > 0.6


def test_render_summaries(tmp_path):
    from scenes.distributions import DistributionsScene

    example = DistributionsScene.example()
    rec = Recording({k: s for k, s in example.items() if s.kind in ("stats", "histogram", "edges")})
    assert [v.how for v in plan(rec)] == ["distribution", "distribution"]
    assert _render(tmp_path, rec).shape == (12, 360, 640, 3)


def test_render_with_nothing_drawable_names_what_is_there(tmp_path, capsys):
    rec = Recording(
        {
            "data/x": Series(np.zeros(1, np.int64), np.zeros((1, 5, 3)), kind="data"),
            "note": Series(np.zeros(1, np.int64), np.zeros((1, 4), np.float32), kind="data"),
        }
    )
    path = rec.save(tmp_path / "empty.rec")
    with pytest.raises(SystemExit) as exc:
        main("render", [str(path), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "nothing to draw" in err and "data/x (data, 1 x (5, 3))" in err and "\n" not in err


def test_render_show_chooses_and_names_missing(tmp_path, capsys):
    rec = DashboardScene.example()
    assert [v.name for v in plan(rec, ["loss", "0.weight"])] == ["loss", "0.weight"]
    with pytest.raises(KeyError, match="no series 'nope'"):
        plan(rec, ["nope"])


def test_particles_title_is_honest_and_loss_optional():
    rec = ParticlesScene.example()
    bare = Recording({"positions": rec["positions"]})
    scene = ParticlesScene(bare, ParticlesSceneConfig(curve=""), DRAFT)
    assert scene.heading() == "positions: 5 particles over training" and len(
        scene.panels_ if scene.frame(0) is not None else []
    )
    assert len(scene.panels_) == 1
    assert (
        ParticlesScene(rec, None, DRAFT).heading()
        == "positions: 5 particles and 2 reference points over training"
    )
    from scenes.relu_particles import ReluParticlesScene

    assert "teacher" not in ReluParticlesScene(bare, None, DRAFT).heading()


def test_an_mlp_recorded_by_the_recorder_renders_by_kind(tmp_path):
    torch = pytest.importorskip("torch")
    from dynamics import Recorder, load

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    with Recorder(model, opt, schedule=5, grads=True, path=tmp_path / "mlp.rec") as rec:
        for _ in range(20):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            rec.log(loss=loss)
    recording = load(tmp_path / "mlp.rec")
    assert (
        recording["0.weight"].kind == "parameter" and recording["grad/0.weight"].kind == "gradient"
    )
    assert recording["grad/0.weight"].source == "0.weight" and recording["loss"].kind == "scalar"
    title, steps, norms, labels = norm_curves(recording)[0]
    np.testing.assert_allclose(
        norms[:, labels.index("4.weight")],
        np.linalg.norm(np.asarray(recording["4.weight"].values).reshape(5, -1), axis=1),
    )
    np.testing.assert_allclose(
        norms[-1, labels.index("0.weight")], float(model[0].weight.detach().norm()), rtol=1e-6
    )
    assert [v.how for v in plan(recording)] == ["heatmap", "heatmap", "curve"]
    scene = CurvesScene(recording, None, DRAFT)  # steps 0..20: the loss every step, weights every 5
    assert len(scene) == 21 and scene.frame(-1).shape == (360, 640, 3)
    assert WeightsScene(recording, None, DRAFT).shown_ == ["0.weight", "2.weight", "4.weight"]
