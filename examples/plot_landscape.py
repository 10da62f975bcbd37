"""
The loss landscape around a run
===============================

:func:`dynamics.landscape.landscape` takes a recording that holds the model's parameter
snapshots (``Recorder(params="*")``), the model and its loss, and adds the loss over a
plane through the final parameters (Li et al. 2018): here the plane of the path's top two
principal directions, each axis labelled with the share of the path's variance it keeps.
:class:`~scenes.landscape.LandscapeScene` then draws it without the model: the path
growing over log-scale contours, and beside it the loss along the path, at each snapshot
and at its projection onto the plane (:doc:`/instruments/landscape`). Here a 2-16-2 tanh
network learns which points lie outside a circle, with Adam. Its path is nearly straight:
the first direction keeps 97% of the path's variance, the second only 2% (on the axes), and
the contours beyond the end say the loss still falls that way.
"""

import torch
import torch.nn.functional as F

from dynamics import Recorder
from dynamics.landscape import landscape
from scenes.landscape import LandscapeScene

torch.manual_seed(0)
x = torch.randn(400, 2)
y = (x.norm(dim=1) > 1.1).long()  # class 1 outside a circle
model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), lr=0.05)
with Recorder(model, opt, params="*", schedule=5) as rec:
    for step in range(400):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log(loss=loss)

recording = landscape(rec.recording, model, F.cross_entropy, (x, y), size=41)
scene = LandscapeScene(recording)
scene.show(quality="final")
