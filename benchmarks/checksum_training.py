"""What the per-block checksums cost in training: paired A/B blocks in one process.

Run: ``python benchmarks/checksum_training.py [BLOCKS]`` (default 20 each way).

The MLP of record_overhead.py (2-1024-32-16-4-1, Adam, batch 1000, one torch thread),
every parameter recorded every step to disk; blocks of 25 steps alternate (ABBA) the
writer's real CRC-32 and a no-op checksum, so slow drifts of a shared machine's load hit
both alike. Prints the median ms/step of each, then the checksum of one step timed alone
(the A/B difference is within the run-to-run noise of a percent or two).
recording_format.py measures the same switch on pure streaming, where nothing else runs.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import dynamics.recording.files as recording_files
from dynamics import Recorder

torch.set_num_threads(1)
torch.manual_seed(0)
widths = [2, 1024, 32, 16, 4, 1]
layers = []
for a, b in zip(widths, widths[1:]):
    layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
model = torch.nn.Sequential(*layers[:-1])
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(1000, 2), (torch.rand(1000, 1) > 0.5).float()
loss_fn = torch.nn.BCEWithLogitsLoss()
noop = lambda data: 0
crc32 = recording_files._crc32  # the checksum the writer really uses (zlib-ng's when installed)
times = {"crc": [], "none": []}
blocks, block = int(sys.argv[1]) if len(sys.argv) > 1 else 20, 25
with Recorder(model, opt, params="*", schedule=1, path=Path(tempfile.mkdtemp()) / "r.rec") as rec:
    for i in range(blocks * 2 + 2):
        mode = "crc" if (i // 2 + i) % 2 == 0 else "none"  # ABBA order
        recording_files._crc32 = crc32 if mode == "crc" else noop
        t = time.perf_counter()
        for _ in range(block):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        if i >= 2:
            times[mode].append((time.perf_counter() - t) / block * 1e3)
c, n = statistics.median(times["crc"]), statistics.median(times["none"])
print(
    f"{blocks} blocks of {block} steps each way: median {c:.2f} ms/step with CRC-32, {n:.2f} "
    f"without: {100 * (c - n) / n:+.1f}%"
)
# the checksum's own CPU time per step, timed directly: the A/B medians above move by a
# percent or two between runs of a shared machine, this does not
flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
reps = 2000
t = time.perf_counter()
for _ in range(reps):
    crc32(flat)
per_step = (time.perf_counter() - t) / reps * 1e3
print(
    f"CRC-32 of one step's {flat.nbytes / 1e3:.0f} kB: {per_step * 1e3:.1f} us of CPU, "
    f"{100 * per_step / n:.2f}% of a step (on the writer's thread, off the training thread)"
)
