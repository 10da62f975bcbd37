"""Recorder on real research code: several optimizers, buffers, dtypes, structured module
outputs, honest warnings, compiled models, block capture (issue 11)."""

import contextlib
import threading
import time
import warnings

import numpy as np
import pytest
import torch

from dynamics import Recorder, load
from dynamics import recorder as recorder_module
from dynamics import recording as recording_module
from dynamics.recorder import RecorderError, RecorderWarning
from dynamics.recording import verify


def mlp(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).to(
        dtype
    )


def sgd_step(model, opt, gen, dtype=torch.float32):
    opt.zero_grad()
    model(torch.randn(16, 3, generator=gen, dtype=dtype)).pow(2).mean().backward()
    opt.step()


# -- 2. several optimizers ------------------------------------------------------------------


def test_two_optimizers_as_a_list_capture_once_after_both_stepped():
    model = mlp()
    first = torch.optim.SGD(model[0].parameters(), lr=0.1)
    second = torch.optim.Adam(model[2].parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    expected = {}
    with Recorder(model, [first, second], schedule=1) as rec:
        for step in range(1, 6):
            first.zero_grad()
            second.zero_grad()
            model(torch.randn(16, 3, generator=gen)).pow(2).mean().backward()
            first.step()
            assert rec.step == step - 1  # not yet: the second optimizer has not stepped
            second.step()
            assert rec.step == step
            expected[step] = {k: v.clone() for k, v in model.state_dict().items()}
    r = rec.recording
    np.testing.assert_array_equal(r["2.weight"].steps, range(6))
    for step, state in expected.items():  # neither layer one update behind
        for name in ("0.weight", "2.weight"):
            np.testing.assert_array_equal(r[name].values[step], state[name].numpy())
    assert r.metadata["recorder"]["optimizers"] == 2


def test_alternating_gan_steps_count_one_step_when_every_optimizer_has_stepped():
    torch.manual_seed(0)
    gen_net, disc = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    model = torch.nn.ModuleDict({"g": gen_net, "d": disc})
    opt_g = torch.optim.SGD(gen_net.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(disc.parameters(), lr=0.1)
    with Recorder(model, [opt_d, opt_g], schedule=1) as rec:
        for it in range(4):
            for _ in range(3):  # critic steps
                opt_d.zero_grad()
                disc(gen_net(torch.randn(4, 2)).detach()).mean().backward()
                opt_d.step()
            assert rec.step == it  # D alone does not complete a step
            opt_g.zero_grad()
            (-disc(gen_net(torch.randn(4, 2)))).mean().backward()
            opt_g.step()
            assert rec.step == it + 1
            np.testing.assert_array_equal(
                rec.recording["d.weight"].values[-1], disc.weight.detach().numpy()
            )
            np.testing.assert_array_equal(
                rec.recording["g.weight"].values[-1], gen_net.weight.detach().numpy()
            )


def test_parameters_no_given_optimizer_updates_are_reported():
    model = mlp()
    first = torch.optim.SGD(model[0].parameters(), lr=0.1)
    with pytest.warns(
        RecorderWarning,
        match=r"no optimizer given to the Recorder updates them: 2\.weight, 2\.bias",
    ):
        rec = Recorder(model, first).attach()
    assert rec.recording.metadata["recorder"]["not_optimized"] == ["2.weight", "2.bias"]
    rec.close()
    with pytest.raises(RecorderError, match="no optimizer"):
        Recorder(model, first, strict=True).attach()


# -- 3. buffers -------------------------------------------------------------------------------


def test_buffers_by_pattern_and_none_by_default(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="names buffers: pass buffers="):
        Recorder(model, opt, params="*running_mean")
    with Recorder(model, opt) as default:
        pass
    assert not [k for k in default.recording if "running" in k]
    means = []
    with Recorder(model, opt, buffers="*running_*", path=tmp_path / "bn.rec") as rec:
        means.append(model[1].running_mean.clone())
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(8, 3)).sum().backward()
            opt.step()
            means.append(model[1].running_mean.clone())
    r = load(tmp_path / "bn.rec")
    assert r["1.running_mean"].kind == "buffer" and r["1.running_var"].source == "1.running_var"
    np.testing.assert_array_equal(r["1.running_mean"].values, torch.stack(means).numpy())
    assert "1.num_batches_tracked" not in r
    with Recorder(model, buffers="*num_batches*") as rec:
        pass
    assert rec.recording["1.num_batches_tracked"].values.dtype == np.int64


# -- 4. dtypes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, stored",
    [
        (torch.float64, np.float64),
        (torch.float16, np.float16),
        (torch.bfloat16, np.float32),
        (torch.float32, np.float32),
    ],
)
def test_series_keep_their_tensors_dtype(dtype, stored, tmp_path):
    model = torch.nn.Linear(3, 2).to(dtype)
    with torch.no_grad():
        model.weight.uniform_(-1, 1)
    with Recorder(model, grads=True, path=tmp_path / "d.rec") as rec:
        model(torch.randn(4, 3, dtype=dtype)).sum().backward()
        with torch.no_grad():
            model.weight.mul_(1.5)
        rec.tick()
    r = load(tmp_path / "d.rec")
    assert r["weight"].values.dtype == stored and r["grad/weight"].values.dtype == stored
    np.testing.assert_array_equal(
        r["weight"].values[-1], model.weight.detach().to(torch.float64).numpy()
    )
    np.testing.assert_array_equal(
        r["grad/weight"].values[-1], model.weight.grad.to(torch.float64).numpy()
    )


def test_a_dtype_change_after_attaching_is_refused_not_downcast():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    rec = Recorder(model, opt).attach()
    sgd_step(model, opt, gen)
    model.double()
    with pytest.raises(
        TypeError, match=r"series '0\.weight' was recorded as float32 and is now float64"
    ):
        sgd_step(model, opt, gen, torch.float64)
    rec.close(complete=False)
    with Recorder(model, opt) as rec:  # made after converting: float64 throughout
        sgd_step(model, opt, gen, torch.float64)
    assert rec.recording["0.weight"].values.dtype == np.float64


@pytest.mark.parametrize("to_disk", [False, True])
def test_a_shape_change_after_attaching_is_refused_naming_the_series(to_disk, tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    path = tmp_path / "s.rec" if to_disk else None
    rec = Recorder(model, path=path).attach()  # captures step 0
    rec.tick()
    with torch.no_grad():
        model.weight.data = torch.zeros(2, 4)
    with pytest.raises(
        ValueError, match=r"series 'weight' was recorded with shape \(4, 4\) and is now \(2, 4\)"
    ):
        rec.tick()
    rec.close(complete=False)
    r = load(path) if to_disk else rec.recording
    assert r["weight"].values.shape == (2, 4, 4)  # the two snapshots before the change
    np.testing.assert_array_equal(r["bias"].steps, [0, 1])  # the bias' series is whole too


def test_buffers_replaced_by_a_conversion_are_still_found():
    model = torch.nn.BatchNorm1d(3)
    with Recorder(model, params=None, buffers="running_mean") as rec:
        model.to(torch.float16)  # replaces the buffer tensors
        with pytest.raises(
            TypeError, match="running_mean' was recorded as float32 and is now float16"
        ):
            rec.tick()


# -- 5. structured module outputs ---------------------------------------------------------


class DictOut(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(5, 4)

    def forward(self, x):
        y = self.lin(x)
        return {"hidden": y, "weights": y.softmax(-1), "n": 3}


def test_tuple_and_dict_outputs_give_one_series_per_tensor():
    torch.manual_seed(0)
    lstm, head = torch.nn.LSTM(4, 5, batch_first=True), DictOut()
    model = torch.nn.ModuleDict({"lstm": lstm, "head": head})
    x = torch.randn(2, 7, 4)
    with pytest.warns(RecorderWarning, match=r"module 'head' holds a int at \[n\]") as caught:
        with Recorder(model, params=None, activations=["lstm", "head"]) as rec:
            out, (h, c) = lstm(x)
            head(h[0])
            rec.tick()
            head(h[0])
    assert sum("holds a int" in str(w.message) for w in caught) == 1  # once
    r = rec.recording
    for name, tensor in (("lstm[0]", out), ("lstm[1][0]", h), ("lstm[1][1]", c)):
        stats = r[f"stats/act/{name}"]
        assert stats.source == name and stats.of == "activation"
        np.testing.assert_allclose(
            stats.values[0][[2, 3]], [tensor.min().item(), tensor.max().item()], rtol=1e-6
        )
    assert {"stats/act/head[hidden]", "stats/act/head[weights]"} <= set(r.keys())
    assert not [k for k in r.keys() if "[n]" in k]
    assert "activation lstm[1][0]" in r.summaries()


# -- 6. honest reporting ---------------------------------------------------------------------


def test_second_recorder_on_the_same_model_is_reported():
    model = mlp()
    first = Recorder(model).attach()
    with pytest.warns(RecorderWarning, match="another Recorder is already attached"):
        second = Recorder(model).attach()
    second.close()
    with pytest.raises(RecorderError, match="another Recorder"):
        Recorder(model, strict=True).attach()
    first.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Recorder(model).attach().close()  # the others are detached: nothing to say


def test_frozen_parameters_with_grads_are_reported_and_noted():
    model = mlp()
    model[0].weight.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with pytest.warns(RecorderWarning, match=r"frozen \(requires_grad=False\).*0\.weight"):
        with Recorder(model, opt, grads=True) as rec:
            sgd_step(model, opt, torch.Generator().manual_seed(0))
    r = rec.recording
    assert r.metadata["recorder"]["frozen"] == ["0.weight"]
    assert "grad/0.weight" not in r and len(r["grad/0.bias"]) == 1
    with pytest.raises(RecorderError, match="frozen"):
        Recorder(model, opt, grads=True, strict=True).attach()


def test_non_finite_values_are_reported_once_naming_series_and_step():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(model, opt) as rec:
            sgd_step(model, opt, gen)
            rec.log(loss=float("nan"))
            rec.log(loss=float("nan"))
            with torch.no_grad():
                model[2].bias.fill_(float("inf"))
            sgd_step(model, opt, gen)
            sgd_step(model, opt, gen)
    messages = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert any("'loss' at step 1" in m for m in messages)
    assert any("'2.bias'" in m and "at step 2" in m for m in messages)
    assert len(messages) == len(set(messages)) and sum("'loss'" in m for m in messages) == 1
    nonfinite = rec.recording.metadata["nonfinite"]
    assert nonfinite["loss"] == 1 and nonfinite["2.bias"] == 2
    with pytest.raises(RecorderError, match="'loss' at step 0"):
        Recorder(model, strict=True).log(loss=float("inf"))


def test_series_whose_nan_is_a_value_are_not_reported_others_still_are():
    # strict=True: any report would raise, so getting through says nothing was reported
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, strict=True, nonfinite_ok=["check/*", "2.bias"]).attach()
    sgd_step(model, opt, torch.Generator().manual_seed(0))
    rec.log(**{"check/error": float("nan"), "check/ratio": float("inf")})
    with torch.no_grad():
        model[2].bias.fill_(float("nan"))  # a parameter matched: not reported either
    rec.tick()  # step 2, captured (no training step: the NaN would spread)
    with pytest.raises(RecorderError, match="'loss' at step 2"):
        rec.log(loss=float("nan"))  # not matched: strict raises
    rec.close()  # the block holding the NaN bias is checked here
    r = rec.recording
    assert np.isnan(r["check/error"].values[0]) and np.isinf(r["check/ratio"].values[0])
    assert np.isnan(r["2.bias"].values[-1]).all()
    assert r.metadata["nonfinite"] == {"loss": 2}
    assert r.metadata["recorder"]["nonfinite_ok"] == ["check/*", "2.bias"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_non_finite_check_tells_a_nan_from_a_sum_that_overflows(dtype):
    # blocks are checked through row sums: the largest finite values overflow the sum to
    # inf (float16 is summed in float32, which holds it), which must not be reported; a NaN
    # must be, at its own step, in every dtype
    model = torch.nn.Linear(3, 4).to(dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad(), Recorder(model) as rec:
            model.weight.fill_(torch.finfo(dtype).max)
            rec.tick()
            model.bias[2] = float("nan")
            rec.tick()
    messages = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert len(messages) == 1 and "'bias' at step 2" in messages[0]
    assert rec.recording.metadata["nonfinite"] == {"bias": 2}
    assert (rec.recording["weight"].values[1:] == torch.finfo(dtype).max).all()


# -- 8. block capture: exact, across blocks and flushes ---------------------------------


@pytest.mark.parametrize("to_disk", [True, False])
def test_block_capture_is_bitwise_exact_over_many_blocks(tmp_path, to_disk, monkeypatch):
    # small blocks (8 rows here), so 150 steps fill many; on disk the three larger series go
    # from the blocks to their files as they are and the two small ones through staging, with
    # a partial hand-over and a commit on the writer thread every 10 steps, and a writer that
    # lags behind (the sleep is that lag, not a timing)
    monkeypatch.setattr(recorder_module._Block, "BYTES", 40_000)
    monkeypatch.setattr(recording_module.disk, "_DIRECT_BYTES", 8_000)
    write = recording_module.files._WriterThread._write

    def slow_write(self, *args):  # a writer behind the training: blocks wait in its queue
        time.sleep(0.002)
        write(self, *args)

    monkeypatch.setattr(recording_module.files._WriterThread, "_write", slow_write)
    clock = [0.0]  # the recorder's and writer's clock, moved on by hand: a flush every 10 steps
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 300), torch.nn.ReLU(), torch.nn.Linear(300, 1))
    model.register_buffer("count", torch.zeros((), dtype=torch.int64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    snaps = []
    rec = Recorder(
        model,
        opt,
        grads=True,
        buffers="count",
        path=tmp_path / "b.rec" if to_disk else None,
        flush_seconds=0.5,
    )
    with rec:
        snaps.append({k: v.clone() for k, v in model.state_dict().items()})
        for _ in range(150):
            if len(snaps) % 10 == 0:
                clock[0] += 1.0  # past flush_seconds: rows handed on mid-block, a commit
            opt.zero_grad(set_to_none=True)
            model(torch.randn(8, 2, generator=gen)).pow(2).mean().backward()
            model.count += 1  # before the step: the capture happens inside opt.step()
            opt.step()
            snaps.append({k: v.clone() for k, v in model.state_dict().items()})
            snaps[-1]["grad"] = model[0].weight.grad.clone()
            if len(snaps) == 70:
                mid = rec.recording  # a read in the middle flushes the blocks and goes on
                assert len(mid["0.weight"]) == 70
    assert rec._sets[0].blocks[0].capacity == 8
    r = load(tmp_path / "b.rec") if to_disk else rec.recording
    if to_disk:
        assert verify(tmp_path / "b.rec") == []  # every block's checksum
    assert r["0.weight"].kind == "parameter" and r["grad/0.weight"].source == "0.weight"
    np.testing.assert_array_equal(r["0.weight"].steps, range(151))
    np.testing.assert_array_equal(r["grad/0.weight"].steps, range(1, 151))
    for name in ("0.weight", "0.bias", "2.weight", "count"):
        np.testing.assert_array_equal(r[name].values, torch.stack([s[name] for s in snaps]).numpy())
    np.testing.assert_array_equal(
        r["grad/0.weight"].values, torch.stack([s["grad"] for s in snaps[1:]]).numpy()
    )


def test_a_capture_at_an_earlier_step_is_refused_and_loses_nothing():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    rec = Recorder(model, capture_initial=False).attach()
    rec.capture(step=5)
    with torch.no_grad():
        model.weight += 1
    rec.capture(step=7)
    with pytest.raises(ValueError, match=r"'weight': steps must not decrease \(got 6 after 7\)"):
        rec.capture(step=6)
    r = rec.recording
    np.testing.assert_array_equal(r["weight"].steps, [5, 7])
    np.testing.assert_array_equal(r["weight"].values[1], model.weight.detach().numpy())


def test_parameters_whose_memory_changes_between_captures_are_read_afresh():
    # the recorder keeps flattened views of parameters and buffers between captures; each
    # way a tensor can change its memory or layout in place must be seen at the next capture
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    model.register_buffer("state", torch.zeros(3))
    changes = [
        lambda: model.weight.add_(1.0),  # in place, same memory: the kept views see it
        lambda: setattr(model.weight, "data", torch.randn(4, 4)),  # new memory
        lambda: model.weight.t_(),  # same memory and shape, strides swapped
        lambda: model.weight.t_(),  # and back
        lambda: model.bias.set_(torch.randn(4)),  # new storage under the same tensor
        lambda: setattr(model, "state", torch.ones(3)),  # a new buffer tensor
        lambda: model.state.copy_(torch.arange(3.0)),
    ]
    with torch.no_grad(), Recorder(model, buffers="*") as rec:
        snaps = [{k: v.clone() for k, v in model.state_dict().items()}]
        for change in changes:
            change()
            rec.tick()
            snaps.append({k: v.clone() for k, v in model.state_dict().items()})
    r = rec.recording
    for name in ("weight", "bias", "state"):
        np.testing.assert_array_equal(r[name].steps, range(len(changes) + 1))
        for step, snap in enumerate(snaps):
            np.testing.assert_array_equal(r[name].values[step], snap[name].numpy(), f"{name}{step}")


def test_blocks_given_back_when_a_gradient_comes_and_goes(tmp_path, monkeypatch):
    # a gradient that is None at some captures sends its set down the slow path and the
    # blocks are rebuilt when it is back; each rebuild must give the old block back to the
    # disk writer's pool (at most three per kind), or the fourth rebuild would wait forever
    monkeypatch.setattr(recorder_module._Block, "BYTES", 2_000)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    expected = []

    def train():
        with Recorder(model, grads=True, path=tmp_path / "g.rec") as rec:
            for step in range(1, 41):
                opt.zero_grad(set_to_none=True)
                if step % 4:  # every fourth step has no gradient
                    model(torch.randn(16, 3, generator=gen)).pow(2).mean().backward()
                    expected.append((step, model[0].weight.grad.clone()))
                opt.step()
                rec.tick()

    worker = threading.Thread(target=train, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the recorder waited forever for a block"
    grad = load(tmp_path / "g.rec")["grad/0.weight"]
    np.testing.assert_array_equal(grad.steps, [s for s, _ in expected])
    np.testing.assert_array_equal(grad.values, torch.stack([g for _, g in expected]).numpy())


# -- 1. compiled models ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_compiled_model_is_recorded_under_its_own_names():
    torch._dynamo.reset()
    model = mlp()
    compiled = torch.compile(model)  # inductor, on this CPU
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    with Recorder(
        compiled, opt, grads=True, summaries="*", summary_grads=True, activations=["0", "1"]
    ) as rec:
        for _ in range(3):
            opt.zero_grad()
            out = compiled(torch.randn(16, 3, generator=gen))
            out.pow(2).mean().backward()
            opt.step()
            rec.log(loss=out.pow(2).mean())
    r = rec.recording
    assert {
        "0.weight",
        "grad/2.bias",
        "stats/0.weight",
        "stats/grad/0.weight",
        "stats/act/1",
        "loss",
    } <= set(r.keys())
    assert not [k for k in r.keys() if "_orig_mod" in k]
    np.testing.assert_array_equal(r["0.weight"].values[-1], model[0].weight.detach().numpy())
    assert len(r["stats/act/1"]) == 3 and np.isfinite(r["stats/act/1"].values).all()
    assert r["stats/act/1"].values[:, 2].min() >= 0  # a ReLU's output: real values, not traced ones


@pytest.mark.slow
def test_a_compiled_optimizer_step_runs_the_hooks_eagerly():
    """``opt.step()`` inside a compiled function: Dynamo reaches the recorder's hooks, and
    must neither trace into the recorder (new graph breaks inside it) nor skip a capture."""

    def run(record: bool):
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        @torch.compile(backend="eager")  # Dynamo's tracing without inductor's compile time
        def train_step(x):
            model(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()

        gen = torch.Generator().manual_seed(0)
        rec = Recorder(model, opt, activations=["1"], summaries="*") if record else None
        after = []
        with rec or contextlib.nullcontext():
            for _ in range(4):
                train_step(torch.randn(16, 3, generator=gen))
                after.append(model[0].weight.detach().clone())
        return rec, after, set(torch._dynamo.utils.counters["graph_break"])

    _, bare_after, bare_breaks = run(False)
    rec, after, breaks = run(True)
    new = {reason.split("\n")[0] for reason in breaks - bare_breaks}
    assert new <= {"Skip calling `torch.compiler.disable()`d function"}, new
    r = rec.recording
    np.testing.assert_array_equal(r["0.weight"].steps, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(r["0.weight"].values[1:], torch.stack(after).numpy())
    np.testing.assert_array_equal(r["0.weight"].values[1:], torch.stack(bare_after).numpy())
    assert len(r["stats/act/1"]) == 4 and r["stats/act/1"].values[:, 2].min() >= 0


def test_strict_non_finite_parameter_raises_and_keeps_the_recording(tmp_path):
    model = mlp()
    rec = Recorder(model, strict=True, path=tmp_path / "s.rec")  # step 0 committed: finite
    with torch.no_grad():
        model[0].bias[1] = float("nan")
    rec.tick()
    with pytest.raises(RecorderError, match=r"'0\.bias' at step 1"):
        rec.close()
    r = load(tmp_path / "s.rec")
    assert r.complete and len(r["0.bias"]) == 2 and r.metadata["nonfinite"] == {"0.bias": 1}
    with pytest.raises(RecorderError, match=r"'0\.bias' at step 0"):  # already at step 0:
        Recorder(model, strict=True, path=tmp_path / "t.rec")  # raised by the constructor
    r = load(tmp_path / "t.rec")
    assert not r.complete and r["0.bias"].steps.tolist() == [0]  # and kept
