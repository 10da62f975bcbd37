"""Read TensorBoard event files as a :class:`~dynamics.Recording`: your existing logs become
movies (``python -m scenes.render runs/exp1``).

>>> from dynamics.tensorboard import from_tensorboard          # doctest: +SKIP
>>> rec = from_tensorboard("runs/exp1")                        # doctest: +SKIP
>>> rec = dynamics.load("runs/exp1")                           # the same  # doctest: +SKIP

What becomes what:

* a scalar (``add_scalar``: ``simple_value``, or a one-element tensor of the ``scalars``
  plugin) becomes a ``scalar`` series named as its tag;
* a histogram (``add_histogram``: a ``HistogramProto``) becomes the three series a recorder
  writes for a summarised tensor: ``hist/<tag>`` (the bucket counts), ``edges/<tag>`` (the
  bucket edges) and ``stats/<tag>`` (mean, std, min, max from the proto's num, sum,
  sum_squares, min and max), so every scene that draws distributions draws it. The buckets
  are kept exactly: TensorBoard stores the right limit of each bucket; the left edge of the
  first is the histogram's minimum (or the first limit, where that is lower), and a limit
  of +-DBL_MAX (TensorFlow's last bucket) is the maximum. A tag whose
  histograms have different numbers of buckets is padded to the largest with empty,
  zero-width buckets at its maximum. Tags named ``grad/...`` or ``act/...`` (as
  ``python -m dynamics.export`` writes them) are summaries of gradients or activations.
* steps are the events' steps; where a run restarted and logged a step again, the later
  events replace the earlier ones from that step on (as TensorBoard purges them).

Event files are read with a small reader of their record format (length, masked CRC-32C of
the length, data, masked CRC-32C of the data; the CRC in a numba kernel) and of the few
protobuf messages involved, not with the ``tensorboard`` package, which stays optional: a
recording of TensorBoard logs needs nothing this library does not already depend on. A
damaged or truncated file (a run still writing, a flipped byte) loads up to its last good
record: a record whose data checksum fails is skipped, a damaged length ends the file, and
one warning says what was skipped.

A log directory holding event files in several subdirectories is several runs:
:func:`runs` lists them, :func:`from_tensorboard` reads one, :func:`dynamics.load_runs`
reads them all, each named after its folder (``python -m scenes.render LOGDIR`` draws
them on one timeline).
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from pathlib import Path

import numba
import numpy as np

from .recording import Recording, RecordingError, Series

__all__ = ["from_tensorboard", "runs", "is_event_log", "TensorBoardWarning"]

_EVENTS = "events.out.tfevents"


class TensorBoardWarning(UserWarning):
    """Records of an event file that could not be read (damaged, truncated) were skipped."""


# -- CRC-32C (Castagnoli), masked as TFRecord does ------------------------------------------


def _crc32c_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _crc32c_table()


@numba.njit(cache=True, nogil=True)
def _crc32c_kernel(data: np.ndarray, table: np.ndarray) -> int:  # pragma: no cover (jitted)
    crc = np.uint32(0xFFFFFFFF)
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


def _masked_crc(data: bytes) -> int:
    crc = int(_crc32c_kernel(np.frombuffer(data, np.uint8), _TABLE))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# -- protobuf wire format: just what Event, Summary, HistogramProto and TensorProto need -------


class _Bad(Exception):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise _Bad("bad varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    """``(field number, wire type, value)`` of each field of a message: an int for varints,
    bytes for the others."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise _Bad(f"wire type {wire}")
        if i > n:
            raise _Bad("truncated field")
        yield field, wire, value


def _doubles(wire: int, value) -> list[float]:
    if wire == 1:
        return [struct.unpack("<d", value)[0]]
    if wire == 2 and len(value) % 8 == 0:
        return np.frombuffer(value, "<f8").tolist()
    raise _Bad("not doubles")


def _floats(wire: int, value) -> list[float]:
    if wire == 5:
        return [struct.unpack("<f", value)[0]]
    if wire == 2 and len(value) % 4 == 0:
        return np.frombuffer(value, "<f4").tolist()
    raise _Bad("not floats")


def _histogram(buf: bytes) -> dict:
    h = {"min": 0.0, "max": 0.0, "num": 0.0, "sum": 0.0, "sum_squares": 0.0}
    limits: list[float] = []
    counts: list[float] = []
    names = {1: "min", 2: "max", 3: "num", 4: "sum", 5: "sum_squares"}
    for field, wire, value in _fields(buf):
        if field in names and wire == 1:
            h[names[field]] = struct.unpack("<d", value)[0]
        elif field == 6:
            limits += _doubles(wire, value)
        elif field == 7:
            counts += _doubles(wire, value)
    if not limits or len(limits) != len(counts):
        raise _Bad("histogram without buckets")
    h["limits"], h["counts"] = limits, counts
    return h


def _tensor_scalar(buf: bytes) -> float | None:
    """The value of a one-element float or double TensorProto (None otherwise)."""
    values: list[float] = []
    dtype = 0
    content = b""
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 0:
            dtype = value
        elif field == 4 and wire == 2:
            content = value
        elif field == 5:
            values += _floats(wire, value)
        elif field == 6:
            values += _doubles(wire, value)
    if not values and content:  # DT_FLOAT = 1, DT_DOUBLE = 2
        if dtype == 1 and len(content) == 4:
            values = [struct.unpack("<f", content)[0]]
        elif dtype == 2 and len(content) == 8:
            values = [struct.unpack("<d", content)[0]]
    return values[0] if len(values) == 1 else None


def _plugin(buf: bytes) -> str:
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 2:  # plugin_data
            for f2, w2, v2 in _fields(value):
                if f2 == 1 and w2 == 2:
                    return bytes(v2).decode("utf-8", "replace")
    return ""


def _summary_values(buf: bytes):
    """``(tag, "scalar", value)`` and ``(tag, "histogram", dict)`` of a Summary."""
    for field, wire, value in _fields(buf):
        if field != 1 or wire != 2:
            continue
        tag, simple, histo, tensor, plugin = None, None, None, None, ""
        for f, w, v in _fields(value):
            if f == 1 and w == 2:
                tag = bytes(v).decode("utf-8", "replace")
            elif f == 2 and w == 5:
                simple = struct.unpack("<f", v)[0]
            elif f == 5 and w == 2:
                histo = v
            elif f == 8 and w == 2:
                tensor = v
            elif f == 9 and w == 2:
                plugin = _plugin(v)
        if tag is None:
            continue
        if simple is not None:
            yield tag, "scalar", simple
        elif histo is not None:
            yield tag, "histogram", _histogram(histo)
        elif tensor is not None and plugin in ("scalars", ""):
            x = _tensor_scalar(tensor)
            if x is not None:
                yield tag, "scalar", x


def _events(path: Path, skipped: list[str]):
    """``(wall_time, step, summary bytes)`` of every event with a summary in one file, up to
    its last good record; what could not be read is described in ``skipped``."""
    with open(path, "rb") as f:
        data = f.read()
    i, n, bad = 0, len(data), 0
    while i < n:
        if n - i < 12:
            skipped.append(f"{path.name}: {n - i} bytes of a truncated record at the end")
            break
        (length,) = struct.unpack_from("<Q", data, i)
        (length_crc,) = struct.unpack_from("<I", data, i + 8)
        if _masked_crc(data[i : i + 8]) != length_crc:
            skipped.append(f"{path.name}: a damaged record length at byte {i} and all after it")
            break
        if n - (i + 12) < length + 4:
            skipped.append(f"{path.name}: a truncated record at byte {i} (a run still writing?)")
            break
        payload = data[i + 12 : i + 12 + length]
        (data_crc,) = struct.unpack_from("<I", data, i + 12 + length)
        i += 12 + length + 4
        if _masked_crc(payload) != data_crc:
            bad += 1
            continue
        wall, step, summary = 0.0, 0, None
        try:
            for field, wire, value in _fields(payload):
                if field == 1 and wire == 1:
                    wall = struct.unpack("<d", value)[0]
                elif field == 2 and wire == 0:
                    step = value - (1 << 64) if value >= 1 << 63 else value
                elif field == 5 and wire == 2:
                    summary = value
        except _Bad:
            bad += 1
            continue
        if summary is not None:
            yield wall, step, summary
    if bad:
        skipped.append(f"{path.name}: {bad} record(s) whose checksum or contents are damaged")


# -- runs ------------------------------------------------------------------------------------


def is_event_log(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TensorBoard event file or a directory holding some (directly or
    in subdirectories: several runs)."""
    p = Path(path)
    if p.is_file():
        return p.name.startswith(_EVENTS)
    return p.is_dir() and not (p / "manifest.json").exists() and bool(runs(p))


def runs(logdir: str | os.PathLike, depth: int | None = None) -> dict[str, Path]:
    """The runs of a log directory: ``{name: directory}`` for every directory at or below
    ``logdir`` (at most ``depth`` levels below, if given) that holds event files (``"."``
    for ``logdir`` itself), sorted by name."""
    root = Path(logdir)
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if any(f.startswith(_EVENTS) for f in filenames):
            rel = os.path.relpath(dirpath, root)
            found[rel] = Path(dirpath)
        if depth is not None and len(Path(dirpath).relative_to(root).parts) >= depth:
            dirnames.clear()
    return dict(sorted(found.items()))


def from_tensorboard(path: str | os.PathLike) -> Recording:
    """The Recording of one TensorBoard run: an event file, or a directory holding the event
    files of one run (read in name order, which is the order they were written in).

    A directory whose event files are all in one subdirectory is that run. Raises
    :class:`~dynamics.RecordingError` (one line) where ``path`` holds no event file or several
    runs (it names them: read one with ``from_tensorboard(path / name)``). Warns
    once (:class:`TensorBoardWarning`) where damaged or truncated records were skipped.
    """
    p = Path(path)
    if p.is_file():
        files = [p]
    elif p.is_dir():
        files = sorted(f for f in p.iterdir() if f.name.startswith(_EVENTS) and f.is_file())
        if not files:
            found = runs(p)
            if not found:
                raise RecordingError(f"{p}: no TensorBoard event files ({_EVENTS}.*) here")
            if len(found) == 1:  # one run, in a subdirectory
                return from_tensorboard(next(iter(found.values())))
            names = list(found)
            raise RecordingError(
                f"{p}: holds {len(names)} TensorBoard runs ({', '.join(names[:5])}"
                f"{' ...' if len(names) > 5 else ''}); give one of them, e.g. {p / names[0]}, "
                "or read them all with dynamics.load_runs"
            )
    else:
        raise RecordingError(f"{p}: no such file or directory")
    scalars: dict[str, dict[int, float]] = {}
    histograms: dict[str, dict[int, dict]] = {}
    skipped: list[str] = []
    walls = []
    for file in files:
        for wall, step, summary in _events(file, skipped):
            walls.append(wall)
            try:
                values = list(_summary_values(summary))
            except _Bad:
                skipped.append(f"{file.name}: a summary that could not be parsed at step {step}")
                continue
            for tag, kind, value in values:
                table = (scalars if kind == "scalar" else histograms).setdefault(tag, {})
                for later in [s for s in table if s >= step]:  # a restart: purge, as TB does
                    del table[later]
                table[step] = value
    if skipped:
        warnings.warn(
            f"{p}: skipped {'; '.join(skipped)}; the rest of the log is read",
            TensorBoardWarning,
            stacklevel=2,
        )
    series: dict[str, Series] = {}
    for tag, points in scalars.items():
        steps = np.array(sorted(points), np.int64)
        series[tag] = Series(steps, np.array([points[s] for s in steps], np.float64), "scalar")
    for tag, points in histograms.items():
        series.update(_histogram_series(tag, points))
    if not series:
        raise RecordingError(f"{p}: the event files hold no scalar or histogram")
    metadata = {
        "experiment": p.name if p.is_dir() else p.parent.name,
        "source": {"tensorboard": str(p), "event_files": [f.name for f in files]},
    }
    if walls:
        metadata["source"]["wall_time"] = [min(walls), max(walls)]
    if skipped:
        metadata["source"]["skipped"] = skipped
    return Recording(series, metadata)


def _histogram_series(tag: str, points: dict[int, dict]) -> dict[str, Series]:
    steps = np.array(sorted(points), np.int64)
    width = max(len(points[s]["counts"]) for s in steps.tolist())
    counts = np.zeros((len(steps), width), np.float64)
    edges = np.zeros((len(steps), width + 1), np.float64)
    stats = np.zeros((len(steps), 4), np.float64)
    for i, s in enumerate(steps.tolist()):
        h = points[s]
        k = len(h["counts"])
        lo, hi = h["min"], h["max"]
        limits = np.array(h["limits"])
        # TensorFlow's own writer ends with a bucket up to DBL_MAX: the maximum stands for it
        limits[np.abs(limits) > 1e300] = hi
        counts[i, :k] = h["counts"]
        edges[i, 0] = min(lo, h["limits"][0])
        edges[i, 1 : k + 1] = limits
        edges[i, k + 1 :] = edges[i, k]  # padding: empty, zero-width buckets
        num = h["num"]
        mean = h["sum"] / num if num else math.nan
        var = h["sum_squares"] / num - mean * mean if num else math.nan
        stats[i] = mean, math.sqrt(max(var, 0.0)) if num else math.nan, lo, hi
    of, source = "parameter", tag
    for prefix, what in (("grad/", "gradient"), ("act/", "activation")):
        if tag.startswith(prefix):
            of, source = what, tag[len(prefix) :]
    whole = counts.round()
    counts_out = whole.astype(np.int64) if np.array_equal(whole, counts) else counts
    return {
        f"stats/{tag}": Series(steps, stats, "stats", source, of),
        f"hist/{tag}": Series(steps, counts_out, "histogram", source, of),
        f"edges/{tag}": Series(steps, edges, "edges", source, of),
    }
