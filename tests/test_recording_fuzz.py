"""Fuzzing the loader: mutated real recordings raise RecordingError or load, never hang nor
take more than 2 s or 200 MB, and verification finds every bit flip in a closed recording
and every bit flip of the manifest and the commit of an unclosed one.

The bases are real: one written through the Recorder API (parameters, gradients,
summaries, scalars), one by an experiment at a tiny configuration, and one copied while
its writer was still open (what a kill leaves). Each example mutates one file in place
and restores it afterwards (copying a whole recording per example cost more than the
load). Hypothesis runs derandomized, so a failure reproduces.
"""

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamics import recording
from dynamics.recording import RecordingError, RecordingWriter, load

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FLIPS = settings(FUZZ, max_examples=400)


class Base:
    def __init__(self, root: Path, complete: bool):
        self.root, self.complete = root, complete
        self.files = {p.name: p.read_bytes() for p in sorted(root.iterdir())}

    def restore(self, name: str) -> None:
        path = self.root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        path.write_bytes(self.files[name])


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    import torch

    import dynamics.experiments.classifiers as cl
    from dynamics import Recorder
    from dynamics.recorder import every

    root = Path(tmp_path_factory.mktemp("fuzz"))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(
        model,
        opt,
        params="*",
        grads=True,
        summaries="0.weight",
        schedule=every(5),
        path=root / "recorder.rec",
        metadata={"note": "fuzz base", "nested": {"a": [1, 2.5, None]}},
    ) as rec:
        x = torch.randn(16, 3)
        for _ in range(30):
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log(loss=loss)
    cl.run(cl.Config(iterations=20, grid=4, record_every=5), path=root / "experiment.rec")
    live = RecordingWriter(root / "live.rec", {"run": "killed"}, flush_bytes=256)
    for step in range(40):
        live.append("w", step, np.full((2, 3), step, np.float32))
        if step % 4 == 0:
            live.append("flag", step, step % 8 == 0)
    live.flush()
    live.append("w", 40, np.zeros((2, 3), np.float32))  # staged after the last commit
    shutil.copytree(root / "live.rec", root / "incomplete.rec")
    live.close()
    return {
        "recorder": Base(root / "recorder.rec", True),
        "experiment": Base(root / "experiment.rec", True),
        "incomplete": Base(root / "incomplete.rec", False),
    }


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(*_):
        raise TimeoutError(f"load took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return None


def bounded(fn, *args, seconds: float = 2.0, megabytes: float = 200):
    """``fn(*args)``, asserting it took under ``seconds`` and its peak resident memory grew
    by under ``megabytes`` (Linux: the peak is reset first through /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kb("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    out = fn(*args)
    took = time.perf_counter() - start
    assert took < seconds, f"{fn.__name__} took {took:.2f} s"
    if before is not None:
        grew = (_status_kb("VmHWM") - before) / 1024
        assert grew < megabytes, f"{fn.__name__} took {grew:.0f} MB"
    return out


def load_or_refuse(root: Path, verify: bool = False):
    """Load ``root`` (reading every series' last snapshot); None if refused with RecordingError."""
    with time_limit(10):
        try:
            rec = load(root, verify=verify)
        except RecordingError:
            return None
        for _, s in rec.items():
            if len(s):
                np.asarray(s.values[-1]).sum()
                s.nearest_index(int(s.steps[-1]))
        return rec


def _json_targets(doc):
    """Every (container, key) in a manifest or commit, for replacing or deleting."""
    out = []

    def walk(node, depth):
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, value in items:
            out.append((node, key))
            if depth < 3:
                walk(value, depth + 1)

    walk(doc, 0)
    return out


def _commit_file(doc) -> bytes:
    body = json.dumps(doc, separators=(",", ":")).encode()
    return body + b"\n%08x\n" % zlib.crc32(body)


@st.composite
def mutations(draw):
    base = draw(st.sampled_from(["recorder", "experiment", "incomplete"]))
    kind = draw(
        st.sampled_from(
            [
                "manifest_field",
                "commit_field",
                "truncate",
                "flip",
                "replace",
                "append",
                "raw_manifest",
                "sparse",
                "forged_counts",
            ]
        )
    )
    return base, kind, draw(st.randoms(use_true_random=False))


def _sign(root: Path, manifest: dict, commit: dict) -> None:
    """Write a forged ``manifest`` and ``commit`` with every checksum a writer would write."""
    data = json.dumps(manifest, indent=1).encode()
    (root / "manifest.json").write_bytes(data)
    crc = zlib.crc32(data)
    (root / "commit").write_bytes(
        _commit_file({**commit, "manifest_crc32": crc, "manifest_crc32s": [crc]})
    )


def _forge_counts(base: Base, rnd) -> list[str]:
    """Claim far more snapshots of one series than were written: its files extended without
    being written (sparse), the manifest's and the commit's counts forged to match."""
    manifest = json.loads(base.files["manifest.json"])
    commit = json.loads(base.files["commit"][:-1].rpartition(b"\n")[0])
    name = rnd.choice(sorted(manifest["series"]))
    spec = manifest["series"][name]
    stem = spec["file"]
    record = np.dtype(spec["dtype"]).itemsize * math.prod(spec["shape"])
    n = min(rnd.choice([2**16, 2**20, 2**29, 2**34]), (1 << 42) // max(record, 8))
    os.truncate(base.root / f"{stem}.steps", 16 + 8 * n)
    if record:
        os.truncate(base.root / f"{stem}.values", 16 + record * n)
    if rnd.random() < 0.5:
        os.truncate(base.root / f"{stem}.crc", 16 + 24 * rnd.choice([n, 2**36]))
    commit["counts"][stem] = n
    if base.complete:
        manifest["counts"][name] = n
    elif rnd.random() < 0.5:
        commit["step"] = rnd.choice([2**40, 2**62])
    _sign(base.root, manifest, commit)
    return ["manifest.json", "commit", f"{stem}.steps", f"{stem}.values", f"{stem}.crc"]


def apply(base: Base, kind: str, rnd, tmp: Path) -> list[str]:
    """Mutate ``base`` in place; return the names of the files changed (to restore)."""
    if kind == "forged_counts":
        return _forge_counts(base, rnd)
    return [_apply_one(base, kind, rnd, tmp)]


def _apply_one(base: Base, kind: str, rnd, tmp: Path) -> str:
    names = sorted(base.files)
    if kind in ("manifest_field", "commit_field"):
        name = "manifest.json" if kind == "manifest_field" else "commit"
        raw = base.files[name]
        doc = json.loads(raw if name == "manifest.json" else raw[:-1].rpartition(b"\n")[0])
        node, key = rnd.choice(_json_targets(doc))
        if rnd.random() < 0.2:
            del node[key]
        else:
            node[key] = _random_json(rnd)
        data = json.dumps(doc).encode() if name == "manifest.json" else _commit_file(doc)
        (base.root / name).write_bytes(data)
        return name
    if kind == "raw_manifest":
        depth = rnd.choice([10, 100, 10_000, 100_000])
        choices = [
            b"[" * depth + b"]" * depth,
            b'{"a":' * depth + b"1" + b"}" * depth,
            b'{"format":"nndynamics-recording","version":'
            + b"7" * rnd.choice([10, 4300, 5000])
            + b"}",
            bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 64))),
            b"",
            b"null",
            b"NaN",
        ]
        (base.root / "manifest.json").write_bytes(rnd.choice(choices))
        return "manifest.json"
    if kind == "sparse":  # a series file extended without being written
        name = rnd.choice([n for n in names if n.endswith((".steps", ".values", ".crc"))])
        extra = rnd.choice([1, 8, 24, 4096, 2**20, 2**33, 2**40])
        os.truncate(base.root / name, len(base.files[name]) + extra)
        return name
    name = rnd.choice(names)
    path, data = base.root / name, base.files[name]
    if kind == "truncate":
        path.write_bytes(data[: rnd.randint(0, max(len(data) - 1, 0))])
    elif kind == "flip":
        if data:
            buf = bytearray(data)
            buf[rnd.randrange(len(buf))] ^= 1 << rnd.randrange(8)
            path.write_bytes(bytes(buf))
    elif kind == "append":
        path.write_bytes(
            data + bytes(rnd.getrandbits(8) for _ in range(rnd.choice([1, 7, 8, 24, 100])))
        )
    else:  # replace
        how = rnd.choice(
            ["delete", "empty", "random", "directory", "fifo", "symlink_out", "symlink_in", "other"]
        )
        path.unlink()
        if how == "empty":
            path.write_bytes(b"")
        elif how == "random":
            path.write_bytes(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 200))))
        elif how == "directory":
            path.mkdir()
        elif how == "fifo":
            os.mkfifo(path)
        elif how == "symlink_out":
            outside = tmp / f"outside-{name}"
            outside.write_bytes(data)
            path.symlink_to(outside)
        elif how == "symlink_in":
            path.symlink_to(base.root / rnd.choice([n for n in names if n != name] or [name]))
        elif how == "other":
            path.write_bytes(base.files[rnd.choice(names)])
    return name


def _random_json(rnd, depth=0):
    """A JSON value that a hand edit or a bug could put in a manifest or commit field."""
    leaves = [
        lambda: None,
        lambda: True,
        lambda: False,
        lambda: rnd.randint(-(2**70), 2**70),
        lambda: rnd.choice([0, 1, -1, 2**63, 10**400, 2**48]),
        lambda: rnd.randint(0, 100),
        lambda: rnd.choice([float("nan"), float("inf"), -0.0, 1.5, 1e308]),
        lambda: rnd.choice(
            ["", "<f8", "<i8", "|b1", ">f4", "|O", "<U3", "s0000", "../x", "s0000\x00", "x" * 300]
        ),
        lambda: rnd.choice(["parameter", "gradient", "stats", "weird"]),
        lambda: [rnd.randint(-2, 5) for _ in range(rnd.randint(0, 3))],
    ]
    nested = [
        lambda: [_random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))],
        lambda: {
            rnd.choice(["file", "dtype", "shape", "kind", "a"]): _random_json(rnd, depth + 1)
            for _ in range(rnd.randint(0, 3))
        },
    ]
    return rnd.choice(leaves + nested if depth < 3 else leaves)()


@pytest.mark.slow
@FUZZ
@given(mutation=mutations())
def test_mutated_recordings_load_or_raise_recording_error_without_hanging(
    bases, tmp_path_factory, mutation
):
    base_name, kind, rnd = mutation
    base = bases[base_name]
    names = apply(base, kind, rnd, Path(tmp_path_factory.getbasetemp()))
    try:
        bounded(load_or_refuse, base.root)
        bounded(load_or_refuse, base.root, True)
    finally:
        for name in names:
            base.restore(name)


@FLIPS
@given(
    base_name=st.sampled_from(["recorder", "experiment"]),
    pick=st.integers(0, 2**32),
    bit=st.integers(0, 7),
)
@pytest.mark.slow
def test_verify_finds_every_bit_flip_in_a_closed_recording(bases, base_name, pick, bit):
    base = bases[base_name]
    names = [
        n for n in sorted(base.files) if n != "lock" and base.files[n]
    ]  # the lock holds only a pid
    name = names[pick % len(names)]
    data = bytearray(base.files[name])
    offset = (pick // len(names)) % len(data)
    data[offset] ^= 1 << bit
    (base.root / name).write_bytes(bytes(data))
    try:
        assert load_or_refuse(base.root, verify=True) is None, (
            f"flip of bit {bit} at {offset} in {name} not found"
        )
    finally:
        base.restore(name)


def test_the_bases_load_and_verify_as_written(bases):
    for base in bases.values():
        rec = load(base.root, verify=True)
        assert rec.complete == base.complete and len(rec) > 0
    incomplete = load(bases["incomplete"].root)
    assert (
        incomplete.committed_step == 39 and len(incomplete["w"]) == 40
    )  # step 40 was never committed


# -- every bit flip of the manifest and the commit, closed and unclosed -----------------


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Small recordings (no torch): closed; unclosed (copied while its writer was open);
    unclosed after ``update_metadata`` rewrote its manifest since the last commit; and the
    two moments a kill can split a manifest rewrite from its commit (the old manifest still
    in place: during update_metadata, and during close)."""
    root = Path(tmp_path_factory.mktemp("flips"))
    w = RecordingWriter(root / "closed.rec", {"note": "flips"})
    for step in range(4):
        w.append("loss", step, np.float32(step))
        w.append("w", step, np.full(3, step, np.int16))
    w.flush()
    shutil.copytree(root / "closed.rec", root / "unclosed.rec")
    before = (root / "closed.rec" / "manifest.json").read_bytes()
    w.update_metadata(final={"accuracy": 0.5})
    shutil.copytree(root / "closed.rec", root / "metadata.rec")
    shutil.copytree(root / "closed.rec", root / "killed_in_update.rec")
    (root / "killed_in_update.rec" / "manifest.json").write_bytes(before)
    unclosed = (root / "closed.rec" / "manifest.json").read_bytes()
    w.close()
    shutil.copytree(root / "closed.rec", root / "killed_in_close.rec")
    (root / "killed_in_close.rec" / "manifest.json").write_bytes(unclosed)
    return {
        name: Base(root / f"{name}.rec", name == "closed")
        for name in ("closed", "unclosed", "metadata", "killed_in_update", "killed_in_close")
    }


def found(root: Path) -> bool:
    """Whether verification finds damage (a problem listed, or the recording refused)."""
    try:
        return bool(recording.verify(root))
    except RecordingError:
        return True


def missed_flips(base: Base, name: str, bits) -> list[tuple[int, int]]:
    """(offset, bit) of every flip of ``name`` that verify does not find; ``bits(offset)``:
    the bits to flip at that offset."""
    data, missed = base.files[name], []
    try:
        for offset in range(len(data)):
            for bit in bits(offset):
                buf = bytearray(data)
                buf[offset] ^= 1 << bit
                (base.root / name).write_bytes(bytes(buf))
                if not found(base.root):
                    missed.append((offset, bit))
    finally:
        base.restore(name)
    return missed


def test_every_moment_of_a_manifest_rewrite_verifies_intact(small):
    for name, base in small.items():
        assert recording.verify(base.root) == [], name
    assert load(small["killed_in_update"].root).metadata == {"note": "flips"}
    assert load(small["metadata"].root).metadata["final"] == {"accuracy": 0.5}
    rec = load(small["killed_in_close"].root)  # whole, but not marked complete
    assert not rec.complete and len(rec["loss"]) == 4


@pytest.mark.parametrize("base_name", ["closed", "unclosed", "metadata"])
@pytest.mark.parametrize(
    "old, new", [(b'"loss"', b'"lmss"'), (b'"complete"', b'"cmmplete"'), (b'"w"', b'"v"')]
)
def test_verify_finds_a_renamed_series_or_a_lost_complete_key(small, base_name, old, new):
    """One bit each (``o`` to ``m``, ``w`` to ``v``): unclosed, the recording still loads, as
    something else (a series renamed; a closed recording taken for one that was cut short)."""
    base = small[base_name]
    data = base.files["manifest.json"]
    assert bin(int.from_bytes(old, "big") ^ int.from_bytes(new, "big")).count("1") == 1
    at = data.index(old, data.index(b'"series"') if old != b'"complete"' else 0)
    (base.root / "manifest.json").write_bytes(data[:at] + new + data[at + len(old) :])
    try:
        if base_name != "closed" or old == b'"complete"':
            load(base.root)  # only the manifest's checksum tells
        assert found(base.root)
    finally:
        base.restore("manifest.json")


@pytest.mark.parametrize("base_name", ["closed", "unclosed", "metadata", "killed_in_close"])
@pytest.mark.parametrize("name", ["manifest.json", "commit"])
def test_verify_finds_a_bit_flip_at_every_byte_of_the_manifest_and_commit(small, base_name, name):
    """One bit per byte (bit = offset % 8); every bit of every byte is the slow test below."""
    assert missed_flips(small[base_name], name, lambda offset: [offset % 8]) == []


@pytest.mark.slow
@pytest.mark.parametrize("base_name", ["closed", "unclosed", "metadata", "killed_in_update"])
@pytest.mark.parametrize("name", ["manifest.json", "commit"])
def test_verify_finds_every_bit_flip_of_the_manifest_and_commit(small, base_name, name):
    assert missed_flips(small[base_name], name, lambda offset: range(8)) == []


def test_a_commit_of_an_earlier_writer_checks_the_manifest_of_a_closed_recording_only(small):
    """Commits written before ``manifest_crc32s`` covered the manifest only once closed (an
    unclosed one's manifest may have been rewritten since): such recordings verify as before."""
    for name in ("closed", "metadata"):
        base = small[name]
        commit = json.loads(base.files["commit"][:-1].rpartition(b"\n")[0])
        del commit["manifest_crc32s"]
        commit["manifest_crc32"] ^= name == "metadata"  # stale: rewritten since
        (base.root / "commit").write_bytes(_commit_file(commit))
        try:
            assert recording.verify(base.root) == []
            manifest = base.files["manifest.json"].replace(b'"loss"', b'"lmss"')
            (base.root / "manifest.json").write_bytes(manifest)
            assert found(base.root) == (name == "closed")
        finally:
            base.restore("commit")
            base.restore("manifest.json")


CHURN = """
import sys
import numpy as np
from dynamics.recording import RecordingWriter

w = RecordingWriter(sys.argv[1], {"run": 0}, flush_bytes=256, flush_seconds=0.001)
print("ready", flush=True)
step = 0
while True:  # until killed: periodic commits on the writer thread, manifest rewrites between
    w.append("loss", step, np.float32(step))
    if step % 7 == 0:
        w.update_metadata(step=step)
    if step % 50 == 0:
        w.append(f"new{step}", step, np.zeros(3))
    step += 1
"""


@pytest.mark.slow
def test_a_writer_killed_at_any_moment_leaves_a_recording_that_verifies(tmp_path):
    """Manifest rewrites (update_metadata, new series) race the writer thread's commits: a
    SIGKILL at any moment leaves a manifest that the commit covers."""
    rnd = np.random.default_rng(5)
    for trial in range(30):
        path = tmp_path / f"run{trial}.rec"
        proc = subprocess.Popen(
            [sys.executable, "-c", CHURN, str(path)], stdout=subprocess.PIPE, cwd=ROOT
        )
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rnd.uniform(0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert recording.verify(path) == [], trial
        rec = load(path)
        assert not rec.complete and rec.metadata["run"] == 0
