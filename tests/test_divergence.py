"""A non-finite loss stops every experiment with an error naming the step and the series;
the recording is kept up to there, marked incomplete, and passes verification."""

import numpy as np
import pytest

import dynamics.experiments.classifiers as cl
import dynamics.experiments.distributions as ds
import dynamics.experiments.mass_shuffle as ms
import dynamics.experiments.relu_particles as rp
import dynamics.experiments.spiral as sp
from dynamics import load

# tiny configurations with a learning rate that overflows within a few steps
DIVERGING = {
    "mass_shuffle": (ms, dict(steps=50, record_every=10, scalar_every=5, lr=1e38), "train_loss"),
    "spiral": (sp, dict(steps=30, field_every=10, grid=8, batch=20, hidden="8", lr=1e30), "loss"),
    "classifiers": (
        cl,
        dict(iterations=30, grid=4, record_every=5, lr=1e300, grad_check=False),
        "train_loss",
    ),
    "distributions": (
        ds,
        dict(steps=20, train_size=300, test_size=100, record_every=5, eval_every=10, lr=1e10),
        "loss",
    ),
    "relu_particles": (rp, dict(step=1e6), "loss"),
}


def overflowing(config_cls, overrides):
    """The config with its huge step size set past the command line's limits (frozen field
    set directly): what matters here is what training does with a value that overflows."""
    big = {k: v for k, v in overrides.items() if k in ("lr", "step")}
    config = config_cls(**{k: v for k, v in overrides.items() if k not in big})
    for k, v in big.items():
        object.__setattr__(config, k, v)
    return config


@pytest.mark.parametrize("experiment", list(DIVERGING))
def test_a_diverging_run_stops_naming_step_and_series_and_keeps_its_recording(tmp_path, experiment):
    module, overrides, series = DIVERGING[experiment]
    path = tmp_path / f"{experiment}.rec"
    with pytest.raises(
        FloatingPointError,
        match=rf"training diverged: {series} is nan at step (\d+) \(series '{series}'",
    ) as info:
        module.run(overflowing(module.Config, overrides), path=path)
    step = int(info.value.args[0].split(" at step ")[1].split()[0])
    rec = load(path, verify=True)  # every block written before the error is intact
    assert not rec.complete
    assert len(rec) > 0 and all(len(s) == 0 or s.steps[-1] <= step for _, s in rec.items())
    if series in rec and len(rec[series]):  # logged before the check: the bad value is the last one
        assert rec[series].steps[-1] == step and not np.isfinite(rec[series].values[-1])
