"""Per-tensor summaries: equal to numpy's on the same values; recorded for parameters,
gradients and module outputs on the recorder's schedule."""

import numpy as np
import pytest
import torch

from dynamics import Recorder, load
from dynamics.summaries import Summarizer


def numpy_summary(x, bins, range_=None):
    x = np.asarray(x, dtype=np.float64).ravel()
    stats = [x.mean(), x.std(), x.min(), x.max()]
    counts, edges = np.histogram(x, bins=bins, range=range_)
    return np.array(stats), counts, edges


CASES = {
    "normal float32": lambda g: torch.randn(64, 33, generator=g),
    "heavy tails float64": lambda g: torch.randn(5000, generator=g, dtype=torch.float64) ** 3,
    "on the edges": lambda g: torch.linspace(-1, 1, 301),  # many values exactly on bin edges
    "edges and their neighbours": lambda g: torch.from_numpy(
        np.concatenate([e := np.linspace(-1, 1, 18), np.nextafter(e, 2), np.nextafter(e, -2)])
    ),
    "integers as floats": lambda g: torch.randint(-3, 4, (1000,), generator=g).float(),
    "constant": lambda g: torch.full((10,), 2.5),
    "conv kernel": lambda g: torch.randn(32, 1, 5, 5, generator=g) * 0.1,
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("range_", [None, (-1.0, 1.0)])
def test_summary_equals_numpy(case, range_):
    t = CASES[case](torch.Generator().manual_seed(0))
    summ = Summarizer(bins=17, range=range_)
    stats, counts, edges = summ(t)
    want_stats, want_counts, want_edges = numpy_summary(t.numpy(), 17, range_)
    # float64 sums in another order: equal to rounding (a mean near 0 is judged against the
    # values' size)
    np.testing.assert_allclose(
        stats.numpy(), want_stats, rtol=1e-13, atol=1e-15 * float(np.abs(t.numpy()).max())
    )
    assert (
        stats.numpy()[2] == want_stats[2] and stats.numpy()[3] == want_stats[3]
    )  # min, max exactly
    np.testing.assert_array_equal(counts.numpy(), want_counts)  # counts exactly
    np.testing.assert_array_equal(edges.numpy(), want_edges)


def test_summarizer_validates_and_describes_itself():
    with pytest.raises(ValueError, match="bins must be >= 1"):
        Summarizer(bins=0)
    with pytest.raises(ValueError, match="lo < hi"):
        Summarizer(range=(1.0, 1.0))
    d = Summarizer(bins=4, range=(0.0, 2.0)).describe()
    assert d["edges"] == [0.0, 0.5, 1.0, 1.5, 2.0] and not d["adaptive"]


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).flatten(1))


def test_recorder_summarises_parameters_gradients_and_activations(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    seen = {}  # what the tensors were at each recorded step, to compare with
    with Recorder(
        model,
        opt,
        params=None,
        summaries="*",
        summary_grads=True,
        activations=["conv", "relu"],
        schedule=2,
        path=tmp_path / "s.rec",
    ):
        for step in range(5):
            opt.zero_grad()
            pre = model.conv(x)
            if step % 2 == 0:
                seen[step] = (model.conv.weight.detach().clone(), pre.detach().clone())
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    r = load(tmp_path / "s.rec")
    names = set(r)
    for base in (
        "conv.weight",
        "conv.bias",
        "fc.weight",
        "fc.bias",
        "grad/conv.weight",
        "act/conv",
        "act/relu",
    ):
        assert {f"stats/{base}", f"hist/{base}", f"edges/{base}"} <= names, base
    assert "conv.weight" not in names  # params=None: no full copies
    np.testing.assert_array_equal(r["stats/conv.weight"].steps, [0, 2, 4])
    np.testing.assert_array_equal(r["stats/act/conv"].steps, [0, 2, 4])
    for step, (weight, pre) in seen.items():
        for name, tensor in (("conv.weight", weight), ("act/conv", pre)):
            i = list(r[f"stats/{name}"].steps).index(step)
            want_stats, want_counts, _ = numpy_summary(tensor.numpy(), 30)
            np.testing.assert_allclose(r[f"stats/{name}"].values[i], want_stats, rtol=1e-12)
            np.testing.assert_array_equal(r[f"hist/{name}"].values[i], want_counts)
    assert (
        r["hist/act/relu"].values.dtype == np.int64
        and r["hist/act/relu"].values[0].sum() == 16 * 4 * 6 * 6
    )
    assert r.metadata["recorder"]["summaries"]["activations"] == ["conv", "relu"]
    # detaching removed the forward hooks too
    assert not model.conv._forward_hooks and not model.relu._forward_hooks


def test_bad_summary_patterns_are_named():
    model = SmallCNN()
    with pytest.raises(ValueError, match="no module matches activations=\\['conv9'\\]"):
        Recorder(model, activations="conv9")
    with pytest.raises(ValueError, match="no parameter matches summaries"):
        Recorder(model, summaries="nothing*")


def test_export_to_tensorboard_round_trip(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dynamics.export import to_tensorboard

    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    with Recorder(
        model, opt, params=None, summaries="conv.weight", activations="relu", schedule=1
    ) as rec:
        for _ in range(4):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            rec.log(loss=loss)
    r = rec.recording
    written = to_tensorboard(r, tmp_path / "tb")
    assert written == {
        "scalars": 4,
        "histograms": 5 + 4,
    }  # weights at steps 0-4, activations at 0-3
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [1, 2, 3, 4]
    np.testing.assert_allclose([e.value for e in acc.Scalars("loss")], r["loss"].values, rtol=1e-6)
    hist = acc.Histograms("conv.weight")
    assert [h.step for h in hist] == [0, 1, 2, 3, 4]
    h = hist[2].histogram_value
    np.testing.assert_array_equal(h.bucket, r["hist/conv.weight"].values[2])
    assert h.num == model.conv.weight.numel()
    assert h.min == pytest.approx(float(r["stats/conv.weight"].values[2][2]))
    # no clock in a recording: wall times in step order, one second per step, so
    # TensorBoard's Relative axis keeps the order (every event at one time collapsed it)
    walls = [h.wall_time for h in hist]
    np.testing.assert_allclose(np.diff(walls), 1.0)
    assert [e.wall_time for e in acc.Scalars("loss")] == walls[1:]


def test_counts_equal_numpy_for_random_ranges_with_values_on_and_beside_every_edge():
    rng = np.random.default_rng(1)
    for trial in range(100):
        bins = int(rng.integers(1, 60))
        lo = float(rng.normal())
        hi = lo + float(rng.uniform(0.01, 5))
        e = np.linspace(lo, hi, bins + 1)
        values = np.concatenate(
            [e, np.nextafter(e, np.inf), np.nextafter(e, -np.inf), rng.uniform(lo - 3, hi + 3, 500)]
        )
        for dtype in (np.float32, np.float64):
            v = values.astype(dtype)
            for range_ in (None, (lo, hi)):
                counts = Summarizer(bins=bins, range=range_)(torch.from_numpy(v))[1].numpy()
                want = np.histogram(v.astype(np.float64), bins, range_)[0]
                assert np.array_equal(counts, want), (trial, dtype, range_)


def _assert_equals_numpy(t, summ):
    stats, counts, edges = summ(t)
    x = t.numpy().astype(np.float64)
    want_stats, want_counts, want_edges = numpy_summary(x, summ.bins, summ.range)
    np.testing.assert_allclose(stats.numpy(), want_stats, rtol=1e-13, atol=1e-15 * np.abs(x).max())
    assert stats.numpy()[2] == want_stats[2] and stats.numpy()[3] == want_stats[3]
    np.testing.assert_array_equal(counts.numpy(), want_counts)
    np.testing.assert_array_equal(edges.numpy(), want_edges)


@pytest.mark.parametrize("bins", [30, 100])  # bin indices in int8, and in int32
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("range_", [None, (-1.0, 1.0)])
def test_large_tensors_are_summarised_in_chunks_exactly(bins, dtype, range_):
    # several chunks, with different means (sorted values), values on and beside every
    # edge (the adaptive range is [-1, 1] too), zeros (a ReLU's output) and, for a fixed
    # range, values far outside it
    g = torch.Generator().manual_seed(0)
    e = np.linspace(-1, 1, bins + 1)
    special = [e, np.nextafter(e, 2)[:-1], np.nextafter(e, -2)[1:], np.zeros(5000)]
    if range_ is not None:
        special.append([-1e30, -1.5, 1.5, 1e30])
    values = torch.cat(
        [
            torch.randn(300_000, generator=g, dtype=torch.float64).clamp(-1, 1).sort().values,
            torch.from_numpy(np.concatenate(special)),
        ]
    )
    _assert_equals_numpy(values.to(dtype), Summarizer(bins=bins, range=range_))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_std_of_values_far_from_zero(dtype):
    # 1e4 + noise of 1e-3: a one-pass sum of squares would lose about eight digits of the std
    g = torch.Generator().manual_seed(0)
    values = 1e4 + 1e-3 * torch.randn(200_000, generator=g, dtype=torch.float64)
    _assert_equals_numpy(values.to(dtype), Summarizer(bins=17))
    _assert_equals_numpy(values.to(dtype), Summarizer(bins=17, range=(1e4 - 2e-3, 1e4 + 2e-3)))


def test_bins_narrower_than_float64_arithmetic_resolves():
    # a range of a few float64 spacings: every value is placed by comparison with the edges
    values = torch.from_numpy(1.0 + np.arange(12) * np.spacing(1.0))
    for range_ in (None, (1.0, 1.0 + 8 * np.spacing(1.0))):
        summ = Summarizer(bins=7, range=range_)
        np.testing.assert_array_equal(
            summ(values)[1].numpy(), np.histogram(values.numpy(), 7, range_)[0]
        )


def test_sums_that_overflow_still_count_exactly():
    values = torch.tensor([1e308, 1e308, 5e299, -2.5e299, 1e300, -1e300], dtype=torch.float64)
    summ = Summarizer(bins=4, range=(-1e300, 1e300))
    np.testing.assert_array_equal(
        summ(values)[1].numpy(), np.histogram(values.numpy(), 4, (-1e300, 1e300))[0]
    )


@pytest.mark.parametrize("range_", [None, (-1.0, 1.0)])
def test_nan_and_inf_make_the_statistics_so_and_are_not_counted(range_):
    values = torch.tensor([0.5, float("nan"), -0.25, float("inf"), 0.75, -1.0])
    stats, counts, edges = Summarizer(bins=5, range=range_)(values)
    assert np.isnan(stats.numpy()[[0, 1, 2, 3]]).all()
    finite = values.numpy()[np.isfinite(values.numpy())].astype(np.float64)
    want_counts, want_edges = np.histogram(finite, 5, range_)
    np.testing.assert_array_equal(counts.numpy(), want_counts)
    np.testing.assert_array_equal(edges.numpy(), want_edges)
    stats, counts, _ = Summarizer(bins=5, range=range_)(torch.full((3,), float("nan")))
    assert np.isnan(stats.numpy()).all() and counts.sum() == 0
