"""Gradient descent at the edge of stability (docs/experiments.md section 6).

Full-batch gradient descent on a small tanh MLP with the mean squared error, at several step
sizes ``lr`` from one initialisation. Cohen et al. (ICLR 2021, "Gradient Descent on Neural
Networks Typically Occurs at the Edge of Stability") observed two things. First, the
sharpness (the largest eigenvalue of the training loss's Hessian) rises during training
("progressive sharpening"). Second, it stops rising at ``2 / lr``, the largest sharpness
at which gradient descent on a quadratic is stable, and hovers there ("the edge of
stability") while the loss keeps falling over long times, though not monotonically. A
step size small enough that the sharpness never grows to its ``2 / lr`` within the run is
the control: there the sharpness keeps rising, below its edge, and the loss falls
smoothly.

The data are made here: ``points`` inputs ``x ~ N(0, I_dim)``, labelled ``+1`` outside the
sphere ``|x|^2 = dim`` and ``-1`` inside, fitted by regression on the labels. A ball
is not linearly separable, and the network keeps sharpening as it fits it.

The runs train side by side: one module holds a copy of the network per step size, each
with its own optimizer, and one recorder captures them all on one timeline, the sharpness
through one :class:`~dynamics.capture.Sharpness` quantity per run (its loss depends on that
run's copy only, so the Hessian is that run's, padded with zero blocks).

At the end, a slice of the loss landscape (:mod:`dynamics.landscape`): ONE plane for all the
runs, through their common start, spanned by the top two principal directions of every
run's parameter snapshots together (their displacements from the start), with each run's
path projected onto it. One plane rather than a plane per run, because what a lecturer
points at is the comparison: the runs leave one point together, and how far and where each
step size goes (on seed 0 the largest travels farthest) reads off one picture with one
scale, the colours of the runs those of the curves beside it; a plane per run would give
each its own axes, which no eye compares. Through the start, because it is the one point
every run shares, so every path begins exactly at ``(0, 0)`` and the grid's loss there is
exact. On seed 0 the plane keeps 97.8% of the paths' squared distance from the start
(91.3% + 6.5%) and 97-98% of each run's; the rest, though small, matters to the loss:
near its end the lr 0.1 path's loss at its projection is about 5 times its own (0.32
against 0.06), so the contours are a slice through the landscape, not the floor each run
walked on (the recording keeps both losses along each path).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..capture import Recorder, Sharpness, every
from ..limits import SEED, check_limits
from ..recording import Recording
from .common import check_finite, library_versions, one_torch_thread, stream_seed

__all__ = [
    "Config",
    "EdgeOfStabilityConfig",
    "TanhMLP",
    "Members",
    "make_data",
    "run_names",
    "landscape_loss",
    "landscape_options",
    "run",
    "summary",
    "criteria",
]

#: Largest step size a run takes (gradient descent far beyond it diverges at once).
MAX_LR = 100.0
#: Most runs side by side (the scene gives each a colour of its own).
MAX_RUNS = 6
#: Grid points per batched landscape evaluation: fixed (not tuned by timing), so that a seed's
#: recording repeats bit for bit; the fastest on 2 CPU cores for the default network (41 x 41
#: grid: chunk 16 1.2 s, 64 1.0 s, 256 1.6 s, one at a time 1.4 s).
LANDSCAPE_CHUNK = 64


@dataclass(frozen=True)
class EdgeOfStabilityConfig:
    """Configuration of the edge-of-stability runs; every field is a CLI flag.

    Attributes
    ----------
    lrs : str
        The step sizes, comma-separated, one run each from the same initialisation
        ("0.1,0.05,0.02": 2/lr = 20, 40 and 100; the last is the control, which never
        reaches its edge within the default 1500 steps).
    points : int
        Training points (the whole batch of every step).
    dim : int
        Input dimension: ``x ~ N(0, I_dim)``, label ``+1`` where ``|x|^2 > dim``, else ``-1``.
    width : int
        Units in each hidden layer.
    depth : int
        Hidden layers (tanh), each ``width`` wide.
    steps : int
        Gradient-descent steps of every run.
    sharpness_every : int
        Measure the sharpness of every run (and keep the parameters) every this many steps,
        and at the last step.
    sharpness_tol : float
        Lanczos stops when the top Ritz pair's residual ``||H u - theta u||`` is at most this
        times the sharpness (:func:`dynamics.curvature.sharpness`); the eigenvalue's error
        is about the square of that residual over the gap to the next eigenvalue: at 1e-3,
        the recorded values agree with those at 1e-6 to about 6 digits, at a third of the
        Hessian-vector products.
    landscape_grid : int
        After training, the loss on a ``landscape_grid x landscape_grid`` grid over one plane
        shared by every run (through their common start, along the top two principal
        directions of all their parameter snapshots), each run's path projected onto it
        (:func:`landscape_options`); 0: none.
    seed : int
        Seed of the data and of the initialisation (separate streams).
    """

    lrs: str = "0.1,0.05,0.02"
    points: int = 500
    dim: int = 10
    width: int = 64
    depth: int = 2
    steps: int = 1500
    sharpness_every: int = 10
    sharpness_tol: float = 1e-3
    landscape_grid: int = 41
    seed: int = 0

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "points": (2, 1_000_000),
        "dim": (1, 10_000),
        "width": (1, 10_000),
        "depth": (1, 100),
        "steps": (1, 100_000_000),
        "sharpness_every": (1, 100_000_000),
        "sharpness_tol": (1e-12, 0.1),
        "landscape_grid": (0, 2000),
        "seed": SEED,
    }

    def __post_init__(self):
        for name in ("points", "dim", "width", "depth", "steps", "sharpness_every"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        _ = self.step_sizes  # parse lrs now: a bad value fails here, with its own message
        check_limits(self, self.LIMITS)

    @property
    def step_sizes(self) -> tuple[float, ...]:
        """The step sizes of ``lrs``, in the order given."""
        try:
            lrs = tuple(float(v) for v in str(self.lrs).split(",") if v.strip())
        except ValueError:
            lrs = ()
        if not lrs or not all(0 < lr <= MAX_LR for lr in lrs):  # NaN and inf too
            raise ValueError(
                f"lrs must be step sizes above 0 and at most {MAX_LR:g}, separated by commas, "
                f"e.g. 0.1,0.05,0.02; got {self.lrs!r}"
            )
        if len(set(lrs)) != len(lrs) or len(lrs) > MAX_RUNS:
            raise ValueError(f"lrs must be 1 to {MAX_RUNS} different step sizes, got {self.lrs!r}")
        return lrs

    @property
    def widths(self) -> tuple[int, ...]:
        """Layer widths from input to output, e.g. ``(10, 64, 64, 1)``."""
        return (self.dim, *([self.width] * self.depth), 1)


Config = EdgeOfStabilityConfig  # the name scene modules look up


def run_names(config: EdgeOfStabilityConfig) -> list[str]:
    """The prefix of each run's series, ``lr=<lr>`` (``lr=0.1/sharpness``, ``lr=0.1/loss``)."""
    return [f"lr={lr:g}" for lr in config.step_sizes]


def make_data(config: EdgeOfStabilityConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The training set: ``x (points, dim)`` standard normal from the "data" stream, and
    ``y (points,)`` = ``+1`` where ``|x|^2 > dim`` (outside the sphere), else ``-1``; float32.
    About 45% of the points lie outside (the median of a chi-square with ``dim`` degrees of
    freedom is a little below ``dim``)."""
    g = torch.Generator().manual_seed(stream_seed(config.seed, "data"))
    x = torch.randn(config.points, config.dim, generator=g)
    y = torch.where(x.pow(2).sum(1) > config.dim, 1.0, -1.0)
    return x, y


class TanhMLP(nn.Module):
    """``widths[0] -> ... -> widths[-1]``, tanh after each hidden layer; returns ``(n,)``.

    Initialised as :class:`torch.nn.Linear` is (weights and biases uniform on
    ``+-1/sqrt(fan_in)``), from ``generator`` rather than the global random state.
    """

    def __init__(self, widths, generator: torch.Generator | None = None):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        with torch.no_grad():
            for layer in self.layers:
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < last:
                x = torch.tanh(x)
        return x[:, 0]


class Members(nn.Module):
    """Several copies of one network, trained side by side: ``forward(x)`` is ``(runs, n)``,
    row ``k`` the output of copy ``k`` (``members.k``). Copies share nothing but their
    initial values."""

    def __init__(self, networks):
        super().__init__()
        self.members = nn.ModuleList(networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])


def member_loss(k: int):
    """The mean squared error of run ``k`` alone, from the stacked outputs ``(runs, n)``."""

    def mse_loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(outputs[k], y)

    return mse_loss


def landscape_loss(config: EdgeOfStabilityConfig):
    """What :mod:`dynamics.landscape` needs to draw the loss around the recorded runs:
    ``(model, loss, description)``, one network (its own parameters unused; each run's are
    recorded under ``members.<k>.``, :func:`landscape_options`) and its mean squared error on
    the whole training set as a function of the parameters dict (written with
    ``functional_call``, so ``vmap`` batches it). Draws no number from the global random
    state."""
    x, y = make_data(config)
    model = TanhMLP(config.widths, torch.Generator().manual_seed(0))

    def mse(params):
        return nn.functional.mse_loss(torch.func.functional_call(model, params, (x,)), y)

    return model, mse, f"the training loss (MSE on all {config.points} points)"


def landscape_options(config: EdgeOfStabilityConfig) -> dict[str, Any]:
    """How the runs share one landscape (:func:`dynamics.landscape.landscape`'s keywords):
    each run a path, labelled as its series' prefix (``lr=0.1``) with its parameters under
    ``members.<k>.``, on one plane through their common start (the module docstring says
    why), over a square grid (the panel draws distances with equal aspect)."""
    paths = {name: f"members.{k}." for k, name in enumerate(run_names(config))}
    return {"paths": paths, "origin": "start", "square": True}


def caption(config: EdgeOfStabilityConfig) -> str:
    """One line describing the runs, drawn under a scene's title."""
    net = "-".join(str(w) for w in config.widths)
    lrs = ", ".join(f"{lr:g}" for lr in config.step_sizes)
    return (
        f"{net} tanh MLP, MSE on {config.points:,d} points (inside / outside a sphere), "
        f"full-batch gradient descent from one start, lr {lrs}"
    )


def run(
    config: EdgeOfStabilityConfig = EdgeOfStabilityConfig(),
    *,
    path=None,
    overwrite: bool = False,
    progress: bool = False,
) -> Recording:
    """Train one copy of the network per step size, full batch, and record the loss of
    each every step and its sharpness every ``sharpness_every`` steps.

    Parameters
    ----------
    config : EdgeOfStabilityConfig
    path : path-like, optional
        Stream the recording to this directory; in memory otherwise.
    overwrite : bool
        Replace an existing recording at ``path``.
    progress : bool
        Show a progress bar over steps with the runs' losses.

    Returns
    -------
    Recording
        For each run, prefix ``P = lr=<lr>`` (:func:`run_names`): ``P/loss`` () the training
        loss at the weights after each step (step 0: the initial weights), every step;
        ``P/sharpness`` (T, 1) float64, the top Hessian eigenvalue of that loss,
        ``P/sharpness/edge`` (T,) ``2 / lr`` and ``P/sharpness/hvps`` (the Hessian-vector
        products each measurement took), every ``sharpness_every`` steps and at the last;
        every parameter on those steps (``members.<k>.layers.<j>.weight`` ..., run ``k`` in
        the order of ``lrs``). ``data/x`` (points, dim) and ``data/y`` (points,) at step
        0. Metadata: ``experiment``, ``config``, ``seed``, ``versions``, ``caption``,
        ``parameters`` (of one network), ``runs`` (per run: ``lr``, ``edge``, and the names
        of its ``sharpness`` and ``loss`` series, which the scene reads), ``chapters`` (the
        step at which each run's sharpness first reaches its edge). With
        ``landscape_grid``: the runs' shared loss landscape (:func:`add_landscape`), its
        description in ``metadata["landscape"]["landscape"]``.
    """
    with one_torch_thread():
        return _run(config, path, overwrite, progress)


def _run(config: EdgeOfStabilityConfig, path, overwrite: bool, progress: bool) -> Recording:
    from ..progress import progress_bar

    x, y = make_data(config)
    lrs, names = config.step_sizes, run_names(config)
    init = torch.Generator().manual_seed(stream_seed(config.seed, "init"))
    first = TanhMLP(config.widths, init)
    copies = [first] + [TanhMLP(config.widths) for _ in lrs[1:]]
    for net in copies[1:]:
        net.load_state_dict(first.state_dict())  # one start for every step size
    model = Members(copies)
    optimizers = [torch.optim.SGD(net.parameters(), lr=lr) for net, lr in zip(copies, lrs)]
    sharpness = [
        Sharpness(
            member_loss(k),
            (x, y),
            optimizer=opt,
            tol=config.sharpness_tol,
            name=f"{name}/sharpness",
        )
        for k, (opt, name) in enumerate(zip(optimizers, names))
    ]
    runs = [
        {"lr": lr, "edge": 2 / lr, "sharpness": f"{name}/sharpness", "loss": f"{name}/loss"}
        for lr, name in zip(lrs, names)
    ]
    metadata = {
        "experiment": "edge_of_stability",
        "config": asdict(config),
        "seed": config.seed,
        "versions": library_versions(),
        "widths": list(config.widths),
        "parameters": sum(p.numel() for p in first.parameters()),
        "runs": runs,
        "caption": caption(config),
    }
    recorder = Recorder(
        model,
        optimizers,
        params="*",
        schedule=every(config.sharpness_every),
        path=path,
        overwrite=overwrite,
        metadata=metadata,
        quantities=sharpness,
    )

    def log_losses() -> torch.Tensor:
        losses = (model(x) - y).pow(2).mean(dim=1)  # (runs,): each run's mean squared error
        values = {f"{name}/loss": v for name, v in zip(names, losses.tolist())}
        recorder.log(**values)
        check_finite(recorder.step, "try smaller --lrs", **values)
        return losses

    with progress_bar(
        total=config.steps, desc="training", unit="step", disable=not progress, mininterval=0.5
    ) as bar:
        with recorder:  # captures step 0 (parameters and sharpness) on entering
            recorder.put("data/x", x)
            recorder.put("data/y", y)
            for step in range(config.steps):
                losses = log_losses()  # at the weights after `step` steps
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                losses.sum().backward()  # run k's parameters get run k's gradient only
                for opt in optimizers:
                    opt.step()  # after the last, the recorder counts the step and captures
                if step % 20 == 0 or step == config.steps - 1:
                    shown = ", ".join(f"{v:.3g}" for v in losses.tolist())
                    bar.set_postfix_str(f"loss {shown}", refresh=False)
                    bar.update(step + 1 - bar.n)
            with torch.no_grad():
                log_losses()  # at the final weights
            if config.steps % config.sharpness_every:
                recorder.capture()  # always end on the final weights
            recorder.update_metadata(chapters=edge_chapters(recorder.recording, runs))
            if config.landscape_grid:
                bar.close()  # training is done: the landscape's bar comes next
                add_landscape(recorder, config, progress)
    return recorder.recording


def add_landscape(recorder: Recorder, config: EdgeOfStabilityConfig, progress: bool) -> None:
    """Compute the runs' shared landscape (:func:`landscape_options`) from what ``recorder``
    holds and write it into the recording: series ``landscape``, ``landscape/directions``
    and, per run, ``landscape/<prefix>/path`` (``/loss``, ``/plane_loss``), and
    ``metadata["landscape"]``."""
    from ..landscape import landscape

    model, loss, what = landscape_loss(config)
    out = landscape(
        recorder.recording,
        model,
        loss,
        None,
        size=config.landscape_grid,
        chunk=LANDSCAPE_CHUNK,
        description=what,
        progress=progress,
        **landscape_options(config),
    )
    info = out.metadata["landscape"]["landscape"]
    names = ["landscape", "landscape/directions"] + [
        f"{p['path']}{end}" for p in info["paths"] for end in ("", "/loss", "/plane_loss")
    ]
    for name in names:
        s = out[name]
        for step, value in zip(np.asarray(s.steps).tolist(), np.asarray(s.values)):
            recorder.emit(name, step, value, s.kind)
    recorder.update_metadata(landscape=out.metadata["landscape"])


def edge_chapters(recording: Recording, runs: list[dict]) -> list[list]:
    """``[step, title]`` where each run's sharpness first reaches its ``2 / lr``, by step."""
    chapters = []
    for r in runs:
        if r["sharpness"] not in recording:
            continue
        s = recording[r["sharpness"]]
        lead = np.asarray(s.values, dtype=float).reshape(len(s), -1)[:, 0]
        hit = np.flatnonzero(lead >= r["edge"])
        if len(hit):
            title = f"lr {r['lr']:g}: the sharpness reaches 2/lr = {r['edge']:.3g}"
            chapters.append([int(s.steps[hit[0]]), title])
    return sorted(chapters, key=lambda c: c[0])


# -- the measurement ---------------------------------------------------------------------------


def summary(recording: Recording) -> list[dict[str, Any]]:
    """The figures the expected outcome speaks about, per run (``metadata["runs"]``):

    * ``lr``, ``edge`` (``2 / lr``);
    * ``peak``: the largest sharpness measured, over ``edge``;
    * ``reached``: the first measured step with sharpness ``>= edge`` (None: never);
    * ``late``: the median sharpness over the measurements in the last half of the run
      (steps ``>= last step / 2``), over ``edge``;
    * ``loss_reached``: the loss at ``reached`` (None: never reached); ``loss_end``: the loss
      at the last step; ``loss_rises``: the steps at which the loss went up.
    """
    out = []
    for r in recording.metadata["runs"]:
        s, loss = recording[r["sharpness"]], recording[r["loss"]]
        lead = np.asarray(s.values, dtype=float).reshape(len(s), -1)[:, 0]
        steps = np.asarray(s.steps)
        losses = np.asarray(loss.values, dtype=float)
        edge = float(r["edge"])
        hit = np.flatnonzero(lead >= edge)
        reached = int(steps[hit[0]]) if len(hit) else None
        late = lead[steps >= steps[-1] / 2]
        out.append(
            {
                "lr": float(r["lr"]),
                "edge": edge,
                "peak": float(lead.max()) / edge,
                "reached": reached,
                "late": float(statistics.median(late)) / edge,
                "loss_reached": None if reached is None else float(loss.at(reached)),
                "loss_end": float(losses[-1]),
                "loss_rises": int((np.diff(losses) > 0).sum()),
            }
        )
    return out


def criteria(figures: dict[str, Any], *, control: bool) -> dict[str, bool]:
    """Which of the expected outcome's claims hold for one run's :func:`summary` figures.

    At the edge (``control=False``): ``peak`` (sharpness reaches ``0.9 * 2/lr``), ``hovers``
    (the late median lies within ``2/lr`` +-20%), ``loss falls`` (the last loss is below the
    loss where ``2/lr`` was first reached). The control (``control=True``): ``below`` (the
    sharpness never reaches ``2/lr``)."""
    f = figures
    if control:
        return {"below": f["reached"] is None and f["peak"] < 1}
    falls = f["loss_reached"] is not None and f["loss_end"] < f["loss_reached"]
    return {
        "peak": f["peak"] >= 0.9,
        "hovers": 0.8 <= f["late"] <= 1.2,
        "loss falls": bool(falls),
    }
