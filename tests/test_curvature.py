"""Sharpness: the top Hessian eigenvalues by Lanczos, against the dense Hessian in float64
(torch.autograd.functional.hessian) as the oracle; the recorder's Sharpness quantity."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from dynamics import Recorder
from dynamics.capture import Sharpness
from dynamics.curvature import optimizer_preconditioner, sharpness, trainable


def dense_hessian(model, loss_fn, batch):
    names, params = trainable(model)
    shapes, sizes = [p.shape for p in params], [p.numel() for p in params]
    x, *rest = batch

    def loss(flat):
        values = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return loss_fn(functional_call(model, values, (x,)), *rest)

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    return torch.autograd.functional.hessian(loss, flat)


class Quadratic(torch.nn.Module):
    """``0.5 w^T A w``: the model's output is its parameter, the loss takes ``A``."""

    def __init__(self, n):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n, dtype=torch.float64))

    def forward(self, x):
        return self.w


def quadratic_loss(w, A):
    return 0.5 * w @ A @ w


def with_spectrum(spectrum):
    q, _ = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), dtype=torch.float64))
    return q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T


def cases():
    torch.manual_seed(0)
    spread = [10.0, 7.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.1, -0.2, -1.0, -4.0]
    negative = [-50.0, -20.0, 3.0, 2.5, 1.0, 0.0, -0.1, -3.0]  # largest magnitude: -50
    tanh = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    net = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.ReLU(), torch.nn.Linear(10, 3))
    return {
        "quadratic": (Quadratic(11), quadratic_loss, (torch.zeros(1), with_spectrum(spread))),
        "negative top magnitude": (
            Quadratic(8), quadratic_loss, (torch.zeros(1), with_spectrum(negative))
        ),
        "tanh mlp, mse": (tanh.double(), F.mse_loss, (torch.randn(20, 3), torch.randn(20, 2))),
        "classifier, cross-entropy": (
            net.double(), F.cross_entropy, (torch.randn(30, 4), torch.randint(0, 3, (30,)))
        ),
    }  # fmt: skip


CASES = cases()


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_sharpness_is_the_top_of_the_dense_hessians_spectrum(case, k):
    model, loss_fn, batch = CASES[case]
    batch = tuple(b.double() if b.is_floating_point() else b for b in batch)
    H = dense_hessian(model, loss_fn, batch)
    expected = torch.linalg.eigvalsh(H).flip(0)[:k]
    found = sharpness(model, loss_fn, batch, k)
    assert found.converged and found.values.dtype == torch.float64
    np.testing.assert_allclose(found.values, expected, rtol=1e-6)
    for value, vector in zip(found.values, found.vectors):  # eigenvectors too
        np.testing.assert_allclose(H @ vector, value * vector, atol=1e-6 * H.norm(2).item())
    if case == "quadratic":
        np.testing.assert_allclose(found.values, [10.0, 7.0, 5.0][:k], rtol=1e-6)
    if case == "negative top magnitude":  # largest algebraic, not largest in magnitude
        np.testing.assert_allclose(found.values, [3.0, 2.5, 1.0][:k], rtol=1e-6)


def test_the_preconditioned_sharpness_is_the_top_of_p_inverse_h():
    torch.manual_seed(1)
    model, loss_fn, (x, y) = CASES["tanh mlp, mse"]
    model = torch.nn.Sequential(*[m for m in model]).double()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    assert optimizer_preconditioner(opt, model) is None  # no second moment yet
    for _ in range(3):
        opt.zero_grad()
        loss_fn(model(x.double()), y.double()).backward()
        opt.step()
    p = optimizer_preconditioner(opt, model)
    H = dense_hessian(model, loss_fn, (x.double(), y.double()))
    expected = torch.linalg.eigvals(torch.diag(1 / p) @ H).real.sort(descending=True).values
    found = sharpness(model, loss_fn, (x.double(), y.double()), 2, preconditioner=p)
    np.testing.assert_allclose(found.values, expected[:2], rtol=1e-6)


def slowly_trained():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    x = torch.randn(64, 5)
    y = torch.sin(x.sum(1, keepdim=True))
    return model.double(), (x.double(), y.double())


def test_a_warm_start_takes_fewer_hvps_than_a_cold_one():
    model, batch = slowly_trained()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    previous, warm, cold = None, [], []
    for _ in range(6):
        opt.zero_grad()
        F.mse_loss(model(batch[0]), batch[1]).backward()
        opt.step()
        w = sharpness(model, F.mse_loss, batch, 2, init=previous)
        c = sharpness(model, F.mse_loss, batch, 2)
        np.testing.assert_allclose(w.values, c.values, rtol=1e-6)
        previous = w.vectors
        warm.append(w.hvps)
        cold.append(c.hvps)
    assert sum(warm[1:]) < sum(cold[1:]) and max(warm[1:]) < min(cold), (warm, cold)


def test_the_quantity_records_sharpness_at_its_cadence_equal_to_the_function():
    model, batch = slowly_trained()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    quantity = Sharpness(F.mse_loss, batch, k=2, every=4)
    expected = {0: sharpness(model, F.mse_loss, batch, 2).values}
    with Recorder(model, opt, params=None, quantities=[quantity]) as rec:
        for _ in range(10):
            opt.zero_grad()
            F.mse_loss(model(batch[0]), batch[1]).backward()
            opt.step()
            if rec.step % 4 == 0:
                expected[rec.step] = sharpness(model, F.mse_loss, batch, 2).values
    r = rec.recording
    s, hvps = r["sharpness"], r["sharpness/hvps"]
    np.testing.assert_array_equal(s.steps, [0, 4, 8])
    np.testing.assert_array_equal(hvps.steps, [0, 4, 8])
    assert s.kind == "curvature" and s.values.shape == (3, 2) and s.values.dtype == np.float64
    np.testing.assert_allclose(s.values, np.stack([expected[t] for t in (0, 4, 8)]), rtol=1e-6)
    assert hvps.values[0] > max(hvps.values[1:])  # warm-started after the first
    about = r.metadata["recorder"]["sharpness"]["sharpness"]
    assert about["loss"] == "mse_loss" and about["batch"] == 64 and about["k"] == 2
    assert "sharpness" not in r.metadata["recorder"].get("never_captured", [])


@pytest.mark.parametrize(
    "make, plain, preconditioned",
    [
        (lambda ps: torch.optim.SGD(ps, lr=0.05), 2 / 0.05, None),
        (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), 3.8 / 0.05, None),
        (lambda ps: torch.optim.Adam(ps, lr=0.01), None, 38 / 0.01),
        (lambda ps: torch.optim.RMSprop(ps, lr=0.01), None, 2 / 0.01),
    ],
)
def test_the_edge_of_stability_follows_the_optimizer_and_its_step_size(make, plain, preconditioned):
    """2/lr for gradient descent ((2 + 2 beta)/lr with momentum), 38/lr for Adam's
    preconditioned sharpness, 2/lr for RMSprop's, recorded beside the sharpness at each
    capture with the step size of that moment (a schedule halves it here)."""
    model, batch = slowly_trained()
    opt = make(model.parameters())
    with Recorder(
        model, opt, params=None, quantities=[Sharpness(F.mse_loss, batch, every=2, optimizer=opt)]
    ) as rec:
        for step in range(4):
            opt.zero_grad()
            F.mse_loss(model(batch[0]), batch[1]).backward()
            opt.step()
            if step == 2:
                for group in opt.param_groups:
                    group["lr"] /= 2
    r = rec.recording
    for name, edge in (
        ("sharpness/edge", plain),
        ("sharpness/preconditioned/edge", preconditioned),
    ):
        if edge is None:
            assert name not in r
            continue
        assert r[name].kind == "curvature"
        first = 0 if name == "sharpness/edge" else 2  # the preconditioner needs a first step
        np.testing.assert_array_equal(r[name].steps, range(first, 5, 2))
        np.testing.assert_allclose(r[name].values[-1], 2 * edge)  # the halved step size
        np.testing.assert_allclose(r[name].values[0], edge)


def run(with_sharpness):
    torch.manual_seed(3)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 12), torch.nn.BatchNorm1d(12), torch.nn.Tanh(), torch.nn.Dropout(0.3),
        torch.nn.Linear(12, 1),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    quantities = [Sharpness(F.mse_loss, (x, y), k=2, optimizer=opt)] if with_sharpness else []
    with Recorder(model, opt, params=None, schedule=1, quantities=quantities) as rec:
        for _ in range(3):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
            grads = [p.grad.clone() for p in model.parameters()]
            rec.capture()  # a second capture now: the gradients must survive it
            assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
            assert model.training and model[3].training
    return model.state_dict(), torch.rand(3), rec.recording


def test_training_is_bit_identical_with_and_without_the_quantity():
    bare, bare_draw, _ = run(False)
    watched, watched_draw, recording = run(True)
    assert bare.keys() == watched.keys()
    assert all(torch.equal(bare[key], watched[key]) for key in bare)  # BatchNorm's buffers too
    assert torch.equal(bare_draw, watched_draw)  # the global random state is untouched
    pre = recording["sharpness/preconditioned"]
    assert pre.steps[0] == 1 and pre.values.shape[1] == 2  # from Adam's first step


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda m, b: sharpness(m, F.mse_loss, b, 0), "k must be an int from 1 to 3"),
        (lambda m, b: sharpness(m, F.mse_loss, b, 4), "k must be an int from 1 to 3"),
        (lambda m, b: sharpness(m, F.mse_loss, {"x": b[0]}), "batch must be a tensor x or a"),
        (lambda m, b: sharpness(m, F.mse_loss, b, 2, max_hvps=1), "max_hvps must be an int"),
        (lambda m, b: Sharpness(F.mse_loss, b, k=0), "k must be an int >= 1"),
        (lambda m, b: Recorder(m, quantities=[Sharpness(F.mse_loss, b, k=4)]), "k=4 is more"),
        (lambda m, b: Sharpness(F.mse_loss, [[1.0]]), "batch must be a tensor x or a tuple"),
        (lambda m, b: sharpness(m, lambda out, y: (out - y) ** 2, b), "must return a scalar"),
    ],
)
def test_a_bad_argument_is_refused_in_one_line(make, message):
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=message) as info:
        make(model, (torch.randn(5, 2), torch.randn(5, 1)))
    assert "\n" not in str(info.value)


def test_the_readme_snippet_records_and_measures():
    from snippets import snippet

    code = snippet("sharpness")
    assert len(code.strip().splitlines()) <= 6
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scope = {"model": model, "opt": opt, "x": x, "y": y, "Recorder": Recorder}
    exec(compile(code, "sharpness snippet", "exec"), scope)
    rec = scope["rec"]
    rec.close()
    assert rec.recording["sharpness"].values.shape == (1, 1) and scope["values"].shape == (3,)
    assert scope["converged"] and scope["vectors"].shape == (3, 8 * 4 + 8 + 3 * 8 + 3)


def test_the_sharpness_scene_and_the_dashboard_draw_curvature_as_curves_against_the_edge():
    from scenes.base import RenderOptions
    from scenes.render import plan
    from scenes.sharpness import SharpnessScene, SharpnessSceneConfig

    rec = SharpnessScene.example()
    views = {v.name: v.how for v in plan(rec)}
    assert views["sharpness"] == "curve" and views["sharpness/edge"] == "curve"  # no heatmap
    options = RenderOptions.preset_for("draft", progress=False, workers=1)
    scene = SharpnessScene(rec, options=options)
    scene.frame(-1)
    lines = scene.panels_[0].ax.get_lines()
    edge = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(edge) == 1 and np.allclose(edge[0].get_ydata(), 20.0)
    # the readout shows the largest eigenvalue at the frame's step
    (field,) = [f for f in scene.readout_fields() if f.label == "λ1"]
    shown = [field.pick(v) for v in rec["sharpness"].values]
    np.testing.assert_array_equal(shown, np.asarray(rec["sharpness"].values)[:, 0])
    from scenes.handout import readout_at

    top = float(np.asarray(rec["sharpness"].values)[-1, 0])
    assert ("λ1", f"{top:.4g}") in readout_at(scene, int(rec["sharpness"].steps[-1]))
    given = SharpnessScene(rec, SharpnessSceneConfig(lr=0.5), options)  # 2/lr drawn: 4
    given.frame(0)
    dashed = [ln for ln in given.panels_[0].ax.get_lines() if ln.get_linestyle() == "--"]
    assert np.allclose(dashed[0].get_ydata(), 4.0)
    with pytest.raises(ValueError, match="lr must be 0"):
        SharpnessSceneConfig(lr=-1)
