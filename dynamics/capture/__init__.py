"""Capturing a training run: the :class:`Recorder`, the quantities it captures, schedules.

Layers, each importing only those before it (``tests/test_layers.py`` checks it)::

    schedules     which steps are captured (every, at_steps, log_spaced)
    torch_compat  compiled and wrapped models and optimizers, hooks torch.compile must not
                  trace, dtypes numpy lacks, torch.distributed
    blocks        tensors captured together into blocks the sink hands out
    quantities    what is captured: one small class each on Quantity
    output        what the recorder hands its sink (declare, emit, blocks, NaN reports)
    resume        a recording continued after a restart from a checkpoint
    recorder      the Recorder: steps, hooks, schedule, lifecycle
"""

from .quantities import (
    Activations,
    Buffers,
    Derived,
    Gradients,
    Parameters,
    Probe,
    Quantity,
    Sharpness,
    Summaries,
    TensorQuantity,
)
from .recorder import Recorder, RecorderError, RecorderWarning
from .schedules import Schedule, at_steps, every, log_spaced
from .torch_compat import mean_over_ranks

__all__ = [
    "Recorder",
    "RecorderWarning",
    "RecorderError",
    "Schedule",
    "every",
    "log_spaced",
    "at_steps",
    "mean_over_ranks",
    "Quantity",
    "TensorQuantity",
    "Parameters",
    "Buffers",
    "Gradients",
    "Derived",
    "Summaries",
    "Activations",
    "Sharpness",
    "Probe",
]
