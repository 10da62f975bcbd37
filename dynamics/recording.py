"""Recordings: named series of snapshots plus JSON metadata, streamed to disk and read lazily.

On-disk format (a directory, conventionally named ``*.rec``)::

    run.rec/
        manifest.json        format tag, version, metadata, series table, completion state
        s0000.steps          16-byte header + int64[T]          (little endian)
        s0000.values         16-byte header + dtype[T, *shape]  (raw, C order)
        s0001.steps ...

Why this format (measured and argued in README.md, "Recording format"):

* Appending is a plain ``write`` at the end of two files, so memory stays bounded by the
  write buffer whatever the number of steps, and the cost per snapshot is a memcpy.
* A process killed mid-run (even by SIGKILL) leaves every ``write`` that returned in the
  page cache: the reader takes the longest prefix present in both files of a series.
  The manifest is only ever replaced atomically (write to a temporary file, then rename).
* Values are read with ``numpy.memmap``: a scene touches only the frames it draws, so a
  recording larger than memory renders. No pickle, no torch: JSON and raw arrays only.
* No extra dependency (HDF5 needs h5py and its single-writer rules; a crash during an
  HDF5 write can corrupt the whole file; zarr would add a dependency to do the same job).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import queue
import shutil
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

FORMAT = "nndynamics-recording"
VERSION = 1
MANIFEST = "manifest.json"
_HEADER_SIZE = 16
_STEPS_MAGIC = b"NNDYNSTP"
_VALUES_MAGIC = b"NNDYNVAL"

__all__ = [
    "KINDS",
    "Recording",
    "RecordingError",
    "RecordingWriter",
    "MemoryWriter",
    "Series",
    "Summary",
    "load",
    "to_jsonable",
]


#: What a series holds, written by the recorder into the manifest so that renderers and
#: exporters read roles instead of parsing names. ``""`` is "not said" (a series appended
#: by hand); readers then go by shape alone.
KINDS = {
    "parameter": "a model parameter (source: its name in named_parameters())",
    "gradient": "the gradient of a parameter (source: the parameter's name)",
    "buffer": "a module buffer such as BatchNorm's running_mean (source: its name)",
    "derived": "a function of the model given to Recorder(derived=...)",
    "scalar": "a number logged with Recorder.log()",
    "stats": "mean, std, min, max of a tensor (source: the tensor; of: what it is)",
    "histogram": "histogram counts of a tensor (source, of: as for stats)",
    "edges": "bin edges of those counts, when the bins adapt per step",
    "activation": "the output of a module (source: the module's name)",
    "data": "data recorded beside the run with Recorder.put() (a training set)",
}
#: What a summarised tensor is (the ``of`` of stats, histogram and edges series).
SUMMARISED = ("parameter", "gradient", "activation")


class RecordingError(ValueError):
    """A recording on disk is missing, truncated, foreign or inconsistent."""


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths inside ``obj`` to plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no inf/nan; keep them readable
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"metadata value {obj!r} of type {type(obj).__name__} is not JSON-able")


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One named quantity over training.

    Attributes
    ----------
    steps : (T,) int64
        Training step of each snapshot, increasing.
    values : (T, *shape) array
        Snapshot values; step is always the first axis. A ``numpy.memmap`` for recordings
        loaded from disk, so only the rows that are indexed are read.
    kind : str
        What the series holds, one of :data:`KINDS` (``""``: not said).
    source : str
        The parameter, buffer or module it comes from (``""`` when not applicable).
    of : str
        For ``stats``, ``histogram`` and ``edges``: what was summarised (``parameter``,
        ``gradient`` or ``activation``).
    """

    steps: np.ndarray
    values: np.ndarray
    kind: str = ""
    source: str = ""
    of: str = ""

    def __post_init__(self):
        if self.kind and self.kind not in KINDS:
            raise ValueError(f"series kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.of and self.of not in SUMMARISED:
            raise ValueError(f"a summary's 'of' must be one of {', '.join(SUMMARISED)}, got {self.of!r}")

    @property
    def info(self) -> dict[str, str]:
        """``kind``, ``source`` and ``of``, only those that are set (as in the manifest)."""
        return {k: v for k, v in (("kind", self.kind), ("source", self.source), ("of", self.of)) if v}

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one snapshot."""
        return tuple(self.values.shape[1:])

    def nearest_index(self, step: int | np.ndarray) -> int | np.ndarray:
        """Index of the snapshot whose step is closest to ``step`` (ties go to the earlier)."""
        if len(self.steps) == 0:
            raise IndexError("series is empty")
        step_arr = np.asarray(step)
        right = np.clip(np.searchsorted(self.steps, step_arr, side="left"), 0, len(self.steps) - 1)
        left = np.clip(right - 1, 0, len(self.steps) - 1)
        pick_left = np.abs(step_arr - self.steps[left]) <= np.abs(self.steps[right] - step_arr)
        idx = np.where(pick_left, left, right)
        return int(idx) if np.ndim(idx) == 0 else idx

    def at(self, step: int) -> np.ndarray:
        """Values of the snapshot nearest to ``step``."""
        return np.asarray(self.values[self.nearest_index(step)])

    def between(self, start: int | None = None, stop: int | None = None) -> "Series":
        """Snapshots with ``start <= step < stop`` (either bound may be None)."""
        lo = 0 if start is None else int(np.searchsorted(self.steps, start, side="left"))
        hi = len(self.steps) if stop is None else int(np.searchsorted(self.steps, stop, side="left"))
        return Series(self.steps[lo:hi], self.values[lo:hi], **self.info)

    def resample(self, steps: Iterable[int]) -> "Series":
        """The snapshot nearest to each of ``steps`` (values are read, not interpolated)."""
        idx = np.atleast_1d(self.nearest_index(np.asarray(list(steps), dtype=np.int64)))
        return Series(self.steps[idx], np.asarray(self.values[idx]), **self.info)


class Recording:
    """Named series plus JSON metadata: the contract between capture and rendering.

    Parameters
    ----------
    series : mapping of str to Series
    metadata : dict
        JSON-able: experiment name, resolved config, seed, versions, scene references.
    complete : bool
        False for a recording whose writer never closed (a crash or an interrupt); it then
        holds everything up to the last flushed snapshot.
    path : Path, optional
        Where the recording lives on disk, if it was loaded from there.
    """

    def __init__(
        self,
        series: Mapping[str, Series],
        metadata: Mapping[str, Any] | None = None,
        *,
        complete: bool = True,
        path: Path | None = None,
    ):
        self._series = dict(series)
        self.metadata = dict(metadata or {})
        self.complete = complete
        self.path = path

    # -- access ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Series:
        try:
            return self._series[name]
        except KeyError:
            raise KeyError(self._missing_message([name])) from None

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def __iter__(self) -> Iterator[str]:
        return iter(self._series)

    def __len__(self) -> int:
        return len(self._series)

    def keys(self) -> list[str]:
        return list(self._series)

    def items(self):
        return self._series.items()

    def select(self, *patterns: str) -> dict[str, Series]:
        """Series whose names match any of the shell-style ``patterns`` (``"grad/*"``)."""
        return {k: s for k, s in self._series.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}

    def of_kind(self, *kinds: str) -> dict[str, Series]:
        """Series whose kind is one of ``kinds`` (``of_kind("scalar")``), in recording order."""
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown series kind {unknown[0]!r}; kinds are {', '.join(KINDS)}")
        return {k: s for k, s in self._series.items() if s.kind in kinds}

    def summaries(self) -> dict[str, "Summary"]:
        """Every summarised tensor: its ``stats``, ``histogram`` and (adaptive bins) ``edges``
        series, paired by their ``of`` and ``source`` as the recorder wrote them (not by name).
        Keys are labels such as ``"conv1.weight"``, ``"gradient of conv1.weight"``,
        ``"activation conv1"``."""
        parts: dict[tuple[str, str], dict[str, str]] = {}
        for name, s in self._series.items():
            if s.kind in ("stats", "histogram", "edges"):
                parts.setdefault((s.of, s.source), {})[s.kind] = name
        fixed = ((self.metadata.get("recorder") or {}).get("summaries") or {}).get("edges")
        out = {}
        for (of, source), names in parts.items():
            if "stats" in names and "histogram" in names and ("edges" in names or fixed is not None):
                summary = Summary(of, source, names["stats"], names["histogram"], names.get("edges"), fixed)
                out[summary.label] = summary
        return out

    def require(self, *names: str) -> None:
        """Raise KeyError naming every one of ``names`` that this recording lacks."""
        missing = [n for n in names if n not in self._series]
        if missing:
            raise KeyError(self._missing_message(missing))

    def _missing_message(self, names: list[str]) -> str:
        where = f" {self.path}" if self.path else ""
        return f"recording{where} has no series {', '.join(map(repr, names))}; it has: {', '.join(self._series) or 'none'}"

    def __repr__(self) -> str:
        parts = [f"{k}: {len(s)}x{s.shape}" for k, s in self._series.items()]
        state = "" if self.complete else ", incomplete"
        return f"Recording({', '.join(parts)}{state})"

    # -- persistence -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recording":
        """Open a recording directory written by :class:`RecordingWriter` (lazy, no pickle)."""
        return load(path)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, chunk: int = 256) -> Path:
        """Write this recording to ``path`` (a directory), ``chunk`` snapshots at a time."""
        with RecordingWriter(path, self.metadata, overwrite=overwrite) as writer:
            for name, s in self._series.items():
                writer.declare(name, s.values.dtype, s.shape, **s.info)
                for lo in range(0, len(s), chunk):
                    writer.extend(name, s.steps[lo : lo + chunk], np.asarray(s.values[lo : lo + chunk]))
        return Path(path)


@dataclass(frozen=True)
class Summary:
    """The series that summarise one tensor (see :meth:`Recording.summaries`).

    Attributes
    ----------
    of : str
        ``parameter``, ``gradient`` or ``activation``.
    source : str
        The parameter or module name.
    stats, histogram : str
        Names of the ``(4,)`` mean/std/min/max series and of the counts series.
    edges : str or None
        Name of the per-step bin edges series (adaptive bins), else None.
    fixed_edges : list of float or None
        The bins shared by every step when ``edges`` is None.
    """

    of: str
    source: str
    stats: str
    histogram: str
    edges: str | None = None
    fixed_edges: list | None = None

    @property
    def label(self) -> str:
        return {"parameter": self.source, "gradient": f"gradient of {self.source}",
                "activation": f"activation {self.source}"}.get(self.of, self.source)

    def read(self, recording: Recording) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``steps (T,)``, ``counts (T, bins)`` and ``edges`` (``(T, bins + 1)`` or ``(bins + 1,)``)."""
        hist = recording[self.histogram]
        edges = recording[self.edges].values if self.edges else self.fixed_edges
        return np.asarray(hist.steps), np.asarray(hist.values), np.asarray(edges, dtype=float)


def _read_manifest(root: Path) -> dict:
    mpath = root / MANIFEST
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such recording")
    if not root.is_dir():
        raise RecordingError(f"{root}: not a recording (expected a directory holding {MANIFEST})")
    if not mpath.is_file():
        raise RecordingError(f"{root}: not a recording ({MANIFEST} is missing)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{mpath}: manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RecordingError(f"{mpath}: not a {FORMAT} manifest (format tag missing or foreign)")
    if manifest.get("version") != VERSION:
        raise RecordingError(f"{mpath}: unsupported format version {manifest.get('version')!r} (this reader knows {VERSION})")
    if not isinstance(manifest.get("series"), dict):
        raise RecordingError(f"{mpath}: manifest has no series table")
    return manifest


def _records_in(path: Path, magic: bytes, record_size: int) -> int:
    """Number of whole records in a series file, after checking its header."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(_HEADER_SIZE)
    except FileNotFoundError:
        raise RecordingError(f"{path}: series file is missing") from None
    if len(header) < _HEADER_SIZE or header[:8] != magic:
        raise RecordingError(f"{path}: not a series file of this format (bad header)")
    stored = int.from_bytes(header[8:16], "little")
    if stored != record_size:
        raise RecordingError(f"{path}: header says {stored}-byte records, manifest implies {record_size}")
    return (path.stat().st_size - _HEADER_SIZE) // max(record_size, 1)


def load(path: str | os.PathLike) -> Recording:
    """Open a recording directory lazily (values are memory-mapped).

    A recording whose writer never closed loads up to its last flushed snapshot and has
    ``complete == False``. A truncated, foreign or inconsistent recording raises
    :class:`RecordingError` naming the file and the problem.
    """
    root = Path(path)
    manifest = _read_manifest(root)
    complete = bool(manifest.get("complete", False))
    counts = manifest.get("counts", {})
    series: dict[str, Series] = {}
    for name, spec in manifest["series"].items():
        try:
            dtype = np.dtype(spec["dtype"])
            shape = tuple(int(n) for n in spec["shape"])
            stem = str(spec["file"])
            info = {k: str(spec[k]) for k in ("kind", "source", "of") if k in spec}
            Series(np.empty(0, np.int64), np.empty(0), **info)  # validates kind and of
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordingError(f"{root / MANIFEST}: series {name!r} has a malformed entry ({exc})") from None
        if dtype.hasobject or "/" in stem or stem.startswith("."):
            raise RecordingError(f"{root / MANIFEST}: series {name!r} has an unsafe entry")
        vsize = dtype.itemsize * math.prod(shape)
        spath, vpath = root / f"{stem}.steps", root / f"{stem}.values"
        n_steps = _records_in(spath, _STEPS_MAGIC, 8)
        n_values = _records_in(vpath, _VALUES_MAGIC, vsize)
        n = min(n_steps, n_values)
        if complete:
            expected = counts.get(name)
            if expected is None:
                raise RecordingError(f"{root / MANIFEST}: complete recording lacks the count of series {name!r}")
            if n_steps < expected or n_values < expected:
                short = spath if n_steps < expected else vpath
                raise RecordingError(
                    f"{short}: truncated, holds {min(n_steps, n_values)} of the {expected} snapshots the manifest records"
                )
            n = int(expected)
        steps = np.memmap(spath, dtype="<i8", mode="r", offset=_HEADER_SIZE, shape=(n,)) if n else np.empty(0, np.int64)
        values = (
            np.memmap(vpath, dtype=dtype, mode="r", offset=_HEADER_SIZE, shape=(n, *shape))
            if n and vsize
            else np.empty((n, *shape), dtype)
        )
        steps = np.asarray(steps)  # int64[T] is small; keep the values lazy
        if n > 1 and np.any(np.diff(steps) < 0):
            raise RecordingError(f"{spath}: steps are not in increasing order")
        series[name] = Series(steps, values, **info)
    return Recording(series, manifest.get("metadata", {}), complete=complete, path=root)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


_MAX_BLOCKS = 3  # staging blocks per series in a RecordingWriter: one filling, two being written


class _WriterThread:
    """A thread that writes staging blocks to their files, so training does not wait on I/O.

    ``write`` releases the GIL: on a 2-core machine the copy into the page cache overlaps
    the next training step instead of adding to it. An error in the thread (disk full) is
    raised in the training thread at the next append that hands over a block, or on flush.
    """

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="nndynamics-recording-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                (sfile, vfile), steps, values, n, free = item
                try:
                    if self.error is None:
                        vfile.write(memoryview(values[:n]).cast("B"))
                        vfile.flush()
                        sfile.write(memoryview(steps[:n]).cast("B"))
                        sfile.flush()
                except BaseException as exc:  # reported to the training thread by check()
                    self.error = exc
                finally:
                    free.put((steps, values))
            finally:
                self._queue.task_done()

    def submit(self, files, steps, values, n, free) -> None:
        self._queue.put((files, steps, values, n, free))

    def wait(self) -> None:
        """Block until every submitted block is written; raise the thread's error if any."""
        self._queue.join()
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise OSError(f"recording writer failed: {self.error}") from self.error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _finish_at_exit(thread: _WriterThread, series: dict, files: dict) -> None:
    """Write what an unclosed RecordingWriter staged (run by weakref.finalize at exit)."""
    try:
        for state in series.values():
            if state.n and state.name in files:
                thread.submit(files[state.name], state.steps, state.values, state.n, queue.SimpleQueue())
                state.n = 0
        thread.wait()
    except OSError as exc:  # a finalizer must not raise; say what was lost instead
        print(f"nndynamics: {exc}; the recording keeps what was written before", file=sys.stderr)
    finally:
        thread.stop()


class _SeriesState:
    """One series being written: its fixed dtype/shape and a staging block of snapshots."""

    __slots__ = ("name", "index", "dtype", "shape", "info", "count", "last", "steps", "values", "n")

    def __init__(self, name: str, index: int, dtype: np.dtype, shape: tuple[int, ...], capacity: int,
                 info: dict[str, str]):
        self.name, self.index, self.dtype, self.shape, self.info = name, index, dtype, shape, info
        self.count = 0  # snapshots appended so far
        self.last = -1  # last step appended (steps never decrease)
        self.steps = np.empty(capacity, "<i8")
        self.values = np.empty((capacity, *shape), dtype)
        self.n = 0  # snapshots in the staging block

    @property
    def snapshot_bytes(self) -> int:
        return self.dtype.itemsize * math.prod(self.shape)


class _SinkBase:
    """What a recorder writes into: declare series, append snapshots, close to a Recording.

    Every series has a preallocated staging block; ``append`` copies one snapshot into it
    (the only copy made) and a subclass decides what happens when the block is full
    (:meth:`_spill`): the disk writer writes it out, the memory writer grows it.
    """

    def __init__(self, metadata: Mapping[str, Any] | None = None):
        self.metadata: dict[str, Any] = to_jsonable(dict(metadata or {}))
        self._series: dict[str, _SeriesState] = {}
        self.closed = False
        self.complete = False  # closed after the producer finished (not cut short by an error)

    def declare(self, name: str, dtype, shape: tuple[int, ...], *, kind: str = "", source: str = "",
                of: str = "") -> None:
        """Fix a series' dtype, per-snapshot shape and what it holds (``kind``, ``source``,
        ``of``: see :class:`Series`) before its first append (optional)."""
        info = Series(np.empty(0, np.int64), np.empty(0), kind, source, of).info  # validates
        dtype = np.dtype(dtype)
        if dtype.hasobject:
            raise TypeError(f"series {name!r}: object arrays cannot be recorded")
        shape = tuple(int(d) for d in shape)
        state = self._series.get(name)
        if state is None:
            dtype = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
            capacity = self._initial_capacity(dtype.itemsize * math.prod(shape))
            self._series[name] = _SeriesState(name, len(self._series), dtype, shape, capacity, info)
            self._on_new_series(self._series[name])
        elif state.shape != shape:
            raise ValueError(f"series {name!r}: snapshot shape {shape} differs from earlier {state.shape}")

    def append(self, name: str, step: int, value) -> None:
        """Append one snapshot of series ``name`` taken at training ``step`` (copied now)."""
        if self.closed:
            raise ValueError(f"series {name!r}: cannot append, the recording is closed")
        if type(value) is not np.ndarray:
            value = np.asarray(value)
        state = self._series.get(name)
        if state is None:
            self.declare(name, value.dtype, value.shape)
            state = self._series[name]
        elif value.shape != state.shape:
            raise ValueError(f"series {name!r}: snapshot shape {value.shape} differs from earlier {state.shape}")
        step = int(step)
        if step < state.last:
            raise ValueError(f"series {name!r}: steps must not decrease (got {step} after {state.last})")
        if state.n == len(state.steps):
            self._spill(state)
        n = state.n
        state.values[n] = value
        state.steps[n] = step
        state.n = n + 1
        state.count += 1
        state.last = step
        self._appended()

    def extend(self, name: str, steps, values) -> None:
        """Append several snapshots at once: ``steps`` (n,), ``values`` (n, *shape).

        Copied block by block into the staging block (no per-snapshot Python work)."""
        if self.closed:
            raise ValueError(f"series {name!r}: cannot append, the recording is closed")
        steps = np.asarray(steps, dtype=np.int64)
        values = np.asarray(values)
        if values.ndim == 0 or len(steps) != len(values):
            raise ValueError(f"series {name!r}: extend needs as many steps as snapshots, got {len(steps)} steps and values of shape {values.shape}")
        if np.any(np.diff(steps) < 0):
            raise ValueError(f"series {name!r}: steps must not decrease within one extend()")
        if not len(steps):
            return
        state = self._series.get(name)
        if state is None:
            self.declare(name, values.dtype, values.shape[1:])
            state = self._series[name]
        elif values.shape[1:] != state.shape:
            raise ValueError(f"series {name!r}: snapshot shape {values.shape[1:]} differs from earlier {state.shape}")
        if int(steps[0]) < state.last:
            raise ValueError(f"series {name!r}: steps must not decrease (got {int(steps[0])} after {state.last})")
        done = 0
        while done < len(steps):
            if state.n == len(state.steps):
                self._spill(state)
            k = min(len(state.steps) - state.n, len(steps) - done)
            state.values[state.n : state.n + k] = values[done : done + k]
            state.steps[state.n : state.n + k] = steps[done : done + k]
            state.n += k
            state.count += k
            done += k
        state.last = int(steps[-1])
        self._appended()

    def update_metadata(self, **items: Any) -> None:
        """Merge JSON-able ``items`` into the metadata."""
        self.metadata.update(to_jsonable(items))
        self._on_metadata()

    @property
    def buffered_bytes(self) -> int:
        """Bytes of snapshots staged in memory and not yet handed on."""
        return sum(s.n * s.snapshot_bytes for s in self._series.values())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)

    # hooks for subclasses
    def _initial_capacity(self, snapshot_bytes: int) -> int:
        return 16

    def _spill(self, state: _SeriesState) -> None:
        """The staging block of ``state`` is full: make room for at least one snapshot."""
        raise NotImplementedError

    def _appended(self) -> None: ...
    def _on_new_series(self, state: _SeriesState) -> None: ...
    def _on_metadata(self) -> None: ...
    def close(self, complete: bool = True) -> None: ...
    def recording(self) -> Recording: ...


class MemoryWriter(_SinkBase):
    """Keeps every snapshot in memory. For small runs and tests.

    Full staging blocks are kept as they are and a new, twice larger block is started (up
    to 64 MiB), so a snapshot is copied once when appended; ``recording()`` joins the
    blocks of a series into one array (once; later calls return views of it).
    """

    _MAX_BLOCK_BYTES = 64 << 20

    def __init__(self, metadata: Mapping[str, Any] | None = None):
        super().__init__(metadata)
        self._full: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    def _on_new_series(self, state: _SeriesState) -> None:
        self._full[state.name] = []

    def _spill(self, state: _SeriesState) -> None:
        self._full[state.name].append((state.steps, state.values))
        capacity = len(state.steps)
        if 2 * capacity * max(state.snapshot_bytes, 1) <= self._MAX_BLOCK_BYTES:
            capacity *= 2
        state.steps = np.empty(capacity, "<i8")
        state.values = np.empty((capacity, *state.shape), state.dtype)
        state.n = 0

    def close(self, complete: bool = True) -> None:
        """Stop accepting snapshots; ``complete=False`` marks a run that was cut short."""
        self.closed, self.complete = True, bool(complete)

    def recording(self) -> Recording:
        series = {}
        for name, state in self._series.items():
            full = self._full[name]
            if full:  # join everything so far into one block, which becomes the staging block
                steps = np.concatenate([s for s, _ in full] + [state.steps[: state.n]])
                values = np.concatenate([v for _, v in full] + [state.values[: state.n]])
                full.clear()
                state.steps, state.values, state.n = steps, values, len(steps)
            # views: rows [:n] are never written again (a full block is replaced, not grown)
            series[name] = Series(state.steps[: state.n], state.values[: state.n], **state.info)
        return Recording(series, self.metadata, complete=self.complete)


class RecordingWriter(_SinkBase):
    """Streams snapshots into a recording directory with bounded memory.

    Parameters
    ----------
    path : path-like
        Directory to create (``*.rec`` by convention).
    metadata : dict, optional
        JSON-able metadata; more can be merged later with :meth:`update_metadata`.
    overwrite : bool
        Replace an existing recording at ``path``. Without it, an existing path is an error.
    flush_bytes : int
        Size of each series' staging block: a series is written out once this many bytes
        of its snapshots are staged (at least one snapshot), with one ``write`` call.
    flush_seconds : float
        Every series is also written out on the first append this long after the previous
        full flush, so a killed run loses at most about this much wall time of snapshots.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        metadata: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
        flush_bytes: int = 1 << 20,
        flush_seconds: float = 1.0,
    ):
        super().__init__(metadata)
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"{self.path}: already exists (pass overwrite=True to replace it)")
            if self.path.is_dir() and (self.path / MANIFEST).exists():
                _read_manifest(self.path)  # only ever delete what is one of our recordings
                shutil.rmtree(self.path)
            elif self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()
            else:
                raise FileExistsError(f"{self.path}: exists and is not a recording; refusing to overwrite it")
        self.path.mkdir(parents=True)
        self.flush_bytes = int(flush_bytes)
        self.flush_seconds = float(flush_seconds)
        self._files: dict[str, tuple[Any, Any]] = {}
        self._free: dict[str, queue.SimpleQueue] = {}  # staging blocks the thread has written
        self._blocks: dict[str, int] = {}  # staging blocks allocated per series
        self._thread = _WriterThread()
        # a process that exits without close() still writes what it staged
        self._finalizer = weakref.finalize(self, _finish_at_exit, self._thread, self._series, self._files)
        self._next_flush = time.monotonic() + self.flush_seconds
        self._write_manifest()

    def _stem(self, name: str) -> str:
        return f"s{self._series[name].index:04d}"

    def _write_manifest(self) -> None:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "complete": self.complete,
            "metadata": self.metadata,
            "series": {
                name: {"file": self._stem(name), "dtype": s.dtype.str, "shape": list(s.shape), **s.info}
                for name, s in self._series.items()
            },
        }
        if self.closed:
            manifest["counts"] = {name: s.count for name, s in self._series.items()}
        tmp = self.path / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(tmp, self.path / MANIFEST)  # atomic: readers see the old or the new one

    def _initial_capacity(self, snapshot_bytes: int) -> int:
        return max(1, min(self.flush_bytes // max(snapshot_bytes, 1), 1 << 16))

    def _on_new_series(self, state: _SeriesState) -> None:
        stem = self._stem(state.name)
        sfile = open(self.path / f"{stem}.steps", "wb")
        vfile = open(self.path / f"{stem}.values", "wb")
        sfile.write(_STEPS_MAGIC + (8).to_bytes(8, "little"))
        vfile.write(_VALUES_MAGIC + state.snapshot_bytes.to_bytes(8, "little"))
        sfile.flush()
        vfile.flush()
        self._files[state.name] = (sfile, vfile)
        self._free[state.name] = queue.SimpleQueue()
        self._blocks[state.name] = 1
        self._write_manifest()

    def _on_metadata(self) -> None:
        self._write_manifest()

    def _appended(self) -> None:
        if time.monotonic() >= self._next_flush:
            self.flush()

    def _spill(self, state: _SeriesState) -> None:
        """Hand the full staging block of one series to the writer thread; take an empty one.

        The thread writes it (values file first, then steps: the reader trusts steps only
        up to the values present) while training goes on. At most ``_MAX_BLOCKS`` blocks
        per series exist, so a writer that falls behind makes this wait: memory stays
        bounded.
        """
        if not state.n:
            return
        self._thread.check()
        free = self._free[state.name]
        try:
            block = free.get_nowait()
        except queue.Empty:
            if self._blocks[state.name] < _MAX_BLOCKS:
                self._blocks[state.name] += 1
                block = (np.empty_like(state.steps), np.empty_like(state.values))
            else:
                block = free.get()
        self._thread.submit(self._files[state.name], state.steps, state.values, state.n, free)
        state.steps, state.values = block
        state.n = 0

    def flush(self) -> None:
        """Hand every staged snapshot to the OS: a process killed after this keeps them."""
        for state in self._series.values():
            self._spill(state)
        self._thread.wait()
        self._next_flush = time.monotonic() + self.flush_seconds

    def close(self, complete: bool = True) -> None:
        """Flush, close the files and mark the recording complete (idempotent).

        ``complete=False`` closes a recording of a run that was cut short (an error, an
        interrupt): everything written is kept and loads, but ``complete`` stays False,
        so a sweep knows to run it again.
        """
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self._finalizer.detach()
            self._thread.stop()
            for sfile, vfile in self._files.values():
                sfile.close()
                vfile.close()
            self.closed = True
        self.complete = bool(complete)
        self._write_manifest()

    def recording(self) -> Recording:
        """The recording as it stands on disk (flushes first)."""
        if not self.closed:
            self.flush()
        return load(self.path)
