"""
Weight matrices as heatmaps
===========================

:class:`~scenes.weights.WeightsScene` draws recorded matrices side by side on a diverging
colour scale centred on 0, fixed over the run (gradients get a scale per frame, since they
shrink by decades). ``order="norm"`` sorts each hidden layer's units by the norm of their
final weights, so the picture does not depend on which unit happened to be which.
On the command line: ``python -m scenes.weights RUN.rec --order norm``.
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
from scenes.weights import WeightsScene, WeightsSceneConfig

scene = WeightsScene(recording, WeightsSceneConfig(order="norm"))
scene.show(quality="final")
