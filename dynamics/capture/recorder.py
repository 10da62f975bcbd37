"""Recorder: hooks a torch model (and its optimizer) and streams snapshots into a Recording.

What it captures are quantities (:mod:`dynamics.capture.quantities`, built from its keyword
arguments, plus any given); it counts the training steps, schedules them, and hands their
values to a sink (:mod:`dynamics.recording`: memory or disk)."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..recording import DiskSink, MemorySink, Recording
from ..summaries import Summarizer
from .blocks import TensorSet
from .errors import RecorderError, RecorderWarning
from .metadata import recorder_metadata
from .output import Output
from .quantities import Quantity, TensorQuantity, from_keywords
from .resume import resume_recording
from .schedules import Schedule
from .torch_compat import (
    eager,
    mean_over_ranks,
    patterns,
    set_grad_enabled,
    unwrap_model,
    unwrap_optimizers,
)

__all__ = ["Recorder", "RecorderWarning", "RecorderError"]


# Recorders attached to each model (one-time warning when a second one attaches)
_ATTACHED: "weakref.WeakKeyDictionary[torch.nn.Module, weakref.WeakSet]" = (
    weakref.WeakKeyDictionary()
)


class Recorder:
    """Capture parameters, gradients, buffers and derived quantities of a model over training.

    **Making a Recorder starts recording** (as ``register_forward_hook`` returns an attached
    handle): the constructor installs the hooks and captures the starting step.
    :meth:`close` ends it and finalizes the recording (leaving a ``with Recorder(...)``
    block does it for you); :meth:`detach` only pauses it (:meth:`attach` resumes).

    Once every given optimizer has stepped (since the last step) the recorder advances its
    step counter by one and, on scheduled steps, captures. In a hand-written update loop
    call :meth:`tick` after each update instead (or :meth:`capture` to capture right now).
    Scalars go through :meth:`log`.

    Gradients (``grads=True``, ``summary_grads=True``) are those of the update: with one
    optimizer, read right after its step; with several, each optimizer's parameters'
    gradients are taken just before *that* optimizer's step (its last in the training
    step), so another model's backward pass that adds into them afterwards (a GAN's
    generator loss flowing through the discriminator) does not change what is recorded.

    Recording never changes the run: captures run under ``torch.no_grad()``, draw no
    random numbers and only read parameters and gradients.

    Parameters
    ----------
    model : torch.nn.Module
        Held weakly: the recorder does not keep a model alive. A ``torch.compile``'d model
        (and ``DataParallel`` / ``DistributedDataParallel``) is looked through: series are
        named as on the original module and hooks go on it, outside the compiled graph.
    optimizer : torch.optim.Optimizer or sequence of them, optional
        Step post-hooks count the steps. With several optimizers (a GAN's D and G, or one per
        parameter group), one training step is complete when *every* one of them has stepped
        at least once since the previous step; it is captured then, after the last of them,
        so no parameter is recorded before its own update (``D, D, D, G`` is one step).
        Recorded parameters that require a gradient but that no given optimizer updates are
        reported once (:class:`RecorderWarning`; ``metadata["recorder"]["not_optimized"]``):
        another optimizer stepping them after the capture would make them one update stale.
    params : str or sequence of str or None
        Shell-style patterns over ``model.named_parameters()`` names (``"*"``: all;
        ``"layers.0.*"``). ``None`` records no parameters. Series are named as the parameter.
    buffers : str or sequence of str or None
        Patterns over ``model.named_buffers()`` (``"*running_*"``: BatchNorm's running
        statistics). None by default. Series are named as the buffer, kind ``"buffer"``.
    grads : bool
        Also record the gradient of each selected parameter as series ``"grad/<name>"``.
        Frozen parameters (``requires_grad=False``) have none: they are reported once and
        listed in ``metadata["recorder"]["frozen"]``.
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
        written and committed at least this often; see :class:`DiskSink`).
    resume : bool or mapping
        Continue the recording at ``path`` of a run restarted from a checkpoint: pass the
        :meth:`state_dict` saved in that checkpoint (or ``True`` with ``step=`` the
        checkpoint's step). Snapshots up to that step are kept, those after it (the crashed
        attempt's steps that the restarted run will do again) dropped, and the steps count
        on from there; ``metadata["resumed"]`` lists each resumption. The recording is
        rewritten beside ``path`` and swapped in, holding the old one's writer lock
        throughout. Without a recording at ``path`` a new one is started. A recording found
        *behind* its checkpoint (scheduled snapshots up to the checkpoint's step missing: a
        checkpoint saved without :meth:`state_dict`, then a kill before the recording's next
        commit) is refused with a :class:`~dynamics.RecordingError` saying what is missing.
    allow_gap : bool
        Resume a recording that is behind its checkpoint anyway; the missing steps are
        listed per series in ``metadata["resumed"][-1]["gap"]``.
    step : int
        The step counter's starting value (with ``resume=True`` on an existing recording,
        required: the checkpoint's step).
    capture_initial : bool
        Capture the starting step on attach if the schedule contains it.
    summaries : str or sequence of str or None
        Patterns over parameter names whose *summaries* are recorded on the schedule
        (computed on the tensor's device, see :mod:`dynamics.summaries`): series
        ``stats/<name>`` (4,) float64 = mean, std, min, max; ``hist/<name>`` (bins,)
        int64 counts; and, with adaptive bins, ``edges/<name>`` (bins + 1,).
    summary_grads : bool
        Also summarise the gradients of those parameters (``stats/grad/<name>`` ...).
    activations : str or sequence of str or None
        Patterns over module names (``model.named_modules()``) whose outputs are
        summarised by forward hooks (``stats/act/<module>`` ...). An output that is a tuple,
        list or dict (an LSTM's ``output, (h_n, c_n)``) gives one series per tensor in it:
        ``stats/act/lstm[0]``, ``stats/act/lstm[1][0]``, ``stats/act/attn[weights]``;
        other non-tensor elements are skipped (reported once), and None quietly (an
        optional output not asked for, as Hugging Face models return). The first forward
        pass after a scheduled step is recorded under that step.
    summarizer : Summarizer, optional
        Bins and range of the histograms (default: 30 adaptive bins).
    strict : bool
        Raise :class:`RecorderError` where the recorder would otherwise warn once (a second
        recorder on the model, frozen parameters with ``grads=True``, parameters no given
        optimizer updates, a NaN or inf in a captured value, a non-tensor module output).
    nonfinite_ok : str or sequence of str or None
        Patterns over series names whose NaN and inf are values, not faults: a metric that
        is undefined at some steps (a gradient check whose finite differences straddle a
        ReLU kink logs NaN there). Such values are not reported, not raised with
        ``strict=True`` and not listed in ``metadata["nonfinite"]``; the patterns are kept
        in ``metadata["recorder"]["nonfinite_ok"]``.
    quantities : sequence of Quantity, optional
        More quantities to capture, beside those the keyword arguments above ask for
        (they are shorthands that build :class:`~dynamics.capture.quantities.Quantity`
        objects): a user's own, written as in :mod:`dynamics.capture.quantities.base`.

    Dtypes: a series is stored in the dtype of its tensor (float64 stays float64, float16
    stays float16); bfloat16, which numpy lacks, is stored as float32 (exactly). The
    recorder never casts: a tensor whose dtype changes after its series began (``model.double()``
    after attaching) raises ``TypeError`` naming the series and both dtypes. Shapes are kept
    the same way: a parameter replaced or resized after attaching raises ``ValueError``
    naming the series and both shapes, before anything of the new shape is captured.

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
        optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer] | None = None,
        *,
        params: str | Sequence[str] | None = "*",
        buffers: str | Sequence[str] | None = None,
        grads: bool = False,
        derived: Mapping[str, Callable[[torch.nn.Module], Any]] | None = None,
        schedule: Schedule | int | Iterable[int] = 1,
        path: str | os.PathLike | None = None,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        flush_seconds: float = 1.0,
        resume: bool | Mapping[str, Any] = False,
        allow_gap: bool = False,
        step: int | None = None,
        capture_initial: bool = True,
        summaries: str | Sequence[str] | None = None,
        summary_grads: bool = False,
        activations: str | Sequence[str] | None = None,
        summarizer: Summarizer | None = None,
        strict: bool = False,
        nonfinite_ok: str | Sequence[str] | None = None,
        quantities: Sequence[Quantity] = (),
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Recorder needs a torch.nn.Module, got {type(model).__name__}")
        model = unwrap_model(model)
        self._model = weakref.ref(model)
        optimizers = unwrap_optimizers(optimizer)
        self._optimizers = [weakref.ref(o) for o in optimizers]
        self._stepped: set[int] = set()  # optimizers that stepped since the last completed step
        self.strict, self._nonfinite_ok = bool(strict), patterns(nonfinite_ok)
        self._warned: set[str] = set()
        self.quantities = from_keywords(
            params=params, buffers=buffers, grads=grads, derived=derived, summaries=summaries,
            summary_grads=summary_grads, activations=activations,
        ) + list(quantities)  # fmt: skip
        for q in self.quantities:
            if not isinstance(q, Quantity):
                raise TypeError(f"Recorder: quantities must be Quantity objects, got {q!r}")
            q.setup(model)
        # the quantities' own schedules, asked at every tick the recorder's does not hold
        self._own_schedules = [q.schedule for q in self.quantities if q.schedule is not None]
        self.summary_grads, self.grads = bool(summary_grads), bool(grads)
        self.summarizer = summarizer or Summarizer()
        self.derived = dict(derived or {})
        self.schedule = Schedule.coerce(schedule)
        self.capture_initial, self._quiet = capture_initial, False
        meta, self._frozen, self._not_optimized = recorder_metadata(
            self.quantities, model, optimizers, metadata, grads=self.grads,
            schedule=self.schedule, summarizer=self.summarizer, nonfinite_ok=self._nonfinite_ok,
        )  # fmt: skip
        if isinstance(resume, Mapping):  # a state_dict() from the checkpoint
            if "step" not in resume:
                raise ValueError(
                    "Recorder(resume=...): the state has no 'step' (not a state_dict())"
                )
            step = int(resume["step"]) if step is None else step
        self.step = 0 if step is None else int(step)
        self._out = Output(self.report, self._nonfinite_ok)
        self._out.sink = self._open_sink(
            path, meta, overwrite, flush_seconds, resume, allow_gap, step
        )
        self._disk = isinstance(self._out.sink, DiskSink)
        self._next_flush = time.monotonic() + (self._out.sink.flush_seconds if self._disk else 0.0)
        self._handles: list[Any] = []
        # optimizer index -> its parameters recorded with gradients, and the gradients each
        # of them had at its own last step (several optimizers only; see _pre_step_hook)
        self._grads_by_optimizer: dict[int, list[torch.nn.Parameter]] = {}
        self._grad_taken: dict[int, torch.Tensor | None] = {}
        self._taken: dict[int, torch.Tensor | None] = {}  # those of the capture running
        self._resolve()
        self.attached = self._started = False
        try:
            self.attach()
            if self._disk:  # the starting step and the manifest are on disk before this returns
                self.flush()
        except BaseException:
            self.close(complete=False)  # the recording so far, and its lock, are not left open
            raise

    def _open_sink(self, path, meta, overwrite, flush_seconds, resume, allow_gap, step):
        """The sink: a resumed recording at ``path``, a new one there, or memory."""
        path = None if path is None else Path(path)
        if resume and path is not None and path.exists():
            if step is None:
                raise ValueError(
                    "Recorder(resume=True): pass step=<the checkpoint's step> to continue the "
                    "recording"
                )
            resumed = resume_recording(path, meta, self.step, allow_gap, self.schedule)
            self._out.declared.update(resumed.declared)
            self._out.floor.update(resumed.floor)
            self._out.floor_max = max(self._out.floor.values(), default=-1)
            if resumed.gap:
                self.report(
                    "resume-gap",
                    "Recorder(resume=..., allow_gap=True): the recording at "
                    f"{path} lacks scheduled snapshots of {len(resumed.gap)} series before the "
                    f"checkpoint's step {self.step} (listed in metadata['resumed']); the "
                    "checkpoint's step is captured again now",
                    strict_raises=False,
                )
            return resumed.writer
        if path is not None:
            return DiskSink(path, meta, overwrite=overwrite, flush_seconds=flush_seconds)
        return MemorySink(meta)

    # -- setup -------------------------------------------------------------------------
    def _resolve(self) -> None:
        """Each quantity looks up its tensors, then the gradients each optimizer's pre-step
        hook takes are listed. Looked up by name once per attach, not at every capture:
        walking the module tree costs more than copying a small model's weights."""
        model = self._model()
        if model is None:
            return
        for q in self.quantities:
            q.attach(model, self)
        self._out.sets = [
            q.tensor_set
            for q in self.quantities
            if isinstance(q, TensorQuantity) and q.tensor_set is not None
        ]
        self._grads_by_optimizer = {}
        if len(self._optimizers) > 1:  # each optimizer's gradients taken at its own step
            wanted = {id(p): p for q in self.quantities for p in q.gradient_params()}
            for index, ref in enumerate(self._optimizers):
                groups = [] if ref() is None else ref().param_groups
                mine = [wanted[id(p)] for g in groups for p in g["params"] if id(p) in wanted]
                if mine:
                    self._grads_by_optimizer[index] = mine

    def report(self, key: str, message: str, strict_raises: bool = True) -> None:
        """Warn once per ``key`` (:class:`RecorderWarning`), or raise :class:`RecorderError`
        with ``strict=True`` (unless ``strict_raises=False``: a note, never an error)."""
        if self.strict and strict_raises:
            raise RecorderError(message)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RecorderWarning, stacklevel=3)

    def kept(self, name: str) -> bool:
        """Whether series ``name`` already has a snapshot kept from the recording this
        recorder resumed (``resume=...``): for a quantity that records something once (a
        probe's batch), which must not record it again after a restart."""
        return name in self._out.floor

    def gradient(self, param: torch.nn.Parameter) -> torch.Tensor | None:
        """The gradient of ``param`` that this update used (for a quantity's capture): with
        several optimizers the one taken just before its optimizer's step, else ``.grad``."""
        return self._taken.get(id(param), param.grad)

    def emit(
        self, name: str, step: int, value: Any, kind: str, source: str = "", of: str = ""
    ) -> None:
        """Record ``value`` (a tensor, array or number) as the snapshot of series ``name`` at
        ``step`` (for a quantity): its first value declares the series' dtype and shape,
        and what it holds (``kind``, ``source``, ``of``: see :class:`~dynamics.Series`)."""
        self._out.emit(name, step, value, kind, source, of)

    def capture_tensors(self, tset: TensorSet, step: int, tensors: list) -> None:
        """Capture ``tensors`` (those of ``tset``, None: none this step) at ``step`` into
        blocks (a :class:`~dynamics.capture.quantities.TensorQuantity`'s capture)."""
        self._out.capture_tensors(tset, step, tensors)

    @property
    def _sets(self) -> list[TensorSet]:
        return self._out.sets

    @property
    def quieted(self) -> bool:
        """Inside :meth:`quiet`: forward passes are not summarised."""
        return self._quiet

    @contextlib.contextmanager
    def quiet(self):
        """Forward passes inside this block are not summarised (e.g. an evaluation on
        held-out data between training steps, whose activations are another population)."""
        self._quiet, before = True, self._quiet
        try:
            yield self
        finally:
            self._quiet = before

    def summarize(self, name: str, step: int, tensor: torch.Tensor, of: str, source: str) -> None:
        """Record the summary of ``tensor`` at ``step`` (for a quantity): ``stats/<name>``,
        ``hist/<name>`` and, with adaptive bins, ``edges/<name>`` (:attr:`summarizer`)."""
        if not tensor.numel():  # no mean, no range: nothing to summarise (not a NaN to report)
            self.report(
                "empty-summary",
                f"Recorder: {of} {source!r} is empty (a zero-size tensor): it has no summary "
                "series (nor has any other empty tensor)",
                strict_raises=False,
            )
            return
        stats, counts, edges = self.summarizer(tensor)
        self.emit(f"stats/{name}", step, stats, "stats", source, of)
        self.emit(f"hist/{name}", step, counts, "histogram", source, of)
        if self.summarizer.adaptive:
            self.emit(f"edges/{name}", step, edges, "edges", source, of)

    # -- lifecycle ---------------------------------------------------------------------
    def attach(self) -> "Recorder":
        """Install the optimizer hooks and capture the starting step (if scheduled).
        Returns self."""
        if self.attached:
            return self
        if self._out.sink.closed:
            raise RuntimeError("Recorder: this recording is closed; make a new Recorder")
        model = self._model()
        if model is not None:
            others = [r for r in _ATTACHED.get(model, ()) if r is not self and r.attached]
            if others:
                self.report(
                    "second-recorder",
                    f"Recorder: another Recorder is already attached to this "
                    f"{type(model).__name__}; both hooks run (each records on its own); detach one "
                    f"if that is not meant",
                )
            _ATTACHED.setdefault(model, weakref.WeakSet()).add(self)
        self._report_unrecordable()
        self._resolve()
        for index, ref in enumerate(self._optimizers):
            opt = ref()
            if opt is not None:
                self._handles.append(opt.register_step_post_hook(self._optimizer_hook(index)))
                if index in self._grads_by_optimizer:
                    self._handles.append(opt.register_step_pre_hook(self._pre_step_hook(index)))
        if model is not None:
            for q in self.quantities:
                self._handles.extend(q.hooks(model, self))
        self.attached = True
        if not self._started:  # the starting step, once (not again when re-attached)
            self._started = True
            if self.capture_initial and self._scheduled(self.step):
                self._capture_now(self.step, scheduled=True)
        return self

    def _report_unrecordable(self) -> None:
        """Frozen parameters asked for gradients, parameters no given optimizer steps."""
        if self._frozen:
            self.report(
                "frozen",
                f"Recorder: {len(self._frozen)} parameter(s) selected for gradients are frozen "
                "(requires_grad=False) and have no gradient series: "
                f"{', '.join(self._frozen[:5])}{' ...' if len(self._frozen) > 5 else ''} "
                "(listed in metadata['recorder']['frozen'])",
            )
        if self._not_optimized:
            self.report(
                "not-optimized",
                f"Recorder: {len(self._not_optimized)} recorded parameter(s) require a gradient "
                "but no optimizer given to the Recorder updates them: "
                f"{', '.join(self._not_optimized[:5])}"
                f"{' ...' if len(self._not_optimized) > 5 else ''}. If another optimizer steps "
                "them, pass it too (optimizer=[opt_a, opt_b]), or they are captured before its "
                "update",
            )

    def detach(self) -> None:
        """Remove every hook this recorder installed. Harmless to call twice."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stepped.clear()
        self.attached = False

    def state_dict(self) -> dict[str, Any]:
        """The recorder's place in the run, for a checkpoint, in PyTorch's convention:
        ``torch.save({"model": model.state_dict(), "recorder": rec.state_dict()}, f)``, then
        ``Recorder(model, opt, path=..., resume=ckpt["recorder"])`` to go on.

        Commits first (:meth:`flush`): the recording on disk holds every snapshot up to the
        step returned before the checkpoint can be written, so a checkpoint never runs ahead
        of its recording, whenever the process is killed. (There is no
        ``load_state_dict``: making a Recorder starts recording, so the state is given to
        the constructor as ``resume=``.)
        """
        self.flush()
        path = getattr(self._out.sink, "path", None) if self._disk else None
        return {"step": int(self.step), "path": None if path is None else str(path)}

    def flush(self) -> None:
        """Hand every captured snapshot to the sink and, on disk, to the OS: a process killed
        after this keeps them (:meth:`state_dict` calls it for a checkpoint)."""
        self._out.drain()
        self._out.flush_blocks()
        if self._disk and not self._out.sink.closed:
            self._out.sink.flush()

    def close(self, complete: bool = True) -> None:
        """Detach, finish pending copies and finalize the recording (idempotent).

        ``complete=False`` (what leaving a ``with`` block by an exception does) keeps
        everything recorded but marks the recording as cut short.
        """
        self.detach()
        if not self._out.sink.closed:
            try:
                self._out.drain()
                self._out.flush_blocks()
                if complete:
                    self._note_never_captured()
            finally:
                self._out.sink.close(complete=complete)

    def _note_never_captured(self) -> None:
        """Series the recorder was asked for and never captured are listed in the metadata
        (``metadata["recorder"]["never_captured"]``) and reported, so that a recording never
        claims what it does not hold."""
        asked = [n for q in self.quantities for n in q.asked()]
        missing = [n for n in asked if n not in self._out.declared]
        if not missing:
            return
        info = dict(self._out.sink.metadata.get("recorder", {}), never_captured=missing)
        self._out.sink.update_metadata(recorder=info)
        self.report(
            "never-captured",
            f"Recorder: closed without a snapshot of {len(missing)} series it was asked for "
            f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}): no scheduled "
            f"step was reached (last step {self.step}, schedule {self.schedule.description}) "
            "or there was nothing to capture; listed in metadata['recorder']['never_captured']",
            strict_raises=False,
        )

    def __enter__(self) -> "Recorder":
        return self.attach()

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)

    @property
    def recording(self) -> Recording:
        """What has been recorded so far (final once the recorder is closed)."""
        self._out.drain()
        self._out.flush_blocks()
        return self._out.sink.recording()

    def update_metadata(self, **items: Any) -> None:
        """Merge JSON-able items into the recording's metadata."""
        self._out.sink.update_metadata(**items)

    # -- capture -----------------------------------------------------------------------
    def _optimizer_hook(self, index: int):
        @eager
        def hook(optimizer, args, kwargs) -> None:
            self._stepped.add(index)
            if len(self._stepped) == len(self._optimizers):
                self._stepped.clear()
                self.tick()

        return hook

    def _pre_step_hook(self, index: int):
        @eager
        def hook(optimizer, args, kwargs) -> None:
            # With several optimizers, another one's backward pass may add into these
            # gradients before the step completes (a GAN's G loss flows through D): the
            # gradients recorded are those this optimizer is about to use, taken now.
            params = self._grads_by_optimizer.get(index)
            if params and (self.step + 1) in self.schedule:
                with torch.no_grad():
                    for p in params:
                        g = p.grad
                        self._grad_taken[id(p)] = None if g is None else g.detach().clone()

        return hook

    def tick(self) -> None:
        """Advance the step counter by one update and capture if the schedule says so."""
        self.step += 1
        if self._disk and time.monotonic() >= self._next_flush:
            # a step has just ended: commit it now, whatever the step length and the schedule,
            # so a kill loses at most flush_seconds and one step
            self._commit_through(self.step - 1)
        if self._scheduled(self.step):
            self._capture_now(self.step, scheduled=True)

    def _scheduled(self, step: int) -> bool:
        """Whether a quantity captures at ``step`` (the recorder's schedule, or its own)."""
        return step in self.schedule or any(step in own for own in self._own_schedules)

    def _commit_through(self, step: int) -> None:
        self._out.drain()
        self._out.flush_blocks()
        if not self._out.sink.closed:
            self._out.sink.commit_through(step)
        self._next_flush = time.monotonic() + self._out.sink.flush_seconds

    def capture(self, step: int | None = None) -> None:
        """Capture every selected quantity now, at ``step`` (default: the current step)."""
        self._capture_now(self.step if step is None else int(step), scheduled=False)

    def _capture_now(self, step: int, scheduled: bool) -> None:
        enabled = torch.is_grad_enabled()
        set_grad_enabled(False)  # as torch.no_grad()
        try:
            self._capture(step, scheduled)
        finally:
            set_grad_enabled(enabled)

    def _capture(self, step: int, scheduled: bool) -> None:
        model = self._model()
        if model is None:
            raise RuntimeError("Recorder: the model has been garbage-collected")
        if self._out.pending:
            self._out.drain()
        self._taken, self._grad_taken = self._grad_taken, {}
        try:
            for q in self.quantities:
                if q.when != "step":
                    continue
                if scheduled and step not in (q.schedule or self.schedule):
                    continue
                q.capture(self, model, step)
        finally:
            self._taken = {}
        if self._disk and time.monotonic() >= self._next_flush:
            self._out.flush_blocks()  # the sink then writes within its flush_seconds
            self._next_flush = time.monotonic() + self._out.sink.flush_seconds

    def log(self, step: int | None = None, *, reduce: str | None = None, **scalars: Any) -> None:
        """Record scalar series at ``step`` (default: the current step), e.g. ``log(loss=l)``.

        Tensors are read with ``.item()``, which waits for a GPU to finish that value.
        ``reduce="mean"`` averages each value over the ranks of a ``torch.distributed`` run
        first (:func:`mean_over_ranks`, a collective: every rank must call ``log`` with it;
        a rank that does not record calls :func:`mean_over_ranks` itself instead).
        """
        if reduce not in (None, "mean"):
            raise ValueError(f"log: reduce must be None or 'mean', got {reduce!r}")
        step = self.step if step is None else int(step)
        for name, value in scalars.items():
            if reduce == "mean":
                value = mean_over_ranks(value)
            elif isinstance(value, torch.Tensor):
                value = value.detach().item()
            self._out.append(name, step, np.float64(value), "scalar")

    def put(self, name: str, value: Any, *, step: int | None = None, kind: str = "data") -> None:
        """Record one array (or tensor) snapshot of series ``name`` at ``step`` (default: now).

        For data that is not a parameter or a function of the model, such as the training
        set a scene draws beside the weights (``kind="data"``), or a quantity derived from
        the model on a schedule of its own (``kind="derived"``). The value is copied before
        this returns.
        """
        if kind not in ("data", "derived"):
            raise ValueError(f"put: kind must be 'data' or 'derived', got {kind!r}")
        self.emit(name, self.step if step is None else int(step), value, kind)
