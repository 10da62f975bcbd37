"""
Where does a weight vector's mass go? (Adam against gradient descent)
=====================================================================

A logistic regression on 15 inputs where only ``x[0]`` decides the label
(:doc:`/experiments/mass_shuffle`). With Adam the thirteen noise weights move as far as
``W[0]``: Adam divides each gradient by its own typical size, so a tiny gradient that
keeps its sign still moves its weight by about the learning rate every step.

This page trains 6 000 of the default 30 000 steps; ``python -m scenes.mass_shuffle``
runs them all, and ``--optimizer gd`` shows the noise weights staying put.
"""

from dynamics.experiments.mass_shuffle import MassShuffleConfig, run
from scenes.mass_shuffle import MassShuffleScene

recording = run(MassShuffleConfig(steps=6000, record_every=100))
scene = MassShuffleScene(recording)
scene.show(quality="final")
