"""dynamics: capture how a network trains (recorders, recordings, reference experiments).

``dynamics.recording`` needs only numpy, so scenes can load recordings without torch;
the torch-based names (``Recorder`` and the schedules) are imported on first use.
"""

from .recording import (
    DiskSink,
    MemorySink,
    MemoryWriter,
    Recording,
    RecordingError,
    RecordingWriter,
    Series,
    load,
    load_runs,
    verify,
)

__all__ = [
    "Recorder",
    "Schedule",
    "every",
    "log_spaced",
    "at_steps",
    "mean_over_ranks",
    "Recording",
    "RecordingError",
    "DiskSink",
    "MemorySink",
    "RecordingWriter",
    "MemoryWriter",
    "Series",
    "load",
    "load_runs",
    "verify",
]
__version__ = "0.1.0"

_LAZY = {"Recorder", "Schedule", "every", "log_spaced", "at_steps", "mean_over_ranks"}


def __getattr__(name):
    if name in _LAZY:
        from . import capture

        return getattr(capture, name)
    raise AttributeError(f"module 'dynamics' has no attribute {name!r}")
