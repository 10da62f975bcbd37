"""Export a recording to TensorBoard event files, to open our runs in the tool users know.

Scalar series become TensorBoard scalars; each summarised tensor (``stats/<name>`` with
``hist/<name>`` and its edges) becomes a TensorBoard histogram at every recorded step, all
of them (as TensorBoard's writers do: the TensorBoard server samples them when it reads).
A recording keeps no clock, so the events' wall times are made up in step order: the export's
start plus one second per distinct recorded step before theirs. TensorBoard's Relative and
Wall axes then keep the steps' order and spacing in rank (their values are not training time).
Needs the optional ``tensorboard`` package (``pip install tensorboard``).

Command line: ``python -m dynamics.export RUN.rec LOGDIR`` then ``tensorboard --logdir LOGDIR``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .recording import Recording, load

__all__ = ["to_tensorboard"]


def to_tensorboard(
    recording: Recording | str | os.PathLike, logdir: str | os.PathLike
) -> dict[str, int]:
    """Write ``recording``'s scalars and histograms as TensorBoard events under ``logdir``.

    Returns how many scalar and histogram events were written.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            "exporting to TensorBoard needs the optional package: pip install tensorboard"
        ) from exc
    import time

    rec = recording if isinstance(recording, Recording) else load(recording)
    every_step = np.unique(np.concatenate([s.steps for _, s in rec.items()] or [np.zeros(0)]))
    start = time.time()

    def walltime(step: int) -> float:  # in step order: no clock in a recording
        return start + float(np.searchsorted(every_step, step))

    written = {"scalars": 0, "histograms": 0}
    writer = SummaryWriter(log_dir=str(logdir))
    try:
        for name, series in rec.items():
            # a scalar by kind; a series that says nothing of itself, by its shape
            if series.kind == "scalar" or (not series.kind and series.shape == ()):
                for step, value in zip(
                    series.steps.tolist(), np.asarray(series.values, dtype=float).tolist()
                ):
                    writer.add_scalar(name, value, step, walltime=walltime(step))
                    written["scalars"] += 1
        for summary in rec.summaries().values():
            stats = rec[summary.stats]
            steps, counts, edges = summary.read(rec)
            edges = np.broadcast_to(edges, (len(counts), counts.shape[1] + 1))
            tag = {"gradient": "grad/", "activation": "act/"}.get(summary.of, "") + summary.source
            for i, step in enumerate(steps.tolist()):
                mean, std, lo, hi = (float(v) for v in stats.values[stats.nearest_index(step)])
                num = float(counts[i].sum())
                if not (num > 0 and np.isfinite(edges[i]).all()):
                    continue
                writer.add_histogram_raw(
                    tag,
                    min=lo,
                    max=hi,
                    num=num,
                    sum=mean * num,
                    sum_squares=(std * std + mean * mean) * num,
                    bucket_limits=edges[i][1:].tolist(),
                    bucket_counts=counts[i].tolist(),
                    global_step=step,
                    walltime=walltime(step),
                )
                written["histograms"] += 1
    finally:
        writer.close()
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dynamics.export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("recording", type=Path, help="a recording directory (*.rec)")
    parser.add_argument("logdir", type=Path, help="TensorBoard log directory to write into")
    args = parser.parse_args(argv)
    try:
        written = to_tensorboard(args.recording, args.logdir)
    except (ImportError, ValueError, FileNotFoundError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"{args.logdir}: {written['scalars']} scalar and {written['histograms']} histogram events; "
        f"open with: tensorboard --logdir {args.logdir}"
    )


if __name__ == "__main__":
    main()
