"""
Representations of a probe batch, and their CKA
===============================================

:class:`~dynamics.capture.Probe` records the *full* outputs of chosen layers for one fixed
batch of inputs, and :class:`~scenes.representations.RepresentationsScene` draws each
layer's points on PCA axes fitted once (so nothing flickers), coloured by label, with each
layer's linear CKA to its initial representation below (:doc:`/instruments/representations`).
Here a tanh network learns XOR: watch the last hidden layer pull the two classes apart.
"""

import torch

from dynamics import Recorder
from dynamics.capture import Probe, every
from scenes.representations import RepresentationsScene

torch.manual_seed(0)
x = torch.randn(600, 2)
y = (x[:, 0] * x[:, 1] > 0).long()  # XOR: opposite quadrants share a class
model = torch.nn.Sequential(
    torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(),
    torch.nn.Linear(32, 2),
)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
probe = Probe(x[:200], y[:200], modules=["1", "3", "4"], schedule=every(10))
with Recorder(model, opt, params=None, quantities=[probe]) as rec:
    for step in range(300):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log(loss=loss)

scene = RepresentationsScene(rec.recording)
scene.show(quality="final")
