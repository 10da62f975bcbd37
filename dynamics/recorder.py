"""Recorder: hooks a torch model (and its optimizer) and streams snapshots into a Recording."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import math
import os
import shutil
import time
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from .recording import (
    MemoryWriter,
    Recording,
    RecordingError,
    RecordingWriter,
    hold_existing,
    load,
    to_jsonable,
)
from .summaries import Summarizer

__all__ = [
    "Recorder",
    "RecorderWarning",
    "RecorderError",
    "Schedule",
    "every",
    "log_spaced",
    "at_steps",
    "mean_over_ranks",
]


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
# Distributed training
# --------------------------------------------------------------------------------------


def _distributed() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def mean_over_ranks(value: Any) -> float:
    """The mean of a scalar over the ranks of a ``torch.distributed`` run (a collective:
    call it on every rank, in the same order); the value itself when not distributed.

    Under DDP each rank's loss is that of its own shard of the batch: log this mean (on the
    rank that records) for the loss of the whole batch. The reduction runs on the device
    the process group works on (CUDA for NCCL, the CPU for gloo).
    """
    if isinstance(value, torch.Tensor):
        value = value.detach()
    if not _distributed():
        return float(value)
    dist = torch.distributed
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.as_tensor(value, dtype=torch.float64, device=device).reshape(())
    dist.all_reduce(t)  # SUM: AVG is not offered by every backend (gloo)
    return float(t) / dist.get_world_size()


# --------------------------------------------------------------------------------------
# Recorder
# --------------------------------------------------------------------------------------


class RecorderWarning(UserWarning):
    """Something the recorder cannot record as asked (given once per recorder and cause)."""


class RecorderError(RuntimeError):
    """What would be a :class:`RecorderWarning`, raised instead because ``strict=True``."""


def _patterns(spec: str | Sequence[str] | None) -> list[str]:
    return [] if spec is None else [spec] if isinstance(spec, str) else list(spec)


def _match(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose names the series carry: ``torch.compile``'s ``OptimizedModule``
    (``_orig_mod``) and ``DataParallel`` / ``DistributedDataParallel`` (``module``) are looked
    through."""
    parallel = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    for _ in range(8):
        inner = model._modules.get("_orig_mod", model.__dict__.get("_orig_mod"))
        if isinstance(inner, torch.nn.Module):
            model = inner
        elif isinstance(model, parallel):
            model = model.module
        else:
            break
    return model


def _unwrap_optimizer(opt: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside a wrapper (Lightning's ``LightningOptimizer``, accelerate's
    ``AcceleratedOptimizer``): its ``step`` is the one that really updates the parameters."""
    for _ in range(8):
        inner = getattr(opt, "_optimizer", None) or getattr(opt, "optimizer", None)
        if isinstance(inner, torch.optim.Optimizer) and inner is not opt:
            opt = inner
        else:
            break
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(
            f"Recorder: optimizer must be a torch.optim.Optimizer (or a sequence of them), "
            f"got {type(opt).__name__}"
        )
    return opt


def _storage_dtype(dtype: torch.dtype) -> np.dtype | None:
    """The numpy dtype a tensor of ``dtype`` is stored in (bfloat16: float32, exactly), or
    None where numpy has no equivalent (complex halves, quantized, float8)."""
    if dtype is torch.bfloat16:
        return np.dtype(np.float32)
    try:
        return np.dtype(torch.empty(0, dtype=dtype).numpy().dtype)
    except (TypeError, RuntimeError):
        return None


# torch.set_grad_enabled is a class (a context manager): a call costs about 1 us, its C
# function 0.1 us
_set_grad_enabled = getattr(torch._C, "_set_grad_enabled", torch.set_grad_enabled)


def _eager(fn: Callable) -> Callable:
    """``fn`` for a hook that must never be traced into a compiled graph.

    Where ``torch.compile`` is at work (tracing the hook inside a compiled model's forward
    or a compiled ``optimizer.step()``, or running a frame eagerly after a graph break with
    its children still to be traced) the hook calls ``fn`` through ``torch.compiler.disable``,
    so that it runs eagerly on real tensors. Otherwise it calls ``fn`` directly: the disable
    wrapper costs 0.5 us a call in a loop and about 10 us after a training step.
    """
    disabled = torch.compiler.disable(fn)
    is_compiling = torch.compiler.is_compiling
    # None outside torch.compile's frames; if this torch lacks it, always go through disable
    callback = getattr(torch._C._dynamo.eval_frame, "get_eval_frame_callback", lambda: True)

    @functools.wraps(fn)
    def hook(*args):
        if is_compiling() or callback() is not None:
            return disabled(*args)
        return fn(*args)

    return hook


def _leaves(obj: Any, suffix: str = ""):
    """``(suffix, element)`` for every element of a module output: tensors and the
    non-tensors among them. Tuples and lists by index, mappings by key: ``("", out)``,
    ``("[0]", out[0])``, ``("[1][0]", out[1][0])``, ``("[logits]", out["logits"])``."""
    if isinstance(obj, torch.Tensor):
        yield suffix, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _leaves(value, f"{suffix}[{key}]")
    elif isinstance(obj, (tuple, list)):
        for i, value in enumerate(obj):
            yield from _leaves(value, f"{suffix}[{i}]")
    else:
        yield suffix, obj


# Recorders attached to each model (one-time warning when a second one attaches)
_ATTACHED: "weakref.WeakKeyDictionary[torch.nn.Module, weakref.WeakSet]" = (
    weakref.WeakKeyDictionary()
)


class _Block:
    """Snapshots of a fixed list of same-dtype CPU tensors, one row per snapshot, side by side.

    The rows live in a block the sink hands out (``new_block``): a capture is one
    ``torch.cat`` of every tensor (flattened) into the next row, bit-exact, and rows go to
    the sink as they are, with no second copy (``extend_block``). For floating dtypes the
    rows handed on are summed row by row in one call (a NaN or inf survives a sum, so the
    values are searched only where a sum is not finite): one sum over many rows costs the
    training thread less than a sum of each row right after its capture.
    """

    #: bytes of snapshots per block (at most 256 rows): large enough that the per-block work
    #: (one hand-over per series) is small per snapshot
    BYTES = 4 << 20

    def __init__(
        self, names: list[str], shapes: list[tuple[int, ...]], dtype: np.dtype, index: list[int]
    ):
        sizes = [math.prod(s) for s in shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        self.width = offsets[-1]
        self.dtype = dtype
        self.capacity = int(min(256, max(2, self.BYTES // max(self.width * dtype.itemsize, 1))))
        self.slices = [
            (name, lo, hi, shape)
            for name, lo, hi, shape in zip(names, offsets, offsets[1:], shapes)
        ]
        self.index = index  # positions of this block's tensors in the set's tensor list
        # the steps of the rows, as Python ints: written into the sink's block when the rows
        # are handed on (a numpy scalar read and write per capture cost about 4 us)
        self.steps = [0] * self.capacity
        self.floating = dtype.kind == "f"
        if self.floating:
            self.sums = torch.empty(
                self.capacity, dtype=torch.float64 if dtype.itemsize > 4 else torch.float32
            )
        self.buf = None  # the sink's block being filled (taken at the first capture into it)
        self.table: torch.Tensor | None = None  # the block's values, as a tensor
        self.rows: tuple = ()  # torch views of the block's rows
        self.n = 0  # rows filled
        self.start = 0  # rows [:start] are handed to the sink

    def take(self, sink) -> None:
        buf = self.buf = sink.new_block(self.capacity, self.width, self.dtype)
        if buf.views is None:  # a block the sink hands out again keeps its views
            table = torch.from_numpy(buf.values)
            buf.views = table, table.unbind(0)
        self.table, self.rows = buf.views
        self.n = self.start = 0


class _TensorSet:
    """Parameters, buffers or gradients captured together (see :class:`_Block`)."""

    def __init__(self, kind: str, names: list[str], sources: list[str]):
        self.kind, self.names, self.sources = kind, names, sources
        self.signature: list | None = None  # [(torch dtype, shape)] the blocks were built for
        self.blocks: list[_Block] = []
        # Parameters and buffers keep their memory from step to step: their flattened views
        # are kept while every tensor's (data pointer, dtype, shape, strides) stays the same.
        # (A kept view holds its storage, so no other tensor can start at that address.)
        # Gradients are new tensors at every step (zero_grad(set_to_none=True)): not kept.
        self.keep_views = kind != "gradient"
        self.key: list | None = None
        self.sources_kept: list = []  # per block, the kept views of its tensors


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
        written and committed at least this often; see :class:`RecordingWriter`).
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
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Recorder needs a torch.nn.Module, got {type(model).__name__}")
        model = _unwrap_model(model)
        self._model = weakref.ref(model)
        if optimizer is None:
            optimizers = []
        elif isinstance(optimizer, (list, tuple)):
            optimizers = [_unwrap_optimizer(o) for o in optimizer]
        else:
            optimizers = [_unwrap_optimizer(optimizer)]
        self._optimizers = [weakref.ref(o) for o in optimizers]
        self._stepped: set[int] = set()  # optimizers that stepped since the last completed step
        self.strict = bool(strict)
        self._nonfinite_ok = _patterns(nonfinite_ok)
        self._warned: set[str] = set()
        named_params = dict(model.named_parameters())
        all_params = list(named_params)
        patterns = _patterns(params)
        self._param_names = [n for n in all_params if _match(n, patterns)]
        if patterns and not self._param_names:
            hint = ""
            if any(_match(n, patterns) for n, _ in model.named_buffers()):
                hint = " (that pattern names buffers: pass buffers=... to record them)"
            raise ValueError(
                f"Recorder: no parameter matches {patterns}{hint}; the model has {all_params}"
            )
        bpatterns = _patterns(buffers)
        all_buffers = [n for n, _ in model.named_buffers()]
        self._buffer_names = [n for n in all_buffers if _match(n, bpatterns)]
        if bpatterns and not self._buffer_names:
            raise ValueError(
                f"Recorder: no buffer matches buffers={bpatterns}; the model has {all_buffers}"
            )
        spatterns = _patterns(summaries)
        self._summary_names = [n for n in all_params if _match(n, spatterns)]
        if spatterns and not self._summary_names:
            raise ValueError(
                f"Recorder: no parameter matches summaries={spatterns}; the model has {all_params}"
            )
        apatterns = _patterns(activations)
        self._activation_names = [n for n, _ in model.named_modules() if n and _match(n, apatterns)]
        if apatterns and not self._activation_names:
            raise ValueError(
                f"Recorder: no module matches activations={apatterns}; "
                f"the model has {[n for n, _ in model.named_modules() if n]}"
            )
        self.summary_grads = bool(summary_grads)
        self.summarizer = summarizer or Summarizer()
        self._activation_last: dict[str, int] = {}
        self._quiet = False
        self.grads = bool(grads)
        self.derived = dict(derived or {})
        self.schedule = Schedule.coerce(schedule)
        self.capture_initial = capture_initial
        self._frozen = [
            n
            for n in dict.fromkeys(
                self._param_names * self.grads + self._summary_names * self.summary_grads
            )
            if not named_params[n].requires_grad
        ]
        self._not_optimized: list[str] = []
        if optimizers:
            stepped = {id(p) for o in optimizers for g in o.param_groups for p in g["params"]}
            watched = dict.fromkeys(self._param_names + self._summary_names)
            self._not_optimized = [
                n
                for n in watched
                if named_params[n].requires_grad and id(named_params[n]) not in stepped
            ]
        meta = dict(metadata or {})
        info = {
            "params": self._param_names,
            "grads": self.grads,
            "derived": list(self.derived),
            "schedule": self.schedule.description,
        }
        if self._buffer_names:
            info["buffers"] = self._buffer_names
        if len(optimizers) > 1:
            info["optimizers"] = len(optimizers)
            info["step_rule"] = (
                "a step completes when every optimizer has stepped since the previous step"
            )
        if self._frozen:
            info["frozen"] = self._frozen
        if self._not_optimized:
            info["not_optimized"] = self._not_optimized
        if self._nonfinite_ok:
            info["nonfinite_ok"] = self._nonfinite_ok
        if _distributed():  # what this rank saw: its weights, and its own scalars unless reduced
            dist = torch.distributed
            info["distributed"] = {
                "rank": dist.get_rank(),
                "world_size": dist.get_world_size(),
                "backend": str(dist.get_backend()),
                "scalars": "rank-local unless logged with reduce='mean'",
            }
        meta.setdefault("recorder", info)
        if self._summary_names or self._activation_names:
            meta["recorder"]["summaries"] = {
                **self.summarizer.describe(),
                "params": self._summary_names,
                "grads": self.summary_grads,
                "activations": self._activation_names,
            }
        if isinstance(resume, Mapping):  # a state_dict() from the checkpoint
            if "step" not in resume:
                raise ValueError(
                    "Recorder(resume=...): the state has no 'step' (not a state_dict())"
                )
            step = int(resume["step"]) if step is None else step
        self.step = 0 if step is None else int(step)
        # series -> (stored dtype, shape of a snapshot): neither changes (never cast into)
        self._declared: dict[str, tuple[np.dtype, tuple]] = {}
        self._floor: dict[str, int] = {}  # resumed series -> last kept step (later appends only)
        self._floor_max = -1
        self._nonfinite: dict[str, int] = {}
        path = None if path is None else Path(path)
        if resume and path is not None and path.exists():
            if step is None:
                raise ValueError(
                    "Recorder(resume=True): pass step=<the checkpoint's step> to continue the "
                    "recording"
                )
            self._sink = self._resumed_sink(path, meta, self.step, allow_gap)
        elif path is not None:
            self._sink = RecordingWriter(
                path, meta, overwrite=overwrite, flush_seconds=flush_seconds
            )
        else:
            self._sink = MemoryWriter(meta)
        self._disk = isinstance(self._sink, RecordingWriter)
        self._next_flush = time.monotonic() + (self._sink.flush_seconds if self._disk else 0.0)
        self._handles: list[Any] = []
        self._pending: list[
            tuple[str, int, torch.Tensor, Any, tuple]
        ] = []  # device->host copies in flight
        self._sets: list[_TensorSet] = []
        # optimizer index -> its parameters recorded with gradients, and the gradients each
        # of them had at its own last step (several optimizers only; see _pre_step_hook)
        self._grads_by_optimizer: dict[int, list[torch.nn.Parameter]] = {}
        self._grad_taken: dict[int, torch.Tensor | None] = {}
        self._resolve_params()
        self.attached = self._started = False
        try:
            self.attach()
            if self._disk:  # the starting step and the manifest are on disk before this returns
                self.flush()
        except BaseException:
            self.close(complete=False)  # the recording so far, and its lock, are not left open
            raise

    # -- resume ------------------------------------------------------------------------
    def _resumed_sink(self, path: Path, meta: dict, step: int, allow_gap: bool) -> RecordingWriter:
        """A fresh recording holding the kept prefix of the one at ``path``, swapped in.

        The old recording's writer lock is held throughout (refused if a live writer has
        it): no other writer enters it, or resumes it, until the new one is in place."""
        held = hold_existing(path)
        try:
            return self._rewrite_prefix(path, meta, step, allow_gap)
        finally:
            if held is not None:
                os.close(held)

    def _gap(self, old: Recording, step: int) -> dict[str, list[int]]:
        """Per scheduled series (parameters, buffers), ``[first, last]`` scheduled steps up
        to ``step`` that the recording lacks after its last kept snapshot."""
        gap, scheduled = {}, {}  # scheduled: last kept step -> the scheduled steps after it
        for name, s in old.items():
            if s.kind not in ("parameter", "buffer"):
                continue
            keep = int(np.searchsorted(s.steps, step, side="right"))
            last = int(s.steps[keep - 1]) if keep else -1
            if last not in scheduled:  # series mostly share it: the schedule is asked once
                # a predicate: look at most 10**6 steps back from the checkpoint
                after = range(max(last + 1, step - 10**6), step + 1)
                scheduled[last] = [k for k in after if k in self.schedule]
            if scheduled[last]:
                gap[name] = [scheduled[last][0], scheduled[last][-1]]
        return gap

    def _rewrite_prefix(
        self, path: Path, meta: dict, step: int, allow_gap: bool
    ) -> RecordingWriter:
        old = load(path)
        gap = self._gap(old, step)
        if gap and not allow_gap:
            name, (lo, hi) = next(iter(gap.items()))
            raise RecordingError(
                f"Recorder(resume=...): the recording at {path} is behind its checkpoint "
                f"(step {step}): {len(gap)} series lack scheduled snapshots, {name!r} those of "
                f"steps {lo}..{hi} (a kill after the checkpoint was saved and before the "
                "recording's next commit?). Save checkpoints with rec.state_dict(), which "
                "commits first; pass allow_gap=True to resume anyway (the gap is kept in "
                "metadata['resumed'])"
            )
        tmp = path.with_name(f".{path.name}.resuming")
        if tmp.exists():  # left by a resume that was itself interrupted
            shutil.rmtree(tmp)
        merged = {**old.metadata, **to_jsonable(meta)}
        writer = RecordingWriter(tmp, merged)
        dropped = {}
        for name, s in old.items():
            keep = int(np.searchsorted(s.steps, step, side="right"))
            writer.declare(name, s.values.dtype, s.shape, **s.info)
            for lo in range(0, keep, 1024):
                hi = min(keep, lo + 1024)
                writer.extend(name, s.steps[lo:hi], np.asarray(s.values[lo:hi]))
            self._declared[name] = np.dtype(s.values.dtype), tuple(s.shape)
            if keep:
                self._floor[name] = int(s.steps[keep - 1])
            if len(s) > keep:
                dropped[name] = len(s) - keep
        writer.flush()
        entry = {
            "step": step,
            "previous_complete": old.complete,
            "dropped_snapshots": sum(dropped.values()),
            "dropped_series": len(dropped),
        }
        if gap:
            entry["gap"] = gap
        resumed = list(old.metadata.get("resumed", [])) + [entry]
        del old
        aside = path.with_name(f".{path.name}.replaced")
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(path, aside)
        os.replace(tmp, path)
        writer.moved(path)
        shutil.rmtree(aside)
        writer.update_metadata(resumed=resumed)
        self._floor_max = max(self._floor.values(), default=-1)
        if gap:
            self._report(
                "resume-gap",
                f"Recorder(resume=..., allow_gap=True): the recording at {path} lacks scheduled "
                f"snapshots of {len(gap)} series before the checkpoint's step {step} (listed in "
                "metadata['resumed']); the checkpoint's step is captured again now",
                strict_raises=False,
            )
        return writer

    # -- setup -------------------------------------------------------------------------
    def _resolve_params(self) -> None:
        # Looked up by name once (at construction and on each attach), not at every
        # capture: walking the module tree costs more than copying a small model's weights.
        model = self._model()
        if model is None:
            return
        named = dict(model.named_parameters())
        self._param_objs = [named[n] for n in self._param_names if n in named]
        self._summary_params = [
            (name, named[name]) for name in self._summary_names if name in named
        ]

        def slot(name: str, table: str):
            owner, _, key = name.rpartition(".")
            return getattr(model.get_submodule(owner), table), key

        # (module._parameters, key) pairs: read at each capture, so a parameter or buffer
        # replaced after attaching (model.double() replaces buffers) is still found
        self._param_slots = [slot(n, "_parameters") for n in self._param_names if n in named]
        self._buffer_slots = [slot(n, "_buffers") for n in self._buffer_names]
        grad_names = (
            [n for n in self._param_names if n in named and named[n].requires_grad]
            if self.grads
            else []
        )
        self._grad_params = [named[n] for n in grad_names]
        self._grads_by_optimizer = {}
        if len(self._optimizers) > 1:  # each optimizer's gradients taken at its own step
            wanted = {id(p): p for p in self._grad_params}
            if self.summary_grads:
                wanted.update((id(p), p) for _, p in self._summary_params)
            for index, ref in enumerate(self._optimizers):
                groups = [] if ref() is None else ref().param_groups
                mine = [wanted[id(p)] for g in groups for p in g["params"] if id(p) in wanted]
                if mine:
                    self._grads_by_optimizer[index] = mine
        if not self._sets:
            self._sets = [
                _TensorSet(
                    "parameter",
                    [n for n in self._param_names if n in named],
                    [n for n in self._param_names if n in named],
                ),
                _TensorSet("buffer", list(self._buffer_names), list(self._buffer_names)),
                _TensorSet("gradient", [f"grad/{n}" for n in grad_names], grad_names),
            ]

    def _report(self, key: str, message: str, strict_raises: bool = True) -> None:
        """Warn once per ``key`` (or raise, with ``strict=True``)."""
        if self.strict and strict_raises:
            raise RecorderError(message)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RecorderWarning, stacklevel=3)

    def _activation_hook(self, name: str):
        @_eager  # never traced into a compiled graph: runs eagerly on real tensors
        def hook(module, inputs, output) -> None:
            step = self.step
            if self._quiet or self._activation_last.get(name) == step or step not in self.schedule:
                return
            self._activation_last[name] = step
            with torch.no_grad():
                for suffix, out in _leaves(output):
                    if isinstance(out, torch.Tensor):
                        self._summarize(
                            f"act/{name}{suffix}", step, out, "activation", f"{name}{suffix}"
                        )
                    elif out is not None:  # None: an optional output not asked for (HF)
                        self._report(
                            f"act-nontensor/{name}{suffix}",
                            f"Recorder: the output of module {name!r} holds a {type(out).__name__} "
                            f"at {suffix or 'the top'}, not a tensor; it is not recorded",
                        )

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
        if not tensor.numel():  # no mean, no range: nothing to summarise (not a NaN to report)
            self._report(
                "empty-summary",
                f"Recorder: {of} {source!r} is empty (a zero-size tensor): it has no summary "
                "series (nor has any other empty tensor)",
                strict_raises=False,
            )
            return
        stats, counts, edges = self.summarizer(tensor)
        self._emit(f"stats/{name}", step, stats, "stats", source, of)
        self._emit(f"hist/{name}", step, counts, "histogram", source, of)
        if self.summarizer.adaptive:
            self._emit(f"edges/{name}", step, edges, "edges", source, of)

    # -- lifecycle ---------------------------------------------------------------------
    def attach(self) -> "Recorder":
        """Install the optimizer hooks and capture the starting step (if scheduled).
        Returns self."""
        if self.attached:
            return self
        if self._sink.closed:
            raise RuntimeError("Recorder: this recording is closed; make a new Recorder")
        model = self._model()
        if model is not None:
            others = [r for r in _ATTACHED.get(model, ()) if r is not self and r.attached]
            if others:
                self._report(
                    "second-recorder",
                    f"Recorder: another Recorder is already attached to this "
                    f"{type(model).__name__}; both hooks run (each records on its own); detach one "
                    f"if that is not meant",
                )
            _ATTACHED.setdefault(model, weakref.WeakSet()).add(self)
        if self._frozen:
            self._report(
                "frozen",
                f"Recorder: {len(self._frozen)} parameter(s) selected for gradients are frozen "
                "(requires_grad=False) and have no gradient series: "
                f"{', '.join(self._frozen[:5])}{' ...' if len(self._frozen) > 5 else ''} "
                "(listed in metadata['recorder']['frozen'])",
            )
        if self._not_optimized:
            self._report(
                "not-optimized",
                f"Recorder: {len(self._not_optimized)} recorded parameter(s) require a gradient "
                "but no optimizer given to the Recorder updates them: "
                f"{', '.join(self._not_optimized[:5])}"
                f"{' ...' if len(self._not_optimized) > 5 else ''}. If another optimizer steps "
                "them, pass it too (optimizer=[opt_a, opt_b]), or they are captured before its "
                "update",
            )
        self._resolve_params()
        for index, ref in enumerate(self._optimizers):
            opt = ref()
            if opt is not None:
                self._handles.append(opt.register_step_post_hook(self._optimizer_hook(index)))
                if index in self._grads_by_optimizer:
                    self._handles.append(opt.register_step_pre_hook(self._pre_step_hook(index)))
        if model is not None and self._activation_names:
            modules = dict(model.named_modules())
            for name in self._activation_names:
                self._handles.append(
                    modules[name].register_forward_hook(self._activation_hook(name))
                )
        self.attached = True
        if not self._started:  # the starting step, once (not again when re-attached)
            self._started = True
            if self.capture_initial and self.step in self.schedule:
                self.capture()
        return self

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
        path = getattr(self._sink, "path", None) if self._disk else None
        return {"step": int(self.step), "path": None if path is None else str(path)}

    def flush(self) -> None:
        """Hand every captured snapshot to the sink and, on disk, to the OS: a process killed
        after this keeps them (:meth:`state_dict` calls it for a checkpoint)."""
        self._drain()
        self._flush_blocks()
        if self._disk and not self._sink.closed:
            self._sink.flush()

    def close(self, complete: bool = True) -> None:
        """Detach, finish pending copies and finalize the recording (idempotent).

        ``complete=False`` (what leaving a ``with`` block by an exception does) keeps
        everything recorded but marks the recording as cut short.
        """
        self.detach()
        if not self._sink.closed:
            try:
                self._drain()
                self._flush_blocks()
                if complete:
                    self._note_never_captured()
            finally:
                self._sink.close(complete=complete)

    def _note_never_captured(self) -> None:
        """Series the recorder was asked for and never captured are listed in the metadata
        (``metadata["recorder"]["never_captured"]``) and reported, so that a recording never
        claims what it does not hold."""
        params, buffers, grads = self._sets
        asked = [*params.names, *buffers.names, *grads.names, *self.derived]
        asked += [f"stats/{n}" for n in self._summary_names]
        missing = [n for n in asked if n not in self._declared]
        if not missing:
            return
        info = dict(self._sink.metadata.get("recorder", {}), never_captured=missing)
        self._sink.update_metadata(recorder=info)
        self._report(
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
        self._drain()
        self._flush_blocks()
        return self._sink.recording()

    def update_metadata(self, **items: Any) -> None:
        """Merge JSON-able items into the recording's metadata."""
        self._sink.update_metadata(**items)

    # -- capture -----------------------------------------------------------------------
    def _optimizer_hook(self, index: int):
        @_eager
        def hook(optimizer, args, kwargs) -> None:
            self._stepped.add(index)
            if len(self._stepped) == len(self._optimizers):
                self._stepped.clear()
                self.tick()

        return hook

    def _pre_step_hook(self, index: int):
        @_eager
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
        if self.step in self.schedule:
            self.capture()

    def _commit_through(self, step: int) -> None:
        self._drain()
        self._flush_blocks()
        if not self._sink.closed:
            self._sink.commit_through(step)
        self._next_flush = time.monotonic() + self._sink.flush_seconds

    def capture(self, step: int | None = None) -> None:
        """Capture every selected quantity now, at ``step`` (default: the current step)."""
        enabled = torch.is_grad_enabled()
        _set_grad_enabled(False)  # as torch.no_grad()
        try:
            self._capture(step)
        finally:
            _set_grad_enabled(enabled)

    def _capture(self, step: int | None) -> None:
        model = self._model()
        if model is None:
            raise RuntimeError("Recorder: the model has been garbage-collected")
        step = self.step if step is None else int(step)
        if self._pending:
            self._drain()
        params, buffers, grads = self._sets
        if params.names:
            self._capture_set(params, step, [table[key] for table, key in self._param_slots])
        if buffers.names:
            self._capture_set(buffers, step, [table.get(key) for table, key in self._buffer_slots])
        taken, self._grad_taken = self._grad_taken, {}
        if grads.names:
            tensors = [taken.get(id(p), p.grad) for p in self._grad_params]
            if None in tensors and any(t is not None for t in tensors):
                self._no_gradient(grads, tensors, step)
            self._capture_set(grads, step, tensors)
        for name, fn in self.derived.items():
            self._emit(name, step, fn(model), "derived")
        for name, param in self._summary_params:
            self._summarize(name, step, param, "parameter", name)
            grad = taken.get(id(param), param.grad)
            if self.summary_grads and grad is not None:
                self._summarize(f"grad/{name}", step, grad, "gradient", name)
        if self._disk and time.monotonic() >= self._next_flush:
            self._flush_blocks()  # the sink then writes within its flush_seconds
            self._next_flush = time.monotonic() + self._sink.flush_seconds

    def _no_gradient(self, grads: _TensorSet, tensors: list, step: int) -> None:
        missing = [name for name, t in zip(grads.sources, tensors) if t is None]
        self._report(
            "no-gradient",
            f"Recorder: {len(missing)} parameter(s) had no gradient at step {step} and have no "
            f"gradient snapshot there: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            " (not used in the forward pass, or zero_grad(set_to_none=True) after backward?)",
            strict_raises=False,
        )

    def _capture_set(self, tset: _TensorSet, step: int, tensors: list) -> None:
        key = None
        if tset.keep_views:
            try:
                key = [(t.data_ptr(), t.dtype, t.shape, t.stride()) for t in tensors]
            except AttributeError:  # a tensor is None
                pass
        if key is None or key != tset.key:
            signature = [(t.dtype, t.shape) if t is not None else None for t in tensors]
            if signature != tset.signature and not self._build_blocks(tset, signature, tensors):
                self._capture_slow(tset, step, tensors)
                return
            views = [t.flatten() for t in tensors]
            # a flatten of a contiguous tensor is a view of it (else a copy, not kept)
            keep = key is not None and all(t.is_contiguous() for t in tensors)
            sources = (
                [[views[i] for i in block.index] for block in tset.blocks]
                if len(tset.blocks) > 1
                else [views]
            )
            tset.key, tset.sources_kept = (key, sources) if keep else (None, [])
        else:
            sources = tset.sources_kept
        if step <= self._floor_max:  # just resumed: some series already hold this step
            self._capture_slow(tset, step, tensors)
            return
        for block, source in zip(tset.blocks, sources):
            if block.buf is None:
                block.take(self._sink)
            n = block.n
            if n and block.steps[n - 1] > step:
                raise ValueError(
                    f"series {block.slices[0][0]!r}: steps must not decrease (got {step} after "
                    f"{block.steps[n - 1]})"
                )
            torch.cat(source, out=block.rows[n])
            block.steps[n] = step
            block.n = n + 1
            if n == block.start:
                self._update_hold()
            if block.n == block.capacity:
                self._flush_block(block)

    def _build_blocks(self, tset: _TensorSet, signature: list, tensors: list) -> bool:
        """(Re)build the blocks of ``tset`` for ``signature``; False: capture it tensor by tensor
        (a missing gradient, a tensor off the CPU, a dtype numpy lacks)."""
        for block in tset.blocks:
            self._flush_block(block)
            if block.buf is not None:  # give the sink its block back
                buf, block.buf = block.buf, None
                self._sink.extend_block(block.slices, buf, block.n, block.n, True)
        tset.blocks, tset.signature, tset.key, tset.sources_kept = [], None, None, []
        if any(t is None or not t.is_cpu for t in tensors):
            return False
        dtypes = [_storage_dtype(s[0]) for s in signature]
        if any(d is None for d in dtypes):
            return False
        for name, source, dtype, s in zip(tset.names, tset.sources, dtypes, signature):
            self._declare(name, dtype, tuple(s[1]), tset.kind, source, "")
        groups: dict[np.dtype, list[int]] = {}
        for i, d in enumerate(dtypes):
            groups.setdefault(d, []).append(i)
        for dtype, index in groups.items():
            tset.blocks.append(
                _Block(
                    [tset.names[i] for i in index],
                    [tuple(signature[i][1]) for i in index],
                    dtype,
                    index,
                )
            )
        tset.signature = signature
        return True

    def _capture_slow(self, tset: _TensorSet, step: int, tensors: list) -> None:
        for block in tset.blocks:  # keep each series' steps in order
            self._flush_block(block)
        for name, source, tensor in zip(tset.names, tset.sources, tensors):
            if tensor is not None:
                self._emit(name, step, tensor, tset.kind, source)

    def _check_finite(self, block: _Block, start: int, n: int) -> None:
        """NaN or inf in rows ``[start:n)`` of a block? Their sums say (NaN and inf survive a
        sum; an overflow to inf is told apart by the exact check that follows)."""
        sums = block.sums[start:n]
        half = block.dtype.itemsize < 4  # summed in float32
        torch.sum(block.table[start:n], 1, dtype=torch.float32 if half else None, out=sums)
        sums = sums.numpy()
        if np.isfinite(sums).all():
            return
        values, steps = block.buf.values, block.buf.steps
        for row in (start + np.flatnonzero(~np.isfinite(sums))).tolist():
            bad = [
                name
                for name, lo, hi, _ in block.slices
                if not np.isfinite(values[row, lo:hi]).all()
            ]
            if bad:
                self._non_finite(bad, int(steps[row]))

    def _non_finite(self, names: list[str], step: int) -> None:
        new = [
            name
            for name in names
            if name not in self._nonfinite and not _match(name, self._nonfinite_ok)
        ]
        if not new:
            return
        for name in new:
            self._nonfinite[name] = step
        self._sink.update_metadata(nonfinite=dict(self._nonfinite))
        self._report(
            f"nonfinite/{new[0]}",
            "Recorder: non-finite value (NaN or inf) in series "
            f"{', '.join(map(repr, new[:5]))}{' ...' if len(new) > 5 else ''} at step {step} "
            "(first for each; listed in metadata['nonfinite'])",
        )

    def _flush_block(self, block: _Block) -> None:
        """Hand the block's rows not yet handed on to the sink (and, once it is full, the
        block itself: the next capture takes a new one)."""
        buf, start, n = block.buf, block.start, block.n
        if buf is None or n == start:
            return
        done = n == block.capacity
        block.start = n
        buf.steps[start:n] = block.steps[start:n]
        try:
            self._sink.extend_block(block.slices, buf, start, n, done and not block.floating)
            self._update_hold()
            if block.floating:  # after handing them on: with strict=True the raise loses nothing
                self._check_finite(block, start, n)
        finally:
            if done:
                block.buf, block.table, block.rows, block.n, block.start = None, None, (), 0, 0
                if block.floating and not self._sink.closed:  # checked: the sink may reuse it
                    self._sink.extend_block(block.slices, buf, n, n, True)

    def _flush_blocks(self) -> None:
        error = None
        for tset in self._sets:
            for block in tset.blocks:
                try:
                    self._flush_block(block)
                except RecorderError as exc:  # strict: hand on every block first
                    error = error or exc
        if error is not None:
            raise error

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
            self._append(name, step, np.float64(value), "scalar")

    def put(self, name: str, value: Any, *, step: int | None = None, kind: str = "data") -> None:
        """Record one array (or tensor) snapshot of series ``name`` at ``step`` (default: now).

        For data that is not a parameter or a function of the model, such as the training
        set a scene draws beside the weights (``kind="data"``), or a quantity derived from
        the model on a schedule of its own (``kind="derived"``). The value is copied before
        this returns.
        """
        if kind not in ("data", "derived"):
            raise ValueError(f"put: kind must be 'data' or 'derived', got {kind!r}")
        self._emit(name, self.step if step is None else int(step), value, kind)

    def _declare(
        self, name: str, dtype: np.dtype, shape: tuple, kind: str, source: str, of: str
    ) -> None:
        shape = tuple(shape)
        if name not in self._declared:
            self._sink.declare(name, dtype, shape, kind=kind, source=source, of=of)
            self._declared[name] = dtype, shape
            return
        declared, declared_shape = self._declared[name]
        if shape != declared_shape:
            raise ValueError(
                f"Recorder: series {name!r} was recorded with shape {declared_shape} and is "
                f"now {shape} (a parameter replaced or resized after the recorder started, "
                "or an activation of a batch of another size?). A series keeps one shape: record "
                "the new shape into a new recording"
            )
        if declared != dtype:
            raise TypeError(
                f"Recorder: series {name!r} was recorded as {declared} and is now {dtype} "
                "(model.double(), .half() or .to(dtype) after the recorder started?). A series "
                "keeps one dtype and the recorder never casts: convert the model before making the "
                "Recorder, or record the new dtype into a new recording"
            )

    def _append(
        self,
        name: str,
        step: int,
        value: np.ndarray,
        kind: str = "",
        source: str = "",
        of: str = "",
    ) -> None:
        # the first snapshot of a series declares what it holds (written into the manifest)
        value = np.asarray(value)
        if self._declared.get(name) != (value.dtype, value.shape):
            self._declare(name, value.dtype, value.shape, kind, source, of)
        if step <= self._floor.get(name, -1):
            return  # resumed: the kept recording already holds this step
        if kind in _CHECKED and value.dtype.kind == "f" and not np.isfinite(value).all():
            self._non_finite([name], step)
        self._sink.append(name, step, value)

    def _emit(
        self, name: str, step: int, value: Any, kind: str, source: str = "", of: str = ""
    ) -> None:
        if not isinstance(value, torch.Tensor):
            self._append(name, step, np.asarray(value), kind, source, of)
            return
        value = value.detach()
        if value.dtype is torch.bfloat16:
            value = value.float()  # numpy has no bfloat16; float32 holds every bfloat16 exactly
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
        self._pending.append((name, step, host, event, (kind, source, of)))
        if len(self._pending) == 1:  # a commit must not cover this step before the copy is appended
            self._update_hold()

    def _drain(self) -> None:
        for name, step, host, event, info in self._pending:
            event.synchronize()
            self._append(name, step, host.numpy(), *info)
        if self._pending:
            self._pending.clear()
            self._update_hold()

    def _update_hold(self) -> None:
        """Tell the sink the first step whose snapshots are not all handed to it yet (rows
        in this recorder's blocks, copies from an accelerator in flight): a commit, which
        promises every series whole up to its step, stops before it."""
        firsts = [b.steps[b.start] for tset in self._sets for b in tset.blocks if b.n > b.start]
        firsts += [step for _, step, *_ in self._pending]
        self._sink.hold_from(min(firsts) if firsts else None)


#: kinds whose values are checked for NaN and inf (parameters, buffers and gradients captured
#: in blocks are checked there, with one sum per snapshot)
_CHECKED = frozenset({"parameter", "gradient", "buffer", "derived", "scalar", "stats"})
