"""Recording format figures: append throughput, open time, random frame reads, peak memory.

Run: ``python benchmarks/recording_format.py [--snapshots 2000] [--size 36473]``

Streams ``--snapshots`` float32 vectors of ``--size`` values (default: all parameters of
the 36k-parameter MLP, 2000 times: 292 MB) into a recording, then opens it and reads
random snapshots. For reference, in the same run: ``np.save`` of the same data stacked in
memory (the simplest alternative, which needs it all in memory and is lost if the process
dies before the end). The streaming is timed ``--repeat`` times with the per-block CRC-32
checksums and as often with the checksum swapped for a no-op, interleaved, and the best
time of each is printed: what the checksums cost.
"""

import argparse
import resource
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

import dynamics.recording as recording
import dynamics.recording.files as recording_files
from dynamics.recording import DiskSink, load


def _no_checksum(data, crc=0) -> int:
    """The checksum swapped out: what writing costs without it."""
    return 0


def stream(path, snap, snapshots):
    t = time.perf_counter()
    with DiskSink(path, overwrite=True) as w:
        for step in range(snapshots):
            snap[step % len(snap)] += 1.0
            w.append("params", step, snap)
            w.append("loss", step, 1.0 / (step + 1))
    return time.perf_counter() - t


def _timed(fn, data) -> float:
    t = time.perf_counter()
    fn(data)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--snapshots", type=int, default=2000, help="snapshots to append (default: 2000)"
    )
    p.add_argument(
        "--size", type=int, default=36473, help="float32 values per snapshot (default: 36473)"
    )
    p.add_argument(
        "--repeat", type=int, default=9, help="timings with and without checksums (default: 9)"
    )
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    snap = rng.standard_normal(args.size).astype(np.float32)
    total_mb = args.snapshots * snap.nbytes / 2**20
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_append = stream(tmp / "run.rec", snap, args.snapshots)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with_crc, without_crc = [t_append], []
    crc32 = recording_files._crc32
    for i in range(2 * args.repeat):  # ABBA order, same target: only the checksum differs
        checked = (i // 2 + i) % 2 == 1
        recording_files._crc32 = crc32 if checked else _no_checksum
        try:
            t = stream(tmp / "run.rec", snap, args.snapshots)
        finally:
            recording_files._crc32 = crc32
        (with_crc if checked else without_crc).append(t)
    stream(tmp / "run.rec", snap, args.snapshots)  # the recording verified below has checksums
    t_verify = time.perf_counter()
    problems = recording.verify(tmp / "run.rec")
    t_verify = time.perf_counter() - t_verify
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
    print(
        f"data: {args.snapshots} snapshots x {args.size} float32 = {total_mb:.0f} MiB "
        "(+ a scalar series)"
    )
    print(
        f"append (stream to disk)    : {t_append:6.2f} s  {total_mb / t_append:7.0f} MiB/s  "
        f"{t_append / args.snapshots * 1e6:6.0f} us/snapshot"
    )
    best, base = min(with_crc), min(without_crc)
    pairs = [100 * (w - n) / n for w, n in zip(with_crc[1:], without_crc)]  # neighbours
    print(
        f"stream, best of {len(with_crc)} with checksums: {best:6.3f} s; best of "
        f"{len(without_crc)} without: {base:6.3f} s; checksums cost "
        f"{100 * (best - base) / base:+.1f} % (median of {len(pairs)} interleaved pairs "
        f"{float(np.median(pairs)):+.1f} %)"
    )
    # the checksum's own CPU time over the streamed bytes, ours and zlib's, in this run
    block = np.tile(snap, (max(1, (32 << 20) // snap.nbytes), 1))
    scale = args.snapshots * snap.nbytes / block.nbytes
    for label, fn in (("CRC-32 (zlib-ng, used)", crc32), ("CRC-32 (zlib, reference)", zlib.crc32)):
        t = min(_timed(fn, block) for _ in range(5)) * scale
        print(
            f"{label:<27}: {t * 1e3:6.1f} ms of CPU for the streamed bytes "
            f"({100 * t / base:.1f} % of the stream's time, on the writer's checksum thread)"
        )
    print(
        f"verify (read all, CRC-32)  : {t_verify:6.2f} s  {total_mb / t_verify:7.0f} MiB/s  "
        f"({len(problems)} damaged)"
    )
    print(
        f"np.stack + np.save (ref.)  : {t_npsave:6.2f} s  {total_mb / t_npsave:7.0f} MiB/s  "
        "(needs all data in memory)"
    )
    print(
        f"peak RSS growth while appending: {rss1 - rss0:.0f} MiB "
        f"(data streamed: {total_mb:.0f} MiB)"
    )
    print(f"open recording (lazy)      : {t_open * 1e3:6.1f} ms")
    print(f"random snapshot read       : {t_read * 1e6:6.0f} us  (checksum {checksum:.1f})")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
