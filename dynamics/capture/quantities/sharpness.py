"""The top Hessian eigenvalues of a loss on a fixed batch (:func:`dynamics.curvature.sharpness`),
warm-started from the previous capture's eigenvectors."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ...curvature import (
    PRECONDITIONED,
    optimizer_preconditioner,
    sharpness,
    split_batch,
    stability_edge,
)
from ..schedules import Schedule
from .base import Quantity

__all__ = ["Sharpness"]


class Sharpness(Quantity):
    """``Sharpness(F.cross_entropy, (x, y), k=1, every=10)``: series ``sharpness`` ((k,)
    float64, the k largest algebraic Hessian eigenvalues, descending) and ``sharpness/hvps``
    (the Hessian-vector products it took). With ``optimizer=`` an Adam, AdamW or RMSprop,
    also ``sharpness/preconditioned`` (of ``P^-1 H``, from its first step on) and its
    ``/hvps``. ``name`` replaces ``sharpness`` (several batches, several losses)."""

    kind = "derived"

    def __init__(
        self,
        loss_fn: Callable[..., torch.Tensor],
        batch: Any,
        k: int = 1,
        every: int | Schedule | None = None,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        tol: float = 1e-6,
        max_hvps: int = 200,
        name: str = "sharpness",
    ):
        split_batch(batch)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"Sharpness: k must be an int >= 1, got {k!r}")
        self.loss_fn, self.batch, self.k, self.name = loss_fn, batch, k, name
        self.optimizer, self.tol, self.max_hvps = optimizer, tol, max_hvps
        if every is not None:
            self.schedule = Schedule.coerce(every)
        self.previous: dict[str, torch.Tensor | None] = {name: None, f"{name}/preconditioned": None}

    def setup(self, model: torch.nn.Module) -> None:
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if self.k > n:
            raise ValueError(f"Sharpness: k={self.k} is more than the {n} trainable parameters")
        if self._preconditioned:
            optimizer_preconditioner(self.optimizer, model)  # refuses an optimizer it can't read

    def info(self) -> dict[str, Any]:
        loss = getattr(self.loss_fn, "__name__", type(self.loss_fn).__name__)
        size = len(split_batch(self.batch)[0])
        method = "lanczos, full reorthogonalisation, float64, warm-started"
        about = {"loss": loss, "batch": size, "k": self.k, "tol": self.tol, "method": method}
        return {"sharpness": {self.name: about}}

    def asked(self) -> list[str]:
        names = [self.name] + ([f"{self.name}/preconditioned"] if self._preconditioned else [])
        return [s for name in names for s in (name, f"{name}/hvps")]

    def capture(self, rec: Any, model: torch.nn.Module, step: int) -> None:
        edges = (None, None) if self.optimizer is None else stability_edge(self.optimizer)
        with rec.quiet():
            self.measure(rec, model, step, self.name, None, edges[0])
            if self._preconditioned:
                p = optimizer_preconditioner(self.optimizer, model)
                if p is not None:
                    name = f"{self.name}/preconditioned"
                    self.measure(rec, model, step, name, p, edges[1])

    @property
    def _preconditioned(self) -> bool:
        return type(self.optimizer).__name__ in PRECONDITIONED

    def measure(self, rec, model, step: int, name: str, p: Any, edge: float | None) -> None:
        found = sharpness(model, self.loss_fn, self.batch, self.k, init=self.previous[name],
                          preconditioner=p, tol=self.tol, max_hvps=self.max_hvps)  # fmt: skip
        self.previous[name] = found.vectors
        rec.emit(name, step, found.values, "curvature")
        rec.emit(f"{name}/hvps", step, torch.tensor(found.hvps), self.kind)
        if edge is not None:  # where the optimizer's step size puts the edge of stability
            rec.emit(f"{name}/edge", step, torch.tensor(edge, dtype=torch.float64), "curvature")
        if not found.converged:
            message = f"Sharpness: {name} not within tol={self.tol} after {found.hvps} HVPs"
            rec.report(f"{name}/tol", message, strict_raises=False)
