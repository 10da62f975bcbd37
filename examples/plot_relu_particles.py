"""
ReLU student neurons find the teacher's
=======================================

The flagship experiment (:doc:`/experiments/relu_particles`): a two-layer ReLU student
``f(x) = (1/m) sum_i a_i relu(w_i . x + b_i)`` learns from a teacher of the same form, and
each student neuron is drawn as the point ``a_i w_i``. Starting on a small sphere, the
particles leave the origin and line up along the teacher's rays (red dots, black rays).

This page trains 120 frames of the default run (about 3 000 SGD steps, a second);
``python -m scenes.relu_particles`` runs all 500 frames.
"""

from dynamics.experiments.relu_particles import ReluParticlesConfig, run
from scenes.relu_particles import ReluParticlesScene

recording = run(ReluParticlesConfig(frames=120))
scene = ReluParticlesScene(recording)
scene.show(quality="final")
