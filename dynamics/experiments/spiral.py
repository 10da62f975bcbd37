"""Two-spiral MLP (docs/experiments.md section 3).

Two interleaved spirals, one per class. How does a deep ReLU network carve a decision
boundary between them? The recording keeps the network's class-1 probability over a grid
that spans the data, so a scene can show the field and its 0.5 contour taking shape.
Without its ReLUs the same network is a linear map, and no straight line separates two
spirals: ``activation="none"`` is the control.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

from ..capture import Probe
from ..limits import SEED, check_limits
from ..recorder import Recorder, every
from ..recording import Recording
from .common import (
    check_finite,
    library_versions,
    milestone_chapters,
    one_torch_thread,
    stream_seed,
)

__all__ = [
    "Config",
    "SpiralConfig",
    "SpiralMLP",
    "make_data",
    "grid_extent",
    "grid_points",
    "objective",
    "landscape_loss",
    "probe_indices",
    "run",
]

ACTIVATIONS = ("relu", "none")


@dataclass(frozen=True)
class SpiralConfig:
    """Configuration of the two-spiral run; every field is a CLI flag.

    Attributes
    ----------
    points : int
        Data points, half per class (1000 in the reference; must be even).
    turns : float
        Spiral length: ``theta = (1 + turns * U) * 2 pi`` with ``U ~ Uniform(0, 1)``.
    noise : float
        Each coordinate gets ``noise * Uniform(0, 1)`` added (one-sided, as the reference).
    hidden : str
        Hidden layer widths, comma-separated ("1024,32,16,4": the 2-1024-32-16-4-1 MLP).
    activation : str
        ``"relu"`` (the reference) or ``"none"``: the same network without its ReLUs, a
        linear map, which cannot separate the spirals.
    lr : float
        Adam learning rate.
    l2 : float
        Weight penalty ``l2 * sum over weight matrices of sum(W^2) / 2`` (biases free).
    steps : int
        Adam steps.
    batch : int
        Points per step, drawn with replacement from the data.
    field_every : int
        Record the probability field on the grid, the probabilities of the data points
        and the training accuracy every this many steps (and at the last step).
    loss_every : int
        Record the minibatch loss every this many steps.
    grid : int
        The field is evaluated on a ``grid x grid`` lattice of cell centres.
    margin : float
        Space between the data and the edge of the (square) grid, in data units.
    probe : int
        At most this many data points (all of them when ``points`` is smaller), evenly
        spaced over the data set so about half of each class (see :func:`probe_indices`),
        whose representation in every hidden layer is recorded with the field
        (``probe/hidden.K``, float16: 200 points take 0.43 MB a snapshot with the default
        layers), for the movie's view of the layers untangling the arms; 0: none.
    seed : int
        Seed of the data, the initialisation and the minibatches (separate streams).
    """

    points: int = 1000
    turns: float = 1.75
    noise: float = 0.5
    hidden: str = "1024,32,16,4"
    activation: str = "relu"
    lr: float = 1e-3
    l2: float = 1e-3
    steps: int = 3000
    batch: int = 1000
    field_every: int = 30
    loss_every: int = 1
    grid: int = 200
    margin: float = 1.0
    probe: int = 200
    seed: int = 0

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "points": (2, 10_000_000),
        "turns": (0, 100),
        "noise": (0, 100),
        "lr": (0, 1000),
        "l2": (0, 1000),
        "steps": (1, 1_000_000_000),
        "batch": (1, 10_000_000),
        "field_every": (1, 1_000_000_000),
        "loss_every": (1, 1_000_000_000),
        "grid": (2, 4000),
        "margin": (0, 100),
        "probe": (0, 10_000_000),
        "seed": SEED,
    }

    def __post_init__(self):
        for name in ("points", "steps", "batch", "field_every", "loss_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.points < 2 or self.points % 2:
            raise ValueError(
                f"points must be even (half per class) and at least 2, got {self.points}"
            )
        if self.grid < 2:
            raise ValueError(f"grid must be at least 2, got {self.grid}")
        if self.probe < 0:
            raise ValueError(f"probe must be 0 (none) or a number of points, got {self.probe}")
        for name in ("turns", "lr"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)}")
        for name in ("noise", "l2", "margin"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}"
            )
        _ = self.widths  # parse hidden now: a bad value fails here, with its own message
        check_limits(self, self.LIMITS)

    @property
    def widths(self) -> tuple[int, ...]:
        """Layer widths from input to output, e.g. ``(2, 1024, 32, 16, 4, 1)``."""
        try:
            hidden = tuple(int(w) for w in self.hidden.split(",") if w.strip())
        except ValueError:
            hidden = ()
        if not hidden or min(hidden) < 1:
            raise ValueError(
                "hidden must be positive widths separated by commas, e.g. 1024,32,16,4; "
                f"got {self.hidden!r}"
            )
        return (2, *hidden, 1)


Config = SpiralConfig  # the name scene modules look up


def make_data(config: SpiralConfig):
    """The two spirals: ``x (points, 2) float32`` and ``y (points,) float32``.

    The first half is class 0, ``(-theta cos theta, -theta sin theta)``; the second half
    class 1, ``(theta cos theta, theta sin theta)``; ``theta = (1 + turns U) 2 pi``. Each
    coordinate then gets ``noise * Uniform(0, 1)``. Drawn from the "data" stream in this
    order: ``U`` (points,), then the noise (points, 2); computed in float64, returned as
    float32.
    """
    g = torch.Generator().manual_seed(stream_seed(config.seed, "data"))
    n = config.points
    u = torch.rand(n, generator=g, dtype=torch.float64)
    jitter = torch.rand(n, 2, generator=g, dtype=torch.float64)
    theta = (1 + config.turns * u) * 2 * math.pi
    sign = torch.ones(n, dtype=torch.float64)
    sign[: n // 2] = -1
    x = sign[:, None] * torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], dim=1)
    x = x + config.noise * jitter
    y = torch.zeros(n)
    y[n // 2 :] = 1
    return x.float(), y


def grid_extent(x: torch.Tensor, margin: float) -> list[float]:
    """``[x0, x1, y0, y1]``: the square that holds every point with ``margin`` to spare."""
    lo = float(x.min()) - margin
    hi = float(x.max()) + margin
    return [lo, hi, lo, hi]


def grid_points(extent, n: int) -> torch.Tensor:
    """Centres of an ``n x n`` lattice of cells over ``extent`` as ``(n * n, 2)`` float32.

    Row-major with y outermost: reshaped to ``(n, n)``, row ``i`` is the ``i``-th row of
    cells from the bottom (``imshow(origin="lower", extent=extent)`` draws it in place).
    """
    x0, x1, y0, y1 = extent
    xs = x0 + (torch.arange(n, dtype=torch.float64) + 0.5) * (x1 - x0) / n
    ys = y0 + (torch.arange(n, dtype=torch.float64) + 0.5) * (y1 - y0) / n
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1).float()


class SpiralMLP(nn.Module):
    """A fully connected network ``widths[0] -> ... -> widths[-1]`` returning logits.

    Hidden layers are followed by ReLU (``activation="relu"``) or by nothing
    (``"none"``: a linear map). Weights are Glorot-uniform, biases zero. Each hidden
    layer's output (after its activation) passes through ``hidden[k]``, an
    :class:`~torch.nn.Identity` with no parameters: the module a forward hook (a
    :class:`~dynamics.capture.Probe`) attaches to.
    """

    def __init__(
        self,
        widths=(2, 1024, 32, 16, 4, 1),
        activation: str = "relu",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = activation
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)
        self.hidden = nn.ModuleList(nn.Identity() for _ in widths[1:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n,)``; the class-1 probability is their sigmoid.

        Each layer is ``addmm(b, x, W^T)`` with ``W^T`` made contiguous (a copy of at most
        32 768 numbers): on CPU, ``nn.Linear``'s transposed view of the 1024 x 2 first
        weight took a slow matrix-product path; the copy made a training step 2.3x and the
        field 2x faster (measured on 1 thread: 21.5 -> 9.3 ms per step).
        """
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            x = torch.addmm(layer.bias, x, layer.weight.t().contiguous())
            if k < last:
                if self.activation == "relu":
                    x = torch.relu(x)
                x = self.hidden[k](x)
        return x[:, 0]

    def weights(self) -> list[nn.Parameter]:
        """The weight matrices (what the L2 penalty covers)."""
        return [layer.weight for layer in self.layers]

    @torch.no_grad()
    def probability(self, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """Class-1 probabilities ``(n,)``, evaluated ``chunk`` points at a time (1024 rows
        of the 1024-wide layer stay in cache: 2x faster than 40 000 rows at once)."""
        return torch.cat([torch.sigmoid(self(part)) for part in x.split(chunk)])


def objective(model: SpiralMLP, x: torch.Tensor, y: torch.Tensor, l2: float):
    """``(loss, bce)``: mean binary cross-entropy plus ``l2 * sum_W sum(W^2) / 2``, and the
    cross-entropy alone (computed from the logits, stable where the sigmoid saturates)."""
    bce = nn.functional.binary_cross_entropy_with_logits(model(x), y)
    penalty = sum(w.pow(2).sum() for w in model.weights()) / 2
    return bce + l2 * penalty, bce


def landscape_loss(config: SpiralConfig):
    """What :mod:`dynamics.landscape` needs to draw the loss around a recorded run:
    ``(model, loss, description)``, the network (its own parameters unused) and the training
    objective on every data point (penalty included) as a function of the parameters dict
    (written with ``functional_call``, so ``vmap`` batches it). Building the model draws no
    number from the global random state."""
    x, y = make_data(config)
    with torch.random.fork_rng(devices=[]):
        model = SpiralMLP(config.widths, config.activation, torch.Generator().manual_seed(0))
    weights = [f"layers.{k}.weight" for k in range(len(model.layers))]

    def loss(params):
        logits = torch.func.functional_call(model, params, (x,))
        bce = nn.functional.binary_cross_entropy_with_logits(logits, y)
        return bce + config.l2 * sum(params[w].pow(2).sum() for w in weights) / 2

    what = f"the objective (BCE + L2 {config.l2:g}) on all {config.points} points"
    return model, loss, what


def probe_indices(config: SpiralConfig) -> torch.Tensor:
    """The data points the probe records, ``(n,) int64`` with ``n = min(probe, points)``:
    ``k * points // n`` for ``k < n``, evenly spaced over the data (class 0 is the first
    half), so both classes have about half of them, spread along the arms (``U`` is drawn
    independently per point)."""
    n = min(config.probe, config.points)
    return torch.arange(n, dtype=torch.int64) * config.points // max(n, 1)


def caption(config: SpiralConfig) -> str:
    """One line describing the run, drawn under a scene's title."""
    act = {"relu": "ReLU", "none": "no activation (a linear map)"}.get(
        config.activation, config.activation
    )
    return (
        f"{'-'.join(str(w) for w in config.widths)} MLP, {act}, Adam lr {config.lr:g}, "
        f"batch {config.batch}, L2 {config.l2:g}"
    )


#: The moments a movie of the run stops at by default (see ``milestone_chapters``).
CHAPTERS = (
    ("train_accuracy", "above", 0.9, "Training accuracy reaches 90%"),
    ("train_accuracy", "above", 0.999, "Every training point is right"),
)


def run(
    config: SpiralConfig = SpiralConfig(),
    *,
    path=None,
    overwrite: bool = False,
    progress: bool = False,
) -> Recording:
    """Train the MLP on the two spirals and record its probability field over training.

    Parameters
    ----------
    config : SpiralConfig
    path : path-like, optional
        Stream the recording to this directory; in memory otherwise.
    overwrite : bool
        Replace an existing recording at ``path``.
    progress : bool
        Show a progress bar over steps with the current loss.

    Returns
    -------
    Recording
        Series ``field`` (T, grid, grid) float32, the class-1 probability at the cell
        centres (row 0 at the bottom), ``prob`` (T, points) the class-1 probability of
        each data point, and ``train_accuracy`` () on the whole data set, all every
        ``field_every`` steps and at the last step, with every model parameter (series
        named as in ``named_parameters()``, float32) on the same steps, so the field can
        be recomputed from the recording; with ``probe`` points, ``probe/hidden.K``
        (T, probe, width_K) float16, each hidden layer's output for those points, on the
        same steps, and ``probe/inputs`` (probe, 2), ``probe/labels`` (probe,) once
        (:class:`~dynamics.capture.Probe`: run in eval mode under no_grad with the random
        state restored, so the training is the one without it); ``loss`` (the objective, penalty
        included) and ``bce`` (its cross-entropy part) on each step's minibatch, at the
        weights before that step's update, every ``loss_every`` steps (and at the last
        step, on one more minibatch); ``data/x`` (points, 2), ``data/y`` (points,) at
        step 0. Metadata: ``experiment``, ``config``, ``seed``, ``versions``, ``widths``,
        ``parameters``, ``grid`` (``size``, ``extent`` [x0, x1, y0, y1], cell centres,
        origin lower) and ``timing`` (seconds spent training and evaluating the field).
    """
    with one_torch_thread():
        return _run(config, path, overwrite, progress)


def _run(config: SpiralConfig, path, overwrite: bool, progress: bool) -> Recording:
    from ..progress import progress_bar

    x, y = make_data(config)
    extent = grid_extent(x, config.margin)
    grid = grid_points(extent, config.grid)
    model = SpiralMLP(
        config.widths,
        config.activation,
        torch.Generator().manual_seed(stream_seed(config.seed, "init")),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    batches = torch.Generator().manual_seed(stream_seed(config.seed, "batches"))
    g = config.grid
    timing = {"field_s": 0.0}

    def field(m):
        start = time.perf_counter()
        p = m.probability(grid).reshape(g, g)
        timing["field_s"] += time.perf_counter() - start
        return p

    metadata = {
        "experiment": "spiral",
        "config": asdict(config),
        "seed": config.seed,
        "versions": library_versions(),
        "widths": list(config.widths),
        "parameters": sum(p.numel() for p in model.parameters()),
        "grid": {"size": g, "extent": extent, "points": "cell centres", "origin": "lower"},
        "caption": caption(config),
    }
    probes = []
    if config.probe:
        idx = probe_indices(config)
        probes.append(Probe(x[idx], y[idx], modules="hidden.*", dtype="float16"))
    recorder = Recorder(
        model,
        optimizer,
        params="*",
        schedule=every(config.field_every),
        path=path,
        overwrite=overwrite,
        metadata=metadata,
        derived={"field": field, "prob": lambda m: m.probability(x)},
        quantities=probes,
    )

    def log_accuracy():
        recorder.log(
            train_accuracy=float(((model.probability(x) >= 0.5).float() == y).float().mean())
        )

    def batch_loss():
        idx = torch.randint(config.points, (config.batch,), generator=batches)
        return objective(model, x[idx], y[idx], config.l2)

    start = time.perf_counter()
    with progress_bar(
        total=config.steps, desc="training", unit="step", disable=not progress, mininterval=0.5
    ) as bar:
        with recorder:  # captures step 0 on entering
            recorder.put("data/x", x)
            recorder.put("data/y", y)
            log_accuracy()
            for step in range(config.steps):
                loss, bce = batch_loss()
                if step % config.loss_every == 0:
                    value = loss.item()
                    recorder.log(loss=value, bce=bce.detach())
                    check_finite(recorder.step, loss=value)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()  # the recorder's post-hook counts the step and captures the field
                if recorder.step % config.field_every == 0:
                    log_accuracy()
                if step % 20 == 0 or step == config.steps - 1:
                    bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                    bar.update(step + 1 - bar.n)
            with torch.no_grad():
                loss, bce = batch_loss()  # the loss at the final weights, on one more minibatch
            recorder.log(loss=loss, bce=bce)
            check_finite(recorder.step, loss=loss.item())
            if config.steps % config.field_every:
                recorder.capture()  # always end on the final weights
                log_accuracy()
            total = time.perf_counter() - start
            recorder.update_metadata(
                timing={
                    "total_s": round(total, 3),
                    "field_s": round(timing["field_s"], 3),
                    "train_s": round(total - timing["field_s"], 3),
                },
                chapters=milestone_chapters(recorder.recording, CHAPTERS),
            )
    return recorder.recording
