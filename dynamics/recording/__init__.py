"""Recordings: named series of snapshots plus JSON metadata, streamed to disk and read lazily.

The package in its layers, each importing only those before it (``tests/test_layers.py``
checks it)::

    model    Series, Recording, Summary: the data model every scene reads (numpy only)
    format   the on-disk format, its specification, and the checks on every byte read
    reader   memory-mapped series, load(), load_runs(), verify()
    sink     the protocol between the recorder and a recording sink (Sink, Block)
    memory   MemorySink: a sink that keeps every series in memory
    files    the disk sink's series files, buffers, checksums and thread
    locks    one writer per recording: the lock file, atomic replacement
    disk     DiskSink: a sink that streams to disk, crash-safe, resumable

Everything that was importable from ``dynamics.recording`` before it became a package
still is, from here. Recording sinks are *sinks* (``DiskSink``, ``MemorySink``); *writers*
are the video encoders of :mod:`scenes.writers`. The sinks' former names,
``RecordingWriter`` and ``MemoryWriter``, stay as aliases.
"""

from .disk import DiskSink
from .format import DTYPES, FORMAT, MANIFEST, VERSION
from .locks import hold_existing
from .memory import MemorySink
from .model import (
    KINDS,
    SUMMARISED,
    Recording,
    RecordingError,
    RecordingExists,
    RecordingNotFound,
    Series,
    Summary,
    to_jsonable,
)
from .reader import load, load_runs, verified, verify
from .sink import Block, Sink

#: Former names of the sinks (kept: code written against them goes on working).
RecordingWriter = DiskSink
MemoryWriter = MemorySink

__all__ = [
    "KINDS",
    "SUMMARISED",
    "DTYPES",
    "FORMAT",
    "MANIFEST",
    "VERSION",
    "Recording",
    "RecordingError",
    "RecordingNotFound",
    "RecordingExists",
    "DiskSink",
    "MemorySink",
    "RecordingWriter",
    "MemoryWriter",
    "Sink",
    "Block",
    "Series",
    "Summary",
    "hold_existing",
    "load",
    "load_runs",
    "verify",
    "verified",
    "to_jsonable",
]
