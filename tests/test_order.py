"""Hidden units that keep their place (``--order``): the assignment solver against brute
force, a permuted network drawn identically after ordering, a planted permutation
recovered across the cells of a sweep, and ``none`` leaving the picture as it was."""

import itertools

import numpy as np
import pytest

from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.order import (
    Permuted,
    linear_sum_assignment,
    match_units,
    norm_order,
    order_of,
    unit_orders,
)
from scenes.sweep import SweepScene
from scenes.weights import WeightsScene, WeightsSceneConfig, heatmap_values

SMALL = RenderOptions(width=320, height=180, dpi=30, progress=False, workers=1)


def brute_force(cost):
    n, m = cost.shape
    if n <= m:
        return min(cost[range(n), list(p)].sum() for p in itertools.permutations(range(m), n))
    return min(cost[list(p), range(m)].sum() for p in itertools.permutations(range(n), m))


@pytest.mark.parametrize("ties", [False, True])
def test_assignment_is_optimal_against_brute_force(ties):
    rng = np.random.default_rng(1)
    for _ in range(60):  # up to 7 x 7: 5040 permutations
        n, m = (int(k) for k in rng.integers(1, 8, 2))
        cost = rng.integers(0, 3, (n, m)).astype(float) if ties else rng.normal(size=(n, m))
        rows, cols = linear_sum_assignment(cost)
        k = min(n, m)
        assert len(rows) == len(set(rows.tolist())) == k
        assert len(cols) == len(set(cols.tolist())) == k
        assert np.all(np.diff(rows) > 0)
        assert cost[rows, cols].sum() == pytest.approx(brute_force(cost), abs=1e-9)


def test_assignment_refuses_what_it_cannot_solve():
    with pytest.raises(ValueError, match="matrix"):
        linear_sum_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[0.0, np.inf], [1.0, 2.0]]))
    assert [a.tolist() for a in linear_sum_assignment(np.zeros((0, 3)))] == [[], []]


def permuted(rec: Recording, perm: np.ndarray, noise: float = 0.0, seed: int = 0) -> Recording:
    """``rec`` with the hidden units of ``0.weight`` permuted: its rows, and the columns of
    ``2.weight`` that read them, at every snapshot (plus a little noise)."""
    rng = np.random.default_rng(seed)
    series = dict(rec.items())
    for name, axis in (("0.weight", 1), ("2.weight", 2)):
        s = rec[name]
        values = np.take(np.asarray(s.values), perm, axis=axis)
        values = values + noise * rng.normal(size=values.shape).astype(values.dtype)
        series[name] = Series(s.steps, values, kind=s.kind, source=s.source)
    return Recording(series, dict(rec.metadata))


def test_a_permuted_network_is_drawn_identically_after_ordering():
    rec = WeightsScene.example(frames=4)
    perm = np.random.default_rng(3).permutation(rec["0.weight"].shape[0])
    shuffled = permuted(rec, perm)
    config = WeightsSceneConfig(order="norm")
    a, b = WeightsScene(rec, config, SMALL), WeightsScene(shuffled, config, SMALL)
    assert set(a.orders_) == {"0.weight", "2.weight"}
    assert a.orders_["2.weight"][0] is None  # the output layer's rows keep their order
    for i in range(len(a)):
        assert np.array_equal(a.frame(i), b.frame(i))
    # without ordering the pictures differ
    plain = WeightsSceneConfig()
    assert not np.array_equal(
        WeightsScene(rec, plain, SMALL).frame(-1), WeightsScene(shuffled, plain, SMALL).frame(-1)
    )


def test_order_none_draws_as_before():
    rec = WeightsScene.example(frames=3)
    scene = WeightsScene(rec, WeightsSceneConfig(order="none"), SMALL)
    assert scene.orders_ == {}
    values = heatmap_values(rec["0.weight"], scene.config, order_of(rec, "0.weight", {}))
    assert isinstance(values, np.ndarray)  # the plain view, not a permuted one
    default = WeightsScene(rec, None, SMALL)
    assert np.array_equal(scene.frame(-1), default.frame(-1))
    assert "by norm" not in scene.describe(rec, "0.weight", scene.config)


def test_matching_recovers_a_planted_permutation():
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(12, 9))
    plant = rng.permutation(12)
    cell = reference[plant] + 0.01 * rng.normal(size=reference.shape)
    order = match_units(cell, reference)
    assert np.array_equal(plant[order], np.arange(12))  # row k is the reference's unit k
    # more units than the reference: the matched first, the rest after them
    extra = np.vstack([cell, rng.normal(size=(3, 9))])
    assert np.array_equal(match_units(extra, reference)[:12], order)


def test_matching_across_sweep_cells_recovers_a_planted_permutation():
    rec = WeightsScene.example(frames=4)
    plant = np.random.default_rng(7).permutation(rec["0.weight"].shape[0])
    other = permuted(rec, plant, noise=0.01)
    config = WeightsSceneConfig(order="match")
    shared = WeightsScene.sweep_scales([rec, other], config)
    (r0, first), (r1, second) = shared["orders"]
    assert r0 is rec and r1 is other
    # cell 2's row k is cell 1's row k: the planted permutation undone exactly
    assert np.array_equal(plant[second["0.weight"][0]], first["0.weight"][0])
    assert np.array_equal(second["2.weight"][1], second["0.weight"][0])
    assert set(shared) == {"vmin", "vmax", "orders"}
    sweep = SweepScene(WeightsScene, [rec, other], {"seed": [0, 1]}, config=config, options=SMALL)
    assert sweep.frame(-1).shape[2] == 3


def test_bias_and_gradient_follow_their_layer():
    rec = WeightsScene.example(frames=3)
    series = dict(rec.items())
    w = rec["0.weight"]
    series["0.bias"] = Series(w.steps, np.asarray(w.values)[:, :, 0], kind="parameter")
    series["grad/0.weight"] = Series(w.steps, w.values, kind="gradient", source="0.weight")
    rec = Recording(series, dict(rec.metadata))
    orders, _ = unit_orders(rec, "norm")
    rows = orders["0.weight"][0]
    assert order_of(rec, "0.bias", orders) == (rows, None)
    assert order_of(rec, "grad/0.weight", orders) is orders["0.weight"]
    config = WeightsSceneConfig(order="norm")
    bias = heatmap_values(rec["0.bias"], config, order_of(rec, "0.bias", orders))
    assert np.array_equal(bias[-1][0], np.asarray(w.values[-1])[rows, 0])


def test_norm_order_and_permuted_view():
    key = np.array([[1.0, 0.0], [0.0, 3.0], [0.0, 1.0], [2.0, 0.0]])
    assert norm_order(key).tolist() == [1, 3, 2, 0]  # a tie (rows 0, 2): by values, ascending
    values = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    view = Permuted(values, [2, 0, 1], [3, 2, 1, 0])
    assert np.array_equal(view[1], values[1][[2, 0, 1]][:, ::-1])
    assert np.array_equal(view[0:2], values[:, [2, 0, 1]][:, :, ::-1])
    assert len(view) == 2 and view.shape == values.shape


def test_a_bad_order_is_refused_in_one_line():
    with pytest.raises(ValueError) as e:
        WeightsSceneConfig(order="cluster")
    assert str(e.value) == "order must be one of none, norm, match, got 'cluster'"
    with pytest.raises(ValueError, match="order must be"):
        unit_orders(WeightsScene.example(frames=2), "sideways")
