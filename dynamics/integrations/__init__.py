"""Callbacks that attach a :class:`dynamics.Recorder` to a training framework's loop.

* :mod:`dynamics.integrations.lightning` -- ``RecorderCallback`` for PyTorch Lightning
  (``pip install nndynamics[lightning]``);
* :mod:`dynamics.integrations.huggingface` -- ``RecorderCallback`` for
  ``transformers.Trainer`` (``pip install nndynamics[huggingface]``).

Each is imported on its own, so neither framework is needed by the rest of the package.
"""
