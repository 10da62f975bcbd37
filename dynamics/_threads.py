"""Threads for numba's parallel kernels, kept apart from torch's.

numba's OpenMP threading layer shares libgomp with torch: its first parallel region set
torch's thread count to the machine's (measured: ``torch.set_num_threads(1)``, one summary
of 300 000 values, then ``torch.get_num_threads() == 2``), and its spinning threads slowed
whatever ran next. So, unless ``NUMBA_THREADING_LAYER`` says otherwise, the kernels run on
numba's own thread pool (``workqueue``), chosen here before any parallel launch; and
:class:`kernel_threads` restores torch's count after each call in case another layer had
already been started.
"""

from __future__ import annotations

import os
import sys

import numba as nb

__all__ = ["kernel_threads"]

if "NUMBA_THREADING_LAYER" not in os.environ and nb.config.THREADING_LAYER == "default":
    nb.config.THREADING_LAYER = "workqueue"


class kernel_threads:
    """Context manager: numba runs ``n`` threads inside (at most its configured number),
    and numba's and torch's thread counts are as before afterwards."""

    def __init__(self, n: int):
        self.n = max(1, min(int(n), nb.config.NUMBA_NUM_THREADS))

    def __enter__(self) -> "kernel_threads":
        torch = sys.modules.get("torch")
        self._torch = torch.get_num_threads() if torch is not None else None
        self._numba = nb.get_num_threads()
        nb.set_num_threads(self.n)
        return self

    def __exit__(self, *exc) -> None:
        nb.set_num_threads(self._numba)
        torch = sys.modules.get("torch")
        if self._torch is not None and torch.get_num_threads() != self._torch:
            torch.set_num_threads(self._torch)
