"""Curvature of a loss: the top Hessian eigenvalues ("sharpness") by Lanczos on
Hessian-vector products, for use on its own or through the recorder's
:class:`~dynamics.capture.Sharpness` quantity.

``sharpness(model, loss_fn, batch, k)`` returns the ``k`` **largest algebraic** eigenvalues
of the Hessian of ``loss_fn`` on ``batch`` with respect to the model's trainable parameters
(all of them, as one flat vector in ``model.parameters()`` order), in descending order. Largest
*algebraic*, not largest in magnitude: at a saddle whose most curved direction is negative
(eigenvalues -5, 1, 0.5) the sharpness is 1, the quantity that stability thresholds such as
``2 / lr`` for gradient descent speak about.

The batch is a tensor ``x`` (the loss is ``loss_fn(model(x))``) or a tuple ``(x, y, ...)``
(``loss_fn(model(x), y, ...)``), so ``torch.nn.functional.cross_entropy`` and the like serve
as they are.

How: Hessian-vector products by double backward through one forward pass per measurement
(the graph of the gradient is built once, each product is one backward pass through it),
taken on detached copies of the parameters through :func:`torch.func.functional_call`, so
no ``.grad``, hook or parameter of the model is touched. The model runs in eval mode (dropout
off, batch norm on its running statistics, no buffer updated) and its modes are restored;
the random start comes from a private generator, so the global random state is never drawn
from. Lanczos with full reorthogonalisation in float64 (the products in the model's dtype),
stopped when each of the top ``k`` Ritz pairs has a residual ``||H u - theta u||`` at most
``tol`` times the largest Ritz value in magnitude (an estimate of ``||H||``); the error of
an eigenvalue is at most that residual and in practice about its square over the gap to
the next one. Warm start (``init``): the previous eigenvectors, summed, with a small
random component, so a slowly changing Hessian takes few products.

A single-vector Krylov method sees one copy of a repeated eigenvalue until its subspace is
exhausted (it then restarts from a random vector orthogonal to it): with ``k`` spanning an
exactly repeated eigenvalue the second copy may be missed. The basis is kept: memory is
``max_hvps`` float64 vectors of the parameter count.

No dependency beyond torch: scipy's ``eigsh`` (ARPACK) would add a package for what is
fifty lines here, would move every vector between the device and numpy, and would not take
a warm start from several vectors; curvlinops-for-pytorch wraps the same scipy solver.

Preconditioned sharpness (Cohen et al. 2022, "Adaptive gradient methods at the edge of
stability"): with ``preconditioner=d`` (the diagonal of ``P``, positive, flat), the
eigenvalues of ``P^-1 H``, computed as those of the symmetric ``P^-1/2 H P^-1/2``
(returned vectors are of that form: ``P^-1/2 u`` is an eigenvector of ``P^-1 H``).
:func:`optimizer_preconditioner` reads ``P`` from Adam, AdamW or RMSprop.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, NamedTuple

import torch
from torch.func import functional_call

__all__ = [
    "Eigenpairs",
    "sharpness",
    "hessian_operator",
    "lanczos",
    "optimizer_preconditioner",
    "stability_edge",
    "PRECONDITIONED",
]

#: Optimizers whose preconditioner :func:`optimizer_preconditioner` reads.
PRECONDITIONED = ("Adam", "AdamW", "RMSprop")


class Eigenpairs(NamedTuple):
    """``values``: (k,) float64, descending; ``vectors``: (k, n) float64, orthonormal rows;
    ``hvps``: the Hessian-vector products used; ``converged``: every pair met ``tol``."""

    values: torch.Tensor
    vectors: torch.Tensor
    hvps: int
    converged: bool


def trainable(model: torch.nn.Module) -> tuple[list[str], list[torch.nn.Parameter]]:
    """Names and parameters the Hessian is taken over (those that require grad)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def split_batch(batch: Any) -> tuple[torch.Tensor, tuple]:
    """``x`` and the loss function's other arguments; ValueError for anything else."""
    if isinstance(batch, torch.Tensor):
        return batch, ()
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0], tuple(batch[1:])
    raise ValueError(
        f"sharpness: batch must be a tensor x or a tuple (x, y, ...), got {type(batch).__name__}"
    )


@contextlib.contextmanager
def untouched(model: torch.nn.Module):
    """Eval mode inside, every module's mode restored after; the global RNG state too."""
    modes = [(m, m.training) for m in model.modules()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        model.eval()
        try:
            yield
        finally:
            for m, mode in modes:
                m.training = mode


def hessian_operator(
    model: torch.nn.Module, loss_fn: Callable[..., torch.Tensor], batch: Any
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> H v`` (flat float64 in and out) for the loss on ``batch``: one forward and one
    backward pass now, one backward pass per product."""
    names, params = trainable(model)
    x, rest = split_batch(batch)
    leaves = [p.detach().requires_grad_() for p in params]
    with untouched(model):
        loss = loss_fn(functional_call(model, dict(zip(names, leaves)), (x,)), *rest)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("sharpness: loss_fn must return a scalar tensor")
        grads = torch.autograd.grad(loss.reshape(()), leaves, create_graph=True, allow_unused=True)
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    sizes = [p.numel() for p in params]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if not live:
            return torch.zeros_like(v)
        parts = v.split(sizes)
        outs = [parts[i].view_as(params[i]).to(params[i].dtype) for i in live]
        with torch.enable_grad():
            hv = torch.autograd.grad(
                [grads[i] for i in live], leaves, outs, retain_graph=True, allow_unused=True
            )
        return torch.cat(
            [(torch.zeros_like(p) if h is None else h).reshape(-1) for h, p in zip(hv, params)]
        ).to(v.dtype)

    return hvp


def orthogonalised(w: torch.Tensor, Q: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``w`` made orthogonal to the rows of ``Q`` by Gram-Schmidt, repeated while a pass
    cancels most of it (at most twice: "twice is enough"), and its norm."""
    norm = float(w.norm())
    for _ in range(2):
        w = w - Q.T @ (Q @ w)
        before, norm = norm, float(w.norm())
        if norm > 0.5 * before:
            break
    return w, norm


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    k: int = 1,
    *,
    init: torch.Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 200,
    device: torch.device | str = "cpu",
    seed: int = 0,
    noise: float = 1e-3,
) -> Eigenpairs:
    """The ``k`` largest algebraic eigenpairs of the symmetric ``matvec`` on R^n (float64),
    from ``init`` ((j, n): summed, plus ``noise`` of a random unit vector) or a random start."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def rand() -> torch.Tensor:
        return torch.randn(n, generator=gen, device=device, dtype=torch.float64)

    m = min(n, max_iter)
    Q = torch.empty(min(m, 16), n, dtype=torch.float64, device=device)  # grown as needed
    if init is not None and init.numel() and init.shape[-1] == n:  # else a cold start
        q = init.to(device, torch.float64).reshape(-1, n).sum(0)
        q = q / q.norm() + noise * (r := rand()) / r.norm()
    else:
        q = rand()
    q = q / q.norm()
    alpha, beta = [], []
    converged, scale, j = False, 0.0, 0
    theta, S = torch.zeros(0, dtype=torch.float64), torch.zeros(0, 0, dtype=torch.float64)
    for j in range(m):
        if j == len(Q):
            Q = torch.cat([Q, torch.empty_like(Q)])[:m]
        Q[j] = q
        w = matvec(q)
        alpha.append(float(q @ w))
        w = w - alpha[-1] * q - (beta[-1] * Q[j - 1] if j else 0)  # the three-term recurrence
        w, b = orthogonalised(w, Q[: j + 1])
        T = torch.diag(torch.tensor(alpha, dtype=torch.float64))
        if j:
            off = torch.tensor(beta, dtype=torch.float64)
            T += torch.diag(off, 1) + torch.diag(off, -1)
        theta, S = torch.linalg.eigh(T)
        scale = max(scale, float(theta.abs().max()))
        broke = b <= 1e-12 * max(scale, 1e-300)
        if j + 1 >= k and (not broke or j + 1 == n or j + 1 == m):
            residual = b * S[-1, -k:].abs()
            if bool((residual <= tol * scale).all()) or j + 1 == n:
                converged = True
                break
        if j + 1 == m:
            break
        if broke:  # an invariant subspace: go on from a random vector orthogonal to it
            w, norm = orthogonalised(rand(), Q[: j + 1])
            b, q = 0.0, w / norm
        else:
            q = w / b
        beta.append(b)
    top = min(k, theta.numel())
    values = theta[-top:].flip(0)
    vectors = S[:, -top:].flip(1).T.to(device) @ Q[: j + 1]
    return Eigenpairs(values.to(device), vectors, j + 1, converged)


def sharpness(
    model: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batch: Any,
    k: int = 1,
    *,
    init: torch.Tensor | None = None,
    preconditioner: torch.Tensor | None = None,
    tol: float = 1e-6,
    max_hvps: int = 200,
    seed: int = 0,
) -> Eigenpairs:
    """The ``k`` largest algebraic eigenvalues of the Hessian of ``loss_fn`` on ``batch``
    (of ``P^-1 H`` with ``preconditioner``), and their eigenvectors: see the module docstring.
    ``init``: previous eigenvectors to start from (a warm start)."""
    _, params = trainable(model)
    n = sum(p.numel() for p in params)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ValueError(f"sharpness: k must be an int from 1 to {n} (the parameters), got {k!r}")
    if not isinstance(max_hvps, int) or max_hvps < k:
        raise ValueError(f"sharpness: max_hvps must be an int >= k={k}, got {max_hvps!r}")
    split_batch(batch)
    device = params[0].device
    hvp = hessian_operator(model, loss_fn, batch)
    matvec = hvp
    if preconditioner is not None:
        scale = preconditioner.detach().to(device, torch.float64).reshape(-1).rsqrt()
        if scale.numel() != n or not bool(torch.isfinite(scale).all()):
            raise ValueError(f"sharpness: preconditioner must be {n} positive numbers")
        matvec = lambda v: scale * hvp(scale * v)  # noqa: E731
    return lanczos(matvec, n, k, init=init, tol=tol, max_iter=max_hvps, device=device, seed=seed)


def optimizer_preconditioner(
    optimizer: torch.optim.Optimizer, model: torch.nn.Module
) -> torch.Tensor | None:
    """The diagonal of the preconditioner ``P`` of Adam, AdamW or RMSprop, flat float64 over the
    model's trainable parameters, such that the update is ``-lr * P^-1 m`` with ``m`` the
    raw first moment (the gradient for RMSprop without momentum):

    * Adam/AdamW: ``P = (1 - beta1^t) (sqrt(v / (1 - beta2^t)) + eps)`` (``v``: AMSGrad's
      running maximum where on), Cohen et al.'s; its edge of stability is ``38 / lr`` at
      ``beta1 = 0.9`` (``(2 + 2 beta1) / ((1 - beta1) lr)``);
    * RMSprop: ``P = sqrt(v) + eps`` (``sqrt(v - g_avg^2) + eps`` when centered).

    None before the optimizer's first step (no second moment yet)."""
    kind = type(optimizer).__name__
    if kind not in PRECONDITIONED:
        raise ValueError(f"sharpness: no preconditioner known for {kind} (Adam, AdamW, RMSprop)")
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    parts = []
    for p in trainable(model)[1]:
        state, group = optimizer.state.get(p, {}), group_of.get(id(p))
        if group is None or not state:
            return None
        if kind == "RMSprop":
            v = state["square_avg"].double()
            if group["centered"]:
                v = v - state["grad_avg"].double() ** 2
            d = v.sqrt() + group["eps"]
        else:
            t, (b1, b2) = float(state["step"]), group["betas"]
            v = state["max_exp_avg_sq" if group["amsgrad"] else "exp_avg_sq"].double()
            d = (1 - b1**t) * ((v / (1 - b2**t)).sqrt() + group["eps"])
        parts.append(d.reshape(-1))
    return torch.cat(parts)


def stability_edge(optimizer: torch.optim.Optimizer) -> tuple[float | None, float | None]:
    """Where an optimizer's current step size puts the edge of stability, for the sharpness
    and for the preconditioned sharpness: ``(plain, preconditioned)``, None where no edge is
    known. Read from the first parameter group (its ``lr`` now, so a schedule is followed).

    * SGD with heavy-ball momentum ``beta`` (0: plain gradient descent), not Nesterov:
      ``(2 + 2 beta) / lr`` for the sharpness (Cohen et al., ICLR 2021: ``2 / lr``);
    * Adam/AdamW: ``(2 + 2 beta1) / ((1 - beta1) lr)`` for the preconditioned sharpness,
      ``38 / lr`` at ``beta1 = 0.9`` (Cohen et al., 2022);
    * RMSprop without momentum: ``2 / lr`` for the preconditioned sharpness.
    """
    group = optimizer.param_groups[0]
    lr, kind = float(group["lr"]), type(optimizer).__name__
    if lr <= 0:
        return None, None
    if kind == "SGD" and not group.get("nesterov") and not group.get("dampening"):
        return (2 + 2 * float(group.get("momentum", 0.0))) / lr, None
    if kind in ("Adam", "AdamW"):
        b1 = float(group["betas"][0])
        return None, (2 + 2 * b1) / ((1 - b1) * lr)
    if kind == "RMSprop" and not group.get("momentum"):
        return None, 2 / lr
    return None, None
