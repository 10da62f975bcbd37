"""
Sharpness meets the edge of stability
=====================================

:class:`~dynamics.capture.Sharpness` records the largest Hessian eigenvalues of the loss on
a fixed batch (Lanczos on Hessian-vector products, warm-started, without touching the
run). Full-batch gradient descent at step size ``lr`` is stable only while the sharpness is
below ``2 / lr``: here (lr 0.2, edge 10) the sharpness rises past the edge, the loss spikes,
the sharpness falls back, again and again (:doc:`/instruments/sharpness`).
"""

import torch
import torch.nn.functional as F

from dynamics import Recorder
from dynamics.capture import Sharpness
from scenes.sharpness import SharpnessScene

torch.manual_seed(0)
x = torch.randn(500, 10)
y = torch.sin(x @ torch.randn(10, 1))
model = torch.nn.Sequential(
    torch.nn.Linear(10, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
    torch.nn.Linear(64, 1),
)
opt = torch.optim.SGD(model.parameters(), lr=0.2)
sharp = Sharpness(F.mse_loss, (x, y), k=2, every=10, optimizer=opt)
with Recorder(model, opt, params=None, quantities=[sharp]) as rec:
    for step in range(300):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        rec.log(loss=loss)

scene = SharpnessScene(rec.recording)
scene.show(quality="final")
