"""Lightning and transformers.Trainer callbacks (skipped where the framework is absent)."""

import numpy as np
import pytest
import torch


def test_lightning_callback_records_every_optimizer_step(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from dynamics import load
    from dynamics.integrations.lightning import RecorderCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    x = torch.randn(64, 3)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8
    )
    module = Module()
    callback = RecorderCallback(tmp_path / "pl.rec", grads=True, schedule=2)
    trainer = pl.Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(module, data)
    r = load(tmp_path / "pl.rec")
    assert r.complete and r.metadata["integration"] == "lightning"
    np.testing.assert_array_equal(r["net.0.weight"].steps, [0, 2, 4, 6])
    np.testing.assert_array_equal(
        r["net.0.weight"].values[-1], module.net[0].weight.detach().numpy()
    )
    np.testing.assert_array_equal(r["grad/net.2.bias"].steps, [2, 4, 6])
    np.testing.assert_array_equal(r["loss"].steps, [1, 2, 3, 4, 5, 6])


def test_huggingface_trainer_callback_records_its_steps(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from dynamics import load
    from dynamics.integrations.huggingface import RecorderCallback

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def forward(self, x, labels=None):
            out = self.lin(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    torch.manual_seed(0)
    xs = torch.randn(32, 3)
    data = [{"x": xi, "labels": xi.sum(0, keepdim=True)} for xi in xs]
    model = Tiny()
    callback = RecorderCallback(tmp_path / "hf.rec", schedule=1)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=5,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        learning_rate=0.05,
    )
    transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    r = load(tmp_path / "hf.rec")
    assert r.complete and r.metadata["integration"] == "transformers.Trainer"
    np.testing.assert_array_equal(r["lin.weight"].steps, range(6))
    np.testing.assert_array_equal(r["lin.weight"].values[-1], model.lin.weight.detach().numpy())
    assert not np.array_equal(r["lin.weight"].values[0], r["lin.weight"].values[-1])
    np.testing.assert_array_equal(r["loss"].steps, range(1, 6))
