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
    assert grid_points(GRID) == [{"radius": 0.05, "width": 5}, {"radius": 0.05, "width": 8},
                                 {"radius": 0.5, "width": 5}, {"radius": 0.5, "width": 8}]
    assert parse_sweep_values(rp.Config, "radius=0.01,0.1,1") == ("radius", [0.01, 0.1, 1.0])
    assert parse_sweep_values(rp.Config, "width=5,20") == ("width", [5, 20])
    for bad, match in (("radius", "NAME=V1,V2"), ("depth=1,2", "not a field"), ("width=5,x", "not a valid int"),
                       ("width=5,5", "repeat")):
        with pytest.raises(ValueError, match=match):
            parse_sweep_values(rp.Config, bad)
    with pytest.raises(ValueError, match="radius must be a positive number"):
        Sweep(EXPERIMENT, SMALL, {"radius": [0.1, -1.0]}, root="unused")  # refused before anything runs


def test_process_pool_and_dask_give_identical_recordings(tmp_path):
    distributed = pytest.importorskip("distributed")
    pool = Sweep(EXPERIMENT, SMALL, GRID, root=tmp_path / "pool").run(jobs=2)
    assert [p.status for p in pool.points] == ["done"] * 4
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = Sweep(EXPERIMENT, SMALL, GRID, root=tmp_path / "dask").run(client.get_executor())
    for a, b, point in zip(pool.recordings(), dask.recordings(), pool.points):
        assert a.complete and b.complete
        assert a.metadata["config"]["radius"] == point.overrides["radius"]
        assert_same_recordings(a, b)
    # each recording equals a plain run of its configuration in this process
    assert_same_recordings(pool.recording(3), rp.run(rp.Config(**{**SMALL.__dict__, "radius": 0.5, "width": 8})))
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
    assert [p["status"] for p in index["points"]] == ["done", "done", "pending", "pending"]
    resumed = Sweep(EXPERIMENT, SMALL, GRID, root=tmp_path).run(jobs=1)
    assert resumed.skipped == [0, 1] and sorted(resumed.ran) == [2, 3]
    assert all(load(p.path).complete for p in resumed.points)
    # a changed base config is a different sweep: nothing is reused
    changed = Sweep(EXPERIMENT, rp.Config(**{**SMALL.__dict__, "seed": 1}), GRID, root=tmp_path).run(jobs=1)
    assert changed.skipped == [] and sorted(changed.ran) == [0, 1, 2, 3]


def test_a_diverging_configuration_is_reported_and_the_others_finish(tmp_path):
    result = Sweep(EXPERIMENT, SMALL, {"step": [0.5, 500.0]}, root=tmp_path).run(jobs=2)
    ok, bad = result.points
    assert ok.status == "done" and load(ok.path).complete
    assert bad.status == "failed" and "FloatingPointError: training diverged" in bad.error
    assert bad.overrides == {"step": 500.0}
    assert not load(bad.path).complete  # what it recorded before diverging is kept, marked incomplete
    index = json.loads((tmp_path / "sweep.json").read_text())
    assert index["points"][1]["status"] == "failed" and "diverged" in index["points"][1]["error"]
    assert result.recordings()[1] is None
