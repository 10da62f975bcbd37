"""Fuzzing the loader: mutated real recordings raise RecordingError or load, never hang, and
verification finds every bit flip in a closed recording.

The bases are real: one written through the Recorder API (parameters, gradients,
summaries, scalars), one by an experiment at a tiny configuration, and one copied while
its writer was still open (what a kill leaves). Each example mutates one file in place
and restores it afterwards (copying a whole recording per example cost more than the
load). Hypothesis runs derandomized, so a failure reproduces.
"""

import contextlib
import json
import os
import shutil
import signal
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamics.recording import RecordingError, RecordingWriter, load

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
            ]
        )
    )
    return base, kind, draw(st.randoms(use_true_random=False))


def apply(base: Base, kind: str, rnd, tmp: Path) -> str:
    """Mutate one file of ``base`` in place; return its name (to restore)."""
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
    name = apply(base, kind, rnd, Path(tmp_path_factory.getbasetemp()))
    try:
        load_or_refuse(base.root)
        load_or_refuse(base.root, verify=True)
    finally:
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
