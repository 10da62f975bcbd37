"""
Record your own training loop
=============================

Make a :class:`~dynamics.Recorder` on your model and optimizer, train as usual, render
later. Here the hidden neurons of a small ReLU network are recorded as particles
``a_i w_i`` (a *derived* quantity: a function of the model) every 10 steps, with the loss,
and drawn with the flagship's scene (:doc:`/guide/recording` says what else the recorder
can keep).
"""

import torch

from dynamics import Recorder, load
from scenes.relu_particles import ReluParticlesScene, ReluParticlesSceneConfig

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(2, 20), torch.nn.ReLU(), torch.nn.Linear(20, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(512, 2)
y = torch.relu(x @ torch.tensor([[1.0], [-0.5]]))
neurons = {"positions": lambda m: m[2].weight[0, :, None] * m[0].weight}  # a_i * w_i
with Recorder(
    model, opt, schedule=10, derived=neurons, path="outputs/mine.rec", overwrite=True
) as rec:
    for step in range(600):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        rec.log(loss=loss)

# %%
# The recording is a folder on disk; it loads with numpy alone, lazily. The scene's axes
# are fixed to [-2, 2] for the flagship's teacher; ``limit=0`` fits them to this run: one
# neuron travels to the teacher's direction (1, -0.5), the others stay near the origin.
recording = load("outputs/mine.rec")
print(recording)
scene = ReluParticlesScene(recording, ReluParticlesSceneConfig(limit=0))
scene.show(quality="final")
