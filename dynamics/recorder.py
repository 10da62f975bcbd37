"""Recorder: hooks a torch model (and its optimizer) and streams snapshots into a Recording."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from .recording import MemoryWriter, Recording, RecordingWriter
from .summaries import Summarizer

__all__ = ["Recorder", "Schedule", "every", "log_spaced", "at_steps"]


# --------------------------------------------------------------------------------------
# Schedules: which steps are captured
# --------------------------------------------------------------------------------------


class Schedule:
    """A predicate over training steps; ``step in schedule`` says whether to capture.

    Build one with :func:`every`, :func:`log_spaced` or :func:`at_steps`, or pass an int
    (every k steps) or a list of steps wherever a schedule is expected.
    """

    def __init__(self, contains: Callable[[int], bool], description: str):
        self._contains = contains
        self.description = description

    def __contains__(self, step: int) -> bool:
        return self._contains(int(step))

    def __repr__(self) -> str:
        return f"Schedule({self.description})"

    @staticmethod
    def coerce(spec: "Schedule | int | Iterable[int]") -> "Schedule":
        """Turn an int (every k), an iterable of steps, or a Schedule into a Schedule."""
        if isinstance(spec, Schedule):
            return spec
        if isinstance(spec, (int, np.integer)):
            return every(int(spec))
        return at_steps(spec)


def every(k: int) -> Schedule:
    """Capture at steps 0, k, 2k, ..."""
    if k < 1:
        raise ValueError(f"schedule: every k steps needs k >= 1, got {k}")
    return Schedule(lambda s: s % k == 0, f"every {k}")


def at_steps(steps: Iterable[int]) -> Schedule:
    """Capture exactly at the listed steps."""
    chosen = frozenset(int(s) for s in steps)
    if any(s < 0 for s in chosen):
        raise ValueError("schedule: steps must be >= 0")
    return Schedule(chosen.__contains__, f"{len(chosen)} listed steps")


def log_spaced(n: int, last: int) -> Schedule:
    """About ``n`` steps spaced evenly in log scale from 1 to ``last``, plus step 0."""
    if n < 1 or last < 1:
        raise ValueError(f"schedule: log_spaced needs n >= 1 and last >= 1, got n={n}, last={last}")
    steps = {0, *np.unique(np.round(np.geomspace(1, last, n)).astype(np.int64)).tolist()}
    sched = at_steps(steps)
    sched.description = f"{len(steps)} log-spaced steps up to {last}"
    return sched


# --------------------------------------------------------------------------------------
# Recorder
# --------------------------------------------------------------------------------------


def _patterns(spec: str | Sequence[str] | None) -> list[str]:
    return [] if spec is None else [spec] if isinstance(spec, str) else list(spec)


def _match(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class Recorder:
    """Capture parameters, gradients and derived quantities of a model over training.

    Attach it to a model and, where there is one, its optimizer: after every
    ``optimizer.step()`` the recorder advances its step counter and, on scheduled steps,
    captures. In a hand-written update loop call :meth:`tick` after each update instead
    (or :meth:`capture` to capture right now). Scalars go through :meth:`log`.

    Recording never changes the run: captures run under ``torch.no_grad()``, draw no
    random numbers and only read parameters and gradients.

    Parameters
    ----------
    model : torch.nn.Module
        Held weakly: the recorder does not keep a model alive.
    optimizer : torch.optim.Optimizer, optional
        If given, a step post-hook captures after each ``step()``.
    params : str or sequence of str or None
        Shell-style patterns over ``model.named_parameters()`` names (``"*"``: all;
        ``"layers.0.*"``). ``None`` records no parameters. Series are named as the parameter.
    grads : bool
        Also record the gradient of each selected parameter as series ``"grad/<name>"``.
    derived : mapping of str to callable, optional
        ``{"positions": lambda model: model.a[:, None] * model.w}``: functions of the model
        returning a tensor or array of fixed shape, captured on the same schedule.
    schedule : Schedule, int or iterable of int
        Steps to capture (int k: every k steps). Step 0 is the state at attach time.
    path : path-like, optional
        Stream to a recording directory on disk (bounded memory, survives a crash).
        Without it, snapshots stay in memory.
    metadata : dict, optional
        JSON-able metadata for the recording (experiment, config, seed ...).
    overwrite : bool
        Replace an existing recording at ``path``.
    flush_seconds : float
        With ``path``: how much wall time of training a kill may lose (every series is
        written and committed at least this often; see :class:`RecordingWriter`).
    capture_initial : bool
        Capture step 0 on attach if the schedule contains it.
    summaries : str or sequence of str or None
        Patterns over parameter names whose *summaries* are recorded on the schedule
        (computed on the tensor's device, see :mod:`dynamics.summaries`): series
        ``stats/<name>`` (4,) float64 = mean, std, min, max; ``hist/<name>`` (bins,)
        int64 counts; and, with adaptive bins, ``edges/<name>`` (bins + 1,).
    summary_grads : bool
        Also summarise the gradients of those parameters (``stats/grad/<name>`` ...).
    activations : str or sequence of str or None
        Patterns over module names (``model.named_modules()``) whose outputs are
        summarised by forward hooks (``stats/act/<module>`` ...): a Linear or Conv
        module's output is a pre-activation, a ReLU module's output an activation. The
        first forward pass after a scheduled step is recorded under that step.
    summarizer : Summarizer, optional
        Bins and range of the histograms (default: 30 adaptive bins).

    Examples
    --------
    >>> with Recorder(model, opt, schedule=10, path="run.rec") as rec:   # doctest: +SKIP
    ...     for x, y in data:
    ...         opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()
    ...         rec.log(loss=loss)
    >>> recording = rec.recording                                       # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        params: str | Sequence[str] | None = "*",
        grads: bool = False,
        derived: Mapping[str, Callable[[torch.nn.Module], Any]] | None = None,
        schedule: Schedule | int | Iterable[int] = 1,
        path: str | os.PathLike | None = None,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        flush_seconds: float = 1.0,
        capture_initial: bool = True,
        summaries: str | Sequence[str] | None = None,
        summary_grads: bool = False,
        activations: str | Sequence[str] | None = None,
        summarizer: Summarizer | None = None,
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Recorder needs a torch.nn.Module, got {type(model).__name__}")
        self._model = weakref.ref(model)
        self._optimizer = weakref.ref(optimizer) if optimizer is not None else None
        patterns = _patterns(params)
        self._param_names = [n for n, _ in model.named_parameters() if _match(n, patterns)]
        if patterns and not self._param_names:
            raise ValueError(f"Recorder: no parameter matches {patterns}; the model has {[n for n, _ in model.named_parameters()]}")
        all_params = [n for n, _ in model.named_parameters()]
        spatterns = _patterns(summaries)
        self._summary_names = [n for n in all_params if _match(n, spatterns)]
        if spatterns and not self._summary_names:
            raise ValueError(f"Recorder: no parameter matches summaries={spatterns}; the model has {all_params}")
        apatterns = _patterns(activations)
        self._activation_names = [n for n, _ in model.named_modules() if n and _match(n, apatterns)]
        if apatterns and not self._activation_names:
            raise ValueError(f"Recorder: no module matches activations={apatterns}; "
                             f"the model has {[n for n, _ in model.named_modules() if n]}")
        self.summary_grads = bool(summary_grads)
        self.summarizer = summarizer or Summarizer()
        self._activation_last: dict[str, int] = {}
        self._quiet = False
        self.grads = bool(grads)
        self.derived = dict(derived or {})
        self.schedule = Schedule.coerce(schedule)
        self.capture_initial = capture_initial
        meta = dict(metadata or {})
        meta.setdefault("recorder", {"params": self._param_names, "grads": self.grads, "derived": list(self.derived),
                                     "schedule": self.schedule.description})
        if self._summary_names or self._activation_names:
            meta["recorder"]["summaries"] = {**self.summarizer.describe(), "params": self._summary_names,
                                             "grads": self.summary_grads, "activations": self._activation_names}
        self._sink = (RecordingWriter(path, meta, overwrite=overwrite, flush_seconds=flush_seconds)
                      if path is not None else MemoryWriter(meta))
        self.step = 0
        self._handles: list[Any] = []
        self._pending: list[tuple[str, int, torch.Tensor, Any, tuple]] = []  # device->host copies in flight
        self._declared: set[str] = set()
        self._params: list[tuple[str, torch.nn.Parameter]] = []
        self._resolve_params()
        self.attached = False

    def _resolve_params(self) -> None:
        # Looked up by name once (at construction and on each attach), not at every
        # capture: walking the module tree costs more than copying a small model's weights.
        model = self._model()
        if model is not None:
            named = dict(model.named_parameters())
            self._params = [(name, named[name]) for name in self._param_names if name in named]
            self._summary_params = [(name, named[name]) for name in self._summary_names if name in named]

    def _activation_hook(self, name: str):
        def hook(module, inputs, output) -> None:
            step = self.step
            if self._quiet or self._activation_last.get(name) == step or step not in self.schedule:
                return
            self._activation_last[name] = step
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, torch.Tensor):
                self._summarize(f"act/{name}", step, out, "activation", name)

        return hook

    @contextlib.contextmanager
    def quiet(self):
        """Forward passes inside this block are not summarised (e.g. an evaluation on
        held-out data between training steps, whose activations are another population)."""
        self._quiet, before = True, self._quiet
        try:
            yield self
        finally:
            self._quiet = before

    def _summarize(self, name: str, step: int, tensor: torch.Tensor, of: str, source: str) -> None:
        stats, counts, edges = self.summarizer(tensor)
        self._emit(f"stats/{name}", step, stats, "stats", source, of)
        self._emit(f"hist/{name}", step, counts, "histogram", source, of)
        if self.summarizer.adaptive:
            self._emit(f"edges/{name}", step, edges, "edges", source, of)

    # -- lifecycle ---------------------------------------------------------------------
    def attach(self) -> "Recorder":
        """Install the optimizer hook and capture step 0 (if scheduled). Returns self."""
        if self.attached:
            return self
        if self._sink.closed:
            raise RuntimeError("Recorder: this recording is closed; make a new Recorder")
        opt = self._optimizer() if self._optimizer else None
        if opt is not None:
            self._handles.append(opt.register_step_post_hook(self._after_optimizer_step))
        model = self._model()
        if model is not None and self._activation_names:
            modules = dict(model.named_modules())
            for name in self._activation_names:
                self._handles.append(modules[name].register_forward_hook(self._activation_hook(name)))
        self._resolve_params()
        self.attached = True
        if self.capture_initial and self.step in self.schedule:
            self.capture()
        return self

    def detach(self) -> None:
        """Remove every hook this recorder installed. Harmless to call twice."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.attached = False

    def close(self, complete: bool = True) -> None:
        """Detach, finish pending copies and finalize the recording (idempotent).

        ``complete=False`` (what leaving a ``with`` block by an exception does) keeps
        everything recorded but marks the recording as cut short.
        """
        self.detach()
        if not self._sink.closed:
            self._drain()
            self._sink.close(complete=complete)

    def __enter__(self) -> "Recorder":
        return self.attach()

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)

    @property
    def recording(self) -> Recording:
        """What has been recorded so far (final once the recorder is closed)."""
        self._drain()
        return self._sink.recording()

    def update_metadata(self, **items: Any) -> None:
        """Merge JSON-able items into the recording's metadata."""
        self._sink.update_metadata(**items)

    # -- capture -----------------------------------------------------------------------
    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        self.tick()

    def tick(self) -> None:
        """Advance the step counter by one update and capture if the schedule says so."""
        self.step += 1
        if self.step in self.schedule:
            self.capture()

    @torch.no_grad()
    def capture(self, step: int | None = None) -> None:
        """Capture every selected quantity now, at ``step`` (default: the current step)."""
        model = self._model()
        if model is None:
            raise RuntimeError("Recorder: the model has been garbage-collected")
        step = self.step if step is None else int(step)
        if self._pending:
            self._drain()
        for name, param in self._params:
            self._emit(name, step, param, "parameter", name)
        if self.grads:
            for name, param in self._params:
                if param.grad is not None:
                    self._emit(f"grad/{name}", step, param.grad, "gradient", name)
        for name, fn in self.derived.items():
            self._emit(name, step, fn(model), "derived")
        for name, param in self._summary_params:
            self._summarize(name, step, param, "parameter", name)
            if self.summary_grads and param.grad is not None:
                self._summarize(f"grad/{name}", step, param.grad, "gradient", name)

    def log(self, step: int | None = None, **scalars: Any) -> None:
        """Record scalar series at ``step`` (default: the current step), e.g. ``log(loss=l)``.

        Tensors are read with ``.item()``, which waits for a GPU to finish that value.
        """
        step = self.step if step is None else int(step)
        for name, value in scalars.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().item()
            self._append(name, step, np.float64(value), "scalar")

    def put(self, name: str, value: Any, *, step: int | None = None) -> None:
        """Record one array (or tensor) snapshot of series ``name`` at ``step`` (default: now).

        For data that is not a parameter or a function of the model, such as the training
        set a scene draws beside the weights. The value is copied before this returns.
        """
        self._emit(name, self.step if step is None else int(step), value, "data")

    def _append(self, name: str, step: int, value: np.ndarray, kind: str = "", source: str = "", of: str = "") -> None:
        # the first snapshot of a series declares what it holds (written into the manifest)
        if name not in self._declared:
            value = np.asarray(value)
            self._sink.declare(name, value.dtype, value.shape, kind=kind, source=source, of=of)
            self._declared.add(name)
        self._sink.append(name, step, value)

    def _emit(self, name: str, step: int, value: Any, kind: str, source: str = "", of: str = "") -> None:
        if not isinstance(value, torch.Tensor):
            self._append(name, step, np.asarray(value), kind, source, of)
            return
        value = value.detach()
        if value.dtype is torch.bfloat16:
            value = value.float()  # numpy has no bfloat16
        if value.is_cpu:
            # no copy here: every sink copies what it keeps before this returns
            self._append(name, step, value.numpy(), kind, source, of)
            return
        # Accelerator tensor: start an asynchronous copy into pinned memory and collect it
        # at the next capture, so the training step is not stalled waiting for the copy.
        if value.device.type != "cuda":  # other accelerators: a plain blocking copy
            self._append(name, step, value.cpu().numpy(), kind, source, of)
            return
        host = torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=True)
        host.copy_(value, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        if not self._pending:  # a commit must not cover this step before the copy is appended
            self._sink.hold_from(step)
        self._pending.append((name, step, host, event, (kind, source, of)))

    def _drain(self) -> None:
        for name, step, host, event, info in self._pending:
            event.synchronize()
            self._append(name, step, host.numpy(), *info)
        if self._pending:
            self._pending.clear()
            self._sink.hold_from(None)
