"""Benchmark: per-step cost of recording every parameter of a small MLP at every training step.

Model and step: a 2-1024-32-16-4-1 ReLU MLP (36 473 parameters in 10 tensors), Adam
(lr 1e-3), batches of 1000 two-dimensional inputs (pregenerated, cycled), BCE loss on
logits (``BCEWithLogitsLoss``); ``torch.set_num_threads(--threads)`` (default 1: on a
shared 2-core machine a second torch thread mostly adds contention).

Variants, each run for ``--steps`` timed steps after ``--warmup`` untimed ones, from the
same seed and on the same batches:

* bare              -- the training step alone;
* floor             -- bare + ``torch.cat`` of every flattened parameter into a row of a
                       preallocated buffer after each step (the cheapest way to keep
                       everything; an earlier measurement gave +1-4 %);
* Recorder (disk)   -- ``with dynamics.Recorder(model, opt, schedule=1, path=<tmp>.rec)``:
                       every parameter captured after every ``opt.step()`` through the
                       optimizer's step post-hook and streamed to a recording directory;
* Recorder (memory) -- the same with ``path=None`` (snapshots kept in memory), for
                       ``--memory-steps`` steps only: its resident memory grows far faster
                       than the snapshot data (see the peak-memory column); skipped when even
                       that would not fit comfortably;
* TensorBoard       -- ``torch.utils.tensorboard.SummaryWriter.add_histogram`` of every
                       parameter every step, and every 10 steps (``--tb-steps`` steps: it is
                       slow). Skipped, with a message, if tensorboard is not installed.

Every run happens in a fresh process forked from this one (which has imported torch but
computed nothing), so no run inherits another's heap. The heap matters: with glibc's
default malloc settings a bare step here page-faults thousands of times (freed
activations are given back to the OS at the heap top and faulted in again next step),
and any variant whose own allocations happen to pin the heap top then runs *faster* than
bare (measured: the disk Recorder at -39 %, with 8x fewer faults). By default
(``--malloc tuned``) every run therefore calls ``mallopt`` (no trimming, mmap threshold
32 MiB): no faults in steady state, so the differences are the recording work itself and
the bare step is as fast as it gets (the strictest overhead figure).
``--malloc default`` measures with glibc's defaults. The table shows minor page faults
per step either way.

The timed span of a run ends after the recorder / writer is closed, so the final flush is
counted. Variants are interleaved: ``--rounds`` rounds, each running every variant once in
a rotated order. For each variant the table gives the median over rounds of the mean time
per step, the overhead against bare, the per-round overheads (against that round's bare
run), the median of single-step times pooled over rounds, page faults and peak memory.

Checks: the disk recording loads back with every parameter at every step; every variant
ends with parameters bit-identical to the bare run at the same step (recording must not
change training).

Target: Recorder overhead < 5 % per step.

Run: ``python benchmarks/record_overhead.py`` (about 9 minutes at the defaults on a
loaded 2-core machine); ``--steps 300 --rounds 1`` for a quick check; ``--help`` for
every flag.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing

from dynamics import Recorder, load  # noqa: E402

WIDTHS = (2, 1024, 32, 16, 4, 1)


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(WIDTHS) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_batches(n_batches: int, batch: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed + 1)
    out = []
    for _ in range(n_batches):
        x = torch.randn(batch, 2, generator=g)
        y = ((x[:, 0] * x[:, 1]) > 0).float()[:, None]  # XOR-like labels
        out.append((x, y))
    return out


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------------------
# One run of one variant (in a forked child)
# --------------------------------------------------------------------------------------


class Run:
    """Model, optimizer, data; ``loop`` does the warm-up and the timed steps."""

    def __init__(self, a: argparse.Namespace, steps: int, checkpoints: set[int]):
        self.a, self.steps, self.checkpoints = a, steps, checkpoints
        self.batches = make_batches(16, a.batch, a.seed)
        self.model = make_model(a.seed)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.times = np.empty(steps)
        self.k = 0  # optimizer steps taken
        self.hashes: dict[int, str] = {}

    def step(self) -> None:
        x, y = self.batches[self.k % len(self.batches)]
        self.k += 1
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.opt.step()

    def loop(self, after=None) -> float:
        """Warm-up, then the timed steps; returns perf_counter() at the start of the timed span."""
        for _ in range(self.a.warmup):
            self.step()
            if after is not None:
                after(self.k)
        t_start = prev = time.perf_counter()
        for i in range(self.steps):
            self.step()
            if after is not None:
                after(self.k)
            now = time.perf_counter()
            self.times[i] = now - prev
            if self.k in self.checkpoints:  # rare: at most a few hashes per run, excluded below
                self.hashes[self.k] = self.param_hash()
                now = time.perf_counter()
            prev = now
        return t_start

    def param_hash(self) -> str:
        h = hashlib.sha256()
        for p in self.model.parameters():
            h.update(p.detach().numpy().tobytes())
        return h.hexdigest()[:16]


def v_bare(r: Run, tmp: Path) -> tuple[float, dict]:
    t0 = r.loop()
    return time.perf_counter() - t0, {}


def v_floor(r: Run, tmp: Path) -> tuple[float, dict]:
    params = list(r.model.parameters())
    n = sum(p.numel() for p in params)
    rows = torch.from_numpy(np.empty((r.a.warmup + r.steps + 1, n), np.float32))  # preallocated

    def after(k):
        with torch.no_grad():
            torch.cat([p.reshape(-1) for p in params], out=rows[k])

    after(0)
    t0 = r.loop(after)
    return time.perf_counter() - t0, {}


def v_recorder_disk(r: Run, tmp: Path) -> tuple[float, dict]:
    path = tmp / f"run{os.getpid()}.rec"
    with Recorder(r.model, r.opt, schedule=1, path=path):
        t0 = r.loop()
    total = time.perf_counter() - t0  # includes close(): the final flush and manifest
    rec = load(path)
    named = list(r.model.named_parameters())
    check = {
        "series": len(rec.keys()),
        "tensors": len(named),
        "lengths": sorted({len(rec[n]) for n, _ in named}),
        "expected": r.a.warmup + r.steps + 1,  # step 0 is captured on attach
        "last_equal": all(
            np.array_equal(np.asarray(rec[n].values[-1]), p.detach().numpy()) for n, p in named
        ),
        "steps_ok": all(
            np.array_equal(rec[n].steps, np.arange(r.a.warmup + r.steps + 1)) for n, _ in named
        ),
        "bytes": sum(f.stat().st_size for f in path.iterdir()),
    }
    shutil.rmtree(path)
    return total, check


def v_recorder_memory(r: Run, tmp: Path) -> tuple[float, dict]:
    with Recorder(r.model, r.opt, schedule=1, path=None):
        t0 = r.loop()
    return time.perf_counter() - t0, {}


def make_tb(every: int):
    def v_tb(r: Run, tmp: Path) -> tuple[float, dict]:
        from torch.utils.tensorboard import SummaryWriter

        named = list(r.model.named_parameters())
        logdir = tmp / f"tb{every}_{os.getpid()}"
        writer = SummaryWriter(log_dir=str(logdir))

        def after(k):
            if k % every == 0:
                for name, p in named:
                    writer.add_histogram(name, p, k)

        after(0)
        t0 = r.loop(after)
        writer.close()
        total = time.perf_counter() - t0
        shutil.rmtree(logdir, ignore_errors=True)
        return total, {}

    return v_tb


def make_paired(kind: str):
    """Paired A/B in one process: blocks of --block steps, recording on/off in ABBA order."""

    def v_paired(r: Run, tmp: Path) -> tuple[float, dict]:
        block = r.a.block
        n_blocks = max(4, r.steps // block // 4 * 4)  # a multiple of 4: off, on, on, off, ...
        for _ in range(r.a.warmup):
            r.step()
        rec = None
        if kind == "floor":
            params = list(r.model.parameters())
            rows = torch.from_numpy(
                np.empty((n_blocks // 2 * block, sum(p.numel() for p in params)), np.float32)
            )
        else:
            path = tmp / f"paired{os.getpid()}.rec" if kind == "disk" else None
            rec = Recorder(r.model, r.opt, schedule=1, path=path, capture_initial=False)
            rec.detach()  # construction attaches; the first block runs without it
        on_t, off_t, row = [], [], 0
        t_all = time.perf_counter()
        for b in range(n_blocks):
            on = b % 4 in (1, 2)
            if rec is not None:
                rec.attach() if on else rec.detach()
            t0 = time.perf_counter()
            for _ in range(block):
                r.step()
                if on and kind == "floor":
                    with torch.no_grad():
                        torch.cat([p.reshape(-1) for p in params], out=rows[row])
                    row += 1
            (on_t if on else off_t).append((time.perf_counter() - t0) / block)
        if rec is not None:
            t0 = time.perf_counter()
            rec.close()  # the final flush belongs to the "on" side
            on_t[-1] += (time.perf_counter() - t0) / block
            captured = rec.step
            if path is not None:
                shutil.rmtree(path)
        else:
            captured = row
        return time.perf_counter() - t_all, {"on": on_t, "off": off_t, "captured": captured}

    return v_paired


def child(conn, fn, a, steps, checkpoints, tmp) -> None:
    try:
        torch.set_num_threads(a.threads)
        if a.malloc == "tuned":
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: never give the heap top back
            libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: activations come from the heap
        r = Run(a, steps, checkpoints)
        rss0 = rss_bytes()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        total, check = fn(r, tmp)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        peak = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
        )  # ru_maxrss is KiB on Linux
        conn.send(
            {
                "times": r.times,
                "total": total,
                "check": check,
                "hashes": r.hashes,
                "final": r.param_hash(),
                "k": r.k,
                "faults": faults / (a.warmup + steps),
                "peak": max(peak, 0),
            }
        )
    except BaseException as exc:  # report, do not hang the parent
        import traceback

        conn.send({"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
    finally:
        conn.close()


def run_in_child(fn, a, steps, checkpoints, tmp) -> dict:
    ctx = mp.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(child_conn, fn, a, steps, checkpoints, tmp))
    proc.start()
    child_conn.close()
    try:
        out = parent_conn.recv()
    except EOFError:
        out = {"error": "the benchmark process died (out of memory?)"}
    proc.join()
    if "error" in out:
        raise RuntimeError(out["error"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Target: Recorder overhead < 5% per step. See the module docstring.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=2000, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=50, help="untimed steps before each timed run")
    p.add_argument(
        "--rounds", type=int, default=3, help="rounds; each runs every variant once (interleaved)"
    )
    p.add_argument("--threads", type=int, default=1, choices=(1, 2), help="torch.set_num_threads")
    p.add_argument("--batch", type=int, default=1000, help="batch size")
    p.add_argument(
        "--memory-steps",
        type=int,
        default=500,
        help="timed steps of the in-memory Recorder (its memory grows fast); 0 skips it",
    )
    p.add_argument(
        "--tb-steps",
        type=int,
        default=300,
        help="timed steps of the TensorBoard variants (slow; per-step figures need no more)",
    )
    p.add_argument("--no-tensorboard", action="store_true", help="skip the TensorBoard comparison")
    p.add_argument(
        "--paired-steps",
        type=int,
        default=1000,
        help="steps of each paired A/B run (half with recording); 0 skips the paired runs",
    )
    p.add_argument("--block", type=int, default=25, help="steps per block in the paired A/B runs")
    p.add_argument(
        "--malloc",
        choices=("tuned", "default"),
        default="tuned",
        help="tuned: glibc mallopt in every run, no heap trimming and mmap threshold 32 MiB "
        "(no page faults per step); default: glibc's defaults",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the model initialisation and the data"
    )
    p.add_argument(
        "--tmp",
        type=Path,
        default=None,
        help="folder for the recordings (default: a temporary folder)",
    )
    a = p.parse_args(argv)
    if (
        a.steps < 1
        or a.warmup < 0
        or a.rounds < 1
        or a.tb_steps < 1
        or a.memory_steps < 0
        or a.paired_steps < 0
        or a.block < 1
    ):
        p.error(
            "need --steps >= 1, --warmup >= 0, --rounds >= 1, --tb-steps >= 1, "
            "--memory-steps >= 0, --paired-steps >= 0, --block >= 1"
        )

    wall0 = time.perf_counter()
    model = make_model(a.seed)
    n_params = sum(p.numel() for p in model.parameters())
    n_tensors = len(list(model.parameters()))
    snap_bytes = n_params * 4
    del model

    mem_steps = min(a.memory_steps, a.steps)
    tb_steps = min(a.tb_steps, a.steps)
    variants = [
        ("bare", v_bare, a.steps),
        ("floor: torch.cat into preallocated buffer", v_floor, a.steps),
        ("Recorder(path=<tmp>.rec), every step", v_recorder_disk, a.steps),
    ]
    notes = []
    # Measured: resident memory grows ~5 MiB per step (about 40x the 142 KiB snapshot).
    mem_need = (a.warmup + mem_steps) * 6 * 2**20
    if mem_steps == 0:
        notes.append("in-memory Recorder: skipped (--memory-steps 0)")
    elif mem_need > available_bytes() // 2:
        notes.append(
            f"in-memory Recorder: skipped, it would need about {mem_need / 2**30:.1f} GiB "
            f"(> half of the available memory); lower --memory-steps"
        )
    else:
        variants.append(("Recorder(path=None), every step", v_recorder_memory, mem_steps))
    if a.no_tensorboard:
        notes.append("TensorBoard: skipped (--no-tensorboard)")
    else:
        try:
            importlib.import_module(
                "tensorboard"
            )  # what torch.utils.tensorboard needs; imported in the runs
        except ImportError as exc:
            notes.append(
                "TensorBoard comparison skipped: torch.utils.tensorboard needs the tensorboard "
                f"package ({exc}); pip install tensorboard to run it"
            )
        else:
            variants.append(("TensorBoard add_histogram, every step", make_tb(1), tb_steps))
            variants.append(("TensorBoard add_histogram, every 10 steps", make_tb(10), tb_steps))
    checkpoints = {a.warmup + s for _, _, s in variants}

    tmp_owned = a.tmp is None
    tmp = Path(tempfile.mkdtemp(prefix="bench_record_")) if tmp_owned else a.tmp
    tmp.mkdir(parents=True, exist_ok=True)
    print(
        f"MLP {'-'.join(map(str, WIDTHS))} (ReLU): {n_params:,} parameters in {n_tensors} tensors "
        f"({snap_bytes / 1024:.1f} KiB per snapshot); Adam lr 1e-3; batch {a.batch}; BCE loss"
    )
    malloc_desc = (
        "tuned (mallopt: no trim, mmap threshold 32 MiB)"
        if a.malloc == "tuned"
        else "glibc defaults"
    )
    print(
        f"torch {torch.__version__}, {a.threads} torch thread(s); os.cpu_count()={os.cpu_count()}; "
        f"malloc {malloc_desc}; "
        f"one fresh forked process per run"
    )
    print(
        f"{a.steps} timed steps per run ({mem_steps} for the in-memory Recorder, {tb_steps} for "
        f"TensorBoard) after {a.warmup} warm-up steps; {a.rounds} interleaved round(s); recordings "
        f"in {tmp}"
    )
    for note in notes:
        print(note)
    print()

    results: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    try:
        for r in range(a.rounds):
            shift = r % len(variants)
            parts = []
            for name, fn, steps in variants[shift:] + variants[:shift]:
                out = run_in_child(fn, a, steps, checkpoints, tmp)
                out["per_step"] = out["total"] / steps
                results[name].append(out)
                parts.append(f"{name.split(',')[0].split(':')[0]} {1000 * out['per_step']:.2f}")
            print(f"  round {r + 1} (ms/step): " + " | ".join(parts), flush=True)
        paired = {}
        if a.paired_steps:
            kinds = [
                ("floor: torch.cat into preallocated buffer", "floor"),
                ("Recorder(path=<tmp>.rec), every step", "disk"),
            ]
            if any(name.startswith("Recorder(path=None)") for name, _, _ in variants):
                kinds.append(("Recorder(path=None), every step", "memory"))
            for name, kind in kinds:
                paired[name] = run_in_child(make_paired(kind), a, a.paired_steps, set(), tmp)[
                    "check"
                ]
            print(f"  paired A/B runs done ({', '.join(k for _, k in kinds)})", flush=True)
    finally:
        if tmp_owned:
            shutil.rmtree(tmp, ignore_errors=True)

    paired_verdicts: list[str] = []
    bare = results["bare"]
    bare_mean = statistics.median(o["per_step"] for o in bare)
    bare_med = float(np.median(np.concatenate([o["times"] for o in bare])))
    print()
    print(
        "ms/step: median over rounds of (timed span including close()) / steps;  per round: "
        "overhead of each"
    )
    print(
        "round's run against the same round's bare run;  median step: median single-step time "
        "pooled over rounds;"
    )
    print(
        "faults: minor page faults per step;  peak MiB: growth of resident memory during the run."
    )
    hdr = (
        f"{'variant':43s} {'ms/step':>8s} {'overhead':>9s} {'per round':>22s} {'median step':>12s} "
        f"{'overhead':>9s} {'faults':>7s} {'peak MiB':>9s}"
    )
    print(hdr)
    print("-" * len(hdr))
    for name, _, _ in variants:
        outs = results[name]
        m = statistics.median(o["per_step"] for o in outs)
        med = float(np.median(np.concatenate([o["times"] for o in outs])))
        per_round = ", ".join(
            f"{100 * (o['per_step'] / b['per_step'] - 1):+.0f}%" for o, b in zip(outs, bare)
        )
        faults = statistics.median(o["faults"] for o in outs)
        peak = max(o["peak"] for o in outs) / 2**20
        print(
            f"{name:43s} {1000 * m:8.3f} {100 * (m / bare_mean - 1):+8.1f}% {per_round:>22s} "
            f"{1000 * med:9.3f} ms {100 * (med / bare_med - 1):+8.1f}% {faults:7.0f} {peak:9.0f}"
        )
    print("-" * len(hdr))
    if a.malloc == "default":
        bare_faults = statistics.median(o["faults"] for o in bare)
        print(
            f"Note (--malloc default): the bare step page-faults {bare_faults:.0f} times per step "
            "here; a variant whose allocations keep the heap from shrinking can then run faster "
            "than bare. Negative overheads measure the heap, not free recording: judge the target "
            "with --malloc tuned."
        )
    for name in results:
        if name.startswith("Recorder"):
            m = statistics.median(o["per_step"] for o in results[name])
            ov = 100 * (m / bare_mean - 1)
            med = float(np.median(np.concatenate([o["times"] for o in results[name]])))
            ov_med = 100 * (med / bare_med - 1)
            print(
                f"{name}: overhead {ov:+.1f}% ({1000 * (m - bare_mean):+.3f} ms/step; median step "
                f"{ov_med:+.1f}%) -> target < 5%: {'MET' if max(ov, ov_med) < 5 else 'NOT MET'}"
            )

    if paired:
        print()
        blocks = len(next(iter(paired.values()))["on"]) * 2
        print(
            f"Paired A/B in one process per variant: {blocks} blocks of {a.block} steps after "
            f"{a.warmup} warm-up steps, recording off/on/on/off/... (Recorder: detach()/attach() "
            "of one Recorder made with capture_initial=False; its close() is charged to the last "
            "'on' block). Less sensitive to slow drifts in machine load than separate runs."
        )
        hdr2 = (
            f"{'variant':43s} {'off ms/step':>12s} {'on ms/step':>11s} {'overhead':>9s} "
            f"{'median of block pairs':>22s}"
        )
        print(hdr2)
        print("-" * len(hdr2))
        for name, c in paired.items():
            on, off = np.array(c["on"]), np.array(c["off"])
            ov = 100 * (on.sum() / off.sum() - 1)
            pairs = 100 * np.median(on / off - 1)  # on_i paired with the off block beside it (ABBA)
            print(
                f"{name:43s} {1000 * off.mean():12.3f} {1000 * on.mean():11.3f} {ov:+8.1f}% "
                f"{pairs:+21.1f}%"
            )
            if name.startswith("Recorder"):
                paired_verdicts.append(
                    f"{name} (paired A/B): overhead {ov:+.1f}% "
                    f"({1000 * (on.mean() - off.mean()):+.3f} ms/step) -> target < 5%: "
                    f"{'MET' if ov < 5 else 'NOT MET'}"
                )
        print("-" * len(hdr2))
        for line in paired_verdicts:
            print(line)

    print()
    print("Checks:")
    c = results["Recorder(path=<tmp>.rec), every step"][-1]["check"]
    ok = (
        c["series"] == c["tensors"]
        and c["lengths"] == [c["expected"]]
        and c["last_equal"]
        and c["steps_ok"]
    )
    print(
        f"  disk recording: {c['series']} series x {c['lengths']} snapshots (expected "
        f"{c['tensors']} x {c['expected']}), steps 0..{c['expected'] - 1}: {c['steps_ok']}, last "
        f"snapshot equals the final parameters: {c['last_equal']}; {c['bytes'] / 2**20:.1f} MiB on "
        f"disk  {'OK' if ok else 'MISMATCH'}"
    )
    for name, _, steps in variants:
        if name == "bare":
            continue
        ref = bare[0]["hashes"].get(a.warmup + steps)
        same = all(o["final"] == ref for o in results[name])
        print(
            f"  {name}: final parameters bit-identical to bare after {a.warmup + steps} steps: "
            f"{same}"
        )
    print()
    print(f"Wall time of this benchmark: {time.perf_counter() - wall0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
