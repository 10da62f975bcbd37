"""PyTorch Lightning: record a ``LightningModule``'s training with a :class:`dynamics.Recorder`.

>>> from dynamics.integrations.lightning import RecorderCallback     # doctest: +SKIP
>>> callback = RecorderCallback("run.rec", schedule=10, grads=True)   # doctest: +SKIP
>>> Trainer(callbacks=[callback]).fit(module, data)                   # doctest: +SKIP
>>> callback.recording                                                # doctest: +SKIP

When training starts (after a checkpoint, if any, is restored) the callback makes a
Recorder on the ``LightningModule`` and *all* of the trainer's optimizers: a step is counted
once every optimizer has stepped (see :class:`dynamics.Recorder`), so the recorder's steps
are optimizer updates, whatever the gradient accumulation. The training loss (the
``training_step`` output's ``"loss"``, or the tensor it returns) is logged as ``loss``
after every batch, at the recorder's step. The recording is closed when fitting ends
(marked incomplete if it ended by an exception).
"""

from __future__ import annotations

import os
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

from ..recorder import Recorder

__all__ = ["RecorderCallback"]


class RecorderCallback(Callback):
    """Record the trained module's parameters (and whatever :class:`Recorder` takes).

    Parameters
    ----------
    path : path-like, optional
        Recording directory (in memory without it).
    log_loss : bool
        Log the training loss of each batch as the scalar series ``loss``.
    resume : bool
        With a trainer restored from a checkpoint, continue the recording at ``path`` from
        the trainer's ``global_step`` (``Recorder(resume=True)``).
    **recorder_kwargs
        Passed to :class:`Recorder` (``params``, ``grads``, ``schedule``, ``summaries`` ...).
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        log_loss: bool = True,
        resume: bool = False,
        **recorder_kwargs: Any,
    ):
        super().__init__()
        self.path, self.log_loss, self.resume, self.kwargs = path, log_loss, resume, recorder_kwargs
        self.recorder: Recorder | None = None
        self._recording = None

    def on_train_start(self, trainer, pl_module) -> None:
        metadata = {"integration": "lightning", **dict(self.kwargs.get("metadata") or {})}
        resume = dict(resume=True, step=int(trainer.global_step)) if self.resume else {}
        self.recorder = Recorder(
            pl_module,
            list(trainer.optimizers),
            path=self.path,
            metadata=metadata,
            **resume,
            **{k: v for k, v in self.kwargs.items() if k != "metadata"},
        ).attach()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.recorder is None or not self.log_loss:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            self.recorder.log(loss=loss)

    def _close(self, complete: bool) -> None:
        if self.recorder is not None:
            self.recorder.close(complete=complete)
            self._recording = self.recorder.recording

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
