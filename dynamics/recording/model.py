"""The data model every scene reads: :class:`Series`, :class:`Recording`, :class:`Summary`
(numpy only; the layers that read and write disks are imported when used)."""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

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
    "probe": "a module's full output for a fixed probe batch, (n, *features) (source: the module)",
    "data": "data recorded beside the run with Recorder.put() (a training set)",
    "curvature": "top Hessian eigenvalues (Sharpness), and the edge of stability beside them",
    "landscape": "the loss over a plane of parameters (dynamics.landscape): the (N, N) grid, "
    "the plane's (2, P) directions",
    "path": "the recorded snapshots in that plane (T, 2), the loss at each and at its projection",
}
#: What a summarised tensor is (the ``of`` of stats, histogram and edges series).
SUMMARISED = ("parameter", "gradient", "activation")


class RecordingError(ValueError):
    """A recording on disk is missing, truncated, foreign, unsafe, damaged or inconsistent,
    or is being written by another process."""


class RecordingNotFound(RecordingError, FileNotFoundError):
    """No recording at that path (also a FileNotFoundError, as before it was a RecordingError)."""


class RecordingExists(RecordingError, FileExistsError):
    """Something is already at the path a writer was asked to create (also a
    FileExistsError, which it was before it was a RecordingError)."""


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
    values : ``(T, *shape)`` array
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
            raise ValueError(
                f"a summary's 'of' must be one of {', '.join(SUMMARISED)}, got {self.of!r}"
            )

    @property
    def info(self) -> dict[str, str]:
        """``kind``, ``source`` and ``of``, only those that are set (as in the manifest)."""
        return {
            k: v for k, v in (("kind", self.kind), ("source", self.source), ("of", self.of)) if v
        }

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
        hi = (
            len(self.steps) if stop is None else int(np.searchsorted(self.steps, stop, side="left"))
        )
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
    committed_step : int, optional
        For a recording loaded from disk: the last step its writer committed (every series
        holds all of its snapshots up to this step and none after it); None before the
        first commit, or for a recording not from disk.
    """

    def __init__(
        self,
        series: Mapping[str, Series],
        metadata: Mapping[str, Any] | None = None,
        *,
        complete: bool = True,
        path: Path | None = None,
        committed_step: int | None = None,
    ):
        self._series = dict(series)
        self.metadata = dict(metadata or {})
        self.complete = complete
        self.path = path
        self.committed_step = committed_step

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
            if (
                "stats" in names
                and "histogram" in names
                and ("edges" in names or fixed is not None)
            ):
                summary = Summary(
                    of, source, names["stats"], names["histogram"], names.get("edges"), fixed
                )
                out[summary.label] = summary
        return out

    def require(self, *names: str) -> None:
        """Raise KeyError naming every one of ``names`` that this recording lacks."""
        missing = [n for n in names if n not in self._series]
        if missing:
            raise KeyError(self._missing_message(missing))

    def _missing_message(self, names: list[str]) -> str:
        """One line: the missing names, then what there is (a few series: all of them;
        many, as a real model has: the closest names and the count)."""
        where = f" {self.path}" if self.path else ""
        have = list(self._series)
        if len(have) <= 12:
            there = f"it has: {', '.join(have) or 'none'}"
        else:
            close = dict.fromkeys(
                m for n in names for m in difflib.get_close_matches(n, have, 3, 0.6)
            )
            there = (f"closest: {', '.join(map(repr, close))} " if close else "") + (
                f"({len(have)} series in all, e.g. {', '.join(have[:3])})"
            )
        return f"recording{where} has no series {', '.join(map(repr, names))}; {there}"

    def __repr__(self) -> str:
        parts = [f"{k}: {len(s)}x{s.shape}" for k, s in self._series.items()]
        state = "" if self.complete else ", incomplete"
        return f"Recording({', '.join(parts)}{state})"

    # -- persistence -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: bool = False) -> "Recording":
        """Open a recording directory written by :class:`DiskSink` (lazy, no pickle)."""
        from .reader import load  # the layers above are imported when used, never at import

        return load(path, verify=verify)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, chunk: int = 256) -> Path:
        """Write this recording to ``path`` (a directory), ``chunk`` snapshots at a time."""
        from .disk import DiskSink

        with DiskSink(path, self.metadata, overwrite=overwrite) as writer:
            for name, s in self._series.items():
                writer.declare(name, s.values.dtype, s.shape, **s.info)
                for lo in range(0, len(s), chunk):
                    writer.extend(
                        name, s.steps[lo : lo + chunk], np.asarray(s.values[lo : lo + chunk])
                    )
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
        return {
            "parameter": self.source,
            "gradient": f"gradient of {self.source}",
            "activation": f"activation {self.source}",
        }.get(self.of, self.source)

    def read(self, recording: Recording) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``steps (T,)``, ``counts (T, bins)`` and ``edges`` (``(T, bins + 1)`` or
        ``(bins + 1,)``)."""
        hist = recording[self.histogram]
        edges = recording[self.edges].values if self.edges else self.fixed_edges
        return np.asarray(hist.steps), np.asarray(hist.values), np.asarray(edges, dtype=float)
