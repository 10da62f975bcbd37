"""
Every tensor of a model at once
===============================

:class:`~scenes.layers.LayersScene` draws one picture for a whole model: a tensors x steps
map of the relative update ``||W_t - W_{t-1}|| / ||W_t||`` on a log colour scale, rows in
model order, a cursor at the current step. It is what the dashboard shows for a model of
more than 12 parameter tensors. On the command line: ``python -m scenes.layers RUN.rec``.
"""

import torch

from dynamics import Recorder

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
    torch.nn.Linear(64, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(512, 64), torch.randint(0, 10, (512,))
with Recorder(model, opt, schedule=5, grads=True) as rec:
    for step in range(80):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        rec.log(loss=loss)
recording = rec.recording  # in memory: no path was given

# %%
from scenes.layers import LayersScene

scene = LayersScene(recording)
scene.show(quality="final")
