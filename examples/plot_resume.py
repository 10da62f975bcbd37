"""
Resuming a crashed run
======================

A run killed mid-training (``kill -9``, the OOM killer, a pre-empted node) leaves a
recording that loads up to its last commit, at most about a second behind. Save
``rec.state_dict()`` in your checkpoint (it commits the recording first, so the checkpoint
never runs ahead of it) and restart with ``Recorder(..., resume=ckpt["recorder"])``: the
snapshots up to the checkpoint are kept, the crashed attempt's later ones dropped, and the
steps count on from there (:doc:`/guide/recording`). Here the training script is killed
with SIGKILL at step 47, then started again from its checkpoint at step 40.
"""

import subprocess
import sys
import textwrap

TRAIN = textwrap.dedent('''
    import os, signal, sys
    import torch
    from dynamics import Recorder

    crash_at = int(sys.argv[1])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    resume = None
    if os.path.exists("outputs/ckpt.pt"):  # a restart: go on from the checkpoint
        ckpt = torch.load("outputs/ckpt.pt")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        resume = ckpt["recorder"]
    rec = Recorder(model, opt, schedule=2, path="outputs/resumed.rec", resume=resume,
                   overwrite=resume is None)
    with rec:
        for step in range(rec.step, 100):
            x = torch.randn(64, 3, generator=torch.Generator().manual_seed(step))
            opt.zero_grad()
            loss = ((model(x) - x.sum(1, keepdim=True).sin()) ** 2).mean()
            loss.backward()
            opt.step()
            rec.log(loss=loss)
            if rec.step % 20 == 0:  # a checkpoint: the recorder's state goes in with the model's
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                            "recorder": rec.state_dict()}, "outputs/ckpt.pt")
            if rec.step == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
''')

# %%
# The first attempt dies at step 47. What it left on disk loads, up to its last commit: here
# the checkpoint's, step 40 (this run is too quick for the periodic commit, once a second,
# to come after it).
import os

from dynamics import load

os.makedirs("outputs", exist_ok=True)
if os.path.exists("outputs/ckpt.pt"):
    os.remove("outputs/ckpt.pt")
first = subprocess.run([sys.executable, "-c", TRAIN, "47"])
crashed = load("outputs/resumed.rec")
print("exit status", first.returncode, "| complete:", crashed.complete,
      "| last loss at step", crashed["loss"].steps[-1])

# %%
# The restart goes on from the checkpoint at step 40 and finishes the run.
second = subprocess.run([sys.executable, "-c", TRAIN, "-1"])
recording = load("outputs/resumed.rec")
print("exit status", second.returncode, "| complete:", recording.complete)
print(recording.metadata["resumed"])

from scenes.curves import CurvesScene

scene = CurvesScene(recording)
scene.show(quality="final")
