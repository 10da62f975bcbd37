"""Recording: round trip without pickle or torch, lazy reads, bounded memory, crash safety, bad
files."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pytest

from dynamics.recording import (
    MemoryWriter,
    Recording,
    RecordingError,
    RecordingWriter,
    Series,
    load,
)


def write_sample(path, n=50):
    with RecordingWriter(path, {"experiment": "demo", "seed": 3, "arr": np.arange(3)}) as w:
        for step in range(n):
            w.append("weights", step * 2, np.full((3, 4), step, np.float32))
            if step % 5 == 0:
                w.append("loss", step * 2, 1.0 / (step + 1))
    return path


def test_round_trip_values_steps_metadata(tmp_path):
    rec = load(write_sample(tmp_path / "run.rec"))
    assert rec.complete
    assert rec.metadata == {"experiment": "demo", "seed": 3, "arr": [0, 1, 2]}
    w = rec["weights"]
    assert w.values.shape == (50, 3, 4) and w.values.dtype == np.float32
    np.testing.assert_array_equal(w.steps, np.arange(50) * 2)
    np.testing.assert_array_equal(w.values[7], np.full((3, 4), 7))
    assert isinstance(w.values, np.memmap)  # lazy: only touched rows are read
    np.testing.assert_array_equal(rec["loss"].steps, np.arange(0, 100, 10))


def test_memory_recording_save_load_equal(tmp_path):
    mem = MemoryWriter({"a": 1})
    for s in range(7):
        mem.append("x", s, np.arange(4) * s)
    mem.close()
    rec = mem.recording()
    back = load(rec.save(tmp_path / "m.rec", chunk=3))
    np.testing.assert_array_equal(back["x"].values, rec["x"].values)
    np.testing.assert_array_equal(back["x"].steps, rec["x"].steps)


def test_loads_without_pickle_and_without_torch(tmp_path):
    path = write_sample(tmp_path / "run.rec")
    code = textwrap.dedent(f"""
        import sys
        sys.modules['torch'] = None      # any import of torch fails
        import pickle, _pickle           # numpy imports pickle; make every unpickling fail
        def refuse(*a, **k):
            raise AssertionError("pickle used")
        for mod in (pickle, _pickle):
            mod.load = mod.loads = mod.Unpickler = refuse
        from dynamics.recording import load
        rec = load({str(path)!r})
        print(float(rec['weights'].values[-1].sum()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == 49 * 12


def test_series_helpers():
    s = Series(np.array([0, 10, 20, 40]), np.arange(4.0))
    assert s.nearest_index(14) == 1 and s.nearest_index(16) == 2 and s.nearest_index(99) == 3
    assert s.at(31) == 3.0
    np.testing.assert_array_equal(s.between(10, 40).steps, [10, 20])
    np.testing.assert_array_equal(s.resample([0, 9, 39]).values, [0.0, 1.0, 3.0])


def test_append_memory_is_bounded(tmp_path):
    # 200 MB of snapshots pass through a writer whose buffer is 1 MB
    frame = np.ones((256, 1024), np.float32)  # 1 MiB
    tracemalloc.start()
    with RecordingWriter(tmp_path / "big.rec", flush_bytes=1 << 20) as w:
        for step in range(200):
            w.append("x", step, frame)
            assert w.buffered_bytes <= (1 << 20) + frame.nbytes
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20, f"peak traced memory {peak / 2**20:.1f} MiB while streaming 200 MiB"
    rec = load(tmp_path / "big.rec")
    assert len(rec["x"]) == 200 and float(rec["x"].values[123, 5, 7]) == 1.0


def test_killed_writer_leaves_flushed_prefix(tmp_path):
    path = tmp_path / "killed.rec"
    code = textwrap.dedent(f"""
        import sys, numpy as np
        from dynamics.recording import RecordingWriter
        w = RecordingWriter({str(path)!r}, {{"experiment": "crash"}}, flush_seconds=0.0)
        step = 0
        while True:
            w.append("x", step, np.full(8, step, np.float64))
            if step == 100:
                print("ready", flush=True)
            step += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    # flush_seconds=0: 101 snapshots are written by now and steps 0..99 committed (step 100
    # could still get more snapshots when the ready line is printed)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rec = load(path)
    assert not rec.complete
    x = rec["x"]
    assert len(x) >= 100 and rec.committed_step == x.steps[-1]
    np.testing.assert_array_equal(x.steps, np.arange(len(x)))
    np.testing.assert_array_equal(
        x.values[:, 0], np.arange(len(x))
    )  # every loaded snapshot is whole
    assert rec.metadata["experiment"] == "crash"


def test_truncated_complete_recording_is_refused(tmp_path):
    path = write_sample(tmp_path / "run.rec")
    values = path / "s0000.values"
    values.write_bytes(values.read_bytes()[:-10])
    with pytest.raises(RecordingError, match=r"s0000\.values: truncated"):
        load(path)


@pytest.mark.parametrize(
    "damage", ["not_json", "foreign_json", "plain_file", "bad_header", "missing"]
)
def test_foreign_or_broken_files_are_refused_with_the_file_named(tmp_path, damage):
    path = write_sample(tmp_path / "run.rec")
    if damage == "not_json":
        (path / "manifest.json").write_bytes(b"\x00\x01garbage")
        match = "manifest.json: manifest is not valid JSON"
    elif damage == "foreign_json":
        (path / "manifest.json").write_text(json.dumps({"hello": 1}))
        match = "manifest.json: not a nndynamics-recording manifest"
    elif damage == "plain_file":
        path = tmp_path / "some.npz"
        path.write_bytes(b"PK\x03\x04")
        match = "some.npz: not a recording"
    elif damage == "bad_header":
        (path / "s0001.steps").write_bytes(b"X" * 40)
        match = r"s0001\.steps: not a series file"
    else:
        (path / "s0000.steps").unlink()
        match = r"s0000\.steps: series file is missing"
    with pytest.raises(RecordingError, match=match):
        load(path)


def test_missing_path_and_existing_target(tmp_path):
    with pytest.raises(RecordingError, match="nope.rec"):
        load(tmp_path / "nope.rec")
    with pytest.raises(FileNotFoundError, match="nope.rec"):  # still one, as before
        load(tmp_path / "nope.rec")
    write_sample(tmp_path / "run.rec")
    with pytest.raises(FileExistsError, match="run.rec"):
        RecordingWriter(tmp_path / "run.rec")
    RecordingWriter(tmp_path / "run.rec", overwrite=True).close()


def test_shape_change_and_decreasing_steps_rejected(tmp_path):
    w = MemoryWriter()
    w.append("x", 0, np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        w.append("x", 1, np.zeros(4))
    w.append("x", 5, np.zeros(3))
    with pytest.raises(ValueError, match="must not decrease"):
        w.append("x", 4, np.zeros(3))


def test_require_names_missing_series():
    rec = Recording({"a": Series(np.zeros(1, np.int64), np.zeros(1))})
    with pytest.raises(KeyError, match="'positions'"):
        rec.require("a", "positions")


def test_memory_writer_across_blocks_and_repeated_reads():
    w = MemoryWriter()
    for step in range(100):  # blocks of 16, 32, 64, ...: several full blocks plus a partial one
        w.append("x", step, np.full(5, step, np.int32))
    first = w.recording()["x"]
    for step in range(100, 150):
        w.append("x", step, np.full(5, step, np.int32))
    second = w.recording()["x"]
    np.testing.assert_array_equal(first.values[:, 3], np.arange(100))  # unchanged by later appends
    np.testing.assert_array_equal(second.steps, np.arange(150))
    np.testing.assert_array_equal(second.values[:, 0], np.arange(150))


def test_appended_value_is_copied_at_once(tmp_path):
    value = np.zeros(4)
    for sink in (MemoryWriter(), RecordingWriter(tmp_path / "c.rec")):
        sink.append("x", 0, value)
        value[:] = 7  # the caller reuses its buffer (a parameter updated in place)
        sink.append("x", 1, value)
        value[:] = 0
        sink.close()
        np.testing.assert_array_equal(sink.recording()["x"].values[:, 0], [0, 7])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_memory_writer_works_in_a_forked_child():
    # the helper thread that prepares blocks does not survive a fork: the child must make
    # its own instead of waiting forever on the parent's
    def fill():
        w = MemoryWriter()
        for step in range(200):  # several spills, each taking a prepared block
            w.append("x", step, np.full(1000, step, np.float32))
        return w.recording()["x"]

    assert len(fill()) == 200  # the parent's helper thread exists now
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            x = fill()
            code = 0 if len(x) == 200 and float(x.values[199, 0]) == 199.0 else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child waited forever for a prepared block")
    assert os.waitstatus_to_exitcode(status) == 0


def test_short_writes_of_a_block_are_finished(tmp_path, monkeypatch):
    # a series' rows of a block go out in one writev; a short one (a signal, a nearly full
    # disk) is finished chunk by chunk, and a raw write that stops short is retried
    from dynamics.recording.files import _write_all

    chunks = [np.arange(10, dtype=np.float32), np.arange(10, 25, dtype=np.float32)]
    whole = np.concatenate(chunks).tobytes()
    monkeypatch.setattr(
        os, "writev", lambda fd, bufs: os.write(fd, memoryview(bufs[0]).cast("B")[:7])
    )
    with open(tmp_path / "v", "ab", buffering=0) as f:
        _write_all(f, chunks, len(whole))
    assert (tmp_path / "v").read_bytes() == whole

    class Dribble:  # writes at most 5 bytes per call
        data = b""

        def write(self, buf):
            view = memoryview(buf).cast("B")
            self.data += bytes(view[:5])
            return min(5, len(view))

    f = Dribble()
    _write_all(f, [np.arange(25, dtype=np.float32)], len(whole))
    assert f.data == whole


def test_write_error_in_writer_thread_is_raised(tmp_path):
    w = RecordingWriter(tmp_path / "err.rec")
    w.append("x", 0, np.zeros(3))

    class Broken:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    w._files["x"].handles = (Broken(), Broken(), Broken())
    with pytest.raises(OSError, match="No space left on device"):
        w.flush()
    with pytest.raises(OSError, match="No space left on device"):
        w.close()  # still reported; the files are closed all the same
    assert w.closed


def test_unclosed_writer_writes_staged_snapshots_at_exit(tmp_path):
    path = tmp_path / "unclosed.rec"
    code = textwrap.dedent(f"""
        import numpy as np
        from dynamics.recording import RecordingWriter
        w = RecordingWriter({str(path)!r}, flush_seconds=1e9)
        for step in range(10):
            w.append("x", step, np.full(3, step, np.float32))
        # exits without close(): the 10 snapshots are still staged in memory here
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    rec = load(path)
    assert not rec.complete
    np.testing.assert_array_equal(rec["x"].values[:, 1], np.arange(10))


# -- issue 13: nothing lost, nothing misread ----------------------------------------------


def _edit_manifest(path, edit):
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


MALFORMED_MANIFESTS = {
    "version true": (lambda m: m.update(version=True), "unsupported format version True"),
    "complete as a string": (
        lambda m: m.update(complete="false"),
        "'complete' must be true or false",
    ),
    "metadata a list": (lambda m: m.update(metadata=[1, 2]), "'metadata' must be a mapping"),
    "count smaller than the file": (
        lambda m: m["counts"].update(weights=10),
        "the manifest records 10",
    ),
    "count true": (
        lambda m: m["counts"].update(weights=True),
        "count of series 'weights' must be a non-negative",
    ),
    "count 2.5": (lambda m: m["counts"].update(weights=2.5), "must be a non-negative integer"),
    "count NaN": (
        lambda m: m["counts"].update(weights=float("nan")),
        "must be a non-negative integer",
    ),
    "count negative": (lambda m: m["counts"].update(weights=-1), "must be a non-negative integer"),
    "counts a list": (lambda m: m.update(counts=[50, 10]), "must record its counts"),
    "count missing": (lambda m: m["counts"].pop("loss"), "lacks the count of series 'loss'"),
    "shape 1.5": (
        lambda m: m["series"]["weights"].update(shape=[1.5, 4]),
        "shape .* non-negative integers",
    ),
    "shape negative": (
        lambda m: m["series"]["weights"].update(shape=[-3, 4]),
        "non-negative integers",
    ),
    "shape huge": (
        lambda m: m["series"]["weights"].update(shape=[2**40, 2**40]),
        "larger than a series file",
    ),
    "dtype swapped, same size": (
        lambda m: m["series"]["loss"].update(dtype="<i8"),
        "header says another dtype",
    ),
    "dtype big endian": (
        lambda m: m["series"]["loss"].update(dtype=">f8"),
        "dtype '>f8' is not one of",
    ),
    "dtype object": (lambda m: m["series"]["loss"].update(dtype="|O"), "is not one of"),
    "file with a null byte": (
        lambda m: m["series"]["loss"].update(file="s0001\x00"),
        "unsafe or malformed file",
    ),
    "file name too long": (
        lambda m: m["series"]["loss"].update(file="s" * 5000),
        "unsafe or malformed file",
    ),
    "file leaves the folder": (
        lambda m: m["series"]["loss"].update(file="../s0001"),
        "unsafe or malformed file",
    ),
    "two series, one file": (
        lambda m: m["series"]["loss"].update(file="s0000"),
        "used by another series",
    ),
    "kind unknown": (
        lambda m: m["series"]["loss"].update(kind="weights"),
        "kind 'weights' is not one of",
    ),
    "of not a string": (lambda m: m["series"]["loss"].update(of=3), "'of' must be a string"),
    "series entry a number": (lambda m: m["series"].update(loss=7), "entry is not a mapping"),
}


@pytest.mark.parametrize("case", list(MALFORMED_MANIFESTS))
def test_malformed_manifest_fields_are_refused_naming_the_field(tmp_path, case):
    path = write_sample(tmp_path / "run.rec")
    edit, match = MALFORMED_MANIFESTS[case]
    _edit_manifest(path, edit)
    with pytest.raises(RecordingError, match=match):
        load(path)


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested more than 64 levels"),
        (b'{"format": "nndynamics-recording", "version": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_hostile_json_is_refused_without_recursion_or_int_errors(tmp_path, raw, match):
    path = write_sample(tmp_path / "run.rec")
    (path / "manifest.json").write_bytes(raw)
    with pytest.raises(RecordingError, match=match):
        load(path)


@pytest.mark.parametrize(
    "replace", ["fifo", "directory", "symlink_outside", "symlink_inside", "manifest_fifo"]
)
def test_series_files_must_be_regular_files_inside_the_recording(tmp_path, replace):
    path = write_sample(tmp_path / "run.rec")
    target = path / ("manifest.json" if replace == "manifest_fifo" else "s0001.values")
    outside = tmp_path / "outside.values"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    if replace in ("fifo", "manifest_fifo"):
        os.mkfifo(target)  # a plain open() of it would block forever
        match = "not a regular file"
    elif replace == "directory":
        target.mkdir()
        match = "not a regular file"
    else:
        target.symlink_to(outside if replace == "symlink_outside" else path / "s0000.values")
        match = "symbolic link"
    with pytest.raises(RecordingError, match=match):
        load(path)


def test_missing_or_unopenable_paths_raise_recording_error(tmp_path):
    for bad in (tmp_path / "nope.rec", str(tmp_path / "a\x00b.rec"), tmp_path / ("x" * 5000)):
        with pytest.raises(RecordingError):
            load(bad)


def test_many_series_write_and_load_within_a_small_descriptor_limit(tmp_path):
    # 600 series: 1200 descriptors with numpy.memmap, 1800 for a writer holding every file open
    path = tmp_path / "many.rec"
    code = textwrap.dedent(f"""
        import resource
        import numpy as np
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        from dynamics.recording import RecordingWriter, load
        with RecordingWriter({str(path)!r}) as w:  # keeps the files of at most 64 series open
            for i in range(600):
                w.append(f"s{{i}}", 0, np.full(2, i, np.float32))
            for i in range(600):
                w.append(f"s{{i}}", 1, np.full(2, i + 1, np.float32))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        rec = load({str(path)!r})  # maps values without keeping a descriptor per series
        print(sum(float(rec[k].values[1][0]) for k in rec))  # every series mapped and read
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == sum(range(1, 601))


def test_verify_reports_every_damaged_block_and_check_exit_codes(tmp_path):
    path = tmp_path / "run.rec"
    with RecordingWriter(path, flush_bytes=4096) as w:  # blocks of 85 snapshots of 48 bytes
        for step in range(500):
            w.append("weights", step, np.full(12, step, np.float32))
    assert load(path, verify=True).complete
    check = [sys.executable, "-m", "dynamics.check", str(path)]
    assert subprocess.run(check, capture_output=True).returncode == 0
    data = bytearray((path / "s0000.values").read_bytes())
    for snapshot in (3, 300):  # two blocks
        data[16 + snapshot * 48 + 5] ^= 0x10
    (path / "s0000.values").write_bytes(bytes(data))
    with pytest.raises(
        RecordingError,
        match=r"'weights' \(s0000\): snapshots \d+\.\.\d+ \(steps \d+\.\.\d+ as "
        r"stored\): values checksum mismatch",
    ):
        load(path, verify=True)
    out = subprocess.run(check, capture_output=True, text=True)
    assert out.returncode == 1
    damaged = out.stdout.strip().splitlines()
    ranges = [
        tuple(map(int, re.search(r"steps (\d+)\.\.(\d+)", line).groups())) for line in damaged
    ]
    assert (
        len(damaged) == 2
        and ranges[0][0] <= 3 <= ranges[0][1]
        and ranges[1][0] <= 300 <= ranges[1][1]
    )
    (path / "manifest.json").write_text("{")
    assert subprocess.run(check, capture_output=True).returncode == 2
    help_out = subprocess.run([*check[:3], "--help"], capture_output=True, text=True)
    assert help_out.returncode == 0 and "Exit status" in help_out.stdout


def test_first_finished_step_is_committed_at_once(tmp_path):
    path = tmp_path / "early.rec"
    code = textwrap.dedent(f"""
        import time, numpy as np
        from dynamics.recording import RecordingWriter
        w = RecordingWriter({str(path)!r}, flush_seconds=1000.0)
        for step in range(3):
            w.append("w", step, np.full(4, step, np.float32))
            w.append("loss", step, float(step))
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.kill()
        proc.wait()
    rec = load(path, verify=True)
    assert not rec.complete and rec.committed_step == 0  # step 1 began: step 0 went to disk at once
    assert [len(rec["w"]), len(rec["loss"])] == [1, 1]


def _hold_writer(path, overwrite):
    code = textwrap.dedent(f"""
        import sys, numpy as np
        from dynamics.recording import RecordingWriter, RecordingError
        try:
            w = RecordingWriter({str(path)!r}, overwrite={overwrite})
        except RecordingError as exc:
            print("refused:", exc, flush=True)
            sys.exit(3)
        w.append("x", 0, np.zeros(3))
        print("writing", flush=True)
        sys.stdin.readline()
        w.close()
    """)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_second_writer_of_the_same_recording_is_refused(tmp_path, overwrite):
    path = tmp_path / "shared.rec"
    first = _hold_writer(path, True)
    try:
        assert first.stdout.readline().strip() == "writing"
        second = _hold_writer(path, overwrite)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 3
        assert "is being written by another writer (process" in out and str(first.pid) in out
        with pytest.raises(RecordingError, match="being written by another writer"):
            RecordingWriter(path, overwrite=True)  # in this process too
    finally:
        first.communicate("\n", timeout=60)
    assert first.returncode == 0
    rec = load(path, verify=True)  # the first writer's recording, untouched
    assert rec.complete and len(rec["x"]) == 1
    RecordingWriter(path, overwrite=True).close()  # the lock went with the first writer


KILL_DRIVER = textwrap.dedent("""
    import json, os, random, signal, sys, time
    import torch
    from dynamics import Recorder
    from dynamics.recorder import every

    def train(path, seed, ready):
        torch.set_num_threads(1)
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        x, y = torch.randn(64, 4), torch.randn(64, 1)
        with Recorder(model, opt, params="*", schedule=every(7), path=path) as rec:
            os.write(ready, b"1")  # step 0 is captured: the clock starts
            while True:  # until killed
                loss = torch.nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()  # the recorder captures the parameters at steps 0, 7, 14 ...
                rec.log(loss=loss.item())  # every step from 1
                if rec.step % 3 == 0:
                    rec.log(every3=float(rec.step))

    # first use of an optimizer imports much of torch (5 s): do it once, before forking
    def warm_up():
        torch.set_num_threads(1)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with Recorder(model, opt, params="*") as rec:
            model(torch.randn(2, 4)).sum().backward()
            opt.step()
            rec.log(loss=0.0)

    root, trials = sys.argv[1], int(sys.argv[2])
    warm_up()
    rng = random.Random(13)
    for i in range(trials):
        path = os.path.join(root, f"run{i}.rec")
        delay = rng.uniform(0.0, 2.0) if i else 0.0
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                train(path, i, w)
            finally:
                os._exit(1)
        os.read(r, 1)
        os.close(r), os.close(w)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print(json.dumps({"path": path, "delay": delay}), flush=True)
""")


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_every_series_at_the_same_committed_step(tmp_path):
    trials = 24
    out = subprocess.run(
        [sys.executable, "-c", KILL_DRIVER, str(tmp_path), str(trials)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    runs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(runs) == trials
    committed = []
    for run in runs:
        rec = load(run["path"], verify=True)  # every committed block intact
        assert not rec.complete
        s = rec.committed_step
        if s is None:  # killed before the first step finished
            assert all(len(series) == 0 for _, series in rec.items()), run
            assert run["delay"] < 0.3, run  # the first finished step is committed at once
            continue
        committed.append(s)
        expect = {"loss": np.arange(1, s + 1), "every3": np.arange(3, s + 1, 3)}
        for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
            expect[name] = np.arange(0, s + 1, 7)
        for name, steps in expect.items():  # all snapshots up to s, none after
            got = rec[name].steps if name in rec else np.empty(0, np.int64)
            np.testing.assert_array_equal(got, steps, err_msg=f"{run} {name} committed step {s}")
        assert np.isfinite(np.asarray(rec["0.weight"].values)).all()
    assert len(committed) >= trials // 2 and max(committed) > 0
    print(f"{trials} kills, committed steps {sorted(committed)}")


def test_version_1_recordings_still_load(tmp_path):
    path = tmp_path / "old.rec"
    path.mkdir()
    steps, values = np.arange(5, dtype="<i8") * 10, np.arange(10, dtype="<f4").reshape(5, 2)
    (path / "s0000.steps").write_bytes(b"NNDYNSTP" + (8).to_bytes(8, "little") + steps.tobytes())
    (path / "s0000.values").write_bytes(b"NNDYNVAL" + (8).to_bytes(8, "little") + values.tobytes())
    manifest = {
        "format": "nndynamics-recording",
        "version": 1,
        "complete": True,
        "metadata": {"a": 1},
        "series": {"x": {"file": "s0000", "dtype": "<f4", "shape": [2]}},
        "counts": {"x": 5},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    rec = load(path)
    np.testing.assert_array_equal(rec["x"].values, values)
    with pytest.raises(RecordingError, match="version 1 has no checksums"):
        load(path, verify=True)
    (path / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    (path / "s0000.values").write_bytes(
        (path / "s0000.values").read_bytes()[:-3]
    )  # killed mid-write
    assert len(load(path)["x"]) == 4  # the longest prefix in both files, as version 1 did


def test_refusing_a_foreign_directory_leaves_nothing_in_it(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError):
            RecordingWriter(tmp_path / "mine", overwrite=overwrite)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_a_reader_racing_a_writer_sees_a_consistent_prefix(tmp_path):
    path = tmp_path / "live.rec"
    w = RecordingWriter(path, flush_seconds=1e9)
    for step in range(5):
        w.append("a", step, np.float64(step))
    w.flush()
    old_manifest = (path / "manifest.json").read_bytes()
    for step in range(5, 9):
        w.append("a", step, np.float64(step))
        w.append(
            "b", step, np.full(2, step, np.int32)
        )  # a new series, in the manifest and the commit
        if step == 6:
            w.flush()
    # a reader that read the manifest just before the commit that first counts "b"
    (path / "manifest.json").write_bytes(old_manifest)
    rec = load(path)
    assert not rec.complete and rec.committed_step == 6 and "b" not in rec
    np.testing.assert_array_equal(rec["a"].steps, np.arange(7))
    w.close()
    rec = load(path, verify=True)  # close rewrote the manifest, and its checksum
    assert rec.complete and len(rec["b"]) == 4
