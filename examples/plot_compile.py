"""
A compiled model
================

``torch.compile`` wraps a model in an ``OptimizedModule`` whose parameters are named
``_orig_mod.*``; the recorder unwraps it, so a compiled model is recorded under its own
names (``0.weight``, not ``_orig_mod.0.weight``), and its hooks (gradients, per-tensor
histograms, activations) see real values, not traced ones. Here a compiled MLP learns
random labels for 60 steps, its gradients, the summaries of every tensor and the
activations of its hidden layer recorded every 5 steps, and the dashboard draws what it
holds. The example compiles with ``backend="eager"`` (Dynamo's tracing without inductor's
code generation, which takes a minute on a small CPU); the default backend is recorded
the same way, and the test suite checks both (``tests/test_recorder_research.py``).
"""

import torch

from dynamics import Recorder

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
compiled = torch.compile(model, backend="eager")
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
x, y = torch.randn(256, 32), torch.randint(0, 4, (256,))
with Recorder(
    compiled, opt, schedule=5, grads=True, summaries="*", summary_grads=True, activations=["1"]
) as rec:
    for step in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(compiled(x), y)
        loss.backward()
        opt.step()
        rec.log(loss=loss)
recording = rec.recording
print(sorted(recording.keys())[:8])

# %%
# The series carry the model's own names, and the dashboard picks its panels from them.
from scenes.render import DashboardScene

scene = DashboardScene(recording)
scene.show(quality="final")
