"""
Distributions of weights and activations, kept whole
====================================================

A CNN learns generated digits (:doc:`/experiments/distributions`) while the recorder keeps
the mean, std, min, max and a histogram of every weight, gradient and activation at every
recorded step: what TensorBoard's histogram dashboard shows, without the sampling. One run
here (``--single``), 100 steps; ``python -m scenes.distributions`` trains four runs (Adam or
gradient descent, ReLU or tanh) and draws them side by side.
"""

from dynamics.experiments.distributions import DistributionsConfig, run
from scenes.distributions import DistributionsScene

recording = run(DistributionsConfig(steps=100, train_size=1000, test_size=300, eval_every=50))
scene = DistributionsScene(recording)
scene.show(quality="final")
