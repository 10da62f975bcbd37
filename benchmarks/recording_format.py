"""Recording format figures: append throughput, open time, random frame reads, peak memory.

Run: ``python benchmarks/recording_format.py [--snapshots 2000] [--size 36473]``

Streams ``--snapshots`` float32 vectors of ``--size`` values (default: all parameters of
the 36k-parameter MLP, 2000 times: 292 MB) into a recording, then opens it and reads
random snapshots. For reference, in the same run: ``np.save`` of the same data stacked in
memory (the simplest alternative, which needs it all in memory and is lost if the process
dies before the end).
"""

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from dynamics.recording import RecordingWriter, load


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snapshots", type=int, default=2000, help="snapshots to append (default: 2000)")
    p.add_argument("--size", type=int, default=36473, help="float32 values per snapshot (default: 36473)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    snap = rng.standard_normal(args.size).astype(np.float32)
    total_mb = args.snapshots * snap.nbytes / 2**20
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    with RecordingWriter(tmp / "run.rec") as w:
        for step in range(args.snapshots):
            snap[step % args.size] += 1.0
            w.append("params", step, snap)
            w.append("loss", step, 1.0 / (step + 1))
    t_append = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    rec = load(tmp / "run.rec")
    t_open = time.perf_counter() - t
    idx = rng.integers(0, args.snapshots, 200)
    t = time.perf_counter()
    checksum = sum(float(rec["params"].values[i][0]) for i in idx)
    t_read = (time.perf_counter() - t) / len(idx)
    # reference: stack in memory then np.save
    t = time.perf_counter()
    stacked = np.stack([snap] * args.snapshots)
    np.save(tmp / "ref.npy", stacked)
    t_npsave = time.perf_counter() - t
    del stacked
    print(f"data: {args.snapshots} snapshots x {args.size} float32 = {total_mb:.0f} MiB (+ a scalar series)")
    print(f"append (stream to disk)    : {t_append:6.2f} s  {total_mb / t_append:7.0f} MiB/s  "
          f"{t_append / args.snapshots * 1e6:6.0f} us/snapshot")
    print(f"np.stack + np.save (ref.)  : {t_npsave:6.2f} s  {total_mb / t_npsave:7.0f} MiB/s  (needs all data in memory)")
    print(f"peak RSS growth while appending: {rss1 - rss0:.0f} MiB (data streamed: {total_mb:.0f} MiB)")
    print(f"open recording (lazy)      : {t_open * 1e3:6.1f} ms")
    print(f"random snapshot read       : {t_read * 1e6:6.0f} us  (checksum {checksum:.1f})")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
