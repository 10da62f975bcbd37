"""
TensorBoard: export a recording, or render your existing logs
==============================================================

:func:`dynamics.export.to_tensorboard` writes a recording's scalars and every recorded
histogram as TensorBoard events; :func:`dynamics.load` reads a TensorBoard log directory
back as a :class:`~dynamics.Recording`, so the logs you already have render as they are
(``python -m scenes.render runs/exp1``). Here a small network is recorded with summaries
(mean, std, min, max and a histogram per tensor, every recorded step kept), exported, read
back from the event files and drawn as a dashboard.
"""

import torch

from dynamics import Recorder, load
from dynamics.export import to_tensorboard
from scenes.render import DashboardScene

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x, y = torch.randn(256, 20), torch.randint(0, 3, (256,))
with Recorder(model, opt, params=None, schedule=5, summaries="*", summary_grads=True) as rec:
    for step in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        rec.log(loss=loss)

print(to_tensorboard(rec.recording, "outputs/tb/run1"))  # events written
logs = load("outputs/tb/run1")  # a TensorBoard log directory, read as a Recording
scene = DashboardScene(logs)
scene.show(quality="final")
