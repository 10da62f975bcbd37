"""Mean-field ReLU teacher-student particles (docs/experiments.md section 1).

A two-layer ReLU student ``f(x) = (1/m) sum_i a_i relu(w_i.x + b_i)``, started with its
hidden weights ``(w_i, b_i)`` on a small sphere, learns a teacher of the same form by SGD
on fresh Gaussian inputs. Each neuron is a particle ``a_i * w_i`` in the plane.

``scaling="lazy"`` trains the same network under the NTK scaling of Chizat, Oyallon & Bach
(2019, "On Lazy Training in Differentiable Programming"): the output is
``(1/sqrt m) sum_i ...`` instead of ``(1/m) sum_i ...``, and as m grows the particles stay
near where they started (each moves O(1/sqrt m)) while the loss still falls: the network
behaves as its linearisation at the start, a kernel method (see :func:`learning_rate`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..limits import SEED, check_limits
from ..recorder import Recorder, at_steps
from ..recording import Recording
from .common import (
    available_memory,
    check_finite,
    library_versions,
    milestone_chapters,
    one_torch_thread,
    stream_seed,
)

__all__ = [
    "Config",
    "ReluParticlesConfig",
    "TwoLayerReLU",
    "draw_neurons",
    "draw_teacher",
    "frame_samples",
    "learning_rate",
    "movement",
    "output_norm",
    "run",
    "alignment",
    "cost",
]

SCALINGS = ("mean-field", "reference", "lazy")
DTYPES = ("auto", "float64", "float32")
#: Above this many neurons ``dtype="auto"`` trains in float32 and the full parameters are
#: recorded 11 times instead of every frame: at 10 000 neurons one float64 frame of
#: ``a, w, b, positions`` is already 0.5 MB (250 MB for the default 500 frames).
LARGE = 10_000


@dataclass(frozen=True)
class ReluParticlesConfig:
    """Configuration of the teacher-student run; every field is a CLI flag.

    Attributes
    ----------
    width : int
        Student neurons ``m`` (20 in the reference).
    radius : float
        Radius ``R`` of the sphere the student's ``(w, b)`` start on (0.05: "the smaller
        the better?").
    teachers : int
        Teacher neurons ``M``.
    teacher_seed : int
        Seed of the teacher draw, separate from ``seed`` so the same teacher can be kept
        while the student's initialisation and data change.
    dim : int
        Input dimension ``d``; the particle picture uses the first two coordinates of w.
    batch : int
        Mini-batch size; gradients are averaged over it.
    step : float
        Step ``tau``. With ``scaling="mean-field"`` each parameter moves by
        ``tau * m * grad`` (every particle moves O(1) whatever m); with ``"reference"``
        by ``tau * grad`` with the 1/m left in, as the reference notebook does; with
        ``"lazy"`` by ``tau * grad`` of the 1/sqrt(m) network. Both are the step of Chizat,
        Oyallon & Bach (2019) for the network ``alpha h``, ``h`` the 1/m average (alpha 1:
        mean-field, sqrt(m): lazy): gradient descent on ``R(alpha h) / alpha^2`` sped up by
        m, a learning rate ``tau * m / alpha^2``, under which the output moves at the same
        speed whatever alpha, so one step trains both (``learning_rate``).
    scaling : str
        ``"mean-field"`` (default: at m=20 the reference step is 20x smaller per particle
        and the particles barely leave the origin in 500 frames), ``"reference"`` or
        ``"lazy"``: the NTK scaling of Chizat, Oyallon & Bach (2019), output
        ``(1/sqrt m) sum_i a_i relu(w_i.x + b_i)``, under which each particle moves
        O(1/sqrt m) and the parameters' relative movement ``||theta_T - theta_0|| /
        ||theta_0||`` falls as ``m**-0.5`` (:func:`movement`). Their lazy regime starts
        from the usual initialisation, ``radius=1`` (at the default 0.05 the particles
        are themselves of size 0.05, and a move of 1/sqrt(m) is large beside them).
    frames : int
        Animation frames; each runs one epoch over fresh samples.
    samples_per_frame : int
        Fresh samples drawn per frame; 0 means the reference schedule
        ``100 * floor(ln(10 + 10 k))`` for frame ``k``.
    eval_samples : int
        Size of the fixed held-out set on which the loss shown in each frame is measured
        (its cost per frame is ``eval_samples x width``); 0 means 10 000 up to
        :data:`LARGE` neurons, else ``10**8 // width`` but at least 1 000 (1 000 at
        m = 100 000: a relative error of about 5% on each frame's loss).
    seed : int
        Seed of the student's initialisation and of the training data.
    dtype : str
        ``float64``, ``float32`` or ``auto``: float64 up to :data:`LARGE` neurons, float32
        above (half the memory and time a step; float32's relative rounding of 6e-8 is far
        below what the picture or the loss curve resolves).
    device : str
        ``cpu`` (fused numba kernels, linear in the width) or ``cuda`` / ``cuda:N`` (torch
        on the GPU).
    params_every : int
        The full parameters ``a``, ``w``, ``b`` are recorded every this many frames and at
        the last; 0 means every frame up to :data:`LARGE` neurons, else every ``frames // 10``
        (11 snapshots). ``positions`` and ``mass`` are recorded at every frame whatever it is.
    """

    width: int = 20
    radius: float = 0.05
    teachers: int = 4
    teacher_seed: int = 0
    dim: int = 2
    batch: int = 20
    step: float = 0.5
    scaling: str = "mean-field"
    frames: int = 500
    samples_per_frame: int = 0
    eval_samples: int = 0
    seed: int = 0
    dtype: str = "auto"
    device: str = "cpu"
    params_every: int = 0

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "radius": (0, 100),
        "teachers": (1, 10_000),
        "teacher_seed": SEED,
        "batch": (1, 10_000_000),
        "step": (0, 1000),
        "frames": (1, 1_000_000),
        "seed": SEED,
        "params_every": (0, 1_000_000_000),
    }

    def __post_init__(self):
        for name in ("width", "teachers", "batch", "frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.eval_samples < 0:
            raise ValueError(
                f"eval_samples must be >= 0 (0: chosen by width), got {self.eval_samples}"
            )
        if self.dim < 2:
            raise ValueError(
                f"dim must be at least 2 (the picture is drawn in the plane), got {self.dim}"
            )
        if not (self.radius > 0 and math.isfinite(self.radius)):
            raise ValueError(f"radius must be a positive number, got {self.radius}")
        if not (self.step > 0 and math.isfinite(self.step)):
            raise ValueError(f"step must be a positive number, got {self.step}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {self.scaling!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not (self.device == "cpu" or self.device.partition(":")[0] == "cuda"):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.params_every < 0:
            raise ValueError(
                f"params_every must be >= 0 (0: chosen by width), got {self.params_every}"
            )
        if self.samples_per_frame < 0:
            raise ValueError(
                "samples_per_frame must be >= 0 (0: the reference schedule), "
                f"got {self.samples_per_frame}"
            )
        check_limits(self, self.LIMITS)


Config = ReluParticlesConfig  # the name scene modules look up


def train_dtype(config: ReluParticlesConfig) -> torch.dtype:
    """The dtype the student trains and is recorded in (``dtype="auto"`` resolved)."""
    if config.dtype == "auto":
        return torch.float64 if config.width <= LARGE else torch.float32
    return getattr(torch, config.dtype)


def eval_size(config: ReluParticlesConfig) -> int:
    """Held-out samples (``eval_samples=0`` resolved)."""
    if config.eval_samples:
        return config.eval_samples
    return 10_000 if config.width <= LARGE else max(1_000, 10**8 // config.width)


def param_frames(config: ReluParticlesConfig) -> np.ndarray:
    """Frames (0 = the start, k = the end of frame k) at which ``a``, ``w``, ``b`` are kept."""
    every = config.params_every or (1 if config.width <= LARGE else max(1, config.frames // 10))
    return np.unique(np.r_[np.arange(0, config.frames + 1, every), config.frames])


def memory_needed(config: ReluParticlesConfig, *, in_memory: bool = True) -> dict[str, int]:
    """Bytes a run needs, by what for (the largest items; see :func:`check_memory`)."""
    item = torch.empty((), dtype=train_dtype(config)).element_size()
    m, d = config.width, config.dim
    snapshots = config.frames + 1
    need = {
        # model, the kernels' transposed copy, the teacher (float64), a frame's gradients
        "parameters": 3 * m * (d + 2) * item + 3 * config.teachers * d * 8,
        "training samples": int(frame_samples(config).max()) * (d + 2) * 8 * 2,
        "held-out samples": eval_size(config) * (d + 2) * 8,
    }
    frame = m * 3 * item  # positions (m, 2) and mass (m,)
    params = m * (d + 2) * item
    if in_memory:
        need["recording"] = snapshots * frame + len(param_frames(config)) * params
    else:  # the writer stages a few snapshots per series
        need["recording"] = 6 * (frame + params)
    return need


def check_memory(config: ReluParticlesConfig, *, in_memory: bool = True) -> None:
    """Refuse a run that cannot fit in this machine's available memory, before it starts.

    Raises MemoryError with a one-line message naming the sizes and what they need.
    """
    need = memory_needed(config, in_memory=in_memory)
    total = sum(need.values())
    available = available_memory()
    if available is not None and total > available:
        big = max(need, key=need.get)
        raise MemoryError(
            f"width {config.width:,}, dim {config.dim:,}, eval_samples {eval_size(config):,} "
            f"and {config.frames:,} frames need about {_gb(total)} of memory (most for the "
            f"{big}: {_gb(need[big])}); this machine has {_gb(available)} available"
        )


def _gb(n: float) -> str:
    return f"{n / 2**30:,.1f} GB" if n >= 2**28 else f"{n / 2**20:,.0f} MB"


def frame_samples(config: ReluParticlesConfig) -> np.ndarray:
    """Samples drawn in each frame, ``(frames,) int64``."""
    k = np.arange(config.frames)
    if config.samples_per_frame:
        return np.full(config.frames, config.samples_per_frame, dtype=np.int64)
    return (100 * np.floor(np.log(10 + 10 * k))).astype(np.int64)


def frame_steps(config: ReluParticlesConfig) -> np.ndarray:
    """Optimizer step count at the end of each frame, ``(frames,) int64`` (ceil for a partial
    last batch)."""
    return np.cumsum(-(-frame_samples(config) // config.batch))


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


class TwoLayerReLU(nn.Module):
    """``f(x) = (1/norm) sum_i a_i relu(w_i . x + b_i)``, with ``relu'(0) = 1``.

    Parameters
    ----------
    a : (m,) tensor
        Output weights.
    w : (m, d) tensor
        Input weights.
    b : (m,) tensor
        Biases.
    norm : float, optional
        The output's normaliser: ``m`` (the default, mean-field) or ``sqrt(m)`` (lazy).
    """

    def __init__(
        self, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: float | None = None
    ):
        super().__init__()
        self.a = nn.Parameter(a.clone())
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(b.clone())
        self.norm = self.width if norm is None else norm

    @property
    def width(self) -> int:
        return self.a.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (n, d) -> (n,)."""
        return torch.relu(x @ self.w.T + self.b) @ self.a / self.norm

    def per_sample_grads(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradients of ``0.5 (f(x) - y)^2`` for each sample: da (n, m), dw (n, m, d), db (n, m)."""
        z = x @ self.w.T + self.b  # (n, m)
        r = (torch.relu(z) @ self.a / self.norm - y)[:, None]  # (n, 1)
        da = r * torch.relu(z) / self.norm
        db = r * self.a * (z >= 0) / self.norm
        return da, db[:, :, None] * x[:, None, :], db

    @torch.no_grad()
    def set_batch_grads(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Store the batch-mean gradients in ``.grad`` without forming per-sample tensors.

        Written as few fused ops as possible: at this size each torch call costs more
        than its arithmetic.
        """
        n, norm = x.shape[0], self.norm  # m, or sqrt(m) when lazy
        z = torch.addmm(self.b, x, self.w.T)  # (n, m)
        s = torch.relu(z)
        r = torch.addmv(y, s, self.a, beta=-1, alpha=1 / norm)  # (n,) residual f(x) - y
        rga = (z >= 0) * torch.outer(r, self.a)  # (n, m): r * a_i * 1[z >= 0]
        scale = 1 / (n * norm)
        self.a.grad = torch.mv(s.T, r).mul_(scale)
        self.b.grad = rga.sum(0).mul_(scale)
        self.w.grad = torch.mm(rga.T, x).mul_(scale)

    @torch.no_grad()
    def sgd_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        """One plain SGD step on the batch ``(x, y)`` with learning rate ``lr``."""
        self.set_batch_grads(x, y)
        for p in (self.a, self.w, self.b):
            p.sub_(p.grad, alpha=lr)


def draw_neurons(m: int, d: int, generator: torch.Generator, dtype=torch.float64):
    """``a ~ N(0,1)``, ``w ~ N(0, I_d)``, ``b ~ N(0,1)``, then ``(w, b)`` scaled to unit norm."""
    a = torch.randn(m, generator=generator, dtype=dtype)
    w = torch.randn(m, d, generator=generator, dtype=dtype)
    b = torch.randn(m, generator=generator, dtype=dtype)
    norm = torch.sqrt((w * w).sum(1) + b * b)
    return a, w / norm[:, None], b / norm


# Teacher acceptance rules: a teacher is redrawn until every pair of kink lines
# {x: w_j.x + b_j = 0} is at least MIN_KINK_ANGLE degrees apart and every neuron is active
# on between ACTIVE_RANGE of Gaussian inputs, so every teacher neuron is identifiable from data.
MIN_KINK_ANGLE = 30.0
ACTIVE_RANGE = (0.15, 0.85)
MIN_TEACHER_A = 0.5


def _teacher_ok(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> bool:
    # active fraction P(w.x + b >= 0) for x ~ N(0, I) is Phi(b / |w|)
    active = 0.5 * (1 + np.vectorize(math.erf)(b / np.linalg.norm(w, axis=1) / math.sqrt(2)))
    if np.any(active < ACTIVE_RANGE[0]) or np.any(active > ACTIVE_RANGE[1]):
        return False
    if np.any(np.abs(a) < MIN_TEACHER_A):
        return False
    u = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = np.abs(np.clip(u @ u.T, -1, 1))  # kink lines are unoriented: angle mod 180
    np.fill_diagonal(cos, 0)
    return bool(np.all(cos <= math.cos(math.radians(MIN_KINK_ANGLE))))


def draw_teacher(config: ReluParticlesConfig, max_tries: int = 10_000):
    """Draw the teacher's ``(a, w, b)`` from ``teacher_seed`` under the acceptance rules.

    Returns float64 tensors a (M,), w (M, d), b (M,).
    """
    g = torch.Generator().manual_seed(stream_seed(config.teacher_seed, "teacher"))
    for _ in range(max_tries):
        a, w, b = draw_neurons(config.teachers, config.dim, g)
        if _teacher_ok(a.numpy(), w.numpy(), b.numpy()):
            return a, w, b
    raise ValueError(
        f"no teacher of {config.teachers} neurons in {max_tries} draws has kink lines "
        f"{MIN_KINK_ANGLE:g} degrees apart and activity in {ACTIVE_RANGE}; use fewer teachers"
    )


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def output_norm(config: ReluParticlesConfig) -> float:
    """What the student's sum over neurons is divided by: ``m``, or ``sqrt(m)`` when lazy."""
    return math.sqrt(config.width) if config.scaling == "lazy" else config.width


def learning_rate(config: ReluParticlesConfig) -> float:
    """The SGD learning rate on ``0.5 (f(x) - y)^2`` for the config's step and scaling.

    Chizat, Oyallon & Bach (2019) write the network as ``alpha h(theta)`` with
    ``h = (1/m) sum_i phi(theta_i)`` (``alpha = 1``: mean-field; ``alpha = sqrt(m)``: the
    NTK scaling, ``scaling="lazy"``) and train it by gradient descent on the rescaled
    objective ``R(alpha h) / alpha**2``, time sped up by ``m`` as in the mean-field limit:
    a learning rate ``step * m / alpha**2`` on the loss of the network ``alpha h``, i.e.
    ``step * m`` (mean-field) and ``step`` (lazy). Then the network's output moves at the
    same speed under both (``d f / dt = -m Dh Dh^T grad R``, whatever ``alpha``) and one
    step trains both from one initialisation; what differs is how far the parameters go to
    get there (O(1) for each particle under mean-field, O(1/sqrt m) under lazy).
    ``"reference"``: ``step`` on the mean-field network, with no speed-up.
    """
    if config.scaling == "mean-field":
        return config.step * config.width
    return config.step


def caption(config: ReluParticlesConfig) -> str:
    """One line describing the run, drawn under a scene's title."""
    return (
        f"m = {config.width:,} students, M = {config.teachers} teachers, initial radius R = "
        f"{config.radius:g} · {config.scaling} step {config.step:g}, batch {config.batch}"
    )


#: The moments a movie of the run stops at by default (see ``milestone_chapters``).
CHAPTERS = (
    ("rel_error", "fraction", 1e-3, "The error falls 1000x"),
    ("rel_error", "fraction", 1e-6, "The error falls a million-fold"),
)


def run(
    config: ReluParticlesConfig = ReluParticlesConfig(),
    *,
    path=None,
    overwrite: bool = False,
    progress: bool = False,
) -> Recording:
    """Train the student and record it once per frame.

    Parameters
    ----------
    config : ReluParticlesConfig
    path : path-like, optional
        Stream the recording to this directory; in memory otherwise.
    overwrite : bool
        Replace an existing recording at ``path``.
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    Recording
        At step 0 and at the end of every frame: ``positions`` (m, 2) = ``a_i * w_i[:2]``,
        ``mass`` (m,) = ``a_i`` (a particle's signed output weight), and ``loss``,
        ``rel_error`` () on the held-out set. ``a`` (m,), ``w`` (m, d), ``b`` (m,) at the
        frames of :func:`param_frames`. Arrays are in :func:`train_dtype`. Metadata:
        ``experiment``, ``config``, ``seed``, ``versions``, ``teacher`` ({a, w, b,
        positions}), ``frame_steps``, ``param_steps``, ``dtype``.

    Raises
    ------
    MemoryError
        Before anything runs, when the run cannot fit in the available memory
        (:func:`check_memory`).
    """
    check_memory(config, in_memory=path is None)
    if config.device != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} asked for, but torch sees no CUDA device")
    with one_torch_thread():
        return _run(config, path, overwrite, progress)


class _CpuTrainer:
    """SGD through the fused kernels, in place on the model's parameters (shared memory)."""

    def __init__(self, student: TwoLayerReLU):
        from . import _relu_kernels as kernels

        self.kernels, self.student = kernels, student
        self.a, self.b = student.a.detach().numpy(), student.b.detach().numpy()
        self.w = student.w.detach()

    def frame(self, x: torch.Tensor, y: torch.Tensor, batch: int, lr: float) -> None:
        W = np.ascontiguousarray(self.w.numpy().T)  # (d, m): the kernels' layout
        self.kernels.train_frame(
            self.a, W, self.b, x.numpy(), y.numpy(), batch, lr, self.student.norm
        )
        self.w.copy_(torch.from_numpy(W.T))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        W = np.ascontiguousarray(self.w.numpy().T)
        return torch.from_numpy(
            self.kernels.predict(self.a, W, self.b, x.numpy(), norm=self.student.norm)
        )


class _TorchTrainer:
    """SGD with torch ops, one batch at a time (any device); evaluation in bounded chunks."""

    def __init__(self, student: TwoLayerReLU):
        self.student = student

    def frame(self, x: torch.Tensor, y: torch.Tensor, batch: int, lr: float) -> None:
        for lo in range(0, len(x), batch):
            self.student.sgd_step(x[lo : lo + batch], y[lo : lo + batch], lr)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        chunk = max(1, (1 << 24) // self.student.width)  # at most 16M pre-activations at once
        return torch.cat([self.student(x[lo : lo + chunk]) for lo in range(0, len(x), chunk)])


def _run(config, path, overwrite, progress) -> Recording:
    from ..progress import progress_bar

    dtype, device = train_dtype(config), torch.device(config.device)
    ta, tw, tb = draw_teacher(config)
    teacher = TwoLayerReLU(ta, tw, tb)
    gen = torch.Generator().manual_seed(stream_seed(config.seed, "student"))
    a, w, b = draw_neurons(config.width, config.dim, gen, torch.float64)
    student = TwoLayerReLU(a, w * config.radius, b * config.radius, output_norm(config)).to(
        device, dtype
    )
    trainer = _CpuTrainer(student) if device.type == "cpu" else _TorchTrainer(student)
    lr = learning_rate(config)

    def data(x64: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and teacher outputs (computed in float64) in the training dtype and device."""
        with torch.no_grad():
            y64 = teacher(x64)
        return x64.to(device, dtype), y64.to(device, dtype)

    eval_gen = torch.Generator().manual_seed(stream_seed(config.seed, "held-out"))
    x_eval, y_eval = data(
        torch.randn(eval_size(config), config.dim, generator=eval_gen, dtype=torch.float64)
    )
    y_power = float((y_eval.double() ** 2).mean())

    samples, ends = frame_samples(config), frame_steps(config)
    steps = np.r_[0, ends]
    kept = steps[param_frames(config)]
    metadata = {
        "experiment": "relu_particles",
        "config": asdict(config),
        "seed": config.seed,
        "versions": {**library_versions(), **_numba_version()},
        "teacher": {
            k: v.numpy()
            for k, v in {"a": ta, "w": tw, "b": tb, "positions": ta[:, None] * tw[:, :2]}.items()
        },
        "frame_steps": steps.tolist(),
        "param_steps": kept.tolist(),
        "dtype": str(dtype).removeprefix("torch."),
        "caption": caption(config),
        "teacher_rules": {
            "min_kink_angle_deg": MIN_KINK_ANGLE,
            "active_range": list(ACTIVE_RANGE),
            "min_abs_a": MIN_TEACHER_A,
        },
        "references": {
            "positions": {
                "points": (ta[:, None] * tw[:, :2]).tolist(),
                "label": "teacher neuron $a_j w_j$",
            }
        },
        "mass": {"positions": "mass"},
    }
    recorder = Recorder(
        student,
        params=["a", "w", "b"],
        schedule=at_steps(kept.tolist()),
        path=path,
        overwrite=overwrite,
        metadata=metadata,
    )

    def log_frame():
        with torch.no_grad():
            recorder.put("positions", student.a[:, None] * student.w[:, :2], kind="derived")
            recorder.put("mass", student.a, kind="derived")
            err = (trainer.predict(x_eval) - y_eval).double()
            mse = float((err * err).mean())
        recorder.log(loss=0.5 * mse, rel_error=mse / y_power)
        check_finite(recorder.step, "try a smaller --step", loss=0.5 * mse)  # held-out loss

    with recorder:
        log_frame()
        for k in progress_bar(
            range(config.frames), desc="training", unit="frame", disable=not progress
        ):
            x = torch.randn(int(samples[k]), config.dim, generator=gen, dtype=torch.float64)
            x = x[torch.randperm(len(x), generator=gen)]  # the reference shuffles; kept for parity
            trainer.frame(*data(x), config.batch, lr)
            for _ in range(int(ends[k] - recorder.step)):
                recorder.tick()  # a hand-written update loop: tell the recorder the steps passed
            log_frame()
        recorder.update_metadata(chapters=milestone_chapters(recorder.recording, CHAPTERS))
    return recorder.recording


def _numba_version() -> dict[str, str]:
    import numba

    return {"numba": numba.__version__}


def cost(config: ReluParticlesConfig) -> float:
    """A relative estimate of a run's compute (steps x width), so a sweep can start the
    longest runs first."""
    return float(frame_steps(config)[-1]) * (config.width + 10)


def alignment(recording: Recording, *, degrees: float = 10.0, t: int = -1) -> dict[str, float]:
    """How sparse and teacher-aligned the student is at snapshot ``t`` (default: the last).

    Returns ``rel_error`` (the recorded held-out ``E[(f - f*)^2] / E[f*^2]`` at that
    step) and ``aligned`` (the share of the student's mass ``sum_i |a_i| ||(w_i, b_i)||``
    whose direction ``(w_i, b_i)`` lies within ``degrees`` of some teacher neuron's
    line, either sign): 1.0 when every neuron sits on a teacher ray, lower when mass is
    spread over directions the teacher does not have.
    """
    a, w, b = (np.asarray(recording[k].values[t], dtype=float) for k in ("a", "w", "b"))
    teacher = recording.metadata["teacher"]
    theta = np.c_[np.asarray(teacher["w"], dtype=float), np.asarray(teacher["b"], dtype=float)]
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    u = np.c_[w, b]
    r = np.linalg.norm(u, axis=1)
    cos = np.abs((u / np.maximum(r, 1e-300)[:, None]) @ theta.T).max(axis=1)
    mass = np.abs(a) * r
    step = int(recording["a"].steps[t])
    err = recording["rel_error"]
    return {
        "rel_error": float(err.values[err.nearest_index(step)]),
        "aligned": float(mass[cos >= math.cos(math.radians(degrees))].sum() / mass.sum()),
    }


def movement(recording: Recording, t: int = -1) -> float:
    """How far the parameters travelled, relative to where they started:
    ``||theta_t - theta_0|| / ||theta_0||`` over all of ``a``, ``w`` and ``b`` together, at
    snapshot ``t`` of the parameters (default: the last).

    O(1) whatever the width under the mean-field scaling; ``m**-0.5`` under the lazy one
    (``benchmarks/lazy_vs_rich.py`` measures both).
    """
    moved = start = 0.0
    for name in ("a", "w", "b"):
        values = recording[name].values
        first, last = np.asarray(values[0], float), np.asarray(values[t], float)
        moved += float(((last - first) ** 2).sum())
        start += float((first**2).sum())
    return math.sqrt(moved / start)
