"""Lazy versus rich training in the particle experiment (``scaling="lazy"``, Chizat, Oyallon
& Bach 2019): the 1/sqrt(m) network and its gradients against a direct computation and
autograd, the fused CPU kernels against torch under it, and the contrast itself: under the
lazy scaling the parameters move relatively less, and less at larger m, while the loss
falls; under mean-field they move O(1) whatever m."""

import math

import numpy as np
import pytest
import torch

from dynamics.experiments import _relu_kernels as kernels
from dynamics.experiments.relu_particles import (
    ReluParticlesConfig,
    TwoLayerReLU,
    draw_neurons,
    learning_rate,
    movement,
    output_norm,
    run,
)


def lazy_module(m=9, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, w, b = draw_neurons(m, d, g)
    return TwoLayerReLU(a, w, b, math.sqrt(m)), g


def test_the_lazy_network_is_the_sum_over_sqrt_m_and_its_gradients_are_autograds():
    model, g = lazy_module()
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = torch.randn(40, generator=g, dtype=torch.float64)
    a, w, b = (p.detach().numpy() for p in (model.a, model.w, model.b))
    direct = np.maximum(x.numpy() @ w.T + b, 0) @ a / 3.0  # sqrt(9)
    np.testing.assert_allclose(model(x).detach().numpy(), direct, rtol=1e-14)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xi, yi):
        return 0.5 * (torch.func.functional_call(model, p, (xi[None],))[0] - yi) ** 2

    auto = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    model.set_batch_grads(x, y)
    for name in ("a", "w", "b"):
        torch.testing.assert_close(
            getattr(model, name).grad, auto[name].mean(0), rtol=0, atol=1e-12
        )
    for ours, name in zip(model.per_sample_grads(x, y), ("a", "w", "b")):
        torch.testing.assert_close(ours, auto[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("m, n, batch", [(9, 50, 7), (5000, 31, 10)])
def test_the_kernels_train_the_lazy_network_as_torch_does(m, n, batch):
    student, g = lazy_module(m, 2, seed=1)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    a, w, b = (p.detach().numpy().copy() for p in (student.a, student.w, student.b))
    W = np.ascontiguousarray(w.T)
    np.testing.assert_allclose(
        kernels.predict(a, W, b, x.numpy(), norm=math.sqrt(m)),
        student(x).detach().numpy(),
        rtol=1e-12,
        atol=1e-13,
    )
    kernels.train_frame(a, W, b, x.numpy(), y.numpy(), batch, 0.5, math.sqrt(m))
    for lo in range(0, n, batch):
        student.sgd_step(x[lo : lo + batch], y[lo : lo + batch], 0.5)
    np.testing.assert_allclose(a, student.a.detach().numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(W.T, student.w.detach().numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(b, student.b.detach().numpy(), rtol=0, atol=1e-11)


def test_the_step_is_the_papers_step_m_over_alpha_squared():
    """The learning rate on the loss of the network alpha h is step * m / alpha**2 (h the
    1/m average; alpha 1 for mean-field, sqrt(m) for lazy); the reference keeps step."""
    for m in (20, 1000):
        mean_field = ReluParticlesConfig(width=m, step=0.3)
        lazy = ReluParticlesConfig(width=m, step=0.3, scaling="lazy")
        reference = ReluParticlesConfig(width=m, step=0.3, scaling="reference")
        assert output_norm(mean_field) == m and output_norm(lazy) == pytest.approx(math.sqrt(m))
        for config in (mean_field, lazy):
            alpha = m / output_norm(config)
            assert learning_rate(config) == pytest.approx(0.3 * m / alpha**2)
        assert learning_rate(reference) == 0.3


def test_movement_is_the_relative_distance_of_all_parameters():
    config = ReluParticlesConfig(width=30, frames=4, radius=1.0, eval_samples=100)
    rec = run(config)
    first = np.concatenate([np.ravel(rec[k].values[0]) for k in ("a", "w", "b")])
    last = np.concatenate([np.ravel(rec[k].values[-1]) for k in ("a", "w", "b")])
    assert movement(rec) == pytest.approx(np.linalg.norm(last - first) / np.linalg.norm(first))
    assert movement(rec, 0) == 0.0


def test_lazy_moves_relatively_less_and_less_at_larger_width_while_the_loss_falls():
    """One initialisation (radius 1), one step, two widths: the lazy parameters move less
    than the mean-field ones, about sqrt(16) = 4x less at 16x the width (mean-field: about
    the same), and the lazy loss still falls 20x and more."""
    moved, falls = {}, {}
    for scaling in ("mean-field", "lazy"):
        for m in (50, 800):
            config = ReluParticlesConfig(
                width=m, radius=1.0, scaling=scaling, frames=30, eval_samples=1000,
                params_every=30,
            )  # fmt: skip
            rec = run(config)
            err = np.asarray(rec["rel_error"].values)
            moved[scaling, m], falls[scaling, m] = movement(rec), err[-1] / err[0]
    for m in (50, 800):
        assert moved["lazy", m] < 0.5 * moved["mean-field", m], moved
        assert falls["lazy", m] < 0.05 and falls["mean-field", m] < 0.05, falls
    assert moved["lazy", 800] < 0.5 * moved["lazy", 50], moved  # theory: 1/4
    assert moved["mean-field", 800] > 0.7 * moved["mean-field", 50], moved  # theory: 1


@pytest.mark.slow
def test_the_fitted_exponents_of_the_movement_against_the_width():
    """benchmarks/lazy_vs_rich.py in small: m = 100, 1 000, 10 000, two seeds, 60 frames:
    slope of log movement against log m within 0.15 of -1/2 (lazy), above -0.2 (mean-field)."""
    widths = (100, 1_000, 10_000)
    slopes = {}
    for scaling in ("mean-field", "lazy"):
        ms, moves = [], []
        for m in widths:
            for seed in (0, 1):
                config = ReluParticlesConfig(
                    width=m, radius=1.0, scaling=scaling, frames=60, seed=seed,
                    eval_samples=500, params_every=60,
                )  # fmt: skip
                ms.append(m)
                moves.append(movement(run(config)))
        slopes[scaling] = np.polyfit(np.log(ms), np.log(moves), 1)[0]
    assert abs(slopes["lazy"] + 0.5) <= 0.15, slopes
    assert slopes["mean-field"] > -0.2, slopes


def test_lazy_is_a_scaling_the_config_accepts_and_names_in_the_caption():
    from dynamics.experiments.relu_particles import caption

    config = ReluParticlesConfig(scaling="lazy", radius=1.0)
    assert "lazy step 0.5" in caption(config)
    with pytest.raises(ValueError, match="mean-field, reference, lazy"):
        ReluParticlesConfig(scaling="ntk")
