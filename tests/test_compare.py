"""Comparing runs (scenes.compare): two or more recordings or TensorBoard runs on one
timeline, ``python -m scenes.render runs/a runs/b`` and ``python -m scenes.render LOGDIR``.

The logs are written with ``torch.utils.tensorboard.SummaryWriter``: three runs on three
step grids, one without a series, each with one histogram tag. The scene's panels are
checked against the logged values exactly, in process; the movies the command writes are
decoded and compared with the scene's own frames, and their pixels show each run's colour.
"""

import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard")  # SummaryWriter needs it; reading does not
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from dynamics import load, load_runs  # noqa: E402
from scenes.base import RenderOptions  # noqa: E402
from scenes.cli import main  # noqa: E402
from scenes.compare import CompareScene, CompareSceneConfig, RunsPanel  # noqa: E402
from scenes.plotting import DistributionPanel, histogram_percentiles  # noqa: E402
from scenes.render import DashboardScene  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)
#: run: (its step grid, whether it logs "lr")
RUNS = {
    "sgd": (range(0, 40), True),
    "adam": (range(0, 40, 3), True),
    "adamw": (range(5, 46, 5), False),
}
#: matplotlib's C0, C1, C2: the runs' colours in order (adam, adamw, sgd: by name)
RGB = {"C0": (31, 119, 180), "C1": (255, 127, 14), "C2": (44, 160, 44)}


def loss(run: str, step: int) -> float:
    return 2.0 * np.exp(-step * (1 + list(RUNS).index(run)) / 15)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """One log directory of three runs (SummaryWriter's layout: a folder per run)."""
    root = tmp_path_factory.mktemp("logs")
    for k, (run, (steps, has_lr)) in enumerate(RUNS.items()):
        w = SummaryWriter(str(root / run))
        for step in steps:
            w.add_scalar("train/loss", loss(run, step), step)
            if has_lr:
                w.add_scalar("lr", 0.1 / (k + 1) * 0.98**step, step)
            if step % 10 == 0:
                g = torch.Generator().manual_seed(step + 100 * k)
                w.add_histogram("fc1.weight", torch.randn(300, generator=g) * (1 + k), step)
        w.close()
    return root


def scene_of(*paths, **config) -> CompareScene:
    return CompareScene(load_runs(*paths), CompareSceneConfig(**config), DRAFT)


def color_pixels(frame: np.ndarray, rgb, tol: int = 60) -> int:
    """Pixels of about colour ``rgb`` (H.264's halved chroma pales thin lines: ``tol``)."""
    return int((np.abs(frame.astype(int) - rgb).max(axis=-1) < tol).sum())


def test_load_runs_reads_every_run_and_names_it_after_its_folder(logdir, tmp_path):
    runs = load_runs(logdir)
    assert list(runs) == sorted(RUNS)
    for run, (steps, has_lr) in RUNS.items():
        rec = runs[run]
        assert rec["train/loss"].steps.tolist() == list(steps)
        np.testing.assert_array_equal(
            rec["train/loss"].values, [np.float32(loss(run, s)) for s in steps]
        )
        assert ("lr" in rec) == has_lr and "hist/fc1.weight" in rec
    # folders of the same name are told apart by their parents; a run given twice is refused
    for parent in ("x", "y"):
        w = SummaryWriter(str(tmp_path / parent / "train"))
        w.add_scalar("loss", 1.0, 0)
        w.close()
    assert list(load_runs(tmp_path / "x" / "train", tmp_path / "y" / "train")) == [
        "x/train",
        "y/train",
    ]
    assert list(load_runs(logdir / "sgd", tmp_path / "x" / "train")) == ["sgd", "train"]
    with pytest.raises(ValueError, match="given twice"):
        load_runs(logdir, logdir / "adam")


def test_panels_hold_each_runs_values_on_the_union_of_their_steps(logdir):
    scene = scene_of(logdir)
    runs = load_runs(logdir)
    union = sorted({s for steps, _ in RUNS.values() for s in steps})
    assert scene.steps_.tolist() == union and len(scene) == len(union)
    assert [c.name for c in scene.curves_] == ["train/loss", "lr"]
    assert [t.name for t in scene.tensors_] == ["fc1.weight"]
    assert scene.notes_ == ["runs without a series have no line or panel for it: lr (adamw)"]
    scene.frame(-1)  # builds the figure and draws the last frame
    curves = [p for p in scene.panels_ if isinstance(p, RunsPanel)]
    bands = [p for p in scene.panels_ if isinstance(p, DistributionPanel)]
    assert len(curves) == 2 and len(bands) == 3
    for panel, name in zip(curves, ["train/loss", "lr"]):
        drawn = [r for r in runs if name in runs[r]]  # adamw has no lr: no line for it
        assert [line.get_label() for line in panel.lines] == drawn
        for run, line in zip(drawn, panel.lines):  # at the last frame: the whole run
            x, y = line.get_data()
            np.testing.assert_array_equal(x, runs[run][name].steps)
            np.testing.assert_array_equal(y, runs[run][name].values)
    assert curves[0].ax.get_yscale() == "log"  # the losses span decades
    assert curves[1].ax.get_yscale() == "linear"
    # at step 20 each run's line ends at its last step up to 20; adamw's first is 5
    at = union.index(20)
    scene.frame(at)
    for run, line in zip(runs, curves[0].lines):
        x, y = line.get_data()
        steps = [s for s in RUNS[run][0] if s <= 20]
        assert x.tolist() == steps
        np.testing.assert_array_equal(y, runs[run]["train/loss"].values[: len(steps)])
    scene.frame(0)  # step 0: adamw has not begun
    assert [len(line.get_data()[0]) for line in curves[0].lines] == [1, 0, 1]
    # the distributions: one panel per run, its colour, one value axis, one timeline
    assert [p.ax.get_title(loc="left") for p in bands] == list(runs)
    for panel, run in zip(bands, runs):  # each run's own histograms, as logged
        steps, counts, edges = runs[run].summaries()["fc1.weight"].read(runs[run])
        assert steps.tolist() == [s for s in RUNS[run][0] if s % 10 == 0]
        assert (counts.sum(axis=1) == 300).all()
        (median,) = [line for line in panel.ax.lines if line is not panel.cursor]
        np.testing.assert_array_equal(median.get_xdata(), steps)
        np.testing.assert_array_equal(
            median.get_ydata(), histogram_percentiles(counts, edges, [50])[:, 0]
        )
    assert len({p.ax.get_ylim() for p in bands}) == 1
    assert {p.ax.get_xlim() for p in scene.panels_} == {(0.0, 45.0)}
    legend = scene._fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == list(runs)


def test_show_and_tensors_choose_and_misspelt_names_give_the_closest(logdir):
    scene = scene_of(logdir / "sgd", logdir / "adamw", show="lr", tensors="fc1.weight")
    assert [c.name for c in scene.curves_] == ["lr"] and list(scene.curves_[0].runs) == ["sgd"]
    assert any("lr (adamw)" in n for n in scene.notes_)
    scene = scene_of(logdir, tensors="hist/fc1.weight")  # a summary's series names it too
    assert [t.name for t in scene.tensors_] == ["fc1.weight"]
    with pytest.raises(KeyError, match="'train/loss'"):
        scene_of(logdir, show="train/los")
    with pytest.raises(ValueError, match="not a scalar"):
        scene_of(logdir, show="hist/fc1.weight")
    with pytest.raises(ValueError, match='--tensors "fc1.weight"'):
        scene_of(logdir, show="fc1.weight")
    with pytest.raises(ValueError, match="two or more runs"):
        CompareScene({"sgd": load(logdir / "sgd")})


def test_two_runs_and_a_log_directory_render_movies_that_show_their_curves(logdir, tmp_path):
    """The command's movie decodes to the scene's own frames (within H.264's loss), with
    each run's colour on the last frame, and the picture moves."""
    for args, runs in (
        ([logdir / "sgd", logdir / "adam"], ["sgd", "adam"]),
        ([logdir], ["adam", "adamw", "sgd"]),
    ):
        out = tmp_path / f"{len(runs)}.mp4"
        done = subprocess.run(
            [sys.executable, "-m", "scenes.render", *map(str, args), "--out", str(out)]
            + ["--quality", "draft", "--quiet"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        frames = iio.imread(out)
        scene = scene_of(*args)
        assert frames.shape == (len(scene), 360, 640, 3)
        for i in (len(scene) // 2, -1):  # the movie is the scene's frames
            diff = np.abs(frames[i].astype(int) - scene.frame(i).astype(int))
            assert diff.mean() < 4, (i, diff.mean())
        last = frames[-1]
        assert last.std() > 20  # not blank
        for j, _ in enumerate(runs):  # each run's line and bands, in its legend colour
            assert color_pixels(last, RGB[f"C{j}"]) > 300
        assert not np.array_equal(frames[0], frames[-1])  # the curves grow
        assert np.abs(frames[1].astype(int) - frames[-1].astype(int)).mean() > 0.5


def test_frames_are_deterministic_blitting_equals_full_redraw_and_a_handout_is_written(tmp_path):
    """What the scene contract checks of every registered scene (this one takes several
    recordings, so the contract's suite cannot build it)."""
    scene = CompareScene(CompareScene.example_runs(), None, DRAFT)
    assert len(scene) == len(np.unique(np.r_[np.arange(12) * 10, np.arange(12) * 20]))
    blitted = [scene.frame(i) for i in range(len(scene))]
    middle = len(scene) // 2
    again = CompareScene(CompareScene.example_runs(), None, DRAFT)
    np.testing.assert_array_equal(blitted[middle], again.frame(middle))
    assert not np.array_equal(blitted[0], blitted[-1])
    for i in (0, middle, len(scene) - 1):
        np.testing.assert_array_equal(blitted[i], scene.frame(i, blit=False))
    page = iio.imread(scene.handout(tmp_path / "handout.png", count=2))
    assert page.std() > 20


def test_one_recording_still_gets_the_dashboard(logdir, tmp_path, capsys):
    out = tmp_path / "one.png"
    main("render", [str(logdir / "sgd"), "--out", str(out), "--quality", "draft", "--quiet"])
    expected = DashboardScene(load(logdir / "sgd"), None, DRAFT).frame(-1)
    np.testing.assert_array_equal(iio.imread(out)[..., :3], expected)


def error_of(capsys, args, name="render") -> str:
    with pytest.raises(SystemExit) as exc:
        main(name, [*map(str, args), "--quality", "draft", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, err
    assert "\n" not in err and err.startswith(f"python -m scenes.{name}: error: "), err
    return err


def test_cli_errors_are_one_line_with_exit_2(logdir, tmp_path, capsys):
    for run, tag in (("x", "acc"), ("y", "train_loss")):
        w = SummaryWriter(str(tmp_path / "disjoint" / run))
        w.add_scalar(tag, 1.0, 0)
        w.add_scalar(tag, 0.5, 1)
        w.close()
    err = error_of(capsys, [tmp_path / "disjoint"])
    assert "share no scalar or summarised series" in err
    assert "x has acc" in err and "y has train_loss" in err
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("not a run")
    err = error_of(capsys, [logdir / "sgd", tmp_path / "folder"])
    assert str(tmp_path / "folder") in err and "not a recording" in err
    err = error_of(capsys, [logdir / "sgd", tmp_path / "missing"])
    assert str(tmp_path / "missing") in err
    err = error_of(capsys, [logdir / "sgd", "--tensors", "fc1.weight"])
    assert "--tensors" in err and "two or more" in err
    err = error_of(capsys, [logdir / "sgd", logdir / "adam", "--show", "train/los"])
    assert "closest: 'train/loss'" in err
    err = error_of(capsys, [logdir / "sgd", logdir / "adam"], name="curves")
    assert "draws one run" in err and "python -m scenes.render" in err
    err = error_of(capsys, [logdir], name="curves")
    assert "holds 3 TensorBoard runs" in err and f"python -m scenes.render {logdir}" in err
