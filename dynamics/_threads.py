"""Threads for numba's parallel kernels, kept apart from torch's.

numba's OpenMP threading layer shares libgomp with torch: its first parallel region set
torch's thread count to the machine's (measured: ``torch.set_num_threads(1)``, one wide
kernel call, then ``torch.get_num_threads() == 2``). :class:`kernel_threads` puts torch's
count back after every call. numba's own pool (``workqueue``) does not touch torch, but a
parallel launch there cost 90 us against 4 us with OpenMP (measured on one SGD step of 20
neurons), so the layer is left as numba chooses it.
"""

from __future__ import annotations

import sys

import numba as nb

__all__ = ["kernel_threads"]


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
