"""Scenes on recordings of real models, made by the Recorder: a transformer of 24 parameter
tensors with every module's output summarised, and a small GAN whose generator's samples
are a derived ``(T, 256, 2)`` series beside a ``(16, 2)`` weight. Everything goes through
the command line, as a researcher runs it: no traceback, one name per series, and a scene
that chooses a series itself says which."""

import warnings

import imageio.v3 as iio
import matplotlib.colors as mc
import numpy as np
import pytest

from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.cli import main
from scenes.curves import MAX_LABEL, MAX_LINES, CurvesScene, _palette, group_by_module
from scenes.particles import ParticlesScene, ParticlesSceneConfig
from scenes.plotting import COLORS
from scenes.render import DashboardScene, DashboardSceneConfig

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)
FINAL = RenderOptions.preset_for("final", progress=False, workers=1)
ATTN = "activation layers.0.self_attn[0]"  # the title a summary's panel shows


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    """A 2-layer TransformerEncoder (d_model 16: 24 parameter tensors) trained 6 steps, with
    its gradients and the outputs of every module summarised (``activations="*"``)."""
    torch = pytest.importorskip("torch")
    from dynamics import Recorder

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(
        d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True
    )
    model = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(8, 5, 16)
    path = tmp_path_factory.mktemp("transformer") / "run.rec"
    with warnings.catch_warnings():  # no gradient at step 0; attention's None weights skipped
        warnings.simplefilter("ignore")
        with Recorder(model, opt, schedule=2, grads=True, activations="*", path=path) as rec:
            for _ in range(6):
                opt.zero_grad()
                loss = model(x).pow(2).mean()
                loss.backward()
                opt.step()
                rec.log(loss=loss)
    return path


@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    """A GAN on one 2-D mode: the generator's samples of 256 fixed noise vectors are the
    derived series ``samples`` (T, 256, 2); the discriminator's first weight ``D.0.weight``
    is a (T, 16, 2) parameter, recorded first."""
    torch = pytest.importorskip("torch")
    from dynamics import Recorder

    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    G = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    model = torch.nn.ModuleDict({"D": D, "G": G})
    opt_d = torch.optim.SGD(D.parameters(), lr=0.05)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.05)
    z, real = torch.randn(256, 4), torch.randn(256, 2) * 0.3 + 1.0
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ones, zeros = torch.ones(256, 1), torch.zeros(256, 1)
    path = tmp_path_factory.mktemp("gan") / "gan.rec"
    meta = {"references": {"samples": {"points": [[1.0, 1.0]], "label": "mode of the data"}}}
    with Recorder(
        model, [opt_d, opt_g], derived={"samples": lambda m: m["G"](z)}, path=path, metadata=meta
    ) as rec:
        for _ in range(4):
            opt_d.zero_grad()
            loss_d = bce(D(real), ones) + bce(D(G(z).detach()), zeros)
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = bce(D(G(z)), ones)
            loss_g.backward()
            opt_g.step()
            rec.log(loss_d=loss_d, loss_g=loss_g)
    return path


def run(name, recording, tmp_path, *flags):
    """``python -m scenes.NAME RECORDING --out last.png ...`` in process: the PNG (RGB)."""
    out = tmp_path / f"{name}.png"
    argv = [str(recording), "--out", str(out), "--quality", "draft", "--quiet", *flags]
    assert main(name, argv) == out
    return iio.imread(out)[..., :3]


def one_line_error(capsys, name, *argv):
    with pytest.raises(SystemExit) as exc:
        main(name, [str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name", ["curves", "render", "weights", "distributions"])
def test_every_generic_scene_draws_a_transformer_from_the_command_line(
    name, transformer, tmp_path, capsys
):
    frame = run(name, transformer, tmp_path, "--no-figures")
    assert frame.shape == (360, 640, 3)
    assert (frame < 128).any(axis=2).mean() > 0.01  # ink: axes, text, curves
    assert "Traceback" not in capsys.readouterr().err


def test_curves_group_24_tensors_by_module_into_one_legend_beside_the_panels(
    transformer, tmp_path, capsys
):
    from dynamics import load

    frame = run("curves", transformer, tmp_path).astype(int)
    err = capsys.readouterr().err
    assert (
        "drew scalar loss; norms of 24 parameters and 24 gradients, grouped by module into 12"
        in (err)
    )
    recording = load(transformer)
    scene = CurvesScene(recording, None, DRAFT)
    np.testing.assert_array_equal(scene.frame(-1), frame)  # the PNG is this scene's last frame
    fig = scene._fig
    (legend,) = fig.legends
    entries = [t.get_text() for t in legend.get_texts()]
    assert len(entries) == 12 and "layers.0.self_attn.out_proj (2)" in entries
    assert all(len(e) <= MAX_LABEL for e in entries)
    # every norm panel draws one line per legend entry, in the entry's colour
    norm_panels = [p for p in scene.panels_ if p.ax.get_title(loc="left") != "loss"]
    assert len(norm_panels) == 3
    for panel in norm_panels:
        assert [line.get_color() for line in panel.lines] == _palette(12)
    # the legend lies inside the frame, right of every panel
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert box.x1 <= fig.bbox.width and box.y0 >= 0 and box.y1 <= fig.bbox.height
    assert all(box.x0 > p.ax.get_tightbbox(renderer).x1 for p in scene.panels_)
    # ... and in the PNG: each of the 12 colours is there, right of the panels
    right = frame[:, int(max(p.ax.get_window_extent().x1 for p in scene.panels_)) + 2 :]
    for color in _palette(12):
        rgb = np.array(mc.to_rgb(color)) * 255
        assert (np.abs(right - rgb).max(axis=2) < 30).any(), color
    # a group's curve is the norm of its tensors together
    weight_norm = scene.panels_[1]
    column = entries.index("layers.1.linear1 (2)")
    together = np.concatenate(
        [np.ravel(recording[f"layers.1.linear1.{p}"].values[-1]) for p in ("weight", "bias")]
    )
    np.testing.assert_allclose(weight_norm.values[-1, column], np.linalg.norm(together), rtol=1e-6)


@pytest.mark.parametrize("n", [1, 9, 17, 500])
def test_curves_draw_any_number_of_tensors_with_a_legend_that_fits(n):
    rng = np.random.default_rng(0)
    steps = np.arange(3, dtype=np.int64)
    series = {"loss": Series(steps, np.geomspace(1, 0.1, 3), kind="scalar")}
    for i in range(n):  # 500: two models of 50 blocks of 5 tensors
        name = f"{'GD'[i % 2]}.block{i // 10}.layer{i % 5}.weight" if n > 100 else f"fc{i}.weight"
        series[name] = Series(steps, rng.normal(size=(3, 4)).astype(np.float32), kind="parameter")
    scene = CurvesScene(Recording(series), None, FINAL)
    scene.frame(-1)
    (legend,) = scene._fig.legends
    lines = len(legend.get_texts())
    assert lines == (n if n <= MAX_LINES else len(group_by_module(list(series)[1:])))
    assert 1 <= lines <= MAX_LINES
    # grouping is said (the command prints it); one line per tensor needs no word
    assert bool(scene.notes_) == (n > MAX_LINES)
    assert all(len(panel.lines) == lines for panel in scene.panels_[1:])
    box = legend.get_window_extent(scene._fig.canvas.get_renderer())
    assert box.y0 >= 0 and box.x1 <= scene._fig.bbox.width


def test_group_by_module_splits_sibling_layers_alike():
    bert = [f"bert.embeddings.{m}.weight" for m in ("word", "position", "LayerNorm")]
    for layer in range(12):
        bert += [f"bert.encoder.layer.{layer}.{m}.{p}" for m in ("q", "k", "out") for p in "wb"]
    bert += ["bert.pooler.dense.weight", "cls.predictions.bias", "cls.predictions.dense.weight"]
    groups = group_by_module(bert)
    assert list(groups) == [
        "bert.embeddings",
        *(f"bert.encoder.layer.{i}" for i in range(12)),
        "bert.pooler",
        "cls",
    ]
    assert sorted(i for m in groups.values() for i in m) == list(range(len(bert)))
    assert list(group_by_module(["a", "b"])) == ["a", "b"]  # few: each its own


def test_show_takes_what_a_panel_title_shows(transformer, tmp_path, capsys):
    from dynamics import load

    recording = load(transformer)
    # the dashboard's titles, each given back to --show, draw a panel with the same title
    dashboard = DashboardScene(recording, None, DRAFT)
    dashboard.frame(-1)
    titles = [p.ax.get_title(loc="left") for p in dashboard.panels_]
    assert ATTN in titles
    for title in titles:
        again = DashboardScene(recording, DashboardSceneConfig(show=title), DRAFT)
        again.frame(-1)
        assert [p.ax.get_title(loc="left") for p in again.panels_] == [title]
    # curves: the summary by its title or by its series, the same panel: mean, std, min, max
    for name in (ATTN, "stats/act/layers.0.self_attn[0]"):
        run("curves", transformer, tmp_path, "--show", name, "--no-norms")
        scene = CurvesScene(recording, CurvesScene.Config(show=name, norms=False), DRAFT)
        scene.frame(-1)
        (panel,) = scene.panels_
        assert panel.ax.get_title(loc="left") == ATTN
        assert [t.get_text() for t in panel.legend.get_texts()] == ["mean", "std", "min", "max"]
        np.testing.assert_array_equal(
            panel.values, recording["stats/act/layers.0.self_attn[0]"].values
        )
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["curves", "render", "weights", "particles"])
def test_a_misspelt_show_name_gives_one_line_with_the_closest_names(
    name, transformer, tmp_path, capsys
):
    err = one_line_error(
        capsys,
        name,
        transformer,
        "--out",
        tmp_path / "x.png",
        "--show",
        "activaton layers.0.self_attn[0]",
    )
    assert f"closest: '{ATTN}'" in err
    assert "layers.1.norm2.bias" not in err and len(err) < 400  # not all 103 names


def test_particles_prefer_derived_samples_over_a_weight_and_say_so(gan, tmp_path, capsys):
    from dynamics import load

    recording = load(gan)
    assert recording["D.0.weight"].shape == (16, 2)  # a planar parameter, recorded first
    frame = run("particles", gan, tmp_path).astype(int)
    err = capsys.readouterr().err
    assert "drew 'samples' (derived, 256 points, 5 snapshots) as particles" in err
    assert "D.0.weight (parameter)" in err  # what else it could have drawn
    scene = ParticlesScene(recording, None, DRAFT)
    assert scene.heading() == "samples: 256 particles and 1 reference point over training"
    np.testing.assert_array_equal(scene.frame(-1), frame)
    ax = scene.panels_[0].ax
    samples = np.asarray(recording["samples"].values[-1], dtype=float)
    apart = np.linalg.norm(samples[:, None] - samples[None], axis=2) + np.eye(len(samples)) * 9
    x, y = ax.transData.transform(samples[apart.min(axis=1).argmax()])  # the loneliest sample
    assert _is(frame[int(round(360 - y)), int(round(x))], COLORS["particle"])
    # --show chooses the weight instead, and then nothing is noted
    run("particles", gan, tmp_path, "--show", "D.0.weight")
    assert "drew" not in capsys.readouterr().err


def _over_a_reference(**config):
    """One particle that ends on the reference point (1, 1), another far from it: a
    function from a point to the pixel of the last frame (1280 x 720) there."""
    steps = np.arange(3, dtype=np.int64)
    positions = np.array([[[0.2, 0.2], [-1, -1]], [[0.6, 0.6], [-1, -1]], [[1, 1], [-1, -1]]])
    meta = {"references": {"pts": {"points": [[1.0, 1.0]], "label": "target"}}}
    rec = Recording({"pts": Series(steps, positions.astype(np.float32), kind="derived")}, meta)
    scene = ParticlesScene(rec, ParticlesSceneConfig(curve="", **config), FINAL)
    frame = scene.frame(-1).astype(int)

    def at(xy, around=0):
        """The pixel at ``xy``; with ``around``, the darkest within that many pixels."""
        x, y = scene.panels_[0].ax.transData.transform(xy)
        r, c = int(round(720 - y)), int(round(x))
        patch = frame[r - around : r + around + 1, c - around : c + around + 1].reshape(-1, 3)
        return patch[patch.sum(axis=1).argmin()]

    return at


def _is(pixel, color):
    return np.abs(pixel - np.array(mc.to_rgb(color)) * 255).max() < 40


@pytest.mark.parametrize("raster", [True, False])
def test_reference_points_lie_above_the_particles_and_rays_only_when_asked(raster, monkeypatch):
    monkeypatch.setattr(ParticlesScene, "raster", raster)
    at = _over_a_reference()
    assert _is(at((1.0, 1.0)), COLORS["reference"])  # the particle on it does not hide it
    assert _is(at((-1.0, -1.0)), COLORS["particle"])
    ray_point = (0.4, 0.4)  # on the ray from the origin through (1, 1), between path dots
    assert at(ray_point, around=2).min() > 200  # no ray unless asked: white
    assert _is(_over_a_reference(rays=True)(ray_point, around=2), COLORS["ray"])
    assert _is(_over_a_reference(references=False)((1.0, 1.0)), COLORS["particle"])
