"""
Recording a Lightning run
=========================

:class:`dynamics.integrations.lightning.RecorderCallback` attaches a recorder to the
trainer's model and optimizers: the parameters (and here their gradients) at the recorder's
schedule, and what the module logs at step level (``self.log``) as scalar series. With
``resume=True`` and ``fit(ckpt_path=...)`` it continues from its own step saved in the
checkpoint (:doc:`/guide/recording`).
"""

import lightning.pytorch as pl
import torch

from dynamics import load
from dynamics.integrations.lightning import RecorderCallback
from scenes.render import DashboardScene


class Regression(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


torch.manual_seed(0)
x = torch.randn(512, 8)
data = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x, torch.sin(x.sum(1, keepdim=True))), batch_size=32
)
trainer = pl.Trainer(
    max_steps=160,
    accelerator="cpu",
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    callbacks=[RecorderCallback("outputs/lightning.rec", schedule=4, grads=True, overwrite=True)],
)
trainer.fit(Regression(), data)

scene = DashboardScene(load("outputs/lightning.rec"))
scene.show(quality="final")
