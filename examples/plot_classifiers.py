"""
A small classifier's decision function, and a gradient check
============================================================

One hidden layer of 10 ReLU units learns the two moons with plain SGD, one sample at a
time (:doc:`/experiments/classifiers`). Beside the probability field: the train and test
loss and accuracy, and at every recorded iteration the relative error between the autograd
gradient and central finite differences (a gap where a finite difference would straddle a
ReLU's kink and measure nothing).
"""

from dynamics.experiments.classifiers import ClassifiersConfig, run
from scenes.classifiers import ClassifiersScene

recording = run(ClassifiersConfig(iterations=400, record_every=10, grid=60))
scene = ClassifiersScene(recording)
scene.show(quality="final")
