"""
A sweep: small multiples on one timeline
========================================

:class:`~dynamics.sweep.Sweep` runs one configuration of an experiment per point of a grid,
each in its own process, each into its own recording (a repeated sweep runs only what is
missing), and :class:`~scenes.sweep.SweepScene` draws them side by side, every panel at the
same training step. Here the ReLU particles from three initial radii: from a small sphere
the particles settle on the teacher's rays; from R = 1 part of the mass stays spread
(:doc:`/guide/sweeps`). On the command line:
``python -m scenes.relu_particles --sweep radius=0.01,0.1,1``.
"""

from dynamics.experiments.relu_particles import ReluParticlesConfig
from dynamics.sweep import Sweep
from scenes.relu_particles import ReluParticlesScene
from scenes.sweep import SweepScene

grid = {"radius": [0.01, 0.1, 1.0]}
sweep = Sweep(
    "dynamics.experiments.relu_particles",
    ReluParticlesConfig(frames=150),
    grid,
    root="outputs/radius_sweep",
)
result = sweep.run(jobs=1)  # or any concurrent.futures.Executor, a Dask cluster's included
scene = SweepScene(ReluParticlesScene, result.recordings(), grid)
scene.show(quality="final")
