"""Every capture path on the zoo of real model families (tests/zoo/).

Each zoo model is recorded the way a researcher's trainer class would do it (a Recorder
made, trained, ``close()``d: no ``with``, no ``attach()``) with parameters, buffers,
gradients, summaries and activations (:func:`zoo.record`), and every snapshot is checked
against copies taken beside the recorder: the weights after each step, and the gradients
each optimizer saw just before its own step (its step pre-hook), whatever backward passes
followed. tests/test_zoo_scenes.py renders every scene on the same recordings.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from zoo import BUILDERS, STEPS, build

from dynamics import Recorder, load
from dynamics.recorder import RecorderWarning

ZOO = sorted(BUILDERS)


@pytest.mark.parametrize("name", ZOO)
def test_every_snapshot_is_the_weights_and_every_gradient_what_its_optimizer_used(
    name, zoo_recording
):
    rec, weights, grads = zoo_recording(name)
    member = build(name)
    params = [n for n, _ in member.module.named_parameters()]
    assert rec.complete
    for n in params:
        series = rec[n]
        np.testing.assert_array_equal(series.steps, np.arange(STEPS + 1))
        for step in range(STEPS + 1):
            np.testing.assert_array_equal(series.values[step], weights[step][n].numpy(), err_msg=n)
        g = rec[f"grad/{n}"]
        assert g.steps.tolist() == list(range(1, STEPS + 1)), n
        for i, step in enumerate(g.steps.tolist()):
            np.testing.assert_array_equal(g.values[i], grads[step][n].numpy(), err_msg=f"grad {n}")
    for n in [s for s, series in rec.items() if series.kind == "buffer"]:
        for i, step in enumerate(rec[n].steps.tolist()):
            np.testing.assert_array_equal(rec[n].values[i], weights[step][n].numpy())
    # summaries: the mean of each non-empty parameter at the last step
    for n in params:
        w = weights[STEPS][n]
        if w.numel():
            mean = rec[f"stats/{n}"].values[-1][0]
            ref = w.abs().double().mean() if w.is_complex() else w.double().mean()
            assert mean == pytest.approx(float(ref), rel=1e-5, abs=1e-7), n
    assert any(s.kind == "activation" or k.startswith("stats/act/") for k, s in rec.items())
    never = rec.metadata["recorder"].get("never_captured", [])
    assert never == [f"stats/{n}" for n in params if not weights[0][n].numel()]


def test_the_gan_discriminator_gradient_is_not_the_generator_backward(zoo_recording):
    """What a capture after G's step would read from D's ``.grad`` (D's loss gradient plus
    G's loss gradient through D) is not what D used: the check above is not passing by
    accident, and the recording holds what D used."""
    rec, _, grads = zoo_recording("gan")
    member = build("gan")  # the same seed: the same first step
    member.step()
    d = [(n, p) for n, p in member.module.named_parameters() if n.startswith("D.")]
    assert d and all(not torch.equal(p.grad, grads[1][n]) for n, p in d)
    for n, p in d:
        recorded_grad = rec[f"grad/{n}"].values[0]
        np.testing.assert_array_equal(recorded_grad, grads[1][n].numpy())
        assert not np.array_equal(recorded_grad, p.grad.numpy())


def test_a_recorder_made_and_closed_without_with_or_attach_records_everything(tmp_path):
    member = build("mlp")
    rec = Recorder(member.model, member.optimizers, path=tmp_path / "r.rec", grads=True)
    for _ in range(3):
        member.step()
    rec.close()
    r = load(tmp_path / "r.rec")
    assert r["0.weight"].steps.tolist() == [0, 1, 2, 3]
    assert r["grad/0.weight"].steps.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(r["4.bias"].values[-1], member.model[4].bias.detach().numpy())
    assert "never_captured" not in r.metadata["recorder"]


def test_a_recording_never_claims_series_it_did_not_capture(tmp_path):
    member = build("mlp")
    rec = Recorder(
        member.model,
        member.optimizers,
        path=tmp_path / "r.rec",
        schedule=[100],
        capture_initial=False,
    )
    member.step()
    with pytest.warns(RecorderWarning, match="closed without a snapshot of 6 series"):
        rec.close()
    r = load(tmp_path / "r.rec")
    assert r.metadata["recorder"]["never_captured"] == [
        n for n, _ in member.model.named_parameters()
    ]


@pytest.mark.parametrize("path", [None, "odd.rec"])
def test_odd_tensors_are_recorded_exactly(tmp_path, path):
    """Empty, zero-width, 0-d, non-contiguous, channels-last, complex and int tensors: each
    recorded exactly, in memory and on disk (a zero-size one lost the whole recording)."""
    member = build("zero_width")
    odd = {
        "empty": lambda m: torch.empty(0),
        "zero_width": lambda m: m.pruned.weight,
        "scalar": lambda m: m.head.bias.sum(),
        "strided": lambda m: m.body.weight[:, ::2].t(),
        "channels_last": lambda m: m.body.weight.reshape(2, 4, 2, 2).to(
            memory_format=torch.channels_last
        ),
        "complex": lambda m: torch.complex(m.head.weight, -m.head.weight),
        "int": lambda m: (m.body.weight * 100).to(torch.int32),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecorderWarning)
        rec = Recorder(
            member.model,
            member.optimizers,
            derived=odd,
            summaries="*",
            path=None if path is None else tmp_path / path,
        )
        expected = {name: [fn(member.model).detach().clone()] for name, fn in odd.items()}
        for _ in range(2):
            member.step()
            for name, fn in odd.items():
                expected[name].append(fn(member.model).detach().clone())
        rec.close()
    r = rec.recording if path is None else load(tmp_path / path)
    for name, values in expected.items():
        want = torch.stack(values).numpy()
        assert r[name].values.dtype == want.dtype and r[name].values.shape == want.shape, name
        np.testing.assert_array_equal(r[name].values, want, err_msg=name)
    assert "stats/pruned.weight" not in r  # an empty tensor has no summary, and says so
    assert r.metadata["recorder"]["never_captured"] == ["stats/pruned.weight", "stats/pruned.bias"]


def test_a_lightning_gan_with_manual_optimization_records_what_each_optimizer_used(tmp_path):
    """The zoo's GAN as a LightningModule with manual optimization (two optimizers, G's
    backward adding into D's gradients), recorded by the Lightning callback with
    parameters, gradients, summaries and activations: every snapshot equals the module's
    weights after that step, every gradient what its optimizer saw at its own step."""
    pl = pytest.importorskip("lightning.pytorch")
    from zoo import gan, lightning_trainer

    from dynamics.integrations.lightning import RecorderCallback

    member = gan()
    net = member.module
    real, z = torch.randn(64, 2) * 0.3 + 1.0, torch.randn(64, 4)
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    class LitGAN(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.G, self.D = net.G, net.D

        def training_step(self, batch, batch_idx):
            opt_d, opt_g = self.optimizers()
            fake = self.G(z)
            loss_d = bce(self.D(real), torch.ones(64, 1)) + bce(
                self.D(fake.detach()), torch.zeros(64, 1)
            )
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            opt_d.step()
            loss_g = bce(self.D(fake), torch.ones(64, 1))
            opt_g.zero_grad()
            self.manual_backward(loss_g)  # adds into D's gradients too
            opt_g.step()
            self.log("loss_d", loss_d)

        def configure_optimizers(self):
            return torch.optim.Adam(self.D.parameters(), 2e-3), torch.optim.Adam(
                self.G.parameters(), 2e-3
            )

    module = LitGAN()
    names = {id(p): n for n, p in module.named_parameters()}
    weights, grads, used = {}, {}, {}

    class Copies(pl.Callback):
        def on_train_start(self, trainer, lit):
            for opt in trainer.optimizers:
                opt.register_step_pre_hook(
                    lambda o, a, k: used.update(
                        {names[id(p)]: p.grad.clone() for g in o.param_groups for p in g["params"]}
                    )
                )
            weights[0] = {n: p.detach().clone() for n, p in lit.named_parameters()}

        def on_train_batch_end(self, trainer, lit, outputs, batch, batch_idx):
            step = recorder.recorder.step
            weights[step] = {n: p.detach().clone() for n, p in lit.named_parameters()}
            grads[step] = dict(used)

    recorder = RecorderCallback(
        tmp_path / "lit.rec", grads=True, summaries="*", summary_grads=True, activations="*"
    )
    # global_step counts both optimizers: 8 of them are 4 complete steps
    trainer = lightning_trainer(pl, [recorder, Copies()], max_steps=8, root=tmp_path)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's own notes on a tiny loader
        trainer.fit(module, data)
    rec = load(tmp_path / "lit.rec")
    assert rec.complete and rec["loss_d"].steps.tolist() == [1, 2, 3, 4]
    for name in names.values():
        assert rec[name].steps.tolist() == [0, 1, 2, 3, 4]
        for step in range(5):
            np.testing.assert_array_equal(rec[name].values[step], weights[step][name].numpy())
        for i, step in enumerate(rec[f"grad/{name}"].steps.tolist()):
            np.testing.assert_array_equal(rec[f"grad/{name}"].values[i], grads[step][name].numpy())
    assert any(k.startswith("stats/act/D") for k in rec) and "stats/grad/D.0.weight" in rec


def test_a_tiny_bert_under_the_hugging_face_trainer_records_what_its_optimizer_used(tmp_path):
    """A BERT from BertConfig trained by transformers.Trainer (gradient clipping, its own
    optimizer and scheduler), recorded by the callback with gradients, summaries and
    activations: weights after every step, and gradients as the optimizer saw them (after
    the Trainer clipped them)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from dynamics.integrations.huggingface import RecorderCallback

    model = build("bert").model
    torch.manual_seed(1)
    tokens = torch.randint(40, (16, 12))
    data = [{"input_ids": t, "labels": torch.where(t % 3 == 0, t, -100)} for t in tokens]
    names = {id(p): n for n, p in model.named_parameters()}
    weights, grads, used = {}, {}, {}

    class Copies(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kw):
            optimizer.optimizer.register_step_pre_hook(  # inside accelerate's wrapper
                lambda o, a, k: used.update(
                    {
                        names[id(p)]: p.grad.clone()
                        for g in o.param_groups
                        for p in g["params"]
                        if p.grad is not None
                    }
                )
            )
            weights[0] = {n: p.detach().clone() for n, p in model.named_parameters()}

        def on_step_end(self, args, state, control, model=None, **kw):
            weights[state.global_step] = {
                n: p.detach().clone() for n, p in model.named_parameters()
            }
            grads[state.global_step] = dict(used)

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        max_grad_norm=0.1,  # clipping that bites: what the optimizer uses is the clipped one
    )
    callback = RecorderCallback(
        tmp_path / "bert.rec", grads=True, summaries="*", summary_grads=True, activations="*"
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data, callbacks=[callback, Copies()]
    )
    trainer.train()
    rec = load(tmp_path / "bert.rec")
    assert rec.complete and rec["loss"].steps.tolist() == [1, 2, 3]
    for name in names.values():
        for step in range(4):
            np.testing.assert_array_equal(rec[name].values[step], weights[step][name].numpy())
        g = rec[f"grad/{name}"]
        for i, step in enumerate(g.steps.tolist()):
            np.testing.assert_array_equal(g.values[i], grads[step][name].numpy(), err_msg=name)
    assert any(k.startswith("stats/act/bert.encoder.layer.1") for k in rec)
    assert "train_runtime" in rec.metadata["trainer_summary"]
