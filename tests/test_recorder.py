"""Recorder: captures what it should, when it should, and never changes the run."""

import gc
import weakref

import numpy as np
import pytest
import torch

from dynamics import Recorder, at_steps, every, load, log_spaced


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1)
    ).double()


def train(model, opt, steps=25, recorder=None):
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(32, 3, generator=gen, dtype=torch.float64)
        y = x.sum(1, keepdim=True).sin()
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if recorder is not None:
            recorder.log(loss=loss)


def test_recording_never_changes_the_run(tmp_path):
    runs = []
    for use_recorder in (False, True):
        model = make_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        torch.manual_seed(123)  # dropout draws from the global generator: the recorder must not
        if use_recorder:
            with Recorder(
                model,
                opt,
                grads=True,
                schedule=1,
                path=tmp_path / "r.rec",
                derived={"norm": lambda m: m[0].weight.norm()},
            ) as rec:
                train(model, opt, recorder=rec)
        else:
            train(model, opt)
        runs.append((model.state_dict(), opt.state_dict(), torch.get_rng_state()))
    (p0, o0, r0), (p1, o1, r1) = runs
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    for i, state in o0["state"].items():
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(o1["state"][i][k])), (i, k)
    assert torch.equal(r0, r1)


def test_captures_match_parameters_and_grads_at_each_step():
    model = make_model().eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    expected, grads = {}, {}
    rec = Recorder(model, opt, params="0.*", grads=True, schedule=every(3)).attach()
    expected[0] = model[0].weight.detach().clone()
    gen = torch.Generator().manual_seed(0)
    for step in range(1, 10):
        opt.zero_grad()
        model(torch.randn(8, 3, generator=gen, dtype=torch.float64)).pow(2).mean().backward()
        opt.step()
        expected[step] = model[0].weight.detach().clone()
        grads[step] = model[0].weight.grad.detach().clone()
    rec.close()
    r = rec.recording
    assert set(r.keys()) == {"0.weight", "0.bias", "grad/0.weight", "grad/0.bias"}
    np.testing.assert_array_equal(r["0.weight"].steps, [0, 3, 6, 9])
    for i, step in enumerate(r["0.weight"].steps):
        np.testing.assert_array_equal(r["0.weight"].values[i], expected[int(step)].numpy())
    np.testing.assert_array_equal(
        r["grad/0.weight"].steps, [3, 6, 9]
    )  # no gradient exists at step 0
    np.testing.assert_array_equal(r["grad/0.weight"].values[-1], grads[9].numpy())


def test_detach_removes_every_hook_and_is_idempotent():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt).attach()
    assert len(opt._optimizer_step_post_hooks) == 1
    rec.detach()
    rec.detach()
    assert len(opt._optimizer_step_post_hooks) == 0
    assert not model._forward_hooks and not model._forward_pre_hooks
    train(model, opt, steps=3)
    assert rec.step == 0 and len(rec.recording["0.weight"]) == 1  # only the initial capture


def test_context_manager_detaches_and_finalizes(tmp_path):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(model, opt, path=tmp_path / "c.rec") as rec:
        train(model, opt, steps=4, recorder=rec)
    assert not opt._optimizer_step_post_hooks
    r = rec.recording
    assert (
        r.complete
        and list(r["loss"].steps) == [1, 2, 3, 4]
        and list(r["0.weight"].steps) == [0, 1, 2, 3, 4]
    )


@pytest.mark.parametrize("to_disk", [True, False])
def test_an_interrupted_run_keeps_its_recording_marked_incomplete(tmp_path, to_disk):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, path=tmp_path / "cut.rec" if to_disk else None)
    with pytest.raises(KeyboardInterrupt), rec:
        for step in range(10):
            opt.zero_grad()
            model(torch.ones(1, 3)).sum().backward()
            opt.step()
            if step == 4:
                raise KeyboardInterrupt
    recording = load(tmp_path / "cut.rec") if to_disk else rec.recording
    assert not recording.complete
    assert list(recording["weight"].steps) == [0, 1, 2, 3, 4, 5]  # everything up to the interrupt


def test_hand_written_loop_with_tick_and_capture():
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    model = torch.nn.Module()
    model.w = w
    with Recorder(model, schedule=[0, 2, 5], derived={"double": lambda m: 2 * m.w}) as rec:
        for _ in range(6):
            with torch.no_grad():
                w += 1
            rec.tick()
        rec.capture(step=100)
    r = rec.recording
    np.testing.assert_array_equal(r["w"].steps, [0, 2, 5, 100])
    np.testing.assert_array_equal(r["w"].values[:, 0], [0, 2, 5, 6])
    np.testing.assert_array_equal(r["double"].values[:, 0], [0, 4, 10, 12])


def test_schedules():
    assert [s for s in range(10) if s in every(4)] == [0, 4, 8]
    assert [s for s in range(10) if s in at_steps([7, 2])] == [2, 7]
    ls = [s for s in range(1001) if s in log_spaced(4, 1000)]
    assert ls == [0, 1, 10, 100, 1000]
    with pytest.raises(ValueError, match="k >= 1"):
        every(0)


def test_recorder_holds_model_weakly_and_rejects_bad_patterns():
    model = make_model()
    rec = Recorder(model)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
    with pytest.raises(RuntimeError, match="garbage-collected"):
        rec.capture()
    with pytest.raises(ValueError, match="no parameter matches"):
        Recorder(make_model(), params="encoder.*")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_are_copied_to_cpu():
    model = make_model().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator(device="cuda").manual_seed(0)
    with Recorder(model, opt, grads=True, derived={"n": lambda m: m[0].weight.norm()}) as rec:
        for _ in range(5):
            opt.zero_grad()
            model(
                torch.randn(8, 3, device="cuda", dtype=torch.float64, generator=gen)
            ).sum().backward()
            opt.step()
            rec.log(loss=1.0)
        last = model[0].weight.detach().cpu().numpy()
    r = rec.recording
    assert isinstance(r["0.weight"].values, np.ndarray) and len(r["0.weight"]) == 6
    np.testing.assert_array_equal(r["0.weight"].values[-1], last)
    assert np.isclose(r["n"].values[-1], np.linalg.norm(last))
