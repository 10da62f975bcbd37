"""Scenes on real models (tests/zoo/): gradient heatmaps that stay readable over decades,
convolution kernels as filter grids, a map of every tensor of a model, and a dashboard whose
panels never overlap (measured on matplotlib's own text boxes)."""

import imageio.v3 as iio
import numpy as np
import pytest
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.cli import build_parser, main
from scenes.layers import LayersScene, LayersSceneConfig, column_edges, tensor_map
from scenes.plotting import FilterGrid, ScaledHeatmapPanel, StepMapPanel, _tick_text
from scenes.registry import get
from scenes.render import DashboardScene, pack_rows, plan
from scenes.weights import MAX_STRETCH, WeightsScene, WeightsSceneConfig

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)
FINAL = RenderOptions.preset_for("final", progress=False, workers=1)
CLOCK = RenderOptions.preset_for("draft", progress=False, workers=1, duration=1, fps=20)


def coloured(pixels: np.ndarray) -> float:
    """Fraction of ``pixels`` (RGB) far from white and from grey: cells a colour map shows."""
    rgb = pixels.astype(int)
    return float(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 60).mean())


def inside(frame: np.ndarray, ax) -> np.ndarray:
    """The pixels of ``frame`` inside ``ax``'s box (2 px in from its edges)."""
    b = ax.get_window_extent()
    h = frame.shape[0]
    return frame[int(h - b.y1) + 2 : int(h - b.y0) - 2, int(b.x0) + 2 : int(b.x1) - 2]


# -- 1. gradient heatmaps over many decades -----------------------------------------------


def decaying_gradient(frames: int = 8) -> Recording:
    """A gradient shrinking a decade per snapshot (1 to 1e-7), as at the end of training."""
    rng = np.random.default_rng(0)
    steps = np.arange(frames, dtype=np.int64) * 10
    g = rng.normal(0, 1, (frames, 12, 16)) * 10.0 ** -np.arange(frames)[:, None, None]
    w = rng.normal(0, 1, (frames, 12, 16))
    return Recording(
        {
            "fc.weight": Series(steps, w, kind="parameter", source="fc.weight"),
            "grad/fc.weight": Series(steps, g, kind="gradient", source="fc.weight"),
        }
    )


def test_gradient_colours_follow_each_frame_and_the_colorbar_says_so(tmp_path):
    rec = decaying_gradient()
    g = np.asarray(rec["grad/fc.weight"].values)
    path = rec.save(tmp_path / "run.rec")
    frames = {}
    for scale in ("auto", "run"):
        out = tmp_path / f"{scale}.png"
        main(
            "weights",
            [
                str(path),
                "--show",
                "grad/fc.weight",
                "--scale",
                scale,
                "--out",
                str(out),
                "--quality",
                "draft",
                "--quiet",
            ],
        )
        frames[scale] = iio.imread(out)[:, :, :3]
    scene = WeightsScene(rec, WeightsSceneConfig(show="grad/fc.weight"), DRAFT)
    np.testing.assert_array_equal(scene.frame(-1), frames["auto"])  # the CLI drew this scene
    (panel,) = scene.panels_
    assert isinstance(panel, ScaledHeatmapPanel) and panel.scale == "frame"
    lo, hi = panel.norm.vmin, panel.norm.vmax
    last = np.abs(g[-1]).max()
    assert -last <= lo < 0 < hi <= last  # the last frame's range: about 1e-7 ...
    assert hi < 1e-5 * np.abs(g).max()  # ... not the run's (1)
    assert hi == pytest.approx(np.percentile(np.abs(g[-1]), 99))
    # the colorbar says which scale, and its ticks give this frame's values
    assert "per-frame" in panel.colorbar.ax.get_ylabel()
    assert [t.get_text() for t in panel.scale_texts][-1] == _tick_text(hi)
    # pixels: the per-frame scale shows the cells in colour, the run's scale washes them out
    heat = inside(frames["auto"], panel.ax)
    assert coloured(heat) > 0.3
    assert coloured(inside(frames["run"], panel.ax)) < 0.01
    # the moving tick labels: blitting draws what a full redraw does; on a movie clock the
    # limits blend between snapshots as the cells do
    for i in (0, 4):
        np.testing.assert_array_equal(scene.frame(i), scene.frame(i, blit=False))
    clock = WeightsScene(rec, WeightsSceneConfig(show="grad/fc.weight"), CLOCK)
    clock.frame(7)
    a, b = clock.panels_[0].limits[1:3]
    lo, hi = clock.panels_[0].limits_at(15.0)
    assert hi == pytest.approx((a[1] + b[1]) / 2) and lo == pytest.approx((a[0] + b[0]) / 2)
    # weights keep the run's scale unless asked; --help documents the choice
    weights = WeightsScene(rec, WeightsSceneConfig(show="fc.weight"), DRAFT)
    weights.frame(-1)
    assert weights.panels_[0].scale == "run"
    assert "fixed over run" in weights.panels_[0].colorbar.ax.get_ylabel()
    framed = WeightsScene(rec, WeightsSceneConfig(show="fc.weight", scale="frame"), DRAFT)
    framed.frame(-1)
    assert framed.panels_[0].scale == "frame"
    help_text = " ".join(build_parser(get("weights")).format_help().split())
    assert "--scale" in help_text and "99th percentile" in help_text


def test_zoo_gradients_default_to_the_frame_scale_and_symlog_is_there(zoo_recording):
    rec, _, _ = zoo_recording("mlp")
    g = np.asarray(rec["grad/2.weight"].values, dtype=float)
    scene = WeightsScene(rec, WeightsSceneConfig(show="grad/2.weight"), DRAFT)
    scene.frame(-1)
    (panel,) = scene.panels_
    step = int(rec["grad/2.weight"].steps[-1])
    assert panel.limits_at(step) == (panel.norm.vmin, panel.norm.vmax)
    assert np.abs(g[-1]).max() >= panel.norm.vmax > 0
    assert panel.norm.vmax != pytest.approx(np.abs(g).max())
    symlog = WeightsScene(rec, WeightsSceneConfig(show="grad/2.weight", scale="symlog"), DRAFT)
    symlog.frame(-1)
    assert type(symlog.panels_[0].norm).__name__ == "SymLogNorm"
    assert "symlog" in symlog.panels_[0].colorbar.ax.get_ylabel()


# -- 2. convolution kernels as filter grids -----------------------------------------------


def test_a_conv_kernel_is_a_grid_of_out_x_in_tiles(zoo_recording, tmp_path):
    rec, _, _ = zoo_recording("cnn_bn")
    kernel = np.asarray(rec["3.weight"].values)  # (T, 6, 4, 3, 3)
    out = tmp_path / "grid.png"
    main(
        "weights",
        [str(rec.path), "--show", "3.weight", "--out", str(out), "--quality", "final", "--quiet"],
    )
    frame = iio.imread(out)[:, :, :3]
    scene = WeightsScene(rec, WeightsSceneConfig(show="3.weight"), FINAL)
    np.testing.assert_array_equal(scene.frame(-1), frame)
    (panel,) = scene.panels_
    grid = panel.values
    assert isinstance(grid, FilterGrid) and grid.shape[1:] == (6 * 4 - 1, 4 * 4 - 1)
    matrix = grid[-1]
    np.testing.assert_array_equal(grid.tiles(matrix), kernel[-1])  # out x in tiles, in place
    # the tiles are parted by blank cells: 24 = 6 x 4 separate blocks of 3 x 3
    finite = np.isfinite(matrix)
    assert finite.sum() == 6 * 4 * 9
    assert not finite[3::4].any() and not finite[:, 3::4].any()
    # pixels: each cell's centre has its kernel value's colour, each gap is white
    ax = panel.ax
    h = frame.shape[0]
    for o in range(6):
        for i in range(4):
            for r, c in ((0, 0), (1, 2), (2, 1)):
                x, y = ax.transData.transform((i * 4 + c, o * 4 + r))
                want = np.array(panel.cmap(panel.norm(kernel[-1, o, i, r, c]))[:3]) * 255
                got = frame[int(h - y), int(x)]
                assert np.abs(got - want).max() <= 3, (o, i, r, c)
    x, y = ax.transData.transform((3, 3))  # a gap
    assert (frame[int(h - y), int(x)] == 255).all()
    assert ax.get_xlabel() == "input channel" and ax.get_ylabel() == "output channel"
    assert "6 x 4 filters of 3 x 3" in ax.get_title(loc="left")
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(k) for k in range(6)]
    # the flat view on request
    flat = WeightsScene(rec, WeightsSceneConfig(show="3.weight", kernels="flat"), DRAFT)
    flat.frame(-1)
    assert flat.panels_[0].values.shape[1:] == (6, 36)


def test_a_3d_kernel_shows_its_middle_depth_slice_and_says_so(zoo_recording):
    rec, _, _ = zoo_recording("conv3d")
    kernel = np.asarray(rec["0.weight"].values)  # (T, 4, 2, 3, 3, 3)
    for depth, want in (("middle", 1), ("2", 2)):
        scene = WeightsScene(rec, WeightsSceneConfig(show="0.weight", depth=depth), DRAFT)
        scene.frame(-1)
        (panel,) = scene.panels_
        np.testing.assert_array_equal(panel.values.tiles(panel.values[-1]), kernel[-1, :, :, want])
        assert f"depth slice {want} of 3" in panel.ax.get_title(loc="left")
        assert f"depth slice {want} of 3" in panel.ax.get_xlabel()
    with pytest.raises(ValueError, match="outside the kernel's 3 depth slices"):
        WeightsScene(rec, WeightsSceneConfig(show="0.weight", depth="3"), DRAFT)
    with pytest.raises(ValueError, match="depth must be middle or a slice index"):
        WeightsSceneConfig(depth="-1")


# -- 4. one picture of a whole model ------------------------------------------------------


def test_the_layers_map_has_one_row_per_tensor_with_norms_computed_here(zoo_recording):
    rec, weights, _ = zoo_recording("transformer")
    params = list(rec.of_kind("parameter"))
    scene = LayersScene(rec, None, DRAFT)
    frame0 = scene.frame(0)
    (panel,) = scene.panels_
    assert isinstance(panel, StepMapPanel) and panel.labels == params  # model order
    assert panel.values.shape == (len(params), 5) and panel.image.get_array().shape[:2] == (
        len(params),
        5,
    )
    for row, name in enumerate(params):  # the copies the zoo took beside the recorder
        w = [weights[s][name].double().numpy().ravel() for s in range(5)]
        want = [np.linalg.norm(w[t] - w[t - 1]) / np.linalg.norm(w[t]) for t in range(1, 5)]
        assert np.isnan(panel.values[row, 0])  # no update before the second snapshot
        np.testing.assert_allclose(panel.values[row, 1:], want, rtol=1e-5, err_msg=name)
    # the cursor moves to the step of each frame
    assert panel.cursor.get_xdata()[0] == 0
    assert not np.array_equal(frame0, scene.frame(-1)) and panel.cursor.get_xdata()[0] == 4
    # norms and gradient norms; read in chunks of one snapshot, the same numbers
    for quantity, kind in (("weight", "parameter"), ("gradient", "gradient")):
        tmap = tensor_map(rec, quantity)
        series = list(rec.of_kind(kind).values())
        assert len(tmap.labels) == len(series) == len(params)
        for row, s in enumerate(series):
            v = np.asarray(s.values, dtype=float).reshape(len(s), -1)
            cols = np.searchsorted(tmap.edges, s.steps, side="right") - 1
            np.testing.assert_allclose(tmap.values[row, cols], np.linalg.norm(v, axis=1))
        small = tensor_map(rec, quantity, chunk_bytes=1)
        np.testing.assert_allclose(small.values, tmap.values, rtol=1e-12)
    np.testing.assert_allclose(
        tensor_map(rec, "update", chunk_bytes=1).values, panel.values, rtol=1e-12
    )  # a chunk boundary between every two snapshots
    scene = LayersScene(rec, LayersSceneConfig(quantity="gradient"), DRAFT)
    assert "gradient norm" in scene.heading()


def many_tensors(n: int, frames: int = 20, spike: int | None = None, head: int = 0) -> Recording:
    """``n`` parameters of 3 numbers in blocks of 8, after ``head`` of modules of their own
    (as a model's embeddings), drifting at rates over three decades."""
    rng = np.random.default_rng(n)
    steps = np.arange(frames, dtype=np.int64) * 3
    series = {}
    names = [f"embeddings.part{k}.weight" for k in range(head)]
    names += [f"model.blocks.{k // 8}.layer{k % 8}.weight" for k in range(n - head)]
    for name in names:
        walk = np.cumsum(rng.normal(0, 10.0 ** -rng.uniform(1, 4), (frames, 3)), axis=0)
        series[name] = Series(steps, 1 + walk, kind="parameter", source=name)
    if spike is not None:
        name = next(iter(series))
        values = np.array(series[name].values)
        values[spike:] += 5.0
        series[name] = Series(steps, values, kind="parameter", source=name)
    return Recording(series)


@pytest.mark.parametrize("n, head", [(1, 0), (30, 0), (60, 4), (500, 0)])
def test_the_layers_map_reads_from_1_to_500_tensors(n, head):
    rec = many_tensors(n, head=head)
    scene = LayersScene(rec, None, DRAFT)
    scene.frame(-1)
    (panel,) = scene.panels_
    ax = panel.ax
    assert panel.values.shape == (n, 20)
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    renderer = scene._fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert 1 <= len(labels) <= n
    assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))  # readable: apart
    if n == 500:  # too many for a label each: groups of a module, or every k-th
        assert len(labels) < n and all("(" in t.get_text() or ":" in t.get_text() for t in labels)
    fig_box = scene._fig.bbox
    assert all(fig_box.x0 <= b.x0 and b.x1 <= fig_box.x1 for b in boxes)


def test_the_layers_map_pools_long_runs_into_columns_keeping_spikes():
    steps = np.unique(np.round(np.geomspace(1, 50_000, 3000))).astype(np.int64)
    edges = column_edges(steps, most=200)
    assert len(edges) == 201 and edges[0] == steps[0] and edges[-1] == steps[-1]
    rec = many_tensors(3, frames=2500, spike=1234)
    tmap = tensor_map(rec, "update", most=100, chunk_bytes=8 * 3 * 7)
    assert tmap.values.shape == (3, 100)
    col = np.searchsorted(tmap.edges, rec[tmap.labels[0]].steps[1234], side="right") - 1
    assert tmap.values[0, col] == np.nanmax(tmap.values[0]) > 0.5  # the jump is in its column


# -- 3. the dashboard: packed, labelled, nothing overlapping ------------------------------


def drawn_texts(scene, monkeypatch) -> list:
    """Every Text artist drawn in the last frame of ``scene`` (a full redraw), non-empty."""
    drawn = {}
    original = Text.draw

    def spy(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = self
        return original(self, renderer)

    monkeypatch.setattr(Text, "draw", spy)
    scene.frame(-1, blit=False)  # the frame's moving texts (ticks of a per-frame scale) too
    scene._fig.canvas.draw()  # all else, also after a change to the figure
    monkeypatch.setattr(Text, "draw", original)
    return list(drawn.values())


def assert_panels_apart(scene, monkeypatch):
    """No text of one panel overlaps another panel's axes (with their colorbars) or texts,
    the header, or the frame's edges; every axis is labelled; the cells tile the frame."""
    texts = drawn_texts(scene, monkeypatch)
    fig = scene._fig
    renderer = fig.canvas.get_renderer()
    owner = {}
    for k, panel in enumerate(scene.panels_):
        for t in panel.ax.findobj(Text):
            owner[id(t)] = k
    boxes = {k: [] for k in range(len(scene.panels_))}
    header = []
    for t in texts:
        box = t.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 + 0.5, t.get_text()
        assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1 + 0.5, t.get_text()
        (boxes[owner[id(t)]] if id(t) in owner else header).append((t.get_text(), box))
    shrink = 0.5  # touching is not overlapping

    def hits(a: Bbox, b: Bbox) -> bool:
        return (
            a.x0 + shrink < b.x1
            and b.x0 + shrink < a.x1
            and a.y0 + shrink < b.y1
            and (b.y0 + shrink < a.y1)
        )

    for k, panel in enumerate(scene.panels_):
        ax = panel.ax
        assert ax.get_xlabel() and ax.get_ylabel(), f"panel {k} has an unlabelled axis"
        assert len(boxes[k]) >= 5  # title, axis labels, ticks: what is measured was drawn
        frames = [ax.get_window_extent(renderer)] + [
            c.get_window_extent(renderer) for c in ax.child_axes
        ]
        for j, others in boxes.items():
            if j == k:
                continue
            for text, box in others:
                assert not any(hits(box, f) for f in frames), f"overlap: {text!r} on {k}"
                for mine, other in boxes[k]:
                    assert not hits(box, other), f"overlap: {text!r} on {mine!r}"
        for text, box in header:
            assert not any(hits(box, b) for _, b in boxes[k]), f"overlap: {text!r} (header)"
    # packed without holes: the cells tile the panels' region, one panel in each
    cells = scene.cells_
    assert len(cells) == len(scene.panels_)
    area = sum(c.width * c.height for c in cells)
    region = Bbox.union(cells)
    assert area == pytest.approx(region.width * region.height)
    for cell, panel in zip(cells, scene.panels_):
        tight = panel.ax.get_tightbbox(renderer).transformed(fig.transFigure.inverted())
        assert cell.x0 - 1e-6 <= tight.x0 and tight.x1 <= cell.x1 + 1e-6
        assert cell.y0 - 1e-6 <= tight.y0 and tight.y1 <= cell.y1 + 1e-6


@pytest.mark.parametrize("name", ["transformer", "gan"])
@pytest.mark.parametrize("options", [DRAFT, FINAL], ids=["draft", "final"])
def test_the_dashboard_of_a_real_model_overlaps_nothing(name, options, zoo_recording, monkeypatch):
    rec, _, _ = zoo_recording(name)
    scene = DashboardScene(rec, None, options)
    assert_panels_apart(scene, monkeypatch)
    hows = [v.how for v in scene.views_]
    loss = scene.panels_[[v.name for v in scene.views_].index("loss")].ax
    assert loss.get_ylabel() == "loss" and loss.get_xlabel() == "step"
    if name == "transformer":  # 27 parameter tensors: one map of them all
        assert "layers" in hows and "heatmap" not in hows
        layers = scene.panels_[hows.index("layers")]
        assert len(layers.labels) == len(rec.of_kind("parameter"))
    else:  # 8 tensors: two heatmaps
        assert "layers" not in hows and hows.count("heatmap") == 2


def test_a_long_thin_matrix_is_a_wide_panel_not_a_tall_one(monkeypatch):
    rng = np.random.default_rng(0)
    steps = np.arange(6, dtype=np.int64)
    rec = Recording(
        {
            "wide.weight": Series(steps, rng.normal(0, 1, (6, 4, 512)), kind="parameter"),
            "tall.weight": Series(steps, rng.normal(0, 1, (6, 512, 4)), kind="parameter"),
            "loss": Series(steps, np.linspace(2, 1, 6), kind="scalar"),
        }
    )
    scene = DashboardScene(rec, None, FINAL)
    assert_panels_apart(scene, monkeypatch)
    wide, tall = (
        scene.panels_[[v.name for v in scene.views_].index(n)].ax
        for n in ("wide.weight", "tall.weight")
    )
    w = wide.get_window_extent()
    assert w.height / w.width == pytest.approx(1 / MAX_STRETCH, rel=0.02)
    t = tall.get_window_extent()
    assert t.height / t.width == pytest.approx(MAX_STRETCH, rel=0.02)
    # the measure catches an overlap: one panel moved onto its neighbour fails it
    moved = wide.get_position()
    tall.set_position((moved.x0 + 0.05, moved.y0, moved.width, moved.height))
    with pytest.raises(AssertionError, match="overlap"):
        assert_panels_apart(scene, monkeypatch)


def test_rows_are_packed_without_holes_and_layers_is_a_show_name(zoo_recording):
    assert pack_rows([1] * 5) in ([[1, 1], [1, 1, 1]], [[1, 1, 1], [1, 1]])
    assert pack_rows([1, 1, 2, 1]) == [[1, 1], [2, 1]]
    assert pack_rows([1] * 6) == [[1, 1, 1], [1, 1, 1]]
    rec, _, _ = zoo_recording("transformer")
    assert [v.how for v in plan(rec, ["layers", "loss"])] == ["layers", "curve"]
    scene = DashboardScene(rec, DashboardScene.Config(show="layers"), DRAFT)
    scene.frame(-1)
    assert [p.ax.get_title(loc="left") for p in scene.panels_] == ["layers"]
