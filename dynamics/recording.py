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
import shutil
import time
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
    "Recording",
    "RecordingError",
    "RecordingWriter",
    "MemoryWriter",
    "Series",
    "load",
    "to_jsonable",
]


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
    """

    steps: np.ndarray
    values: np.ndarray

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
        return Series(self.steps[lo:hi], self.values[lo:hi])

    def resample(self, steps: Iterable[int]) -> "Series":
        """The snapshot nearest to each of ``steps`` (values are read, not interpolated)."""
        idx = np.atleast_1d(self.nearest_index(np.asarray(list(steps), dtype=np.int64)))
        return Series(self.steps[idx], np.asarray(self.values[idx]))


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
                writer.declare(name, s.values.dtype, s.shape)
                for lo in range(0, len(s), chunk):
                    writer.extend(name, s.steps[lo : lo + chunk], np.asarray(s.values[lo : lo + chunk]))
        return Path(path)


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
        series[name] = Series(steps, values)
    return Recording(series, manifest.get("metadata", {}), complete=complete, path=root)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


class _SeriesSpec:
    __slots__ = ("dtype", "shape", "count")

    def __init__(self, dtype: np.dtype, shape: tuple[int, ...]):
        self.dtype, self.shape, self.count = dtype, shape, 0


class _SinkBase:
    """What a recorder writes into: declare series, append snapshots, close to a Recording."""

    def __init__(self, metadata: Mapping[str, Any] | None = None):
        self.metadata: dict[str, Any] = to_jsonable(dict(metadata or {}))
        self._specs: dict[str, _SeriesSpec] = {}
        self._last_step: dict[str, int] = {}
        self.closed = False

    def declare(self, name: str, dtype, shape: tuple[int, ...]) -> None:
        """Fix a series' dtype and per-snapshot shape before its first append (optional)."""
        dtype = np.dtype(dtype)
        if dtype.hasobject:
            raise TypeError(f"series {name!r}: object arrays cannot be recorded")
        spec = self._specs.get(name)
        if spec is None:
            self._specs[name] = _SeriesSpec(dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype, tuple(shape))
            self._on_new_series(name)
        elif spec.shape != tuple(shape):
            raise ValueError(f"series {name!r}: snapshot shape {tuple(shape)} differs from earlier {spec.shape}")

    def append(self, name: str, step: int, value) -> None:
        """Append one snapshot of series ``name`` taken at training ``step``."""
        value = np.asarray(value)
        self.extend(name, np.asarray([step], dtype=np.int64), value[None])

    def extend(self, name: str, steps, values) -> None:
        """Append several snapshots at once: ``steps`` (n,), ``values`` (n, *shape)."""
        if self.closed:
            raise ValueError(f"series {name!r}: cannot append, the recording is closed")
        steps = np.asarray(steps, dtype=np.int64)
        values = np.asarray(values)
        if name not in self._specs:
            self.declare(name, values.dtype, values.shape[1:])
        spec = self._specs[name]
        if values.shape[1:] != spec.shape:
            raise ValueError(f"series {name!r}: snapshot shape {values.shape[1:]} differs from earlier {spec.shape}")
        if len(steps) == 0:
            return
        last = self._last_step.get(name)
        if (last is not None and steps[0] < last) or np.any(np.diff(steps) < 0):
            raise ValueError(f"series {name!r}: steps must not decrease (got {steps[0]} after {last})")
        self._last_step[name] = int(steps[-1])
        spec.count += len(steps)
        self._write(name, steps, np.ascontiguousarray(values, dtype=spec.dtype))

    def update_metadata(self, **items: Any) -> None:
        """Merge JSON-able ``items`` into the metadata."""
        self.metadata.update(to_jsonable(items))
        self._on_metadata()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # hooks for subclasses
    def _on_new_series(self, name: str) -> None: ...
    def _on_metadata(self) -> None: ...
    def _write(self, name: str, steps: np.ndarray, values: np.ndarray) -> None: ...
    def close(self) -> None: ...
    def recording(self) -> Recording: ...


class MemoryWriter(_SinkBase):
    """Keeps every snapshot in memory; ``recording()`` stacks them. For small runs and tests."""

    def __init__(self, metadata: Mapping[str, Any] | None = None):
        super().__init__(metadata)
        self._chunks: dict[str, tuple[list, list]] = {}

    def _on_new_series(self, name: str) -> None:
        self._chunks[name] = ([], [])

    def _write(self, name, steps, values) -> None:
        s, v = self._chunks[name]
        s.append(steps.copy())
        v.append(values.copy())

    def close(self) -> None:
        self.closed = True

    def recording(self) -> Recording:
        series = {}
        for name, (s, v) in self._chunks.items():
            spec = self._specs[name]
            steps = np.concatenate(s) if s else np.empty(0, np.int64)
            values = np.concatenate(v) if v else np.empty((0, *spec.shape), spec.dtype)
            series[name] = Series(steps, values)
        return Recording(series, self.metadata, complete=self.closed)


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
        Buffered bytes (all series together) that trigger a flush to disk.
    flush_seconds : float
        A flush also happens on the first append this long after the previous flush, so a
        killed run loses at most about this much wall time of snapshots.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        metadata: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
        flush_bytes: int = 4 << 20,
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
        self._buffers: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.buffered_bytes = 0
        self._last_flush = time.monotonic()
        self._write_manifest()

    def _stem(self, name: str) -> str:
        return f"s{list(self._specs).index(name):04d}"

    def _write_manifest(self) -> None:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "complete": self.closed,
            "metadata": self.metadata,
            "series": {
                name: {"file": self._stem(name), "dtype": spec.dtype.str, "shape": list(spec.shape)}
                for name, spec in self._specs.items()
            },
        }
        if self.closed:
            manifest["counts"] = {name: spec.count for name, spec in self._specs.items()}
        tmp = self.path / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(tmp, self.path / MANIFEST)  # atomic: readers see the old or the new one

    def _on_new_series(self, name: str) -> None:
        spec = self._specs[name]
        stem = self._stem(name)
        vsize = spec.dtype.itemsize * math.prod(spec.shape)
        sfile = open(self.path / f"{stem}.steps", "wb")
        vfile = open(self.path / f"{stem}.values", "wb")
        sfile.write(_STEPS_MAGIC + (8).to_bytes(8, "little"))
        vfile.write(_VALUES_MAGIC + vsize.to_bytes(8, "little"))
        sfile.flush()
        vfile.flush()
        self._files[name] = (sfile, vfile)
        self._buffers[name] = []
        self._write_manifest()

    def _on_metadata(self) -> None:
        self._write_manifest()

    def _write(self, name, steps, values) -> None:
        self._buffers[name].append((steps.copy(), values.copy()))
        self.buffered_bytes += steps.nbytes + values.nbytes
        if self.buffered_bytes >= self.flush_bytes or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Hand every buffered snapshot to the OS: a process killed after this keeps them."""
        for name, chunks in self._buffers.items():
            if not chunks:
                continue
            sfile, vfile = self._files[name]
            for _, values in chunks:  # values first: the reader trusts steps only up to the values present
                vfile.write(memoryview(values).cast("B"))
            vfile.flush()
            for steps, _ in chunks:
                sfile.write(steps.astype("<i8", copy=False).tobytes())
            sfile.flush()
            chunks.clear()
        self.buffered_bytes = 0
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush, mark the recording complete and close its files (idempotent)."""
        if self.closed:
            return
        self.flush()
        for sfile, vfile in self._files.values():
            sfile.close()
            vfile.close()
        self.closed = True
        self._write_manifest()

    def recording(self) -> Recording:
        """The recording as it stands on disk (flushes first)."""
        if not self.closed:
            self.flush()
        return load(self.path)
