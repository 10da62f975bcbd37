"""Resume: a run killed by SIGKILL and restarted from a checkpoint continues its recording,
and the result equals the recording of a run that was never interrupted (issue 11)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamics import Recorder, RecordingError, load
from dynamics.recorder import RecorderWarning

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    from dynamics import Recorder

    rec_path, ckpt, mode, crash_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 16), torch.nn.BatchNorm1d(16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = 0
    if mode == "resume":
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
    rec = Recorder(model, opt, grads=True, buffers="*running_*", schedule=3, path=rec_path,
                   metadata={"run": "demo"}, resume=mode == "resume", step=start)
    with rec:
        for step in range(start, 40):
            # the batch of each step, whatever the restarts
            gen = torch.Generator().manual_seed(step)
            x = torch.randn(32, 3, generator=gen)
            opt.zero_grad()
            loss = ((model(x) - x.sum(1, keepdim=True).sin()) ** 2).mean()
            loss.backward()
            opt.step()
            rec.log(loss=loss)
            if rec.step % 10 == 0:
                torch.save(
                    {"model": model.state_dict(), "opt": opt.state_dict(), "step": rec.step}, ckpt
                )
                rec.flush()   # the recording on disk reaches the checkpoint
            if rec.step == crash_at:
                rec.flush()   # and beyond it: the crashed attempt's extra steps must be dropped
                os.kill(os.getpid(), signal.SIGKILL)
""")


def run(tmp_path, *args):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_killed_and_resumed_run_records_what_an_uninterrupted_run_records(tmp_path):
    done = run(tmp_path, tmp_path / "ref.rec", tmp_path / "ref.pt", "fresh", -1)
    assert done.returncode == 0, done.stderr
    killed = run(tmp_path, tmp_path / "run.rec", tmp_path / "run.pt", "fresh", 27)
    assert killed.returncode == -9, killed.stderr
    crashed = load(tmp_path / "run.rec")
    assert not crashed.complete and crashed["loss"].steps[-1] == 27  # past the checkpoint at 20
    resumed = run(tmp_path, tmp_path / "run.rec", tmp_path / "run.pt", "resume", -1)
    assert resumed.returncode == 0, resumed.stderr
    ref, r = load(tmp_path / "ref.rec"), load(tmp_path / "run.rec")
    assert r.complete and set(r.keys()) == set(ref.keys())
    for name in ref:
        np.testing.assert_array_equal(r[name].steps, ref[name].steps, err_msg=name)
        np.testing.assert_array_equal(r[name].values, ref[name].values, err_msg=name)
        assert r[name].info == ref[name].info
    assert r.metadata["run"] == "demo"
    (entry,) = r.metadata["resumed"]
    assert (
        entry["step"] == 20
        and entry["previous_complete"] is False
        and entry["dropped_snapshots"] > 0
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.rec")]  # no temporary left


def test_resume_keeps_the_prefix_and_needs_the_step(tmp_path):
    model = torch.nn.Linear(2, 1)
    with Recorder(model, path=tmp_path / "r.rec") as rec:
        for _ in range(6):
            with torch.no_grad():
                model.weight += 1
            rec.tick()
            rec.log(x=rec.step)
    with pytest.raises(ValueError, match="step=<the checkpoint's step>"):
        Recorder(model, path=tmp_path / "r.rec", resume=True)
    with torch.no_grad():
        model.weight.copy_(torch.full((1, 2), 3.0))  # the state of step 3, from a "checkpoint"
    with Recorder(model, path=tmp_path / "r.rec", resume=True, step=3) as rec:
        rec.tick()
    r = load(tmp_path / "r.rec")
    np.testing.assert_array_equal(r["weight"].steps, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(r["x"].steps, [1, 2, 3])
    np.testing.assert_array_equal(r["weight"].values[4], [[3.0, 3.0]])  # captured after resuming
    entry = r.metadata["resumed"][0]
    assert (
        entry["dropped_snapshots"] == 9 and entry["dropped_series"] == 3
    )  # weight, bias, x at 4..6
    fresh = torch.nn.Linear(2, 1)
    with Recorder(fresh, path=tmp_path / "new.rec", resume=True, step=0) as rec:
        pass  # nothing to resume: a new recording
    assert "resumed" not in load(tmp_path / "new.rec").metadata


CHECKPOINT_THEN_KILL = textwrap.dedent("""
    import os, signal, sys, torch
    from dynamics import Recorder
    rec_path, ckpt, how = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, path=rec_path, flush_seconds=3600)  # no periodic commit
    for _ in range(30):
        opt.zero_grad(); model(torch.ones(4, 3)).sum().backward(); opt.step()
    # the order the README showed: the checkpoint first, the recording's commit after it
    state = rec.state_dict() if how == "state_dict" else {"step": rec.step}
    torch.save({"model": model.state_dict(), "recorder": state}, ckpt)
    os.kill(os.getpid(), signal.SIGKILL)  # between the checkpoint and any later commit
""")


@pytest.mark.parametrize("how", ["state_dict", "step only"])
def test_a_kill_between_the_checkpoint_and_the_commit_resumes_exactly_or_is_refused(tmp_path, how):
    path, ckpt = tmp_path / "run.rec", tmp_path / "ckpt.pt"
    proc = subprocess.run(
        [sys.executable, "-c", CHECKPOINT_THEN_KILL, str(path), str(ckpt), how],
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == -9
    state = torch.load(ckpt)
    model = torch.nn.Linear(3, 2)
    model.load_state_dict(state["model"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if how == "state_dict":  # committed before the checkpoint: resumes exactly
        rec = Recorder(model, opt, path=path, resume=state["recorder"])
        rec.close()
        r = load(path, verify=True)
        assert r["weight"].steps.tolist() == list(range(31))
        np.testing.assert_array_equal(r["weight"].values[-1], state["model"]["weight"].numpy())
        assert "gap" not in r.metadata["resumed"][-1]
        return
    # the checkpoint ran ahead of the recording (only step 0 was committed): refused ...
    with pytest.raises(RecordingError, match=r"behind its checkpoint \(step 30\).*steps 1\.\.30"):
        Recorder(model, opt, path=path, resume=state["recorder"])
    assert load(path)["weight"].steps.tolist() == [0]  # ... and left as it was
    # ... unless the gap is accepted, and then it is written down
    with pytest.warns(RecorderWarning, match="lacks scheduled snapshots"):
        rec = Recorder(model, opt, path=path, resume=state["recorder"], allow_gap=True)
    rec.close()
    r = load(path)
    assert r["weight"].steps.tolist() == [0, 30]
    assert r.metadata["resumed"][-1]["gap"]["weight"] == [1, 30]
