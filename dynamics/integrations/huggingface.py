"""Hugging Face ``transformers.Trainer``: record the model's training with a
:class:`dynamics.Recorder`.

>>> from dynamics.integrations.huggingface import RecorderCallback   # doctest: +SKIP
>>> callback = RecorderCallback("run.rec", schedule=10)              # doctest: +SKIP
>>> Trainer(model, args, train_dataset=ds, callbacks=[callback]).train()   # doctest: +SKIP

When training begins the callback makes a Recorder on the trainer's model and optimizer
(looking through accelerate's optimizer wrapper and ``torch.compile``): its steps are the
optimizer's updates, i.e. the trainer's ``global_step``. Every number in the trainer's
logs (``loss``, ``learning_rate``, ``grad_norm`` ...) is logged at ``state.global_step``.
The recording is closed when training ends.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError(
        "dynamics.integrations.huggingface needs transformers: "
        "pip install 'nndynamics[huggingface]' (or pip install transformers accelerate)"
    ) from exc

from ..recorder import Recorder

__all__ = ["RecorderCallback"]


class RecorderCallback(TrainerCallback):
    """Record the trained model's parameters (and whatever :class:`Recorder` takes).

    Parameters
    ----------
    path : path-like, optional
        Recording directory (in memory without it).
    log_metrics : bool
        Log every number of the trainer's ``on_log`` events as a scalar series.
    resume : bool
        With ``trainer.train(resume_from_checkpoint=...)``, continue the recording at
        ``path`` from the checkpoint's ``global_step`` (``Recorder(resume=True)``).
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

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is None:
            raise RuntimeError("RecorderCallback: the trainer passed no model to on_train_begin")
        metadata = {
            "integration": "transformers.Trainer",
            **dict(self.kwargs.get("metadata") or {}),
        }
        resume = dict(resume=True, step=int(state.global_step)) if self.resume else {}
        self.recorder = Recorder(
            model,
            optimizer,
            path=self.path,
            metadata=metadata,
            **resume,
            **{k: v for k, v in self.kwargs.items() if k != "metadata"},
        ).attach()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.recorder is None or not self.log_metrics or not logs:
            return
        numbers_only = {
            k: float(v)
            for k, v in logs.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)
        }
        if numbers_only:
            self.recorder.log(step=int(state.global_step), **numbers_only)

    def on_train_end(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.close()

    @property
    def recording(self):
        """The recording (final once training has ended)."""
        if self.recorder is None:
            raise RuntimeError("RecorderCallback: training has not started")
        return self.recorder.recording
