"""Representations of a fixed probe batch: ``probe/<module>``, the full outputs of named
modules, ``(T, n, *features)``, and the batch itself (``probe/inputs``, ``probe/labels``).

Why a separate forward pass, and how it leaves training alone: the outputs a scene compares
over training must be those of *one* batch (the training batches change every step), so at
each capture the probe runs the model once more on its own batch, with temporary forward
hooks on the chosen modules, and removes them. That pass runs under ``torch.no_grad()``
with every module in ``eval()`` mode (dropout off, BatchNorm normalising with its running
statistics and not updating them), restores each module's own ``training`` flag after it,
and saves and restores the random number generators (CPU, and CUDA where it is in use), so
a run with a probe is bit for bit the run without one (``tests/test_probe.py`` trains a
model with dropout and BatchNorm both ways). Forward passes under a probe are inside
:meth:`~dynamics.Recorder.quiet`, so ``Recorder(activations=...)`` does not summarise them.
A module that changes its own state in an eval-mode forward pass (a counter of its own) is
not protected.

The outputs are full arrays, not summaries, so they are bounded: one snapshot of every
probed output together may take at most ``max_bytes`` (:data:`MAX_SNAPSHOT_BYTES`, 64 MiB,
about 16.7 million float32 numbers; every capture stores another). The probe measures its
outputs with one guarded forward pass when the recorder is made and refuses a larger
snapshot then, in one line giving the estimate and the remedies (``dtype="float16"`` halves
it; fewer modules; a smaller batch).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..schedules import Schedule
from ..torch_compat import leaves, match, patterns
from .base import Quantity

__all__ = ["Probe", "MAX_SNAPSHOT_BYTES"]

#: The most bytes one snapshot of all of a probe's outputs may take, unless ``max_bytes``
#: says otherwise: 64 MiB (a batch of 512 points of 32 768 float32 features).
MAX_SNAPSHOT_BYTES = 64 << 20
DTYPES = {"float32": torch.float32, "float16": torch.float16}
RESERVED = ("inputs", "labels")  # the batch's own series: probe/inputs, probe/labels


class Probe(Quantity):
    """The outputs of the modules ``modules`` names for a fixed batch, at every capture.

    Parameters
    ----------
    inputs : Tensor, tuple of Tensors or mapping of str to Tensor
        The probe batch, ``n`` examples along the first axis of each tensor: the model is
        called as ``model(inputs)``, ``model(*inputs)`` (a tuple or list) or
        ``model(**inputs)`` (a mapping). Copied when the probe is made; moved to the
        model's device at each capture. Recorded once, at the first capture, as
        ``probe/inputs`` (a tuple's elements ``probe/inputs[0]``..., a mapping's
        ``probe/inputs[key]``), kind ``data``.
    labels : array-like of shape (n,), optional
        What colours the points in a picture (classes, or any number per example):
        recorded once as ``probe/labels``, kind ``data``.
    modules : str or sequence of str
        Shell-style patterns over ``named_modules()`` names (``"encoder.layers.*"``); each
        output tensor whose first axis has the batch's ``n`` examples becomes series
        ``probe/<module>`` (an output that is a tuple, list or dict: ``probe/<module>[0]``,
        ``probe/<module>[key]``, as ``Recorder(activations=...)`` names them). A module
        called twice in one forward pass gives its first call's output.
    schedule : Schedule, int or iterable of int, optional
        Its own capture steps (``every(100)``); None follows the recorder's schedule.
    dtype : str
        ``"float32"`` (default) or ``"float16"`` (half the bytes; values beyond 65 504
        become inf) for the recorded outputs.
    max_bytes : int
        The most bytes one snapshot of all outputs may take (default
        :data:`MAX_SNAPSHOT_BYTES`).

    Attributes
    ----------
    series_ : dict of str to (str, str)
        After setup: each recorded series, mapped to its module and the output's suffix.
    shapes_ : dict of str to tuple
        The shape of one snapshot of each series, ``(n, *features)``.
    skipped_ : list of str
        Outputs that are not recorded (not a tensor, or its first axis is not the batch).

    Examples
    --------
    >>> probe = Probe(x_probe, y_probe, modules=["0", "2"], schedule=every(10))  # doctest: +SKIP
    >>> Recorder(model, opt, quantities=[probe])                                 # doctest: +SKIP
    """

    kind = "probe"

    def __init__(
        self,
        inputs: Any,
        labels: Any = None,
        *,
        modules: str | Sequence[str],
        schedule: Schedule | int | Sequence[int] | None = None,
        dtype: str = "float32",
        max_bytes: int = MAX_SNAPSHOT_BYTES,
    ):
        if dtype not in DTYPES:
            raise ValueError(f"Probe: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if not max_bytes > 0:
            raise ValueError(f"Probe: max_bytes must be positive, got {max_bytes!r}")
        self.patterns = patterns(modules)
        if not self.patterns:
            raise ValueError("Probe: name the modules whose outputs to record (modules=...)")
        self.inputs = _copied(inputs)
        tensors = [t for _, t in leaves(self.inputs) if isinstance(t, torch.Tensor)]
        if not tensors or tensors[0].ndim == 0:
            raise ValueError("Probe: inputs must hold a tensor with the examples on its first axis")
        self.n = int(tensors[0].shape[0])
        self.labels = None if labels is None else _as_array(labels)
        if self.labels is not None and (self.labels.ndim != 1 or len(self.labels) != self.n):
            raise ValueError(
                f"Probe: labels must have shape ({self.n},), one per example; got "
                f"{self.labels.shape}"
            )
        self.schedule = None if schedule is None else Schedule.coerce(schedule)
        self.dtype, self.max_bytes = dtype, int(max_bytes)
        self._on: dict[torch.device, Any] = {}  # the inputs on each device they were used on
        self._first = True  # the batch itself is recorded at the first capture

    # -- setup -------------------------------------------------------------------------
    def setup(self, model: torch.nn.Module) -> None:
        every = [n for n, _ in model.named_modules() if n]
        selected = [n for n in every if match(n, self.patterns)]
        if not selected:
            raise ValueError(
                f"Probe: no module matches modules={self.patterns}; the model has {every}"
            )
        reserved = [n for n in selected if n in RESERVED]
        if reserved:
            raise ValueError(
                f"Probe: module {reserved[0]!r} would be recorded as probe/{reserved[0]}, the "
                "name of the probe batch's own series; rename the module or leave it out"
            )
        self.selected = selected
        outputs = self.outputs(model)  # one guarded pass: the shapes, before anything runs
        self.series_, self.shapes_, self.skipped_ = {}, {}, []
        for name in selected:
            if name not in outputs:
                self.skipped_.append(f"probe/{name} (the module was not called)")
            for suffix, out in outputs.get(name, []):
                key = f"probe/{name}{suffix}"
                if isinstance(out, torch.Tensor) and out.ndim >= 1 and out.shape[0] == self.n:
                    self.series_[key] = (name, suffix)
                    self.shapes_[key] = tuple(out.shape)
                elif out is not None:
                    what = (
                        f"shape {tuple(out.shape)}, not ({self.n}, ...)"
                        if isinstance(out, torch.Tensor)
                        else type(out).__name__
                    )
                    self.skipped_.append(f"{key} ({what})")
        if not self.series_:
            raise ValueError(
                f"Probe: no output of {selected} has the probe batch's {self.n} examples on its "
                f"first axis ({', '.join(self.skipped_) or 'every output is None'})"
            )
        self._check_size()

    def bytes_per_snapshot(self) -> int:
        """Bytes of one snapshot of every recorded output (after :meth:`setup`)."""
        itemsize = torch.empty((), dtype=DTYPES[self.dtype]).element_size()
        return sum(int(np.prod(s)) * itemsize for s in self.shapes_.values())

    def _check_size(self) -> None:
        size = self.bytes_per_snapshot()
        if size <= self.max_bytes:
            return
        half = "" if self.dtype == "float16" else f"dtype='float16' ({_size(size // 2)}), "
        raise ValueError(
            f"Probe: one snapshot of {len(self.shapes_)} outputs of {self.n} examples takes "
            f"{_size(size)} in {self.dtype} (every capture stores another), over the limit of "
            f"{_size(self.max_bytes)} per snapshot; record it with {half}fewer modules or a "
            "smaller probe batch, or raise max_bytes"
        )

    def info(self) -> dict[str, Any]:
        return {
            "quantities": [type(self).__name__],
            "probe": {
                "modules": self.selected,
                "examples": self.n,
                "dtype": self.dtype,
                "schedule": None if self.schedule is None else self.schedule.description,
                "mode": "eval, no_grad, random state restored",
            },
        }

    def asked(self) -> list[str]:
        data = [f"probe/inputs{s}" for s, t in leaves(self.inputs) if isinstance(t, torch.Tensor)]
        return [*self.series_, *data, *(["probe/labels"] if self.labels is not None else [])]

    # -- the pass ----------------------------------------------------------------------
    def outputs(self, model: torch.nn.Module, rec: Any = None) -> dict[str, list]:
        """The outputs of the selected modules for the probe batch: ``{module: [(suffix,
        output copy)]}``, from one forward pass in eval mode under ``no_grad`` that leaves
        the model's modes, the random state and the training untouched (see the module
        docstring). ``rec``: the recorder, whose activation summaries it silences."""
        modules = dict(model.named_modules())
        got: dict[str, list] = {}
        cast = DTYPES[self.dtype]

        def hook_for(name: str):
            def hook(module, args, output) -> None:
                if name not in got:  # copies: a later in-place op (ReLU(inplace=True))
                    got[name] = [  # must not change what is recorded
                        (s, _copy(o, cast)) for s, o in leaves(output)
                    ]

            return hook

        modes = [(m, m.training) for m in model.modules()]
        states = _rng_states()
        handles = [modules[n].register_forward_hook(hook_for(n)) for n in self.selected]
        try:
            with torch.no_grad(), rec.quiet() if rec is not None else contextlib.nullcontext():
                model.eval()
                inputs = self._inputs_on(_device_of(model))
                if isinstance(inputs, Mapping):
                    model(**inputs)
                elif isinstance(inputs, (tuple, list)):
                    model(*inputs)
                else:
                    model(inputs)
        finally:
            for h in handles:
                h.remove()
            for m, training in modes:
                m.training = training
            _set_rng_states(states)
        return got

    def _inputs_on(self, device: torch.device) -> Any:
        if device not in self._on:
            self._on[device] = _mapped(self.inputs, lambda t: t.to(device))
        return self._on[device]

    def capture(self, rec: Any, model: torch.nn.Module, step: int) -> None:
        if self._first:
            self._first = False
            # recorded once: a resumed recording already holds them from its first capture
            for suffix, t in leaves(self.inputs):
                name = f"probe/inputs{suffix}"
                if isinstance(t, torch.Tensor) and not rec.kept(name):  # a keyword may be a flag
                    rec.emit(name, step, t, "data")
            if self.labels is not None and not rec.kept("probe/labels"):
                rec.emit("probe/labels", step, self.labels, "data")
            for skipped in self.skipped_:
                rec.report(
                    f"probe-skipped/{skipped}",
                    f"Probe: {skipped} is not recorded: only tensors with the probe batch's "
                    f"{self.n} examples on their first axis are",
                    strict_raises=False,
                )
        outputs = self.outputs(model, rec)
        for key, (name, suffix) in self.series_.items():
            value = dict(outputs.get(name, [])).get(suffix)
            if isinstance(value, torch.Tensor):
                rec.emit(key, step, value, self.kind, name + suffix)


def _size(nbytes: int) -> str:
    """``"96.0 MiB"``, ``"25.0 KiB"``, ``"512 bytes"``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def _copy(out: Any, cast: torch.dtype) -> Any:
    """A copy of an output tensor, floating point ones in ``cast``; anything else as it is."""
    if not isinstance(out, torch.Tensor):
        return out
    return out.detach().to(cast, copy=True) if out.is_floating_point() else out.detach().clone()


def _mapped(obj: Any, fn) -> Any:
    """``obj`` (a tensor, or tuples, lists and mappings of them) with ``fn`` applied to
    every tensor."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, Mapping):
        return {k: _mapped(v, fn) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_mapped(v, fn) for v in obj)
    return obj


def _copied(inputs: Any) -> Any:
    """The probe batch, copied to the CPU (a tensor the caller changes later is not ours)."""
    if not isinstance(inputs, (torch.Tensor, Mapping, tuple, list)):
        inputs = torch.as_tensor(inputs)  # an array
    return _mapped(inputs, lambda t: t.detach().to("cpu", copy=True))


def _as_array(labels: Any) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu()
        labels = labels.float() if labels.dtype is torch.bfloat16 else labels
        return labels.numpy().copy()
    return np.array(labels)


def _device_of(model: torch.nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _rng_states() -> tuple:
    """The CPU generator's state, and every CUDA device's where CUDA is in use."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda else None


def _set_rng_states(states: tuple) -> None:
    cpu, cuda = states
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)
