"""
Any recording as a dashboard
============================

A recording of your own model renders with no plotting code: the recorder writes what each
series is (parameter, gradient, scalar, ...) into the recording, and
:class:`~scenes.render.DashboardScene` picks panels from those kinds. Here an MLP fits
random labels for 80 steps, its weights and gradients recorded every 5 steps
(:doc:`/guide/any_recording`). On the command line: ``python -m scenes.render RUN.rec``.
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
from scenes.render import DashboardScene

scene = DashboardScene(recording)
scene.show(quality="final")
