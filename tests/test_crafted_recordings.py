"""Small crafted recordings cost little to refuse: whatever their manifest, commit and
headers claim, a recording under 1 MB on disk loads, verifies or is refused in under 2 s
and 200 MB (an outside fault harness made a 50 kB one take 29 s and 4 GB to load, and a
28 kB one claiming a 1 TiB matrix run a scene past 30 s at 13 GB).

Each case is forged the way an attacker would: the manifest and the commit are rewritten
consistently (counts, the commit's own checksum and the manifest's), and the series files
are extended without being written (sparse), so only the sizes on disk tell. Each is
measured in a subprocess of its own: wall time and peak resident memory (VmHWM, reset
before each action) of ``load`` (reading every series' last snapshot, as a scene would),
``verify`` and ``python -m dynamics.check``.
"""

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from dynamics.recording import RecordingError, RecordingWriter, load, verify

ROOT = Path(__file__).resolve().parents[1]
SECONDS, MEGABYTES = 2.0, 200

# Runs each action named on the command line on the recording and prints one JSON line
# per action: outcome, seconds, peak resident MB of this process during it.
MEASURE = r"""
import contextlib, io, json, re, resource, sys, time

import numpy as np

from dynamics import check
from dynamics.recording import RecordingError, load, verify

def peak_mb():
    try:
        with open("/proc/self/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # the peak then counts from the start of the process: an upper bound

def run(action, path):
    if action == "load":
        rec = load(path)
        for _, s in rec.items():  # what a scene reads first
            if len(s):
                np.asarray(s.values[-1]).sum()
        return "loaded"
    if action == "verify":
        return "damaged" if verify(path) else "intact"
    with contextlib.redirect_stdout(io.StringIO()):
        return f"exit {check.main([path])}"

path = sys.argv[1]
for action in sys.argv[2:]:
    reset_peak()
    start = time.perf_counter()
    try:
        outcome = run(action, path)
    except RecordingError as exc:
        outcome = f"refused: {str(exc)[:300]}"
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:300]}"
    seconds = time.perf_counter() - start
    print(json.dumps({"action": action, "outcome": outcome, "seconds": seconds,
                      "peak_mb": peak_mb()}), flush=True)
"""


def _limit_data():  # a regression raises MemoryError here instead of swapping the machine
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (4 << 30, 4 << 30))


def measure(path: Path, *actions: str, timeout: float = 60) -> dict[str, dict]:
    """Run ``actions`` on ``path`` in a fresh interpreter; their outcome, time and peak."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path), *actions],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            preexec_fn=_limit_data if os.name == "posix" else None,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{', '.join(actions)} of {path} ran past {timeout} s")
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(actions), proc.stderr[-2000:]
    return {r["action"]: r for r in results}


def on_disk(root: Path) -> int:
    """Bytes the recording's files take on disk (allocated blocks, as ``du`` counts)."""
    return sum(p.stat().st_blocks * 512 for p in root.iterdir())


# -- forging ---------------------------------------------------------------------------


def small_recording(root: Path, closed: bool = True) -> Path:
    """Two series of 10 snapshots; ``closed=False``: a copy taken while its writer was open
    (what a kill leaves), committed up to step 9."""
    live = root.with_name(root.name + ".live") if not closed else root
    w = RecordingWriter(live, {"note": "crafted"}, flush_bytes=64)
    for step in range(10):
        w.append("loss", step, np.float32(1 / (step + 1)))
        w.append("w", step, np.full((2, 3), step, np.float32))
    if not closed:
        w.flush()
        import shutil

        shutil.copytree(live, root)
    w.close()
    return root


def manifest_of(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_bytes())


def commit_of(root: Path) -> dict:
    return json.loads((root / "commit").read_bytes()[:-1].rpartition(b"\n")[0])


def sign(root: Path, manifest: dict, commit: dict) -> None:
    """Write ``manifest`` and ``commit``, the commit carrying both checksums as a writer's."""
    data = json.dumps(manifest, indent=1).encode()
    (root / "manifest.json").write_bytes(data)
    crc = zlib.crc32(data)
    body = json.dumps(
        {**commit, "manifest_crc32": crc, "manifest_crc32s": [crc]}, separators=(",", ":")
    ).encode()
    (root / "commit").write_bytes(body + b"\n%08x\n" % zlib.crc32(body))


def header(magic: bytes, record_size: int, kind: str = "", itemsize: int = 0) -> bytes:
    tail = bytes((ord(kind), itemsize)) if kind else b"\0\0"
    return magic + record_size.to_bytes(6, "little") + tail


def sparse_steps(root: Path, closed: bool) -> Path:
    """A series' steps and values files extended (not written) to 2**29 snapshots, 4 GiB of
    steps, and the manifest's and the commit's counts forged to match."""
    small_recording(root, closed)
    manifest, commit = manifest_of(root), commit_of(root)
    stem, n = manifest["series"]["loss"]["file"], 1 << 29
    os.truncate(root / f"{stem}.steps", 16 + 8 * n)
    os.truncate(root / f"{stem}.values", 16 + 4 * n)
    commit["counts"][stem] = n
    if closed:
        manifest["counts"]["loss"] = n
    sign(root, manifest, commit)
    return root


def huge_matrix(root: Path) -> Path:
    """A parameter whose one snapshot is a 1 TiB matrix (2**20 x 2**18 float32), its values
    file extended to hold it, headers and checksums consistent with the claim."""
    small_recording(root)
    manifest, commit = manifest_of(root), commit_of(root)
    spec = manifest["series"]["w"]
    spec.update(shape=[1 << 20, 1 << 18], kind="parameter", source="w")
    stem, size = spec["file"], 1 << 40
    steps = np.zeros(1, "<i8").tobytes()
    (root / f"{stem}.steps").write_bytes(header(b"NNDYNSTP", 8, "i", 8) + steps)
    (root / f"{stem}.values").write_bytes(header(b"NNDYNVAL", size, "f", 4))
    os.truncate(root / f"{stem}.values", 16 + size)
    record = np.array([(0, 1, zlib.crc32(steps), 0)], "<i8,<i8,<u4,<u4").tobytes()
    (root / f"{stem}.crc").write_bytes(header(b"NNDYNCRC", 24) + record)
    commit["counts"][stem] = manifest["counts"]["w"] = 1
    sign(root, manifest, commit)
    return root


def huge_checksum_table(root: Path) -> Path:
    """An intact recording whose checksum file is extended to 1 TiB: a table of 45 billion
    (zero) records."""
    small_recording(root)
    stem = manifest_of(root)["series"]["w"]["file"]
    os.truncate(root / f"{stem}.crc", 1 << 40)
    return root


def quoted_manifest(root: Path) -> Path:
    """A 512 kB manifest whose metadata is an unterminated string of escaped quotes."""
    small_recording(root)
    head = b'{"format": "nndynamics-recording", "version": 2, "metadata": {"note": "'
    (root / "manifest.json").write_bytes(head + b'\\"' * (256 << 10))
    return root


REFUSED = "refused"
CASES = {
    # case: (forge, expected outcome of load, verify, check)
    "sparse steps, closed": (lambda p: sparse_steps(p, True), REFUSED, REFUSED, "exit 2"),
    "sparse steps, unclosed": (lambda p: sparse_steps(p, False), REFUSED, REFUSED, "exit 2"),
    "1 TiB matrix": (huge_matrix, REFUSED, REFUSED, "exit 2"),
    "1 TiB checksum table": (huge_checksum_table, "loaded", "damaged", "exit 1"),
    "quoted manifest": (quoted_manifest, REFUSED, REFUSED, "exit 2"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_small_crafted_recording_loads_verifies_or_is_refused_in_2_s_and_200_mb(tmp_path, case):
    forge, *expected = CASES[case]
    root = forge(tmp_path / "crafted.rec")
    assert on_disk(root) < 1 << 20
    got = measure(root, "load", "verify", "check")
    for action, want in zip(("load", "verify", "check"), expected):
        r = got[action]
        assert r["outcome"].startswith(want), (case, r)
        assert r["seconds"] < SECONDS and r["peak_mb"] < MEGABYTES, (case, r)


def test_refusals_name_the_file_and_what_it_claims(tmp_path):
    root = sparse_steps(tmp_path / "steps.rec", True)
    with pytest.raises(RecordingError, match=r"s0000\.steps: \d+ of the 4294967312 bytes that the"):
        load(root)
    root = huge_matrix(tmp_path / "matrix.rec")
    with pytest.raises(RecordingError, match=r"s0001\.values: .* 1 snapshots of <f4\[1048576, 262"):
        verify(root)


def test_holes_a_recording_may_have_are_bounded_by_what_it_holds(tmp_path):
    """A file system may keep zero blocks as holes (ZFS with compression) and a sparse copy
    makes them: a few MiB of holes load and verify; a claim far past the data does not."""
    root = small_recording(tmp_path / "zeros.rec")
    manifest, commit = manifest_of(root), commit_of(root)
    stem, n = manifest["series"]["w"]["file"], 1 << 18  # 6 MiB of zero snapshots
    rows = np.zeros((n, 2, 3), "<f4")
    steps = np.arange(n, dtype="<i8")
    with open(root / f"{stem}.values", "wb") as f:
        f.write(header(b"NNDYNVAL", 24, "f", 4))
        f.seek(rows.nbytes, os.SEEK_CUR)  # written as a hole, read back as the zeros
        f.truncate()
    (root / f"{stem}.steps").write_bytes(header(b"NNDYNSTP", 8, "i", 8) + steps.tobytes())
    record = np.array(
        [(0, n, zlib.crc32(steps.tobytes()), zlib.crc32(rows.tobytes()))],
        "<i8,<i8,<u4,<u4",
    )
    (root / f"{stem}.crc").write_bytes(header(b"NNDYNCRC", 24) + record.tobytes())
    commit["counts"][stem] = manifest["counts"]["w"] = n
    sign(root, manifest, commit)
    rec = load(root, verify=True)
    assert len(rec["w"]) == n and not np.asarray(rec["w"].values[-1]).any()


@pytest.mark.slow
def test_the_curves_scene_refuses_a_forged_1_tib_matrix_quickly(tmp_path):
    root = huge_matrix(tmp_path / "matrix.rec")
    proc = subprocess.run(
        [sys.executable, "-m", "scenes.curves", str(root), "--out", str(tmp_path / "c.png")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        preexec_fn=_limit_data if os.name == "posix" else None,
    )
    assert proc.returncode != 0 and "holes, never written" in proc.stdout + proc.stderr
