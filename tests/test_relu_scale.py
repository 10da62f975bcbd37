"""The teacher-student experiment at mean-field scale: the fused kernels against torch,
chunked evaluation against unchunked, bounded memory, the science at m = 100 000."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from dynamics.experiments import _relu_kernels as kernels
from dynamics.experiments.relu_particles import (
    ReluParticlesConfig,
    TwoLayerReLU,
    _TorchTrainer,
    check_memory,
    draw_neurons,
    param_frames,
    run,
)


def model(m, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a, w, b = draw_neurons(m, d, g)
    return TwoLayerReLU(a * 2, w, b).to(dtype), g


def as_kernel_arrays(student):
    a, w, b = (p.detach().numpy().copy() for p in (student.a, student.w, student.b))
    return a, np.ascontiguousarray(w.T), b


@pytest.mark.parametrize("m, d, n, batch", [(7, 3, 50, 9), (20, 2, 40, 20), (5000, 2, 31, 10)])
def test_kernel_frame_equals_torch_sgd_steps(m, d, n, batch):
    """A frame of fused steps (a short last batch included) equals torch's sgd_step, which
    the autograd test in test_relu_particles_experiment checks."""
    student, g = model(m, d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    a, W, b = as_kernel_arrays(student)
    lr = 0.5 * m
    kernels.train_frame(a, W, b, x.numpy(), y.numpy(), batch, lr)
    for lo in range(0, n, batch):
        student.sgd_step(x[lo : lo + batch], y[lo : lo + batch], lr)
    np.testing.assert_allclose(a, student.a.detach().numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(W.T, student.w.detach().numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(b, student.b.detach().numpy(), rtol=0, atol=1e-11)


def test_kernel_relu_derivative_at_zero_is_one():
    """relu'(0) = 1, as TwoLayerReLU documents: a neuron exactly at its kink still learns."""
    a, W, b = np.ones(1), np.zeros((2, 1)), np.zeros(1)
    kernels.train_frame(a, W, b, np.array([[1.0, 2.0]]), np.array([1.0]), 1, 1.0)
    np.testing.assert_allclose(W[:, 0], [1.0, 2.0])  # -lr * a * r * x with r = -1
    assert b[0] == 1.0


@pytest.mark.parametrize("block", [1, 7, 256, 5000])
def test_chunked_evaluation_equals_unchunked(block):
    student, g = model(kernels.CHUNK + 123, 2)  # two neuron chunks, the second partial
    x = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    full = student(x).detach().numpy()  # one (1000, m) matrix
    np.testing.assert_allclose(
        kernels.predict(*as_kernel_arrays(student), x.numpy(), block), full, rtol=1e-12, atol=1e-13
    )


def test_torch_evaluation_in_chunks_equals_one_product():
    """The torch path (GPU) chunks the samples: 2**24 // m samples at a time."""
    big, g = model(100_000, 2)  # 167 samples a chunk: 400 samples are three chunks
    xb = torch.randn(400, 2, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(
        _TorchTrainer(big).predict(xb).numpy(), big(xb).detach().numpy(), rtol=1e-12, atol=1e-13
    )


@pytest.mark.slow  # compiles the float32 kernels: 45 s on a fresh checkout
def test_kernel_result_does_not_depend_on_the_thread_count(monkeypatch):
    m = kernels.PARALLEL_FROM + 999
    student, g = model(m, 2, dtype=torch.float32)
    x = torch.randn(200, 2, generator=g).numpy()
    y = torch.randn(200, generator=g).numpy()
    out = []
    for threads in (1, 2):
        a, W, b = as_kernel_arrays(student)
        monkeypatch.setattr(kernels, "THREADS", threads)
        kernels.train_frame(a, W, b, x, y, 10, 0.5 * m)
        f = kernels.predict(a, W, b, x)
        out.append((a, W, b, f))
    for one, two in zip(*out):
        np.testing.assert_array_equal(one, two)


def test_parallel_kernels_leave_torch_on_its_threads():
    """numba's OpenMP layer shares libgomp with torch and reset torch's thread count after
    its first parallel region; the kernels put it back (dynamics._threads)."""
    m = kernels.PARALLEL_FROM
    student, g = model(m, 2)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64).numpy()
    y = torch.randn(50, generator=g, dtype=torch.float64).numpy()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        kernels.train_frame(*as_kernel_arrays(student), x, y, 10, 0.5 * m)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow  # float32 kernels, as above
def test_large_width_records_float32_positions_every_frame_and_parameters_sparsely():
    cfg = ReluParticlesConfig(width=12_000, frames=20, samples_per_frame=50, batch=10)
    rec = run(cfg)
    assert rec["positions"].values.dtype == np.float32 and len(rec["positions"].steps) == 21
    assert rec["mass"].values.shape == (21, 12_000)
    np.testing.assert_array_equal(rec["a"].steps, np.array(rec.metadata["frame_steps"])[::2])
    assert list(param_frames(cfg)) == list(range(0, 21, 2))
    np.testing.assert_array_equal(rec["mass"].values[-1], rec["a"].values[-1])
    np.testing.assert_allclose(
        rec["positions"].values[-1], rec["a"].values[-1][:, None] * rec["w"].values[-1]
    )
    assert rec.metadata["dtype"] == "float32" and rec.complete


def test_a_run_that_cannot_fit_is_refused_up_front_with_the_size():
    with pytest.raises(MemoryError, match=r"need about [\d,.]+ GB of memory .* available"):
        check_memory(ReluParticlesConfig(width=10**10))
    with pytest.raises(MemoryError, match="held-out samples"):
        check_memory(ReluParticlesConfig(eval_samples=10**12))
    check_memory(ReluParticlesConfig(width=100_000))  # the mean-field size fits


def test_command_line_refuses_a_width_that_cannot_fit_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "scenes.relu_particles", "--width", "10000000000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "GB of memory" in proc.stderr, proc.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_run_matches_the_cpu_run():
    cfg = dict(width=2000, frames=5, samples_per_frame=200, batch=10, dtype="float64")
    cpu, gpu = run(ReluParticlesConfig(**cfg)), run(ReluParticlesConfig(**cfg, device="cuda"))
    np.testing.assert_allclose(gpu["positions"].values, cpu["positions"].values, atol=1e-9)
    np.testing.assert_allclose(gpu["loss"].values, cpu["loss"].values, rtol=1e-9)


def independent_f(a, w, b, x, chunk=200):
    """f(x) = mean_i a_i relu(w_i.x + b_i) in numpy float64, in chunks of samples."""
    a, w, b = (np.asarray(v, dtype=np.float64) for v in (a, w, b))
    return np.concatenate(
        [np.maximum(x[lo : lo + chunk] @ w.T + b, 0) @ a / len(a) for lo in range(0, len(x), chunk)]
    )


@pytest.mark.slow
def test_mean_field_student_recovers_the_teacher_at_100k_neurons():
    """m = 100 000, R = 0.05, batch 10, step 0.5, 10 000 steps (issue 12, item 5)."""
    cfg = ReluParticlesConfig(
        width=100_000, radius=0.05, batch=10, step=0.5, frames=20, samples_per_frame=5000
    )
    rec = run(cfg)
    assert rec.metadata["frame_steps"][-1] == 10_000 and rec.metadata["dtype"] == "float32"
    a, w, b = (np.asarray(rec[k].values[-1], dtype=np.float64) for k in ("a", "w", "b"))
    t = rec.metadata["teacher"]
    ta, tw, tb = np.asarray(t["a"]), np.asarray(t["w"]), np.asarray(t["b"])
    x = np.random.default_rng(7).standard_normal((20_000, 2))  # fresh inputs
    f, f_star = independent_f(a, w, b, x), independent_f(ta, tw, tb, x)
    rel = np.mean((f - f_star) ** 2) / np.mean(f_star**2)
    u = np.c_[w, b]
    r = np.linalg.norm(u, axis=1)
    theta = np.c_[tw, tb]
    near = np.abs((u / r[:, None]) @ theta.T) >= math.cos(math.radians(10))  # both signs
    ratio = ((a * r / len(a)) @ near) / (ta / len(ta))
    assert rel <= 1e-3, rel
    assert np.all((ratio >= 0.8) & (ratio <= 1.2)), ratio
