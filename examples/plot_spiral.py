"""
Two spirals: a deep ReLU network carves a boundary
==================================================

A 2-1024-32-16-4-1 ReLU network learns two interleaved spirals
(:doc:`/experiments/spiral`). The colour is the probability of class 1 at each point of
the plane, the black line the decision boundary: it curls around the inner end of one arm,
then winds outwards between the arms, one turn after another.

This page trains 600 of the default 3 000 steps, on a coarser grid (100 x 100);
``python -m scenes.spiral`` runs the full experiment, and ``--activation none`` the same
network without its ReLUs, whose boundary stays a straight line.
"""

from dynamics.experiments.spiral import SpiralConfig, run
from scenes.spiral import SpiralScene

recording = run(SpiralConfig(steps=600, field_every=15, grid=100, seed=2))
scene = SpiralScene(recording)
scene.show(quality="final")
