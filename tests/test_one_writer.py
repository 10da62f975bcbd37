"""One writer per recording, always: a resuming writer, a linked lock file and two writers
started at the same instant (issue "Nothing lost", items 1, 2 and 6)."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch

from dynamics import Recorder, RecordingError, RecordingWriter, load

LIVE = textwrap.dedent("""
    import sys, torch
    from dynamics import Recorder
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, path=sys.argv[1], flush_seconds=0)
    for _ in range(5):
        opt.zero_grad(); model(torch.ones(4, 3)).sum().backward(); opt.step()
    rec.flush()
    print("writing", flush=True)
    sys.stdin.readline()
    rec.close()
""")


def test_a_resuming_writer_is_refused_while_the_first_one_writes(tmp_path):
    path = tmp_path / "live.rec"
    first = subprocess.Popen(
        [sys.executable, "-c", LIVE, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().strip() == "writing"
        model = torch.nn.Linear(3, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with pytest.raises(RecordingError, match=f"another writer \\(process {first.pid}\\)"):
            Recorder(model, opt, path=path, resume=True, step=2)
        assert not [p for p in tmp_path.iterdir() if p.name != "live.rec"]  # nothing left beside
    finally:
        first.communicate("\n", timeout=60)
    assert first.returncode == 0
    rec = load(path, verify=True)  # the first writer's recording, whole and its own
    assert rec.complete and rec["weight"].steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert "resumed" not in rec.metadata


@pytest.mark.parametrize("link", ["hard", "symbolic"])
@pytest.mark.parametrize("how", ["new", "overwrite", "resume"])
def test_a_linked_lock_never_touches_the_file_it_points_to(tmp_path, link, how):
    outside = tmp_path / "precious.txt"
    outside.write_text("the user's data\n")
    path = tmp_path / "x.rec"
    w = RecordingWriter(path)
    w.append("x", 0, np.zeros(3))
    w.close()
    (path / "lock").unlink()
    (os.link if link == "hard" else os.symlink)(outside, path / "lock")
    model = torch.nn.Linear(3, 2)
    with pytest.raises(RecordingError):
        if how == "new":
            RecordingWriter(path)
        elif how == "overwrite":
            RecordingWriter(path, overwrite=True)
        else:
            Recorder(model, path=path, resume=True, step=0)
    assert outside.read_text() == "the user's data\n"
    assert load(path)["x"].steps.tolist() == [0]  # and the recording is as it was


def _race(path, overwrite, barrier, outcome, i):
    barrier.wait()
    try:
        w = RecordingWriter(path, overwrite=overwrite)
    except BaseException as exc:  # anything but a RecordingError fails the test
        outcome[i] = exc
        return
    w.append("who", 0, np.full(2, float(i)))
    w.close()
    outcome[i] = "won"


@pytest.mark.parametrize("existing", [False, True])
def test_two_writers_started_at_the_same_instant_one_wins_the_other_is_refused(tmp_path, existing):
    for trial in range(150):
        path = tmp_path / f"race{trial}.rec"
        if existing:  # both overwrite a closed recording
            RecordingWriter(path).close()
        barrier = threading.Barrier(2)
        outcome: dict[int, object] = {}

        threads = [
            threading.Thread(target=_race, args=(path, existing, barrier, outcome, i))
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [i for i, o in outcome.items() if o == "won"]
        lost = [o for o in outcome.values() if o != "won"]
        assert len(won) >= 1, outcome
        assert all(isinstance(o, RecordingError) for o in lost), outcome
        rec = load(path, verify=True)
        values = rec["who"].values
        # the recording is one writer's whole: never both writers' snapshots mixed
        assert len(values) == 1 and values[0][0] in won
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


KILLED = textwrap.dedent("""
    import os, signal, sys, torch
    from dynamics import Recorder
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, path=sys.argv[1])
    os.kill(os.getpid(), signal.SIGKILL)  # right after the constructor returns
""")


def test_a_run_killed_right_after_the_recorder_is_made_keeps_step_0(tmp_path):
    path = tmp_path / "k.rec"
    proc = subprocess.run([sys.executable, "-c", KILLED, str(path)], timeout=120)
    assert proc.returncode == -9
    rec = load(path, verify=True)
    assert not rec.complete and rec.committed_step == 0
    assert rec["weight"].steps.tolist() == [0] and rec["bias"].steps.tolist() == [0]


def test_a_manifest_over_8_mib_is_neither_written_nor_read(tmp_path):
    path = tmp_path / "big.rec"
    w = RecordingWriter(path, {"note": "small"})
    w.append("x", 0, np.zeros(2))
    with pytest.raises(RecordingError, match="over the 8 MiB a recording may hold"):
        w.update_metadata(huge="x" * (9 << 20))
    w.close()
    rec = load(path, verify=True)
    assert "huge" not in rec.metadata and rec.metadata["note"] == "small"
    manifest = path / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:-1] + b" " * (9 << 20) + b"}")
    with pytest.raises(RecordingError, match="more than the 8388608"):
        load(path)


SLOW_STEPS = textwrap.dedent("""
    import sys, time, torch
    from dynamics import Recorder
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rec = Recorder(model, opt, path=sys.argv[1], schedule=int(sys.argv[2]), flush_seconds=1.0)
    while True:
        time.sleep(0.3)  # a slow step
        opt.zero_grad(); model(torch.ones(4, 3)).sum().backward(); opt.step()
        rec.log(loss=1.0)
        print(rec.step, time.monotonic(), flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("schedule, kill_after", [(1, 2.2), (1, 3.05), (5, 2.6), (5, 3.4)])
def test_with_slow_steps_a_kill_loses_at_most_flush_seconds_and_one_step(
    tmp_path, schedule, kill_after
):
    path = tmp_path / "slow.rec"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_STEPS, str(path), str(schedule)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ended = {}  # step -> when it ended (the child's monotonic clock, the same as ours)
    first = None
    for line in proc.stdout:
        step, when = line.split()
        ended[int(step)] = float(when)
        first = first or float(when)
        if float(when) - first >= kill_after:
            break
    time.sleep(0.15)  # the kill falls inside a step
    killed = time.monotonic()
    proc.kill()
    proc.wait()
    rec = load(path)
    kept = int(rec["loss"].steps[-1])
    assert rec["weight"].steps[-1] // schedule == kept // schedule  # every series as far
    lost = killed - ended[kept]
    assert lost <= 1.0 + 0.3 + 0.25, (kept, max(ended), lost)  # flush_seconds + one step + slack
