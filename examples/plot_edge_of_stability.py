"""
Gradient descent at the edge of stability
=========================================

Three copies of one 10-64-64-1 tanh MLP, from the same initial weights, trained by
full-batch gradient descent at step sizes 0.1, 0.05 and 0.02, their sharpness (the top
eigenvalue of the training loss's Hessian) measured every 10 steps
(:doc:`/experiments/edge_of_stability`). Each run's sharpness rises to its own ``2 / lr``
(dashed, in its colour), overshoots, and the loss spikes; then it hovers at the edge while
the loss keeps falling. The control, lr 0.02, never comes near its edge of 100.

This page trains 900 of the default 1 500 steps; ``python -m scenes.edge_of_stability``
runs the full experiment.
"""

from dynamics.experiments.edge_of_stability import EdgeOfStabilityConfig, run
from scenes.edge_of_stability import EdgeOfStabilityScene

recording = run(EdgeOfStabilityConfig(steps=900))
scene = EdgeOfStabilityScene(recording)
scene.show(quality="final")
