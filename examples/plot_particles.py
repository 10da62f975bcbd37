"""
Any (T, n, 2) series as particles
=================================

:class:`~scenes.particles.ParticlesScene` draws any recorded ``(T, n, 2)`` series as
particles with their paths: here the outputs of a small generator for 48 fixed inputs
(a *derived* quantity), trained to put each on its own point of a circle. Reference
points drawn beside them come from the recording's metadata
(``metadata["references"][SERIES]``), and the loss curve from its ``loss`` series.
On the command line: ``python -m scenes.particles RUN.rec``.
"""

import math

import torch

from dynamics import Recorder
from scenes.particles import ParticlesScene

torch.manual_seed(0)
z = torch.randn(48, 4)  # fixed inputs
angle = torch.arange(48) * (2 * math.pi / 48)
target = torch.stack([torch.cos(angle), torch.sin(angle)], 1)  # a point each on a circle
model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
references = {"samples": {"points": target.tolist(), "label": "targets"}}
with Recorder(
    model,
    opt,
    params=None,
    schedule=5,
    derived={"samples": lambda m: m(z)},
    metadata={"references": references},
) as rec:
    for step in range(600):
        opt.zero_grad()
        loss = ((model(z) - target) ** 2).sum(1).mean()
        loss.backward()
        opt.step()
        rec.log(loss=loss)

scene = ParticlesScene(rec.recording)
scene.show(quality="final")
