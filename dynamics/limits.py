"""Documented ranges for config fields: every numeric flag of the command line is checked.

A config dataclass declares ``LIMITS = {"lr": (0, 1e3), ...}`` (inclusive bounds) and calls
:func:`check_limits` at the end of ``__post_init__`` (after its own, more specific checks).
A value outside its range, or not finite, raises ValueError naming the field, the range and
the value; the command line prints that as one line and shows the ranges in ``--help``.
The bounds are generous: they refuse what cannot be meant (``--lr 1e308``, ``--seed -1``),
not what is merely unusual.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["SEED", "check_limits", "describe"]

#: Seeds: what numpy and torch both take.
SEED = (0, 2**32 - 1)


def _number(b: float) -> str:
    return f"{int(b):,}" if float(b).is_integer() else f"{b:g}"


def describe(bounds: tuple[float, float]) -> str:
    """``(0, 1000.0)`` -> ``"0 to 1,000"``."""
    return " to ".join(map(_number, bounds))


def check_limits(config: Any, limits: Mapping[str, tuple[float, float]]) -> None:
    """Raise ValueError for the first field of ``config`` outside its ``limits``."""
    for name, (lo, hi) in limits.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"{name} must be between {_number(lo)} and {_number(hi)}, got {value}")
