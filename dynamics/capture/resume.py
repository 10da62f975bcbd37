"""Resuming a recording after a restart from a checkpoint: keep what the checkpoint
covers, drop the crashed attempt's later steps, refuse (or note) a recording behind it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..recording import DiskSink, Recording, RecordingError, hold_existing, load, to_jsonable
from .schedules import Schedule

__all__ = ["Resumed", "resume_recording"]


class Resumed:
    """A recording rewritten for a resumed run: its writer, the series it already holds
    (``declared``: name -> (dtype, shape)), each one's last kept step (``floor``) and the
    scheduled steps missing before the checkpoint (``gap``: name -> [first, last])."""

    def __init__(self, writer: DiskSink, declared: dict, floor: dict, gap: dict):
        self.writer, self.declared, self.floor, self.gap = writer, declared, floor, gap


def resume_recording(
    path: Path, meta: dict[str, Any], step: int, allow_gap: bool, schedule: Schedule
) -> Resumed:
    """A fresh recording holding the kept prefix of the one at ``path``, swapped in.

    The old recording's writer lock is held throughout (refused if a live writer has
    it): no other writer enters it, or resumes it, until the new one is in place."""
    held = hold_existing(path)
    try:
        return _rewrite_prefix(path, meta, step, allow_gap, schedule)
    finally:
        if held is not None:
            os.close(held)


def _gap(old: Recording, step: int, schedule: Schedule) -> dict[str, list[int]]:
    """Per scheduled series (parameters, buffers), ``[first, last]`` scheduled steps up
    to ``step`` that the recording lacks after its last kept snapshot."""
    gap, scheduled = {}, {}  # scheduled: last kept step -> the scheduled steps after it
    for name, s in old.items():
        if s.kind not in ("parameter", "buffer"):
            continue
        keep = int(np.searchsorted(s.steps, step, side="right"))
        last = int(s.steps[keep - 1]) if keep else -1
        if last not in scheduled:  # series mostly share it: the schedule is asked once
            # a predicate: look at most 10**6 steps back from the checkpoint
            after = range(max(last + 1, step - 10**6), step + 1)
            scheduled[last] = [k for k in after if k in schedule]
        if scheduled[last]:
            gap[name] = [scheduled[last][0], scheduled[last][-1]]
    return gap


def _rewrite_prefix(
    path: Path, meta: dict, step: int, allow_gap: bool, schedule: Schedule
) -> Resumed:
    old = load(path)
    gap = _gap(old, step, schedule)
    if gap and not allow_gap:
        name, (lo, hi) = next(iter(gap.items()))
        raise RecordingError(
            f"Recorder(resume=...): the recording at {path} is behind its checkpoint "
            f"(step {step}): {len(gap)} series lack scheduled snapshots, {name!r} those of "
            f"steps {lo}..{hi} (a kill after the checkpoint was saved and before the "
            "recording's next commit?). Save checkpoints with rec.state_dict(), which "
            "commits first; pass allow_gap=True to resume anyway (the gap is kept in "
            "metadata['resumed'])"
        )
    tmp = path.with_name(f".{path.name}.resuming")
    if tmp.exists():  # left by a resume that was itself interrupted
        shutil.rmtree(tmp)
    merged = {**old.metadata, **to_jsonable(meta)}
    writer = DiskSink(tmp, merged)
    dropped, declared, floor = {}, {}, {}
    for name, s in old.items():
        keep = int(np.searchsorted(s.steps, step, side="right"))
        writer.declare(name, s.values.dtype, s.shape, **s.info)
        for lo in range(0, keep, 1024):
            hi = min(keep, lo + 1024)
            writer.extend(name, s.steps[lo:hi], np.asarray(s.values[lo:hi]))
        declared[name] = np.dtype(s.values.dtype), tuple(s.shape)
        if keep:
            floor[name] = int(s.steps[keep - 1])
        if len(s) > keep:
            dropped[name] = len(s) - keep
    writer.flush()
    entry = {
        "step": step,
        "previous_complete": old.complete,
        "dropped_snapshots": sum(dropped.values()),
        "dropped_series": len(dropped),
    }
    if gap:
        entry["gap"] = gap
    resumed = list(old.metadata.get("resumed", [])) + [entry]
    del old
    aside = path.with_name(f".{path.name}.replaced")
    if aside.exists():
        shutil.rmtree(aside)
    os.replace(path, aside)
    os.replace(tmp, path)
    writer.moved(path)
    shutil.rmtree(aside)
    writer.update_metadata(resumed=resumed)
    return Resumed(writer, declared, floor, gap)
