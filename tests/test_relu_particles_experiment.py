"""Teacher-student experiment: gradients against autograd, convergence to the teacher,
reproducibility."""

import math

import numpy as np
import pytest
import torch

from dynamics.experiments.relu_particles import (
    ACTIVE_RANGE,
    MIN_KINK_ANGLE,
    MIN_TEACHER_A,
    ReluParticlesConfig,
    TwoLayerReLU,
    draw_neurons,
    draw_teacher,
    run,
)


def random_module(m=7, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, w, b = draw_neurons(m, d, g)
    return TwoLayerReLU(a, w, b), g


def test_per_sample_gradients_match_autograd():
    model, g = random_module()
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = torch.randn(50, generator=g, dtype=torch.float64)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xi, yi):
        out = torch.func.functional_call(model, p, (xi[None],))[0]
        return 0.5 * (out - yi) ** 2

    auto = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    da, dw, db = model.per_sample_grads(x, y)
    for ours, name in ((da, "a"), (dw, "w"), (db, "b")):
        assert torch.allclose(ours, auto[name], rtol=0, atol=1e-10), name
    model.set_batch_grads(
        x, y
    )  # the batch path used in training is the mean of the per-sample ones
    for ours, name in ((da, "a"), (dw, "w"), (db, "b")):
        assert torch.allclose(getattr(model, name).grad, ours.mean(0), rtol=0, atol=1e-12), name


def test_gradient_matches_finite_differences_in_one_coordinate():
    model, g = random_module(m=5, d=2, seed=3)
    x = torch.randn(20, 2, generator=g, dtype=torch.float64)
    y = torch.randn(20, generator=g, dtype=torch.float64)
    model.set_batch_grads(x, y)
    h = 1e-6
    with torch.no_grad():
        for p in (model.a, model.w, model.b):
            flat = p.view(-1)
            for j in range(flat.numel()):
                old = float(flat[j])
                flat[j] = old + h
                up = 0.5 * ((model(x) - y) ** 2).mean()
                flat[j] = old - h
                down = 0.5 * ((model(x) - y) ** 2).mean()
                flat[j] = old
                assert abs((up - down) / (2 * h) - p.grad.view(-1)[j]) < 1e-8


@pytest.mark.parametrize("teacher_seed", range(6))
def test_teacher_draw_respects_the_acceptance_rules(teacher_seed):
    a, w, b = (t.numpy() for t in draw_teacher(ReluParticlesConfig(teacher_seed=teacher_seed)))
    active = [0.5 * (1 + math.erf(bj / np.linalg.norm(wj) / math.sqrt(2))) for wj, bj in zip(w, b)]
    assert all(ACTIVE_RANGE[0] <= p <= ACTIVE_RANGE[1] for p in active)
    assert np.all(np.abs(a) >= MIN_TEACHER_A)
    np.testing.assert_allclose(np.linalg.norm(np.c_[w, b], axis=1), 1.0)
    ang = np.degrees(np.arctan2(w[:, 1], w[:, 0])) % 180
    for i in range(len(ang)):
        for j in range(i):
            diff = abs(ang[i] - ang[j]) % 180
            assert min(diff, 180 - diff) >= MIN_KINK_ANGLE


def independent_f(a, w, b, x):
    """f(x) = mean_i a_i relu(w_i . x + b_i), written without the module under test."""
    return np.maximum(x @ w.T + b, 0) @ a / len(a)


@pytest.mark.slow
def test_mean_field_student_recovers_the_teacher():
    """m=100, R=0.05, batch 10, step 0.5, 10 000 steps of fresh inputs, on 5 seeds."""
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((100_000, 2))
    fits, report = 0, []
    for seed in range(5):
        cfg = ReluParticlesConfig(
            width=100,
            radius=0.05,
            batch=10,
            step=0.5,
            scaling="mean-field",
            frames=10,
            samples_per_frame=10_000,
            seed=seed,
            teacher_seed=seed,
            eval_samples=1000,
        )
        rec = run(cfg)
        assert rec.metadata["frame_steps"][-1] == 10_000
        a, w, b = (np.asarray(rec[k].values[-1]) for k in ("a", "w", "b"))
        t = rec.metadata["teacher"]
        ta, tw, tb = np.asarray(t["a"]), np.asarray(t["w"]), np.asarray(t["b"])
        f, f_star = independent_f(a, w, b, x), independent_f(ta, tw, tb, x)
        rel = np.mean((f - f_star) ** 2) / np.mean(f_star**2)
        # signed mass near the line through +-theta_j, against a_j / M
        u = np.c_[w, b]
        r = np.linalg.norm(u, axis=1)
        theta = np.c_[tw, tb]
        cos = np.abs((u / r[:, None]) @ theta.T)  # |cos| covers the antipodal direction
        near = cos >= math.cos(math.radians(10))
        mass = (a * r / len(a)) @ near
        ratio = mass / (ta / len(ta))
        ok = rel <= 1e-3 and np.all((ratio >= 0.8) & (ratio <= 1.2))
        fits += ok
        report.append((seed, rel, np.round(ratio, 3)))
    assert fits >= 4, report


def test_same_seed_same_recording_and_seed_matters():
    cfg = ReluParticlesConfig(frames=5, samples_per_frame=200, eval_samples=100)
    r1, r2 = run(cfg), run(cfg)
    r3 = run(ReluParticlesConfig(frames=5, samples_per_frame=200, eval_samples=100, seed=1))
    assert r1.keys() == r2.keys()
    for k in r1:
        np.testing.assert_array_equal(r1[k].steps, r2[k].steps)
        np.testing.assert_array_equal(r1[k].values, r2[k].values)
    assert r1.metadata == r2.metadata
    assert not np.array_equal(r1["positions"].values[-1], r3["positions"].values[-1])
    # the student never starts as a copy of the teacher, even with equal seeds
    assert not np.isin(np.asarray(r1["a"].values[0]), np.asarray(r1.metadata["teacher"]["a"])).any()


def test_recording_contents_and_initial_sphere():
    cfg = ReluParticlesConfig(
        width=9, radius=0.3, frames=4, samples_per_frame=100, batch=20, eval_samples=50
    )
    rec = run(cfg)
    assert rec["positions"].values.shape == (5, 9, 2)
    np.testing.assert_array_equal(rec["positions"].steps, [0, 5, 10, 15, 20])
    w0, b0 = np.asarray(rec["w"].values[0]), np.asarray(rec["b"].values[0])
    np.testing.assert_allclose(np.linalg.norm(np.c_[w0, b0], axis=1), 0.3)
    np.testing.assert_allclose(
        rec["positions"].values[-1], rec["a"].values[-1][:, None] * rec["w"].values[-1]
    )
    assert (
        rec.metadata["config"]["radius"] == 0.3 and rec.metadata["experiment"] == "relu_particles"
    )
    assert "torch" in rec.metadata["versions"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"width": -3}, "width must be a positive integer"),
        ({"frames": 0}, "frames must be a positive integer"),
        ({"radius": 0}, "radius must be a positive number"),
        ({"scaling": "other"}, "scaling must be one of"),
    ],
)
def test_bad_config_values_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        ReluParticlesConfig(**bad)
