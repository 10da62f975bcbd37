"""The base of everything a :class:`~dynamics.Recorder` captures.

A quantity says what it records (its series: name, kind; dtype and shape come with its
first value, and never change), when it runs (``when``: after a completed training step on
scheduled steps, or in forward hooks of its own), on which steps (``schedule``: the
recorder's unless it has one) and how it computes. The recorder schedules it and hands its
values to the sink. Writing one::

    class WeightNorms(Quantity):
        '''The Frobenius norm of every weight matrix, as scalar series ``norm/<name>``.'''

        kind = "derived"

        def setup(self, model):
            self.names = [n for n, p in model.named_parameters() if p.ndim == 2]

        def asked(self):
            return [f"norm/{n}" for n in self.names]

        def capture(self, rec, model, step):
            params = dict(model.named_parameters())
            for name in self.names:
                rec.emit(f"norm/{name}", step, params[name].norm(), self.kind, name)

    Recorder(model, opt, quantities=[WeightNorms()])

What a quantity may call on the recorder (``rec``): :meth:`~dynamics.Recorder.emit` (one
value of a series), :meth:`~dynamics.Recorder.summarize` (stats and histogram of a tensor),
:meth:`~dynamics.Recorder.gradient` (a parameter's gradient of this update) and
:meth:`~dynamics.Recorder.report` (a warning given once, an error with ``strict=True``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..blocks import TensorSet
from ..schedules import Schedule

__all__ = ["Quantity", "TensorQuantity"]


class Quantity:
    """One thing the recorder captures (subclass it; see the module docstring).

    Attributes
    ----------
    when : str
        ``"step"``: :meth:`capture` runs after a completed training step whose step the
        schedule holds (and on :meth:`~dynamics.Recorder.capture`); ``"forward"``: the
        quantity installs forward hooks in :meth:`attach` and records from them.
    kind : str
        The kind its series are written with (:data:`dynamics.recording.KINDS`).
    schedule : Schedule or None
        Its own steps; None (default) follows the recorder's ``schedule``.
    """

    when: ClassVar[str] = "step"
    kind: ClassVar[str] = "derived"
    schedule: Schedule | None = None

    def setup(self, model: torch.nn.Module) -> None:
        """Resolve what it records against ``model``, once, when the recorder is made; raise
        ``ValueError`` naming a selection that matches nothing."""

    def info(self) -> dict[str, Any]:
        """Its entries of the recording's ``metadata["recorder"]`` (default: its class name
        under ``"quantities"``)."""
        return {"quantities": [type(self).__name__]}

    def asked(self) -> list[str]:
        """The series it promises: those never captured by the end are listed in
        ``metadata["recorder"]["never_captured"]``."""
        return []

    def parameter_names(self) -> list[str]:
        """Names of the parameters whose values it records (checked against the optimizers:
        a recorded parameter that no given optimizer steps is reported)."""
        return []

    def gradient_names(self) -> list[str]:
        """Names of the parameters whose gradients it records (a frozen one is reported)."""
        return []

    def attach(self, model: torch.nn.Module, rec: Any) -> None:
        """Look up the tensors it reads (when the recorder is made, and again at every
        attach: a parameter may have been replaced since)."""

    def hooks(self, model: torch.nn.Module, rec: Any) -> list[Any]:
        """Install its hooks (``when == "forward"``) at attach; returns their handles,
        removed on detach."""
        return []

    def gradient_params(self) -> list[torch.nn.Parameter]:
        """After :meth:`attach`: the parameters whose gradients it reads. With several
        optimizers, each one's gradients are taken just before its own step (what
        :meth:`~dynamics.Recorder.gradient` returns)."""
        return []

    def capture(self, rec: Any, model: torch.nn.Module, step: int) -> None:
        """Hand its values at ``step`` to ``rec`` (``when == "step"`` quantities)."""
        raise NotImplementedError(f"{type(self).__name__} must define capture()")


class TensorQuantity(Quantity):
    """A list of tensors captured together (parameters, buffers, gradients): one
    ``torch.cat`` per dtype into a row of a block the sink hands out, no second copy.
    Subclasses set :attr:`names` and :attr:`sources` in :meth:`attach` (through
    :meth:`bind`) and return the tensors in :meth:`tensors`."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.tensor_set: TensorSet | None = None

    def bind(self, names: list[str], sources: list[str]) -> None:
        """The series it captures, fixed at the first attach (their blocks are built for them)."""
        if self.tensor_set is None:
            self.tensor_set = TensorSet(self.kind, names, sources)

    def asked(self) -> list[str]:
        return list(self.tensor_set.names) if self.tensor_set is not None else []

    def tensors(self, rec: Any, step: int) -> list[torch.Tensor | None]:
        """The tensors to capture now, in the order of the series (None: none this step)."""
        raise NotImplementedError

    def capture(self, rec: Any, model: torch.nn.Module, step: int) -> None:
        if self.tensor_set is not None and self.tensor_set.names:
            rec.capture_tensors(self.tensor_set, step, self.tensors(rec, step))


def slot(model: torch.nn.Module, name: str, table: str) -> tuple[dict, str]:
    """``(module._parameters, key)`` of a parameter (``table="_parameters"``) or buffer:
    read at each capture, so a tensor replaced after attaching (``model.double()`` replaces
    buffers) is still found."""
    owner, _, key = name.rpartition(".")
    return getattr(model.get_submodule(owner), table), key
