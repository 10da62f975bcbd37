"""Decision functions of small classifiers (docs/experiments.md section 4).

A softmax perceptron or a small network with ``H`` hidden units learns two classes in the
plane (blobs, two moons, concentric circles) by plain SGD one sample at a time or by
full-batch gradient descent with L2. The recording keeps the class-1 probability over a
grid, train/test loss and accuracy, and at every iteration the relative error between the
autograd gradient and a central finite-difference estimate of it (the gradient check of
the course assignments). Everything runs in float64 so the check means something.
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
from .spiral import grid_extent, grid_points

__all__ = [
    "Config",
    "ClassifiersConfig",
    "Classifier",
    "make_data",
    "objective",
    "gradient_check",
    "landscape_loss",
    "run",
]

DATASETS = ("blobs", "moons", "circles")
MODELS = ("perceptron", "mlp")
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
OPTIMIZERS = ("sgd", "gd")
DEFAULT_LR = {"perceptron": 0.01, "mlp": 0.1}


@dataclass(frozen=True)
class ClassifiersConfig:
    """Configuration of a small-classifier run; every field is a CLI flag.

    Attributes
    ----------
    dataset : str
        ``"moons"`` (two interleaved half circles), ``"blobs"`` (two Gaussian blobs at
        (-1.5, -1.5) and (1.5, 1.5), linearly separable) or ``"circles"`` (a circle of
        radius 0.5 inside one of radius 1).
    points : int
        Data points before the split, half per class.
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate (the blobs'
        own spread).
    test_fraction : float
        Share of each class held out for testing (stratified split).
    model : str
        ``"perceptron"`` (one softmax layer) or ``"mlp"`` (``depth`` hidden layers of
        ``hidden`` units, softmax output).
    hidden : int
        Hidden units per hidden layer (``H``).
    depth : int
        Hidden layers of the MLP (1: the two-layer network).
    activation : str
        Hidden activation: ``"relu"``, ``"tanh"`` or ``"sigmoid"``.
    optimizer : str
        ``"sgd"``: plain SGD on one random training sample per iteration; ``"gd"``:
        full-batch gradient descent.
    lr : float
        Learning rate; 0 means the reference's (perceptron 0.01, MLP 0.1).
    l2 : float
        Weight penalty ``l2 * sum over weight matrices of sum(W^2) / 2``.
    iterations : int
        Parameter updates.
    record_every : int
        Record the field and the train/test scores every this many iterations.
    grid : int
        The field is evaluated on a ``grid x grid`` lattice over the data.
    margin : float
        Space between the data and the edge of the grid, in data units.
    grad_check : bool
        Compare the gradient with central finite differences (h = 1e-4) every iteration.
    seed : int
        Seed of the data, split, initialisation and sample order (separate streams).
    """

    dataset: str = "moons"
    points: int = 200
    noise: float = 0.2
    test_fraction: float = 0.2
    model: str = "mlp"
    hidden: int = 10
    depth: int = 1
    activation: str = "relu"
    optimizer: str = "sgd"
    lr: float = 0.0
    l2: float = 0.0
    iterations: int = 1000
    record_every: int = 10
    grid: int = 100
    margin: float = 0.5
    grad_check: bool = True
    seed: int = 0

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "points": (10, 10_000_000),
        "noise": (0, 100),
        "hidden": (1, 100_000),
        "depth": (1, 100),
        "lr": (0, 1000),
        "l2": (0, 1000),
        "iterations": (1, 1_000_000_000),
        "record_every": (1, 1_000_000_000),
        "grid": (2, 4000),
        "margin": (0, 100),
        "seed": SEED,
    }

    def __post_init__(self):
        for name in ("points", "hidden", "depth", "iterations", "record_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.points < 10:
            raise ValueError(
                f"points must be at least 10 for a train/test split, got {self.points}"
            )
        if self.grid < 2:
            raise ValueError(f"grid must be at least 2, got {self.grid}")
        for name, allowed in (
            ("dataset", DATASETS),
            ("model", MODELS),
            ("activation", tuple(ACTIVATIONS)),
            ("optimizer", OPTIMIZERS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        for name in ("noise", "l2", "margin", "lr"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {self.test_fraction}")
        check_limits(self, self.LIMITS)

    @property
    def widths(self) -> tuple[int, ...]:
        return (2, 2) if self.model == "perceptron" else (2, *[self.hidden] * self.depth, 2)

    @property
    def learning_rate(self) -> float:
        return self.lr or DEFAULT_LR[self.model]


Config = ClassifiersConfig  # the name scene modules look up


def make_data(config: ClassifiersConfig):
    """``x (points, 2) float64``, ``y (points,) int64`` (class 0 first), ``train``, ``test``."""
    g = torch.Generator().manual_seed(stream_seed(config.seed, "data"))
    n0 = config.points // 2
    n1 = config.points - n0
    f64 = torch.float64
    if config.dataset == "blobs":
        centres = torch.tensor([[-1.5, -1.5], [1.5, 1.5]], dtype=f64)
        x = torch.cat([centres[0].expand(n0, 2), centres[1].expand(n1, 2)])
    elif config.dataset == "moons":  # as scikit-learn's make_moons
        t0 = torch.linspace(0, math.pi, n0, dtype=f64)
        t1 = torch.linspace(0, math.pi, n1, dtype=f64)
        x = torch.cat(
            [
                torch.stack([torch.cos(t0), torch.sin(t0)], 1),
                torch.stack([1 - torch.cos(t1), 0.5 - torch.sin(t1)], 1),
            ]
        )
    else:  # circles, as scikit-learn's make_circles with factor 0.5
        t0 = torch.arange(n0, dtype=f64) * 2 * math.pi / n0
        t1 = torch.arange(n1, dtype=f64) * 2 * math.pi / n1
        x = torch.cat(
            [
                torch.stack([torch.cos(t0), torch.sin(t0)], 1),
                0.5 * torch.stack([torch.cos(t1), torch.sin(t1)], 1),
            ]
        )
    x = x + config.noise * torch.randn(config.points, 2, generator=g, dtype=f64)
    y = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    split = torch.Generator().manual_seed(stream_seed(config.seed, "split"))
    train, test = stratified_split(y, config.test_fraction, split)
    return x, y, train, test


class Classifier(nn.Module):
    """Softmax classifier ``widths[0] -> ... -> widths[-1]`` (float64), returning logits.

    ``widths = (2, 2)`` is the softmax perceptron. Glorot-uniform weights, zero biases.
    """

    def __init__(
        self, widths=(2, 10, 2), activation: str = "relu", generator: torch.Generator | None = None
    ):
        super().__init__()
        self.activation = activation
        self.layers = nn.ModuleList(
            nn.Linear(a, b, dtype=torch.float64) for a, b in zip(widths[:-1], widths[1:])
        )
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = ACTIVATIONS[self.activation]
        *hidden, last = self.layers
        for layer in hidden:
            x = act(layer(x))
        return last(x)

    @torch.no_grad()
    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """Class-1 probabilities ``(n,)``."""
        return torch.softmax(self(x), dim=1)[:, 1]


def objective(
    model: Classifier, x: torch.Tensor, y: torch.Tensor, l2: float, params=None
) -> torch.Tensor:
    """Mean cross-entropy plus ``l2 * sum_W sum(W^2) / 2`` (with ``params``: a dict of
    replacement parameters, for the finite differences)."""
    if params is None:
        logits = model(x)
        weights = [layer.weight for layer in model.layers]
    else:
        logits = torch.func.functional_call(model, params, (x,))
        weights = [params[f"layers.{k}.weight"] for k in range(len(model.layers))]
    penalty = sum(w.pow(2).sum() for w in weights) / 2
    return nn.functional.cross_entropy(logits, y) + l2 * penalty


@torch.no_grad()
def gradient_check(
    model: Classifier, x: torch.Tensor, y: torch.Tensor, l2: float, h: float = 1e-4
) -> float:
    """Relative error ``|g - g_fd| / (|g| + |g_fd|)`` between the gradients in ``.grad``
    and central differences ``(L(p + h e_i) - L(p - h e_i)) / 2h`` over every parameter.

    All 2P perturbed losses are evaluated in one vectorized call (``torch.func.vmap``).

    Returns NaN when one of the 2P perturbations carries a hidden ReLU pre-activation
    across its kink: central differences then straddle a point where the loss is not
    differentiable, and their error says nothing about the gradient (the spikes the curve
    showed before this rule were such iterations).
    """
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]
    shapes, sizes = [p.shape for p in params], [p.numel() for p in params]
    flat = torch.cat([p.flatten() for p in params])
    analytic = torch.cat([p.grad.flatten() for _, p in model.named_parameters()])
    eye = torch.eye(len(flat), dtype=flat.dtype) * h

    def loss_at(vec):
        parts = vec.split(sizes)
        return objective(
            model, x, y, l2, {n: part.reshape(s) for n, part, s in zip(names, parts, shapes)}
        )

    batched = torch.func.vmap(loss_at)
    numeric = (batched(flat + eye) - batched(flat - eye)) / (2 * h)
    if model.activation == "relu":
        # did any perturbation carry a hidden pre-activation across its kink?
        def pattern(vec):
            parts = vec.split(sizes)
            inputs, signs = x, []
            for k in range(len(model.layers) - 1):
                w, b = (
                    parts[2 * k].reshape(shapes[2 * k]),
                    parts[2 * k + 1].reshape(shapes[2 * k + 1]),
                )
                z = inputs @ w.T + b
                signs.append((z > 0).flatten())
                inputs = torch.relu(z)
            return torch.cat(signs) if signs else torch.zeros(0, dtype=torch.bool)

        base = pattern(flat)
        moved = torch.func.vmap(pattern)(torch.cat([flat + eye, flat - eye]))
        if bool((moved != base).any()):
            return float("nan")
    denom = float(analytic.norm() + numeric.norm())
    return float((analytic - numeric).norm()) / denom if denom > 0 else 0.0


def landscape_loss(config: ClassifiersConfig):
    """What :mod:`dynamics.landscape` needs to draw the loss around a recorded run:
    ``(model, loss, description)``, the classifier (its own parameters unused) and the
    training objective on the training split (:func:`objective`, penalty included) as a
    function of the parameters dict. Building the model draws no number from the global
    random state."""
    x, y, train, _ = make_data(config)
    with torch.random.fork_rng(devices=[]):
        model = Classifier(config.widths, config.activation, torch.Generator().manual_seed(0))
    xt, yt = x[train], y[train]
    penalty = f" + L2 {config.l2:g}" if config.l2 else ""
    what = f"the objective (cross-entropy{penalty}) on the {len(train)} training points"
    return model, (lambda params: objective(model, xt, yt, config.l2, params)), what


def caption(config: ClassifiersConfig) -> str:
    """One line describing the run, drawn under a scene's title."""
    if config.model == "perceptron":
        model = "softmax perceptron"
    else:
        model = f"{config.depth} hidden layer(s) of {config.hidden} {config.activation} units"
    opt = "SGD, one sample per step" if config.optimizer == "sgd" else "full-batch gradient descent"
    return f"{config.dataset}, {model}, {opt}, lr {config.learning_rate:g}" + (
        f", L2 {config.l2:g}" if config.l2 else ""
    )


#: The moments a movie of the run stops at by default (see ``milestone_chapters``).
CHAPTERS = (
    ("train_loss", "fraction", 0.1, "The training loss falls 10x"),
    ("test_accuracy", "above", 0.9, "Test accuracy reaches 90%"),
)


def run(
    config: ClassifiersConfig = ClassifiersConfig(),
    *,
    path=None,
    overwrite: bool = False,
    progress: bool = False,
) -> Recording:
    """Train the classifier and record its probability field, scores and gradient check.

    Returns
    -------
    Recording
        ``field`` (T, grid, grid) class-1 probability at the cell centres (row 0 at the
        bottom) every ``record_every`` iterations and at the last; ``train_loss``,
        ``test_loss``, ``train_accuracy``, ``test_accuracy`` and every model parameter
        (series named as in ``named_parameters()``) on the same steps;
        ``grad_error`` at every iteration (the relative gradient-check error before that
        iteration's update, NaN where a ReLU model's differences straddle a kink; absent
        with ``grad_check=False``); ``data/x``, ``data/y``,
        ``data/test`` at step 0. Metadata: ``experiment``, ``config``, ``seed``, ``lr``,
        ``widths``, ``versions``, ``grid`` (``size``, ``extent``).
    """
    with one_torch_thread():
        return _run(config, path, overwrite, progress)


def _run(config: ClassifiersConfig, path, overwrite: bool, progress: bool) -> Recording:
    from ..progress import progress_bar

    x, y, train, test = make_data(config)
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
    extent = grid_extent(x, config.margin)
    grid = grid_points(extent, config.grid).double()
    g = config.grid
    model = Classifier(
        config.widths,
        config.activation,
        torch.Generator().manual_seed(stream_seed(config.seed, "init")),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate)
    order = torch.Generator().manual_seed(stream_seed(config.seed, "order"))
    metadata = {
        "experiment": "classifiers",
        "config": asdict(config),
        "seed": config.seed,
        "lr": config.learning_rate,
        "widths": list(config.widths),
        "versions": library_versions(),
        "grid": {"size": g, "extent": extent, "points": "cell centres", "origin": "lower"},
        "caption": caption(config),
    }
    recorder = Recorder(
        model,
        optimizer,
        params="*",
        schedule=every(config.record_every),
        path=path,
        overwrite=overwrite,
        metadata=metadata,
        derived={"field": lambda m: m.probability(grid).reshape(g, g).float()},
        # NaN where a ReLU model's finite differences straddle a kink: undefined, not a fault
        nonfinite_ok="grad_error" if model.activation == "relu" else None,
    )

    @torch.no_grad()
    def log_scores():
        scores = {}
        for split, (xs, ys) in (("train", (x_train, y_train)), ("test", (x_test, y_test))):
            logits = model(xs)
            scores[f"{split}_loss"] = float(nn.functional.cross_entropy(logits, ys))
            scores[f"{split}_accuracy"] = float((logits.argmax(1) == ys).double().mean())
        recorder.log(**scores)
        check_finite(recorder.step, train_loss=scores["train_loss"], test_loss=scores["test_loss"])
        return scores["train_loss"]

    is_test = torch.zeros(config.points, dtype=torch.bool)
    is_test[test] = True
    with (
        recorder,
        progress_bar(
            total=config.iterations,
            desc="training",
            unit="it",
            disable=not progress,
            mininterval=0.5,
        ) as bar,
    ):
        recorder.put("data/x", x.float())
        recorder.put("data/y", y.float())
        recorder.put("data/test", is_test)
        log_scores()
        for it in range(config.iterations):
            if config.optimizer == "sgd":
                i = int(torch.randint(len(train), (1,), generator=order))
                xb, yb = x_train[i : i + 1], y_train[i : i + 1]
            else:
                xb, yb = x_train, y_train
            loss = objective(model, xb, yb, config.l2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_check:
                recorder.log(grad_error=gradient_check(model, xb, yb, config.l2))
            optimizer.step()  # the recorder's post-hook counts the iteration and captures the field
            if recorder.step % config.record_every == 0 or recorder.step == config.iterations:
                cost = log_scores()
                bar.set_postfix(train_loss=f"{cost:.4f}", refresh=False)
            if it % 50 == 0 or it == config.iterations - 1:
                bar.update(it + 1 - bar.n)
        if config.iterations % config.record_every:
            recorder.capture()  # always end on the final weights
        recorder.update_metadata(chapters=milestone_chapters(recorder.recording, CHAPTERS))
    return recorder.recording
