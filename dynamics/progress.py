"""Progress bars that never flood a saved notebook or a log file.

:func:`progress_bar` is ``tqdm`` with one rule for where it draws:

* in a terminal: tqdm's text bar on stderr, as usual;
* in a Jupyter kernel with ``ipywidgets``: tqdm's notebook widget (one output, updated in
  place, saved as a single widget state);
* in a kernel without ``ipywidgets``, or when stderr is not a terminal (a pipe, a CI log,
  nbclient): no bar. A text bar there writes a line per refresh, and a saved notebook keeps
  every one of them (hundreds of stderr outputs per render cell, and a ``TqdmWarning``).

``NNDYNAMICS_PROGRESS=1`` forces the text bar anywhere, ``=0`` turns bars off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["progress_bar", "bar_kind"]


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def bar_kind() -> str:
    """Which bar :func:`progress_bar` draws here: ``"text"``, ``"widget"`` or ``"none"``."""
    forced = os.environ.get("NNDYNAMICS_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return "text" if forced == "1" else "none"
    if _in_kernel():
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return "none"
        return "widget"
    try:
        return "text" if sys.stderr is not None and sys.stderr.isatty() else "none"
    except (AttributeError, ValueError):  # a closed or replaced stream
        return "none"


def progress_bar(*args: Any, disable: bool = False, **kwargs: Any):
    """A ``tqdm`` bar (same arguments) drawn as :func:`bar_kind` decides; ``disable=True``
    or a place without a bar gives a silent one that still counts (``.n``)."""
    kind = "none" if disable else bar_kind()
    if kind == "widget":
        from tqdm.notebook import tqdm
    else:
        from tqdm import tqdm
    return tqdm(*args, disable=kind == "none", **kwargs)
