"""Mass shuffling in a logistic regression (docs/experiments.md section 2).

One input coordinate carries the label, one more has the same scale but no information,
and thirteen carry tiny noise. Where does the "mass" of the weight vector go while a
logistic regression learns? With Adam every weight, noise included, moves by about the
learning rate per step (Adam divides each gradient by its own running scale); with plain
gradient descent the noise weights barely move, because their gradients are tiny.
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
from .common import (
    check_finite,
    library_versions,
    milestone_chapters,
    one_torch_thread,
    stratified_split,
    stream_seed,
)

__all__ = ["Config", "MassShuffleConfig", "LogisticRegression", "make_data", "default_lr", "run"]

OPTIMIZERS = ("adam", "gd")
VARIANTS = ("linear", "curved")
DEFAULT_LR = {"adam": 1e-4, "gd": 1e-2}


@dataclass(frozen=True)
class MassShuffleConfig:
    """Configuration of the mass-shuffling run; every field is a CLI flag.

    Attributes
    ----------
    points : int
        Data points before the split (1000 in the reference).
    signal_scale : float
        Scale of the two signal coordinates ``x[0], x[1] ~ signal_scale * N(0, 1)``.
    noise_dims : int
        Extra coordinates of pure noise (13: 15 inputs in all).
    noise_scale : float
        Scale of the noise coordinates ``noise_scale * N(0, 1)``.
    variant : str
        ``"linear"``: label ``x[0] >= 0``. ``"curved"``: label ``x[0] >= c * (x[1]^2 -
        s^2) / s`` with ``c = curvature`` and ``s = signal_scale``, a parabola in the first
        two coordinates, so ``x[1]`` matters a little and no linear model is exact.
    curvature : float
        ``c`` of the curved boundary (0.3: the linear model drops to about 0.89 accuracy).
    test_fraction : float
        Share of each class held out for testing (stratified split).
    optimizer : str
        ``"adam"`` (the reference) or ``"gd"`` (plain full-batch gradient descent): the
        contrast between them is the lesson.
    lr : float
        Learning rate; 0 means the optimizer's default (Adam 1e-4, GD 0.01).
    steps : int
        Full-batch optimizer steps.
    record_every : int
        Record the weights every this many steps (40: 750 snapshots over 30 000 steps).
    scalar_every : int
        Record train/test loss and accuracy every this many steps.
    seed : int
        Seed of the data, the split and the initialisation (separate streams).
    """

    points: int = 1000
    signal_scale: float = 10.0
    noise_dims: int = 13
    noise_scale: float = 0.01
    variant: str = "linear"
    curvature: float = 0.3
    test_fraction: float = 0.2
    optimizer: str = "adam"
    lr: float = 0.0
    steps: int = 30_000
    record_every: int = 40
    scalar_every: int = 10
    seed: int = 0

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "points": (10, 10_000_000),
        "signal_scale": (0, 1_000_000),
        "noise_dims": (0, 100_000),
        "noise_scale": (0, 1_000_000),
        "curvature": (-100, 100),
        "lr": (0, 1000),
        "steps": (1, 1_000_000_000),
        "record_every": (1, 1_000_000_000),
        "scalar_every": (1, 1_000_000_000),
        "seed": SEED,
    }

    def __post_init__(self):
        for name in ("points", "steps", "record_every", "scalar_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.points < 10:
            raise ValueError(
                f"points must be at least 10 for a train/test split, got {self.points}"
            )
        if self.noise_dims < 0:
            raise ValueError(f"noise_dims must be >= 0, got {self.noise_dims}")
        for name in ("signal_scale", "noise_scale"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if not (self.lr >= 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be >= 0 (0: the optimizer's default), got {self.lr}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {self.test_fraction}")
        check_limits(self, self.LIMITS)

    @property
    def inputs(self) -> int:
        return 2 + self.noise_dims


Config = MassShuffleConfig  # the name scene modules look up


def default_lr(config: MassShuffleConfig) -> float:
    """The learning rate a run uses: ``config.lr``, or the optimizer's default when 0."""
    return config.lr or DEFAULT_LR[config.optimizer]


def make_data(config: MassShuffleConfig):
    """The data set and its split: ``x (points, inputs) float32``, ``y (points,) float32``,
    ``train`` and ``test`` index tensors (stratified by class)."""
    g = torch.Generator().manual_seed(stream_seed(config.seed, "data"))
    signal = config.signal_scale * torch.randn(config.points, 2, generator=g)
    noise = config.noise_scale * torch.randn(config.points, config.noise_dims, generator=g)
    x = torch.cat([signal, noise], dim=1)
    if config.variant == "linear":
        y = x[:, 0] >= 0
    else:
        s = config.signal_scale
        y = x[:, 0] >= config.curvature * (x[:, 1] ** 2 - s * s) / s
    y = y.float()
    if y.min() == y.max():
        raise ValueError("every point has the same label; change curvature or points")
    split = torch.Generator().manual_seed(stream_seed(config.seed, "split"))
    train, test = stratified_split(y, config.test_fraction, split)
    return x, y, train, test


class LogisticRegression(nn.Module):
    """``p(y=1 | x) = sigmoid(x . W + b)`` with ``W`` (1, k) Glorot-uniform and ``b = 0``."""

    def __init__(self, inputs: int, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, inputs))
        self.bias = nn.Parameter(torch.zeros(1))
        nn.init.xavier_uniform_(self.weight, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n,)``."""
        return torch.addmv(self.bias, x, self.weight[0])

    @torch.no_grad()
    def set_grads(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Store the gradients of the mean binary cross-entropy in ``.grad``.

        Closed form ``X^T (p - y) / n``: three tensor calls instead of autograd's graph,
        which at this size costs more than the arithmetic (equal to autograd; tested).
        """
        r = torch.sigmoid(self(x)).sub_(y).div_(len(y))
        self.weight.grad = torch.mv(x.T, r)[None]
        self.bias.grad = r.sum().reshape(1)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """Mean binary cross-entropy and accuracy on ``(x, y)``."""
        z = self(x)
        loss = nn.functional.binary_cross_entropy_with_logits(z, y)
        return float(loss), float(((z >= 0).float() == y).float().mean())


def _optimizer(config: MassShuffleConfig, model: nn.Module) -> torch.optim.Optimizer:
    lr = default_lr(config)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    return torch.optim.SGD(model.parameters(), lr=lr)


def caption(config: MassShuffleConfig, boundary: str) -> str:
    """One line describing the run, drawn under a scene's title."""
    opt = {"adam": "Adam", "gd": "gradient descent"}.get(config.optimizer, config.optimizer)
    return (
        f"logistic regression on {config.inputs} inputs, {opt} lr {default_lr(config):g}, "
        f"boundary {boundary}"
    )


#: The moments a movie of the run stops at by default (see ``milestone_chapters``).
CHAPTERS = (
    ("train_loss", "fraction", 0.1, "The training loss falls 10x"),
    ("test_accuracy", "above", 0.9, "Test accuracy reaches 90%"),
)


def run(
    config: MassShuffleConfig = MassShuffleConfig(),
    *,
    path=None,
    overwrite: bool = False,
    progress: bool = False,
) -> Recording:
    """Train the logistic regression full batch and record its weights and scores.

    Parameters
    ----------
    config : MassShuffleConfig
    path : path-like, optional
        Stream the recording to this directory; in memory otherwise.
    overwrite : bool
        Replace an existing recording at ``path``.
    progress : bool
        Show a progress bar over steps, with the training cost every 1000 steps.

    Returns
    -------
    Recording
        Series ``weight`` (T, 1, k) and ``bias`` (T, 1) every ``record_every`` steps;
        ``train_loss``, ``test_loss``, ``train_accuracy``, ``test_accuracy`` () every
        ``scalar_every`` steps (and at the last step); ``data/x`` (points, k), ``data/y``
        (points,) and ``data/test`` (points,) bool at step 0. Metadata: ``experiment``,
        ``config``, ``seed``, ``lr``, ``versions``, ``inputs`` (which coordinate carries
        the label, which are signal-scale and which noise), ``boundary``.
    """
    with one_torch_thread():
        return _run(config, path, overwrite, progress)


def _run(config: MassShuffleConfig, path, overwrite: bool, progress: bool) -> Recording:
    from ..progress import progress_bar

    x, y, train, test = make_data(config)
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
    model = LogisticRegression(
        config.inputs, torch.Generator().manual_seed(stream_seed(config.seed, "init"))
    )
    optimizer = _optimizer(config, model)
    s = config.signal_scale
    boundary = (
        "x[0] >= 0"
        if config.variant == "linear"
        else f"x[0] >= {config.curvature:g} * (x[1]^2 - {s * s:g}) / {s:g}"
    )
    metadata = {
        "experiment": "mass_shuffle",
        "config": asdict(config),
        "seed": config.seed,
        "lr": default_lr(config),
        "versions": library_versions(),
        "inputs": {"label": [0], "signal": [0, 1], "noise": list(range(2, config.inputs))},
        "boundary": boundary,
        "caption": caption(config, boundary),
    }
    recorder = Recorder(
        model,
        optimizer,
        params=["weight", "bias"],
        schedule=every(config.record_every),
        path=path,
        overwrite=overwrite,
        metadata=metadata,
    )

    def log_scores():
        train_loss, train_acc = model.evaluate(x_train, y_train)
        test_loss, test_acc = model.evaluate(x_test, y_test)
        recorder.log(
            train_loss=train_loss,
            test_loss=test_loss,
            train_accuracy=train_acc,
            test_accuracy=test_acc,
        )
        check_finite(recorder.step, train_loss=train_loss, test_loss=test_loss)
        return train_loss

    is_test = torch.zeros(config.points, dtype=torch.bool)
    is_test[test] = True
    with (
        recorder,
        progress_bar(
            total=config.steps,
            desc="training",
            unit="step",
            disable=not progress,
            unit_scale=True,
            mininterval=0.5,
        ) as bar,
    ):
        recorder.put("data/x", x)
        recorder.put("data/y", y)
        recorder.put("data/test", is_test)
        log_scores()
        for step in range(1, config.steps + 1):
            model.set_grads(x_train, y_train)
            optimizer.step()  # the recorder's post-hook counts the step and captures the weights
            if step % config.scalar_every == 0 or step == config.steps:
                cost = log_scores()
                if step % 1000 < config.scalar_every:
                    bar.set_postfix(cost=f"{cost:.4f}", refresh=False)
            if step % 100 == 0 or step == config.steps:
                bar.update(step - bar.n)
        if config.steps % config.record_every:
            recorder.capture()  # always end on the final weights
        recorder.update_metadata(chapters=milestone_chapters(recorder.recording, CHAPTERS))
    return recorder.recording
