"""
Lazy versus rich: one network, two scalings
===========================================

The particle experiment's network trained twice from one initialisation (radius 1, the
usual one): under the mean-field scaling, output ``(1/m) sum_i a_i relu(w_i . x + b_i)``,
and under the lazy (NTK) scaling of Chizat, Oyallon & Bach (2019), ``1/sqrt(m)`` in front
instead, with the step that makes the output move at the same speed under both. Under
mean-field the particles leave their start and line up on the teacher's rays; under lazy
scaling each moves a short tail's length while the held-out loss still falls by decades.
The caption under each cell gives how far the particles moved, ``||P_T - P_0|| / ||P_0||``
(:doc:`/experiments/lazy_vs_rich`).

This page trains 300 particles for 100 frames; the page's command trains 500 for 150.
"""

from dynamics.experiments.relu_particles import ReluParticlesConfig, run
from scenes.relu_particles import ReluParticlesScene, ReluParticlesSceneConfig
from scenes.sweep import SweepScene

grid = {"scaling": ["mean-field", "lazy"]}
recordings = [
    run(ReluParticlesConfig(width=300, radius=1.0, frames=100, scaling=scaling))
    for scaling in grid["scaling"]
]
scene = SweepScene(ReluParticlesScene, recordings, grid, config=ReluParticlesSceneConfig(limit=2.5))
scene.show(quality="final")
