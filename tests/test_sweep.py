"""Sweeps: grid expansion, process pool vs Dask give identical recordings, resume, failures."""

import json

import numpy as np
import pytest

from dynamics.experiments import relu_particles as rp
from dynamics.recording import load
from dynamics.sweep import Sweep, grid_points, parse_sweep_values

EXPERIMENT = "dynamics.experiments.relu_particles"
SMALL = rp.Config(frames=6, samples_per_frame=60, eval_samples=200)
GRID = {"radius": [0.05, 0.5], "width": [5, 8]}


def assert_same_recordings(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name].steps, b[name].steps)
        np.testing.assert_array_equal(np.asarray(a[name].values), np.asarray(b[name].values))


def test_grid_points_and_value_parsing():
    assert grid_points(GRID) == [
        {"radius": 0.05, "width": 5},
        {"radius": 0.05, "width": 8},
        {"radius": 0.5, "width": 5},
        {"radius": 0.5, "width": 8},
    ]
    assert parse_sweep_values(rp.Config, "radius=0.01,0.1,1") == ("radius", [0.01, 0.1, 1.0])
    assert parse_sweep_values(rp.Config, "width=5,20") == ("width", [5, 20])
    for bad, match in (
        ("radius", "NAME=V1,V2"),
        ("depth=1,2", "not a field"),
        ("width=5,x", "not a valid int"),
        ("width=5,5", "repeat"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_sweep_values(rp.Config, bad)
    with pytest.raises(ValueError, match="radius must be a positive number"):
        Sweep(
            EXPERIMENT, SMALL, {"radius": [0.1, -1.0]}, root="unused"
        )  # refused before anything runs


@pytest.mark.slow
def test_process_pool_and_dask_give_identical_recordings(tmp_path):
    distributed = pytest.importorskip("distributed")
    pool = Sweep(EXPERIMENT, SMALL, GRID, root=tmp_path / "pool").run(jobs=2)
    assert [p.status for p in pool.points] == ["done"] * 4
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        dask = Sweep(EXPERIMENT, SMALL, GRID, root=tmp_path / "dask").run(client.get_executor())
    for a, b, point in zip(pool.recordings(), dask.recordings(), pool.points):
        assert a.complete and b.complete
        assert a.metadata["config"]["radius"] == point.overrides["radius"]
        assert_same_recordings(a, b)
    # each recording equals a plain run of its configuration in this process
    assert_same_recordings(
        pool.recording(3), rp.run(rp.Config(**{**SMALL.__dict__, "radius": 0.5, "width": 8}))
    )
    index = json.loads((tmp_path / "pool" / "sweep.json").read_text())
    assert [p["overrides"] for p in index["points"]] == grid_points(GRID)
    assert index["grid"] == GRID and {p["status"] for p in index["points"]} == {"done"}


def test_interrupted_sweep_resumes_with_only_the_rest(tmp_path):
    finished = []

    def stop_after_two(point):
        finished.append(point.index)
        if len(finished) == 2:
            raise KeyboardInterrupt

    sweep = Sweep(EXPERIMENT, SMALL, GRID, root=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(jobs=1, on_done=stop_after_two)
    index = json.loads((tmp_path / "sweep.json").read_text())
    done = sorted(finished)
    assert [p["index"] for p in index["points"] if p["status"] == "done"] == done
    assert [p["status"] for p in index["points"]].count("pending") == 2
    assert finished == [1, 3]  # the widest runs (highest cost estimate) went first
    resumed = Sweep(EXPERIMENT, SMALL, GRID, root=tmp_path).run(jobs=1)
    assert resumed.skipped == done and sorted(resumed.ran) == [0, 2]
    assert all(load(p.path).complete for p in resumed.points)
    # a changed base config is a different sweep: nothing is reused
    changed = Sweep(
        EXPERIMENT, rp.Config(**{**SMALL.__dict__, "seed": 1}), GRID, root=tmp_path
    ).run(jobs=1)
    assert changed.skipped == [] and sorted(changed.ran) == [0, 1, 2, 3]


def test_a_diverging_configuration_is_reported_and_the_others_finish(tmp_path):
    result = Sweep(EXPERIMENT, SMALL, {"step": [0.5, 500.0]}, root=tmp_path).run(jobs=2)
    ok, bad = result.points
    assert ok.status == "done" and load(ok.path).complete
    assert bad.status == "failed" and "FloatingPointError: training diverged" in bad.error
    assert bad.overrides == {"step": 500.0}
    assert not load(
        bad.path
    ).complete  # what it recorded before diverging is kept, marked incomplete
    index = json.loads((tmp_path / "sweep.json").read_text())
    assert index["points"][1]["status"] == "failed" and "diverged" in index["points"][1]["error"]
    assert result.recordings()[1] is None


# -- small multiples and the command line ---------------------------------------------------

import imageio.v3 as iio  # noqa: E402
from conftest import (  # noqa: E402
    make_classifier_recording,
    make_mass_recording,
    make_particle_recording,
    make_spiral_recording,
)

from scenes.base import RenderOptions  # noqa: E402
from scenes.classifiers import ClassifiersScene  # noqa: E402
from scenes.cli import main  # noqa: E402
from scenes.mass_shuffle import MassShuffleScene  # noqa: E402
from scenes.relu_particles import ReluParticlesScene  # noqa: E402
from scenes.spiral import SpiralScene  # noqa: E402
from scenes.sweep import SweepScene  # noqa: E402

DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)


@pytest.mark.parametrize(
    "scene_cls, make",
    [
        (ReluParticlesScene, make_particle_recording),
        (MassShuffleScene, make_mass_recording),
        (ClassifiersScene, make_classifier_recording),
        (SpiralScene, make_spiral_recording),
    ],
)
def test_small_multiples_share_one_timeline_and_show_failures(scene_cls, make):
    recs = [make(frames=12, seed=0), make(frames=7, seed=1), None, make(frames=12, seed=3)]
    grid = {"radius": [0.1, 1.0], "width": [5, 20]}
    scene = SweepScene(
        scene_cls, recs, grid, errors=["", "", "FloatingPointError: diverged", ""], options=DRAFT
    )
    assert len(scene) == 12  # the union of the runs' steps (the short run's are a subset)
    frames = [scene.frame(i) for i in (0, 6, 11)]
    assert {f.shape for f in frames} == {(360, 640, 3)}
    np.testing.assert_array_equal(frames[1], scene.frame(6, blit=False))
    assert len(scene.panels_) == 3  # the failed cell has text, not a panel
    if scene_cls is MassShuffleScene:  # one colour scale for every run
        lo = min(float(np.min(r["weight"].values)) for r in recs if r is not None)
        assert {p.norm.vmin for p in scene.panels_} == {lo}


def test_small_multiples_refuse_bad_grids():
    rec = make_particle_recording()
    with pytest.raises(ValueError, match="one or two swept fields"):
        SweepScene(ReluParticlesScene, [rec] * 8, {"a": [1, 2], "b": [1, 2], "c": [1, 2]})
    with pytest.raises(ValueError, match="3 recordings for a 2x2 grid"):
        SweepScene(ReluParticlesScene, [rec] * 3, {"a": [1, 2], "b": [1, 2]})
    with pytest.raises(ValueError, match="nothing to draw"):
        SweepScene(ReluParticlesScene, [None, None], {"a": [1, 2]})


def test_sweep_command_renders_a_grid_and_resumes(tmp_path):
    args = [
        "--sweep",
        "radius=0.05,0.5",
        "--sweep",
        "width=4,6",
        "--frames",
        "3",
        "--samples-per-frame",
        "40",
        "--eval-samples",
        "100",
        "--quality",
        "draft",
        "--quiet",
        "--jobs",
        "1",
        "--sweep-dir",
        str(tmp_path / "sw"),
        "--out",
        str(tmp_path / "grid.mp4"),
    ]
    assert main("relu_particles", args) == tmp_path / "grid.mp4"
    assert iio.imread(tmp_path / "grid.mp4", index=None).shape == (
        4,
        360,
        640,
        3,
    )  # steps 0 + 3 frames
    recs = sorted((tmp_path / "sw").glob("*.rec"))
    assert len(recs) == 4
    stamps = [(r / "manifest.json").stat().st_mtime_ns for r in recs]
    main("relu_particles", args)  # everything is complete: nothing runs again
    assert [(r / "manifest.json").stat().st_mtime_ns for r in recs] == stamps


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--sweep", "radius=1", "--sweep", "width=2", "--sweep", "seed=1"],
            "at most two --sweep fields",
        ),
        (["--sweep", "radius=1", "--sweep", "radius=2"], "--sweep radius is given twice"),
        (["--sweep", "depth=1,2"], "'depth' is not a field"),
        (["--sweep", "radius=1", "--recording", "x.rec"], "does not combine with --sweep"),
        (["--sweep", "radius=1", "--executor", "yarn://x"], "unknown executor"),
    ],
)
def test_sweep_flags_give_one_line_errors(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main("relu_particles", [*args, "--sweep-dir", str(tmp_path / "sw"), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_scene_without_small_panels_refuses_a_sweep_before_training(
    capsys, tmp_path, monkeypatch
):
    from scenes.registry import get

    monkeypatch.setattr(get("spiral").scene, "small_multiples", False)
    with pytest.raises(SystemExit) as exc:
        main("spiral", ["--sweep", "seed=0,1", "--sweep-dir", str(tmp_path / "sw"), "--quiet"])
    assert exc.value.code == 2 and "unrecognized arguments: --sweep" in capsys.readouterr().err
    assert not (tmp_path / "sw").exists()  # nothing ran
