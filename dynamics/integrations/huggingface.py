"""Hugging Face ``transformers.Trainer``: record the model's training with a
:class:`dynamics.Recorder`.

>>> from dynamics.integrations.huggingface import RecorderCallback   # doctest: +SKIP
>>> callback = RecorderCallback("run.rec", schedule=10)              # doctest: +SKIP
>>> Trainer(model, args, train_dataset=ds, callbacks=[callback]).train()   # doctest: +SKIP

**Steps.** When training begins the callback makes a Recorder on the trainer's model and
optimizer (looking through accelerate's optimizer wrapper and ``torch.compile``): its steps
are the optimizer's updates, which is what the trainer's ``state.global_step`` counts (one
per update, whatever the gradient accumulation).

**Scalars.** Every number of the trainer's per-step logs (``loss``, ``learning_rate``,
``grad_norm``, ``epoch``, and ``eval_*`` after an evaluation) becomes a scalar series, at the
recorder's step; a series gets one point per step (the ``epoch`` that both a training and
an evaluation log carry at one step is recorded once). The end-of-run summary the trainer
logs once after the last step (``train_runtime``, ``train_samples_per_second``,
``train_steps_per_second``, ``total_flos``, ``train_loss``, ``epoch``: the log holding
``train_runtime`` and ``total_flos``) is not a curve: it goes to
``metadata["trainer_summary"]``, replaced by each ``train()`` call that ends.

**Resume.** The recording is flushed to disk whenever the trainer saves a checkpoint
(``on_save``), so that it reaches the checkpoint's step even if the process is then killed.
``RecorderCallback(path, resume=True)`` with ``trainer.train(resume_from_checkpoint=...)``
continues the recording at ``path`` from the restored ``state.global_step``
(``Recorder(resume=True, step=...)``: snapshots after it, from the attempt that went on and
crashed, are dropped). ``global_step`` stands for the recorder's own step count, which the
checkpoint does not hold: the trainer restores an ``ExportableState`` callback only with
``restore_callback_states_from_checkpoint=True``, and then as a new instance in place of the
one the caller holds. The two count the same updates; where they differ when a checkpoint
is saved (an update the trainer counted but the optimizer skipped, as a float16
``GradScaler`` does after an overflow) the callback says so, once, with a
:class:`dynamics.recorder.RecorderWarning`. Without a checkpoint to restore (``global_step``
0) ``resume=True`` starts a new recording (an existing one at ``path`` is then an error,
unless ``overwrite=True``).

The recording is closed when training ends.
"""

from __future__ import annotations

import numbers
import os
import warnings
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError(
        "dynamics.integrations.huggingface needs transformers: "
        "pip install 'nndynamics[huggingface]' (or pip install transformers accelerate)"
    ) from exc

from ..recorder import Recorder, RecorderWarning

__all__ = ["RecorderCallback"]

#: the keys that mark the trainer's end-of-run summary (``Trainer._finalize_training``: the
#: per-step logs carry ``train_runtime`` with ``include_num_input_tokens_seen``, never
#: ``total_flos``)
_SUMMARY = frozenset({"train_runtime", "total_flos"})
#: names Recorder.log takes as arguments, not as scalars
_RESERVED = frozenset({"step", "reduce"})


class RecorderCallback(TrainerCallback):
    """Record the trained model's parameters (and whatever :class:`Recorder` takes).

    Parameters
    ----------
    path : path-like, optional
        Recording directory (in memory without it).
    log_metrics : bool
        Record every number of the trainer's per-step logs (``on_log``) as a scalar series.
        The end-of-run summary goes to the metadata either way.
    resume : bool
        With ``trainer.train(resume_from_checkpoint=...)``, continue the recording at
        ``path`` from the checkpoint's ``global_step`` (see the module docstring). An
        explicit ``step=`` among the recorder's arguments takes its place.
    **recorder_kwargs
        Passed to :class:`Recorder` (``params``, ``grads``, ``schedule``, ``summaries`` ...).
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        log_metrics: bool = True,
        resume: bool = False,
        **recorder_kwargs: Any,
    ):
        self.path, self.log_metrics, self.resume, self.kwargs = (
            path,
            log_metrics,
            resume,
            recorder_kwargs,
        )
        self.recorder: Recorder | None = None
        self._closed = True
        self._last: dict[str, int] = {}  # series -> the step of its last point
        self._warned: set[str] = set()

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RecorderWarning, stacklevel=3)

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is None:
            raise RuntimeError("RecorderCallback: the trainer passed no model to on_train_begin")
        rec_kwargs = dict(self.kwargs)
        metadata = {
            "integration": "transformers.Trainer",
            **dict(rec_kwargs.pop("metadata", None) or {}),
        }
        if self.resume and "step" in rec_kwargs:
            rec_kwargs["resume"] = True  # the step the user gave
        elif self.resume and state.global_step > 0:  # restored from a checkpoint
            rec_kwargs.update(resume=True, step=int(state.global_step))
        self.recorder = Recorder(model, optimizer, path=self.path, metadata=metadata, **rec_kwargs)
        self._closed = False
        self._last = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        rec = self.recorder
        if rec is None or self._closed or not logs:
            return
        values = {
            k: float(v)
            for k, v in logs.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)
        }
        if _SUMMARY <= logs.keys():
            rec.update_metadata(trainer_summary={**values, "step": int(rec.step)})
            return
        if not self.log_metrics:
            return
        step = int(rec.step)
        scalars = {k: v for k, v in values.items() if self._last.get(k, -1) < step}
        reserved = _RESERVED.intersection(scalars)
        if reserved:
            self._warn(
                "reserved",
                f"RecorderCallback: logged number(s) {sorted(reserved)} are not recorded: "
                "Recorder.log takes these names as arguments",
            )
            for name in reserved:
                del scalars[name]
        if scalars:
            rec.log(step, **scalars)
            self._last.update(dict.fromkeys(scalars, step))

    def on_save(self, args, state, control, **kwargs):
        rec = self.recorder
        if rec is None or self._closed:
            return
        rec.flush()
        if rec.step != state.global_step:
            self._warn(
                "steps-differ",
                f"RecorderCallback: at this checkpoint the trainer's global_step is "
                f"{state.global_step} and the recorder counted {rec.step} optimizer updates "
                "(updates skipped, as a float16 GradScaler does after an overflow?); a resume "
                "from it continues the recording at global_step",
            )

    def on_train_end(self, args, state, control, **kwargs):
        if self.recorder is not None and not self._closed:
            self._closed = True
            self.recorder.close()

    @property
    def recording(self):
        """The recording (final once training has ended)."""
        if self.recorder is None:
            raise RuntimeError("RecorderCallback: training has not started")
        return self.recorder.recording
