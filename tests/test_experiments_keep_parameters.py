"""Every experiment keeps its model parameters in its recording, at its frame cadence, so
what a scene shows (and what the README claims) can be recomputed from the recording."""

import numpy as np
import torch

from dynamics.experiments import classifiers as cl
from dynamics.experiments import distributions as ds
from dynamics.experiments import spiral as sp


def load_into(model, recording, index):
    state = {
        name: torch.from_numpy(np.array(recording[name].values[index]))
        for name, _ in model.named_parameters()
    }
    model.load_state_dict(state, strict=False)
    return model


def test_spiral_field_is_recomputed_from_the_recorded_parameters():
    cfg = sp.Config(steps=40, field_every=20, grid=12, batch=50, hidden="8,4", seed=1)
    r = sp.run(cfg)
    params = r.of_kind("parameter")
    model = sp.SpiralMLP(cfg.widths, cfg.activation, torch.Generator().manual_seed(0))
    assert set(params) == {n for n, _ in model.named_parameters()}
    for s in params.values():
        np.testing.assert_array_equal(s.steps, r["field"].steps)
    x = torch.from_numpy(np.array(r["data/x"].values[0]))
    extent = sp.grid_extent(x, cfg.margin)
    grid = sp.grid_points(extent, cfg.grid)
    with torch.no_grad():
        field = load_into(model, r, -1).probability(grid).reshape(cfg.grid, cfg.grid)
    np.testing.assert_array_equal(field.numpy(), r["field"].values[-1])


def test_classifiers_keep_their_parameters_with_the_field():
    cfg = cl.Config(iterations=25, record_every=10, grid=8, grad_check=False)
    r = cl.run(cfg)
    params = r.of_kind("parameter")
    assert params and all(s.source == name for name, s in params.items())
    for s in params.values():
        np.testing.assert_array_equal(s.steps, r["field"].steps)


def test_distributions_keep_their_parameters_with_the_summaries():
    cfg = ds.Config(
        steps=4, record_every=2, eval_every=4, train_size=100, test_size=50, batch=10, image_size=8
    )
    r = ds.run(cfg)
    params = r.of_kind("parameter")
    assert set(params) == {s.source for s in r.summaries().values() if s.of == "parameter"}
    w = params["conv1.weight"]
    np.testing.assert_array_equal(w.steps, r["stats/conv1.weight"].steps)
    np.testing.assert_allclose(
        r["stats/conv1.weight"].values[-1][[2, 3]], [w.values[-1].min(), w.values[-1].max()]
    )
