"""PyTorch Lightning: record a ``LightningModule``'s training with a :class:`dynamics.Recorder`.

>>> from dynamics.integrations.lightning import RecorderCallback     # doctest: +SKIP
>>> callback = RecorderCallback("run.rec", schedule=10, grads=True)   # doctest: +SKIP
>>> Trainer(callbacks=[callback]).fit(module, data)                   # doctest: +SKIP
>>> callback.recording                                                # doctest: +SKIP

**Steps.** When training starts (after a checkpoint, if any, is restored) the callback makes
a Recorder on the ``LightningModule`` and *all* of the trainer's optimizers. The recorder
counts complete steps: a step completes once every optimizer has stepped (see
:class:`dynamics.Recorder`), so a GAN whose ``training_step`` calls ``opt_d.step()`` and
``opt_g.step()`` advances it by one per batch, and gradient accumulation by one per update.
That is not Lightning's ``trainer.global_step``, which counts every optimizer's steps (two
per batch in that GAN): the recorder's step is never taken from ``global_step``.

**Scalars**: at most one point per recorder step, recorded at the end of the batch that
completes the step, at that step (the step its update made):

* the metrics the module logs at step level in ``training_step`` (and the hooks that run
  inside a batch: ``on_before_backward`` ... ``on_before_optimizer_step``) with
  ``self.log(..., on_step=True)`` or ``self.log_dict``, under the names Lightning gives them
  in ``trainer.logged_metrics`` (``"d_loss"``; ``"d_loss_step"`` when also ``on_epoch=True``).
  A metric counts as logged at a step when Lightning came to hold a new value of it during
  one of the step's batches: ``trainer.logged_metrics`` keeps each key's last value for as
  long as the epoch lasts, and that stale value (or an epoch-level or validation value) is
  not recorded again. Epoch-level values, ``logger=False`` values and what the module logs
  in its own ``on_train_batch_end`` (which runs after this callback's) are not recorded.
  Under gradient accumulation, the last value logged during the step's batches is kept, as
  Lightning's loggers do.
* ``loss``: the training loss ``training_step`` returns (the tensor, or the mapping's
  ``"loss"``), as it returned it: Lightning divides it by ``accumulate_grad_batches`` in
  automatic optimization, and the callback multiplies that back; with several batches per
  step, their mean. A metric the module itself logs as ``"loss"`` takes its place. With
  manual optimization ``training_step`` usually returns nothing: log with ``self.log``.

**Resume.** The recorder's step is saved in the Lightning checkpoint, as this callback's
state (:meth:`RecorderCallback.state_dict`), and the recording is flushed to disk whenever
a checkpoint is saved, so that it reaches the checkpoint's step even if the process is then
killed. ``RecorderCallback(path, resume=True)`` with ``Trainer.fit(ckpt_path=...)``
continues the recording at ``path`` from the step saved in that checkpoint
(``Recorder(resume=True, step=...)``: snapshots after it, from the attempt that went on and
crashed, are dropped). Without a checkpoint to restore, ``resume=True`` starts a new
recording (an existing one at ``path`` is then an error, unless ``overwrite=True``).

The recording is closed when fitting ends (marked incomplete if it ended by an exception).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # the older distribution name
    try:
        from pytorch_lightning import Callback
    except ImportError as exc:
        raise ImportError(
            "dynamics.integrations.lightning needs PyTorch Lightning: "
            "pip install 'nndynamics[lightning]' (or pip install lightning)"
        ) from exc

import torch

from ..recorder import Recorder, RecorderWarning

__all__ = ["RecorderCallback"]

#: names Recorder.log takes as arguments, not as scalars
_RESERVED = frozenset({"step", "reduce"})


def _is_new(value: Any, before: Any) -> bool:
    """Whether ``value`` (from ``trainer.logged_metrics``) was logged after ``before`` was read.

    Each ``self.log`` stores a fresh copy of the value, and ``trainer.logged_metrics`` hands
    out views of the stored tensor: a key not logged again shows a view of the same storage.
    ``before`` is held until the comparison, so its storage cannot be reused by a new value.
    """
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        return False
    return not isinstance(before, torch.Tensor) or value.data_ptr() != before.data_ptr()


class RecorderCallback(Callback):
    """Record the trained module's parameters (and whatever :class:`Recorder` takes).

    Parameters
    ----------
    path : path-like, optional
        Recording directory (in memory without it).
    log_loss : bool
        Record the loss ``training_step`` returns as the scalar series ``loss``.
    log_metrics : bool
        Record the metrics the module logs at step level (``self.log(..., on_step=True)``,
        ``self.log_dict``) as scalar series.
    resume : bool
        With ``Trainer.fit(ckpt_path=...)``, continue the recording at ``path`` from the
        recorder's step saved in that checkpoint (see the module docstring). An explicit
        ``step=`` among the recorder's arguments takes its place.
    **recorder_kwargs
        Passed to :class:`Recorder` (``params``, ``grads``, ``schedule``, ``summaries`` ...).
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        log_loss: bool = True,
        log_metrics: bool = True,
        resume: bool = False,
        **recorder_kwargs: Any,
    ):
        super().__init__()
        self.path, self.resume, self.kwargs = path, resume, recorder_kwargs
        self.log_loss, self.log_metrics = log_loss, log_metrics
        self.recorder: Recorder | None = None
        self._restored_step: int | None = None  # from the checkpoint Lightning restored
        self._closed = True
        self._last_step = 0  # the recorder's step when scalars were last recorded
        self._before: dict[str, Any] = {}  # trainer.logged_metrics as the batch began
        self._pending: dict[str, torch.Tensor] = {}  # metrics logged during this step's batches
        self._losses: list[torch.Tensor] = []  # training_step's losses during this step
        self._warned_reserved = False

    # -- checkpoint ----------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        # one entry per recording, should a trainer hold several of these callbacks
        return self._generate_state_key(path=None if self.path is None else os.fspath(self.path))

    def state_dict(self) -> dict[str, Any]:
        """``{"step": the recorder's step}``, saved in the Lightning checkpoint."""
        return {} if self.recorder is None else {"step": int(self.recorder.step)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        step = state_dict.get("step")
        self._restored_step = None if step is None else int(step)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        # the recording on disk reaches the checkpoint's step before the checkpoint is written
        if self.recorder is not None and not self._closed:
            self.recorder.flush()

    def _resume_args(self, trainer) -> dict[str, Any]:
        restored, self._restored_step = self._restored_step, None
        if not self.resume:
            return {}
        if "step" in self.kwargs:
            return {"resume": True}  # the step the user gave
        if trainer.ckpt_path is None:
            return {}  # no checkpoint restored: a new recording
        if restored is None:
            raise RuntimeError(
                f"RecorderCallback(resume=True): the checkpoint {trainer.ckpt_path} holds no "
                f"recorder step for {self.state_key} (saved by a run without this callback, or "
                "with another path?). Pass step=<the recorder's step at that checkpoint>; "
                f"trainer.global_step ({trainer.global_step}) counts every optimizer's steps, "
                "not the recorder's complete steps"
            )
        return {"resume": True, "step": restored}

    # -- training ------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        kwargs = dict(self.kwargs)
        metadata = {"integration": "lightning", **dict(kwargs.pop("metadata", None) or {})}
        kwargs.update(self._resume_args(trainer))
        self.recorder = Recorder(
            pl_module, list(trainer.optimizers), path=self.path, metadata=metadata, **kwargs
        )
        self._closed = False
        self._last_step = self.recorder.step
        self._before, self._pending, self._losses = {}, {}, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.log_metrics and not self._closed:
            self._before = dict(trainer.logged_metrics)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rec = self.recorder
        if rec is None or self._closed:
            return
        if self.log_metrics:
            before = self._before
            for name, value in trainer.logged_metrics.items():
                if _is_new(value, before.get(name)):
                    self._pending[name] = value
            self._before = {}
        if self.log_loss:
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            if isinstance(loss, torch.Tensor) and loss.numel() == 1:
                # automatic optimization hands on the loss divided by accumulate_grad_batches
                scale = trainer.accumulate_grad_batches if pl_module.automatic_optimization else 1
                self._losses.append(loss.detach().reshape(()).double() * scale)
        if rec.step == self._last_step:
            return  # no step completed in this batch (gradient accumulation)
        self._last_step = rec.step
        scalars = dict(self._pending)
        if self._losses and "loss" not in scalars:
            scalars["loss"] = torch.stack(self._losses).mean()
        self._pending, self._losses = {}, []
        reserved = _RESERVED.intersection(scalars)
        if reserved and not self._warned_reserved:
            self._warned_reserved = True
            warnings.warn(
                f"RecorderCallback: logged metric(s) {sorted(reserved)} are not recorded: "
                "Recorder.log takes these names as arguments; log them under another name",
                RecorderWarning,
                stacklevel=2,
            )
        for name in reserved:
            del scalars[name]
        if scalars:
            rec.log(rec.step, **scalars)

    def _close(self, complete: bool) -> None:
        if self.recorder is not None and not self._closed:
            self._closed = True
            self.recorder.close(complete=complete)

    def on_train_end(self, trainer, pl_module) -> None:
        self._close(complete=True)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._close(complete=False)

    @property
    def recording(self):
        """The recording (final once training has ended)."""
        if self.recorder is None:
            raise RuntimeError("RecorderCallback: training has not started")
        return self.recorder.recording
