"""Benchmark: per-step cost of recording every parameter of a small MLP at every training step.

Model and step: a 2-1024-32-16-4-1 ReLU MLP (36 473 parameters in 10 tensors), Adam
(lr 1e-3), batches of 1000 two-dimensional inputs (pregenerated, cycled), BCE loss on
logits (``BCEWithLogitsLoss``); ``torch.set_num_threads(--threads)`` (default 1: on a
shared 2-core machine a second torch thread mostly adds contention).

Variants, each run for ``--steps`` timed steps after ``--warmup`` untimed ones, from the
same seed and on the same batches:

* bare              -- the training step alone;
* floor             -- bare + ``torch.cat`` of every flattened parameter into a
                       preallocated row of a numpy buffer after each step (the cheapest way
                       to keep everything; shared/PERFORMANCE.md measured +1-4 %);
* Recorder (disk)   -- ``with dynamics.Recorder(model, opt, schedule=1, path=<tmp>.rec)``:
                       every parameter captured after every ``opt.step()`` through the
                       optimizer's step post-hook and streamed to a recording directory;
* Recorder (memory) -- the same with ``path=None`` (snapshots kept in memory); skipped when
                       the snapshots would take more than a quarter of the available memory;
* TensorBoard       -- ``torch.utils.tensorboard.SummaryWriter.add_histogram`` of every
                       parameter every step, and every 10 steps (for ``--tb-steps`` steps:
                       it is slow). Skipped, with a message, if tensorboard is not installed.

The timed span of a run ends after the recorder / writer is closed, so the final flush is
counted. Variants are interleaved: ``--rounds`` rounds, each running every variant once, in
a rotated order. For each variant the table gives the median over rounds of the mean time
per step, the overhead against bare, and the median of the individual step times pooled
over rounds (less sensitive to the other processes on a shared machine).

Checks: the disk recording loads back with every parameter at every step, and each
variant ends with parameters bit-identical to the bare run (recording must not change
training).

Target: Recorder overhead < 5 % per step.

Run: ``python benchmarks/record_overhead.py`` (2-3 minutes at the defaults);
``--steps 300 --rounds 1`` for a quick check; ``--help`` for every flag.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

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


# --------------------------------------------------------------------------------------
# One run of a variant: returns per-step times (s) of the timed steps, the total timed
# span (s, includes closing the recorder / writer) and the final parameters.
# --------------------------------------------------------------------------------------


class Run:
    def __init__(self, a: argparse.Namespace, batches, steps: int):
        self.a, self.batches, self.steps = a, batches, steps
        self.model = make_model(a.seed)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.times = np.empty(steps)
        self.k = 0

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
        t_start = time.perf_counter()
        prev = t_start
        for i in range(self.steps):
            self.step()
            if after is not None:
                after(self.k)
            now = time.perf_counter()
            self.times[i] = now - prev
            prev = now
        return t_start

    def params(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])


def run_bare(a, batches, steps, tmp):
    r = Run(a, batches, steps)
    t0 = r.loop()
    return r.times, time.perf_counter() - t0, r.params()


def run_floor(a, batches, steps, tmp):
    r = Run(a, batches, steps)
    params = list(r.model.parameters())
    n = sum(p.numel() for p in params)
    buf = np.empty((a.warmup + steps + 1, n), np.float32)  # preallocated, like a ring of snapshots
    rows = torch.from_numpy(buf)

    def after(k):
        with torch.no_grad():
            torch.cat([p.reshape(-1) for p in params], out=rows[k])

    after(0)
    t0 = r.loop(after)
    return r.times, time.perf_counter() - t0, r.params()


def run_recorder_disk(a, batches, steps, tmp):
    r = Run(a, batches, steps)
    path = Path(tmp) / "run.rec"
    with Recorder(r.model, r.opt, schedule=1, path=path, overwrite=True):
        t0 = r.loop()
    total = time.perf_counter() - t0  # includes close(): the final flush and manifest
    rec = load(path)
    names = [n for n, _ in r.model.named_parameters()]
    lengths = {len(rec[n]) for n in names}
    expected = a.warmup + steps + 1  # step 0 is captured on attach
    last_ok = all(np.array_equal(np.asarray(rec[n].values[-1]), p.detach().numpy())
                  for n, p in r.model.named_parameters())
    run_recorder_disk.check = (len(rec.keys()), lengths, expected, last_ok,
                               sum(f.stat().st_size for f in path.iterdir()))
    shutil.rmtree(path)
    return r.times, total, r.params()


def run_recorder_memory(a, batches, steps, tmp):
    r = Run(a, batches, steps)
    rec = Recorder(r.model, r.opt, schedule=1, path=None)
    with rec:
        t0 = r.loop()
    total = time.perf_counter() - t0
    del rec
    return r.times, total, r.params()


def make_tb_runner(every: int):
    def run_tb(a, batches, steps, tmp):
        from torch.utils.tensorboard import SummaryWriter

        r = Run(a, batches, steps)
        named = list(r.model.named_parameters())
        logdir = Path(tmp) / f"tb{every}"
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
        return r.times, total, r.params()

    return run_tb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Target: Recorder overhead < 5%% per step. See the module docstring.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=50, help="untimed steps before each timed run")
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs every variant once (interleaved)")
    p.add_argument("--threads", type=int, default=1, choices=(1, 2), help="torch.set_num_threads")
    p.add_argument("--batch", type=int, default=1000, help="batch size")
    p.add_argument("--tb-steps", type=int, default=300,
                   help="timed steps of the TensorBoard variants (they are slow; per-step figures do not need more)")
    p.add_argument("--no-tensorboard", action="store_true", help="skip the TensorBoard comparison")
    p.add_argument("--no-memory", action="store_true", help="skip the in-memory Recorder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", type=Path, default=None, help="folder for the recordings (default: a temporary folder)")
    a = p.parse_args(argv)
    if a.steps < 1 or a.warmup < 0 or a.rounds < 1 or a.tb_steps < 1:
        p.error("need --steps >= 1, --warmup >= 0, --rounds >= 1, --tb-steps >= 1")

    wall0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    batches = make_batches(16, a.batch, a.seed)
    model = make_model(a.seed)
    n_params = sum(p.numel() for p in model.parameters())
    n_tensors = len(list(model.parameters()))
    snap_bytes = n_params * 4
    del model

    variants = [("bare", run_bare, a.steps), ("floor: torch.cat into preallocated buffer", run_floor, a.steps),
                ("Recorder(path=<tmp>.rec), every step", run_recorder_disk, a.steps)]
    notes = []
    mem_need = (a.warmup + a.steps + 1) * snap_bytes
    if a.no_memory:
        notes.append("in-memory Recorder: skipped (--no-memory)")
    elif mem_need > available_bytes() // 4:
        notes.append(f"in-memory Recorder: skipped, {mem_need / 2**20:.0f} MiB of snapshots > 1/4 of available memory")
    else:
        variants.append(("Recorder(path=None), every step", run_recorder_memory, a.steps))
    if a.no_tensorboard:
        notes.append("TensorBoard: skipped (--no-tensorboard)")
    else:
        try:
            importlib.import_module("torch.utils.tensorboard")
        except ImportError as exc:
            notes.append(f"TensorBoard comparison skipped: torch.utils.tensorboard cannot be imported ({exc}); "
                         "pip install tensorboard to run it")
        else:
            variants.append(("TensorBoard add_histogram, every step", make_tb_runner(1), a.tb_steps))
            variants.append(("TensorBoard add_histogram, every 10 steps", make_tb_runner(10), a.tb_steps))

    tmp_owned = a.tmp is None
    tmp = Path(tempfile.mkdtemp(prefix="bench_record_")) if tmp_owned else a.tmp
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"MLP {'-'.join(map(str, WIDTHS))} (ReLU): {n_params:,} parameters in {n_tensors} tensors "
          f"({snap_bytes / 1024:.1f} KiB per snapshot); Adam lr 1e-3; batch {a.batch}; BCE loss")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); os.cpu_count()={os.cpu_count()}; "
          f"{a.steps} timed steps per run ({a.tb_steps} for TensorBoard) after {a.warmup} warm-up steps; "
          f"{a.rounds} interleaved round(s); recordings in {tmp}")
    for note in notes:
        print(note)
    print()

    results = {name: [] for name, _, _ in variants}
    finals = {name: [] for name, _, _ in variants}
    try:
        for r in range(a.rounds):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            parts = []
            for name, fn, steps in order:
                times, total, final = fn(a, batches, steps, tmp)
                results[name].append((total / steps, times))
                finals[name].append(final)
                parts.append(f"{name.split(',')[0].split(':')[0]} {1000 * total / steps:.2f}")
            print(f"  round {r + 1} (ms/step): " + " | ".join(parts), flush=True)
    finally:
        if tmp_owned:
            shutil.rmtree(tmp, ignore_errors=True)

    bare_mean = statistics.median(m for m, _ in results["bare"])
    bare_med = float(np.median(np.concatenate([t for _, t in results["bare"]])))
    print()
    hdr = (f"{'variant':44s} {'ms/step':>8s} {'overhead':>9s} {'per round':>24s} "
           f"{'median step ms':>15s} {'overhead':>9s}")
    print("ms/step: median over rounds of (timed span / steps), the span including close();")
    print("median step ms: median of single-step times pooled over rounds.")
    print(hdr)
    print("-" * len(hdr))
    for name, _, _ in variants:
        m = statistics.median(x for x, _ in results[name])
        med = float(np.median(np.concatenate([t for _, t in results[name]])))
        per_round = ", ".join(f"{100 * (x / bm - 1):+.0f}%" for (x, _), (bm, _) in zip(results[name], results["bare"]))
        print(f"{name:44s} {1000 * m:8.3f} {100 * (m / bare_mean - 1):+8.1f}% {per_round:>24s} "
              f"{1000 * med:15.3f} {100 * (med / bare_med - 1):+8.1f}%")
    print("-" * len(hdr))
    for name in results:
        if name.startswith("Recorder"):
            m = statistics.median(x for x, _ in results[name])
            ov = 100 * (m / bare_mean - 1)
            print(f"{name}: overhead {ov:+.1f}% ({1000 * (m - bare_mean):+.3f} ms/step) -> "
                  f"target < 5%: {'MET' if ov < 5 else 'NOT MET'}")

    print()
    print("Checks:")
    n_tensors_rec, lengths, expected, last_ok, size = run_recorder_disk.check
    ok = n_tensors_rec == n_tensors and lengths == {expected} and last_ok
    print(f"  disk recording (last round): {n_tensors_rec} series of {sorted(lengths)} snapshots "
          f"(expected {n_tensors} of {expected}), last snapshot equals the final parameters: {last_ok}, "
          f"{size / 2**20:.1f} MiB on disk  {'OK' if ok else 'MISMATCH'}")
    ref = finals["bare"][0]
    for name, _, steps in variants:
        if steps == a.steps and name != "bare":
            same = all(torch.equal(f, ref) for f in finals[name])
            print(f"  {name}: final parameters identical to bare: {same}")
    print()
    print(f"Wall time of this benchmark: {time.perf_counter() - wall0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
