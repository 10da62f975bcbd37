"""Distributions of weights and activations of a small CNN over training
(docs/experiments.md section 5).

The course's CNN (two 5x5 convolutions with 2x2 max-pooling, 32 and 64 filters, a
1024-unit dense layer with dropout, a softmax output) on the digits the project
generates (:mod:`dynamics.experiments.digits`, 16x16 instead of MNIST's 28x28: no
download is possible, and the smaller images keep a run on a 2-core CPU to about a
minute). The recorder summarises every weight and bias, their gradients, and every
pre-activation and activation (mean, std, min, max, histogram) on the schedule; train
loss and train/test accuracy are scalar series. Runs differ by optimizer, activation
and initialisation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

from ..limits import SEED, check_limits
from ..recorder import Recorder, every
from ..recording import Recording
from ..summaries import Summarizer
from .common import (
    check_finite,
    library_versions,
    milestone_chapters,
    one_torch_thread,
    stream_seed,
)
from .digits import make_digits

__all__ = ["Config", "DistributionsConfig", "DigitsCNN", "run", "ACTIVATION_MODULES"]

OPTIMIZERS = ("adam", "gd")
ACTIVATIONS = ("relu", "tanh")
INITS = ("truncnormal", "glorot")
# modules whose outputs are summarised: pre-activations (conv, fc) and activations
ACTIVATION_MODULES = ("conv1", "act1", "conv2", "act2", "fc1", "act3", "fc2")


@dataclass(frozen=True)
class DistributionsConfig:
    """Configuration of one CNN run; every field is a CLI flag.

    Attributes
    ----------
    optimizer : str
        ``"adam"`` (the reference) or ``"gd"`` (plain gradient descent, same rate).
    lr : float
        Learning rate of either optimizer (1e-4 in the reference).
    activation : str
        ``"relu"`` or ``"tanh"`` after each convolution and the dense layer.
    init : str
        ``"truncnormal"``: weights from a normal of std 0.1 cut at two std, biases 0.1
        (the course's); ``"glorot"``: Glorot-uniform weights, zero biases.
    steps : int
        Optimizer steps, each on a mini-batch.
    batch : int
        Mini-batch size (drawn without replacement within an epoch).
    train_size, test_size : int
        Generated digits for training and testing (different seeds: no image is shared).
    image_size : int
        Side of the square digit images (the two poolings need a multiple of 4).
    dropout : float
        Dropout probability after the dense layer (during training only).
    record_every : int
        Summaries of every tensor every this many steps (the train loss every step).
    eval_every : int
        Train and test accuracy every this many steps (and at the last step).
    bins : int
        Histogram bins (adaptive: each tensor's own range at each step).
    seed : int
        Seed of the data, the initialisation, the batches and dropout (separate streams).
    """

    optimizer: str = "adam"
    lr: float = 1e-4
    activation: str = "relu"
    init: str = "truncnormal"
    steps: int = 600
    batch: int = 50
    train_size: int = 6000
    test_size: int = 1000
    image_size: int = 16
    dropout: float = 0.5
    record_every: int = 10
    eval_every: int = 100
    bins: int = 30
    seed: int = 0

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "lr": (0, 1000),
        "steps": (1, 1_000_000_000),
        "batch": (1, 1_000_000),
        "train_size": (1, 10_000_000),
        "test_size": (1, 10_000_000),
        "image_size": (8, 512),
        "record_every": (1, 1_000_000_000),
        "eval_every": (1, 1_000_000_000),
        "bins": (1, 10_000),
        "seed": SEED,
    }

    def __post_init__(self):
        for name, options in (
            ("optimizer", OPTIMIZERS),
            ("activation", ACTIVATIONS),
            ("init", INITS),
        ):
            if getattr(self, name) not in options:
                raise ValueError(
                    f"{name} must be one of {', '.join(options)}, got {getattr(self, name)!r}"
                )
        for name in (
            "steps",
            "batch",
            "train_size",
            "test_size",
            "record_every",
            "eval_every",
            "bins",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.image_size < 8 or self.image_size % 4:
            raise ValueError(
                f"image_size must be a multiple of 4 and at least 8, got {self.image_size}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.batch > self.train_size:
            raise ValueError(f"batch ({self.batch}) cannot exceed train_size ({self.train_size})")
        check_limits(self, self.LIMITS)


Config = DistributionsConfig


class DigitsCNN(nn.Module):
    """conv5x5(32) - act - maxpool2 - conv5x5(64) - act - maxpool2 - dense(1024) - act -
    dropout - dense(10)."""

    def __init__(self, image_size: int = 16, activation: str = "relu", dropout: float = 0.5):
        super().__init__()
        act = nn.ReLU if activation == "relu" else nn.Tanh
        self.conv1, self.act1, self.pool1 = nn.Conv2d(1, 32, 5, padding=2), act(), nn.MaxPool2d(2)
        self.conv2, self.act2, self.pool2 = nn.Conv2d(32, 64, 5, padding=2), act(), nn.MaxPool2d(2)
        self.fc1, self.act3 = nn.Linear(64 * (image_size // 4) ** 2, 1024), act()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (n, 1, s, s) -> logits (n, 10)."""
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        return self.fc2(self.drop(self.act3(self.fc1(x.flatten(1)))))

    @torch.no_grad()
    def initialise(self, init: str, generator: torch.Generator) -> None:
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2):
            if init == "truncnormal":
                nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2, generator=generator)
                nn.init.constant_(layer.bias, 0.1)
            else:
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                nn.init.zeros_(layer.bias)


def _data(config: DistributionsConfig):
    x, y = make_digits(
        config.train_size, size=config.image_size, seed=stream_seed(config.seed, "digits-train")
    )
    xt, yt = make_digits(
        config.test_size, size=config.image_size, seed=stream_seed(config.seed, "digits-test")
    )
    as_tensor = lambda a: torch.from_numpy(a)[:, None]  # noqa: E731
    return as_tensor(x), torch.from_numpy(y), as_tensor(xt), torch.from_numpy(yt)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 1000) -> float:
    """Share of correct argmax predictions, in eval mode (dropout off)."""
    was = model.training
    model.eval()
    correct = sum(
        int((model(x[i : i + chunk]).argmax(1) == y[i : i + chunk]).sum())
        for i in range(0, len(x), chunk)
    )
    model.train(was)
    return correct / len(x)


def caption(config: DistributionsConfig) -> str:
    """One line describing the run, drawn under a scene's title."""
    return (
        f"CNN on generated digits: optimizer {config.optimizer}, lr {config.lr:g}, "
        f"activation {config.activation}, init {config.init}"
    )


#: The moments a movie of the run stops at by default (see ``milestone_chapters``).
CHAPTERS = (
    ("test_accuracy", "above", 0.5, "Test accuracy passes 50%"),
    ("test_accuracy", "above", 0.9, "Test accuracy reaches 90%"),
)


def run(
    config: DistributionsConfig = DistributionsConfig(),
    *,
    path=None,
    overwrite: bool = False,
    progress: bool = False,
) -> Recording:
    """Train the CNN and record summaries of every tensor.

    Returns
    -------
    Recording
        ``stats/<tensor>`` (4,), ``hist/<tensor>`` (bins,), ``edges/<tensor>`` (bins+1,)
        for every parameter (``conv1.weight`` ...), its gradient (``grad/conv1.weight``)
        and module output (``act/conv1`` ... ``act/fc2``) every ``record_every`` steps,
        and on the same steps every parameter itself (series ``conv1.weight`` ..., float32;
        about 4.4 MB per step at the default 16x16 images), so the summaries can be
        recomputed from the recording; ``loss`` every step; ``train_accuracy`` (on the first
        1000 training images) and ``test_accuracy`` every ``eval_every`` steps. Metadata:
        ``experiment``, ``config``, ``seed``, ``versions``, ``data``, ``summaries``.
    """
    with one_torch_thread():
        return _run(config, path, overwrite, progress)


def _run(config: DistributionsConfig, path, overwrite: bool, progress: bool) -> Recording:
    from ..progress import progress_bar

    x, y, xt, yt = _data(config)
    model = DigitsCNN(config.image_size, config.activation, config.dropout)
    model.initialise(config.init, torch.Generator().manual_seed(stream_seed(config.seed, "init")))
    opt = (
        torch.optim.Adam(model.parameters(), lr=config.lr)
        if config.optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=config.lr)
    )
    metadata = {
        "experiment": "distributions",
        "config": asdict(config),
        "seed": config.seed,
        "versions": library_versions(),
        "data": "generated digits (dynamics.experiments.digits): 10 classes, "
        f"{config.image_size}x{config.image_size} grey levels, 14 fonts with random affine "
        "distortions",
        # what each recorded module's output is (the scenes colour and label them by it)
        "roles": {
            **{m: "pre-activation" for m in ("conv1", "conv2", "fc1", "fc2")},
            **{m: "activation" for m in ("act1", "act2", "act3")},
        },
        "show": [
            "activation fc1",
            "activation act3",
            "conv2.weight",
        ],  # the summaries worth a first look
        "caption": caption(config),
    }
    recorder = Recorder(
        model,
        opt,
        params="*",
        summaries="*",
        summary_grads=True,
        activations=list(ACTIVATION_MODULES),
        summarizer=Summarizer(bins=config.bins),
        schedule=every(config.record_every),
        path=path,
        overwrite=overwrite,
        metadata=metadata,
    )
    batches = torch.Generator().manual_seed(stream_seed(config.seed, "batches"))
    torch.manual_seed(stream_seed(config.seed, "dropout"))  # dropout masks use the global generator
    loss_fn = nn.CrossEntropyLoss()
    order, pos = torch.randperm(len(x), generator=batches), 0

    def evaluate():
        with recorder.quiet():  # held-out forward passes are not the training population
            recorder.log(
                train_accuracy=accuracy(model, x[:1000], y[:1000]),
                test_accuracy=accuracy(model, xt, yt),
            )

    with (
        recorder,
        progress_bar(total=config.steps, desc="training", unit="step", disable=not progress) as bar,
    ):
        evaluate()
        for step in range(1, config.steps + 1):
            if pos + config.batch > len(order):
                order, pos = torch.randperm(len(x), generator=batches), 0
            idx = order[pos : pos + config.batch]
            pos += config.batch
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            value = loss.item()
            if not math.isfinite(value):  # the recording ends on the bad value, as the others do
                recorder.log(step, loss=value)
                check_finite(step, loss=value)
            opt.step()  # the recorder's post-hook counts the step and captures on schedule
            recorder.log(loss=value)
            if step % config.eval_every == 0 or step == config.steps:
                evaluate()
                bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            bar.update()
        recorder.update_metadata(chapters=milestone_chapters(recorder.recording, CHAPTERS))
    return recorder.recording
