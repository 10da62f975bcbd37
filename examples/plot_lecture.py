"""
For a lecture: a fixed duration, chapters, a handout
====================================================

A lecture has a slot, not a snapshot count. :class:`~scenes.base.RenderOptions` places the
frames on a movie clock: ``duration=12`` plays 12 seconds whatever the number of snapshots,
``time="log"`` gives every decade of training the same screen time, and each chapter
pauses the movie under a title card (the player has a button per chapter). The handout puts
the keyframes (the start, each chapter, the end) on one page (:doc:`/guide/lectures`).
"""

from dynamics.experiments.relu_particles import ReluParticlesConfig, run
from scenes.base import RenderOptions
from scenes.relu_particles import ReluParticlesScene

recording = run(ReluParticlesConfig(frames=200))
options = RenderOptions.preset_for(
    "final",
    duration=12,
    time="log",
    hold=2,
    chapters=("40:Neurons leave the sphere", "1500:Aligned with the teacher"),
    chapter_hold=1.5,
)
scene = ReluParticlesScene(recording, options=options)
scene.show(quality="final")

# %%
# The handout: a PDF (vector) or, as here, a PNG of the keyframes on one A4 page.
import imageio.v3 as iio
import matplotlib.pyplot as plt

scene.handout("outputs/lecture_handout.png")
fig, ax = plt.subplots(figsize=(11.7, 8.3))
ax.imshow(iio.imread("outputs/lecture_handout.png"))
ax.set_axis_off()
fig.tight_layout(pad=0)
