"""Lightning and transformers.Trainer callbacks (skipped where the framework is absent)."""

import warnings

import numpy as np
import pytest
import torch
from zoo import lightning_trainer


@pytest.mark.parametrize("accumulate", [1, 2])
def test_lightning_callback_records_every_optimizer_step(tmp_path, accumulate):
    pl = pytest.importorskip("lightning.pytorch")
    from dynamics import load
    from dynamics.integrations.lightning import RecorderCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
            )
            self.losses = []  # what training_step returned, batch by batch

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.losses.append(loss.item())
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    x = torch.randn(64, 3)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8
    )
    module = Module()
    callback = RecorderCallback(tmp_path / "pl.rec", grads=True, schedule=2)
    trainer = lightning_trainer(
        pl, [callback], max_steps=6, root=tmp_path, accumulate_grad_batches=accumulate
    )
    trainer.fit(module, data)
    r = load(tmp_path / "pl.rec")
    assert r.complete and r.metadata["integration"] == "lightning"
    np.testing.assert_array_equal(r["net.0.weight"].steps, [0, 2, 4, 6])
    np.testing.assert_array_equal(
        r["net.0.weight"].values[-1], module.net[0].weight.detach().numpy()
    )
    np.testing.assert_array_equal(r["grad/net.2.bias"].steps, [2, 4, 6])
    # one point per update: the mean of training_step's losses over the update's batches
    # (Lightning divides the loss it hands on by accumulate_grad_batches), and the last
    # value the module logged
    assert len(module.losses) == 6 * accumulate
    np.testing.assert_array_equal(r["loss"].steps, [1, 2, 3, 4, 5, 6])
    per_update = np.reshape(module.losses, (6, accumulate))
    np.testing.assert_allclose(r["loss"].values, per_update.mean(1), rtol=1e-12)
    np.testing.assert_array_equal(r["train_loss"].steps, [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(r["train_loss"].values, per_update[:, -1])


def test_lightning_gan_manual_optimization_logs_and_resumes_at_the_recorders_step(tmp_path):
    """A GAN (manual optimization, two optimizers) logging with self.log / self.log_dict:
    the logged numbers are series at the recorder's steps; a run checkpointed at step N and
    killed later resumes from the checkpoint to 2N with steps exactly 0..2N (Lightning's
    global_step, two per batch here, is 2N at that checkpoint) and with the module's own
    parameters at every step."""
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    from dynamics import load
    from dynamics.integrations.lightning import RecorderCallback
    from dynamics.recorder import RecorderWarning

    n = 4  # batches per epoch, and complete steps before the checkpoint

    class GAN(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.G = torch.nn.Linear(2, 2)
            self.D = torch.nn.Sequential(
                torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
            )
            self.logged = {}  # step -> {name as logged: value}

        def training_step(self, batch, batch_idx):
            (real,) = batch
            opt_d, opt_g = self.optimizers()
            fake = self.G(torch.randn_like(real))
            d_real = self.D(real).mean()
            d_loss = (
                torch.nn.functional.softplus(-self.D(real)).mean()
                + torch.nn.functional.softplus(self.D(fake.detach())).mean()
            )
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            g_loss = torch.nn.functional.softplus(-self.D(fake)).mean()
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
            step = self.trainer.global_step // 2  # global_step counts both optimizers' steps
            self.log("d_loss", d_loss)
            self.log_dict({"g_loss": g_loss, "d_real": d_real}, on_step=True, on_epoch=True)
            logged = {"d_loss": d_loss.item(), "g_loss_step": g_loss.item()}
            logged["d_real_step"] = d_real.item()
            if step % 2 == 0:  # logged at some steps only
                self.log("every_other", float(step))
                logged["every_other"] = float(step)
            self.logged[step] = logged
            # returns None: no loss for the callback to record

        def configure_optimizers(self):
            return (
                torch.optim.SGD(self.D.parameters(), lr=0.1),
                torch.optim.SGD(self.G.parameters(), lr=0.1),
            )

    class Copies(pl.Callback):
        """The module's parameters at each of the recorder's steps, and a crash."""

        def __init__(self, recorder_callback, crash_at=None):
            self.rc, self.crash_at, self.params = recorder_callback, crash_at, {}

        def copy(self, module):
            named = module.named_parameters()
            self.params[self.rc.recorder.step] = {n: p.detach().numpy().copy() for n, p in named}

        def on_train_start(self, trainer, module):
            self.copy(module)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.copy(module)
            if self.rc.recorder.step == self.crash_at:
                self.on_disk = load(path)["D.0.weight"].steps  # what a kill now would leave
                raise RuntimeError("killed")

    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(8 * n, 2) + 2.0), batch_size=8
    )
    path = tmp_path / "gan.rec"

    # run 1: a checkpoint at step n (global_step 2n), killed at step n + 2
    rec1 = RecorderCallback(path, schedule=1, flush_seconds=3600)  # flushed on saving only
    copies1 = Copies(rec1, crash_at=n + 2)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2 * n, save_top_k=-1)
    gan1 = GAN()
    trainer1 = lightning_trainer(
        pl, [rec1, copies1, ckpt], max_steps=8 * n, root=tmp_path, checkpointing=True
    )
    with pytest.raises(RuntimeError, match="killed"):
        trainer1.fit(gan1, data)
    np.testing.assert_array_equal(copies1.on_disk, range(n + 1))  # up to the checkpoint
    crashed = load(path)
    assert not crashed.complete
    np.testing.assert_array_equal(crashed["D.0.weight"].steps, range(n + 3))
    (ckpt_path,) = (tmp_path / "ckpt").glob("*.ckpt")
    saved = torch.load(ckpt_path, weights_only=False)
    assert saved["global_step"] == 2 * n
    assert saved["callbacks"][rec1.state_key] == {"step": n}

    # run 2: a new trainer and module resume from the checkpoint and train to step 2n
    rec2 = RecorderCallback(path, schedule=1, resume=True)
    copies2 = Copies(rec2)
    gan2 = GAN()
    trainer2 = lightning_trainer(pl, [rec2, copies2], max_steps=4 * n, root=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer2.fit(gan2, data, ckpt_path=ckpt_path)
    assert not [w for w in caught if issubclass(w.category, RecorderWarning)]
    assert rec2.recorder.step == 2 * n

    r = load(path)
    assert r.complete
    (resumed,) = r.metadata["resumed"]
    assert resumed["step"] == n and resumed["dropped_snapshots"] > 0
    # the restored module holds what run 1 held at the checkpoint's step
    for name, value in copies1.params[n].items():
        np.testing.assert_array_equal(copies2.params[n][name], value)
    params = {**{s: v for s, v in copies1.params.items() if s <= n}, **copies2.params}
    assert sorted(params) == list(range(2 * n + 1))
    for name in ("G.weight", "G.bias", "D.0.weight", "D.2.bias"):
        np.testing.assert_array_equal(r[name].steps, range(2 * n + 1))
        for step, value in zip(r[name].steps, r[name].values):
            np.testing.assert_array_equal(value, params[step][name], err_msg=f"{name}@{step}")

    logged = {**{s: v for s, v in gan1.logged.items() if s <= n}, **gan2.logged}
    assert sorted(logged) == list(range(1, 2 * n + 1))
    for name in ("d_loss", "g_loss_step", "d_real_step", "every_other"):
        steps = [s for s in sorted(logged) if name in logged[s]]
        np.testing.assert_array_equal(r[name].steps, steps, err_msg=name)
        np.testing.assert_array_equal(r[name].values, [logged[s][name] for s in steps])
    np.testing.assert_array_equal(r["every_other"].steps, range(2, 2 * n + 1, 2))
    # no epoch-level value (g_loss_epoch ...) and no loss: training_step returned none
    assert set(r.of_kind("scalar")) == {"d_loss", "g_loss_step", "d_real_step", "every_other"}


def _hf_tiny():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def forward(self, x, labels=None):
            out = self.lin(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    torch.manual_seed(0)
    xs = torch.randn(32, 3)
    return Tiny(), [{"x": xi, "labels": xi.sum(0, keepdim=True)} for xi in xs]


def _hf_args(transformers, out, max_steps, **kwargs):
    return transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        learning_rate=0.05,
        **kwargs,
    )


def test_huggingface_trainer_callback_records_its_steps(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from dynamics import load
    from dynamics.integrations.huggingface import RecorderCallback

    model, data = _hf_tiny()
    callback = RecorderCallback(tmp_path / "hf.rec", schedule=1)
    args = _hf_args(transformers, tmp_path / "out", 5, save_strategy="no")
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    output = trainer.train()
    r = load(tmp_path / "hf.rec")
    assert r.complete and r.metadata["integration"] == "transformers.Trainer"
    np.testing.assert_array_equal(r["lin.weight"].steps, range(6))
    np.testing.assert_array_equal(r["lin.weight"].values[-1], model.lin.weight.detach().numpy())
    assert not np.array_equal(r["lin.weight"].values[0], r["lin.weight"].values[-1])

    # the per-step numbers the trainer logged are series, one point per step
    history = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(r["loss"].steps, range(1, 6))
    np.testing.assert_array_equal(r["loss"].values, [h["loss"] for h in history])
    np.testing.assert_array_equal(r["learning_rate"].values, [h["learning_rate"] for h in history])
    np.testing.assert_array_equal(r["epoch"].steps, range(1, 6))  # not again with the summary

    # the end-of-run summary is metadata, not one-point series
    (final,) = [h for h in trainer.state.log_history if "train_runtime" in h]
    summary = r.metadata["trainer_summary"]
    keys = ["train_runtime", "train_samples_per_second", "train_steps_per_second"]
    keys += ["total_flos", "train_loss"]
    for key in keys:
        assert key not in r, key
        assert summary[key] == final[key], key
    assert summary["train_loss"] == output.training_loss
    assert summary["step"] == 5


def test_huggingface_trainer_callback_resumes_from_a_checkpoint(tmp_path):
    """A checkpoint at step 3, a run killed at step 5, a resume to step 6: steps 0..6 once,
    with the weights of the run that resumed after step 3."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from dynamics import load
    from dynamics.integrations.huggingface import RecorderCallback

    class Kill(transformers.TrainerCallback):
        def __init__(self, at=None):
            self.at, self.params = at, {}

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.params[state.global_step] = model.lin.weight.detach().numpy().copy()
            if state.global_step == self.at:
                raise RuntimeError("killed")

    path, out = tmp_path / "hf.rec", tmp_path / "out"
    model, data = _hf_tiny()
    kill = Kill(at=5)
    args = _hf_args(transformers, out, 6, save_strategy="steps", save_steps=3)
    # no flush but the one on saving the checkpoint
    first = RecorderCallback(path, schedule=1, flush_seconds=3600)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data, callbacks=[first, kill]
    )
    with pytest.raises(RuntimeError, match="killed"):
        trainer.train()
    # what a kill leaves on disk reaches the checkpoint's step
    np.testing.assert_array_equal(load(path)["lin.weight"].steps, range(4))
    first.recorder.close(complete=False)  # the files and lock a killed process lets go
    np.testing.assert_array_equal(load(path)["lin.weight"].steps, range(6))

    model, data = _hf_tiny()
    again = Kill()
    callback = RecorderCallback(path, schedule=1, resume=True)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data, callbacks=[callback, again]
    )
    trainer.train(resume_from_checkpoint=str(out / "checkpoint-3"))
    r = load(path)
    assert r.complete and r.metadata["resumed"][0]["step"] == 3
    np.testing.assert_array_equal(r["lin.weight"].steps, range(7))
    np.testing.assert_array_equal(r["loss"].steps, range(1, 7))
    weights = {**{s: w for s, w in kill.params.items() if s <= 3}, **again.params}
    for step in range(1, 7):
        np.testing.assert_array_equal(r["lin.weight"].values[step], weights[step], err_msg=step)
