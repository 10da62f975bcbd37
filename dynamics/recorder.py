"""The recorder, as it was imported before :mod:`dynamics.capture` held it (kept working)."""

from .capture import (  # noqa: F401
    Recorder,
    RecorderError,
    RecorderWarning,
    Schedule,
    at_steps,
    every,
    log_spaced,
    mean_over_ranks,
)
from .capture.blocks import Block as _Block  # noqa: F401  (tests tune its BYTES)

__all__ = [
    "Recorder",
    "RecorderWarning",
    "RecorderError",
    "Schedule",
    "every",
    "log_spaced",
    "at_steps",
    "mean_over_ranks",
]
