"""Quantities: what the recorder captures, one small class each; a user's own is one file."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from dynamics import Recorder, load
from dynamics.capture import Buffers, Gradients, Parameters, Quantity, RecorderWarning, every
from dynamics.capture.quantities import from_keywords


def readme_quantity() -> str:
    """The documentation's example quantity (docs/guide/recording.md), as a user would put it
    in a file of their own."""
    from snippets import snippet

    code = snippet("quantity")
    return code.replace("Recorder(model, opt, quantities=[WeightNorms()])\n", "")


@pytest.fixture
def weight_norms(tmp_path):
    path = tmp_path / "weight_norms.py"
    path.write_text(readme_quantity())
    assert len(path.read_text().splitlines()) <= 60
    spec = importlib.util.spec_from_file_location("weight_norms", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WeightNorms


def train(rec, model, opt, steps, norms=None):
    torch.manual_seed(1)
    x = torch.randn(32, 3)
    for _ in range(steps):
        opt.zero_grad()
        (model(x) - 1).square().mean().backward()
        opt.step()
        rec.log(loss=(model(x) - 1).square().mean())
        if norms is not None:
            norms.append(model[0].weight.detach().norm().item())


def test_a_quantity_from_a_users_own_file_is_captured_written_loaded_and_drawn(
    weight_norms, tmp_path
):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = [model[0].weight.detach().norm().item()]
    path = tmp_path / "run.rec"
    with Recorder(model, opt, path=path, params=None, quantities=[weight_norms()]) as rec:
        train(rec, model, opt, 25, expected)
    r = load(path, verify=True)
    norm = r["norm/0.weight"]
    assert norm.kind == "derived" and norm.source == "0.weight" and norm.shape == ()
    np.testing.assert_array_equal(norm.steps, [0, 10, 20])  # its own schedule
    np.testing.assert_allclose(norm.values, np.array(expected)[::10], rtol=1e-6)
    assert r.metadata["recorder"]["quantities"] == ["WeightNorms"]
    assert r.complete and "never_captured" not in r.metadata["recorder"]
    assert "0.weight" not in r  # params=None: only what was asked
    out = tmp_path / "norms.png"
    done = subprocess.run(
        [sys.executable, "-m", "scenes.render", str(path), "--show", "norm/0.weight,loss",
         "--out", str(out), "--quality", "draft"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import imageio.v3 as iio

    frame = iio.imread(out)
    assert frame.shape[:2] == (360, 640) and frame.std() > 10


def test_a_quantity_that_promised_series_it_never_captured_says_so(weight_norms):
    rec = Recorder(
        torch.nn.Linear(2, 2), params=None, quantities=[weight_norms()], capture_initial=False
    )
    with pytest.warns(RecorderWarning, match=r"1 series it was asked for \(norm/weight\)"):
        rec.close()
    assert rec.recording.metadata["recorder"]["never_captured"] == ["norm/weight"]


def test_a_quantity_that_is_not_one_is_refused_when_the_recorder_is_made():
    with pytest.raises(TypeError, match="quantities must be Quantity objects"):
        Recorder(torch.nn.Linear(2, 2), quantities=[lambda m: m.weight])


def test_the_keyword_arguments_build_the_same_quantities_in_the_order_captured():
    made = from_keywords(
        params="*", buffers="*running*", grads=True, derived={"w": lambda m: m.weight},
        summaries="*", summary_grads=True, activations="0",
    )  # fmt: skip
    assert [type(q).__name__ for q in made] == [
        "Parameters", "Buffers", "Gradients", "Derived", "Summaries", "Activations",
    ]  # fmt: skip
    assert from_keywords(
        params=None, buffers=None, grads=True, derived=None, summaries=None,
        summary_grads=False, activations=None,
    ) == []  # fmt: skip


def test_built_in_quantities_given_by_hand_record_what_their_shorthands_record():
    def run(**kwargs):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with Recorder(model, opt, **kwargs) as rec:
            train(rec, model, opt, 4)
        return rec.recording

    by_keywords = run(params="0.*", grads=True, buffers="1.running_mean")
    params = Parameters("0.*")
    by_hand = run(params=None, quantities=[params, Buffers("1.running_mean"), Gradients(params)])
    assert sorted(by_hand.keys()) == sorted(by_keywords.keys())
    for name, series in by_keywords.items():
        assert series.kind == by_hand[name].kind, name
        np.testing.assert_array_equal(series.steps, by_hand[name].steps)
        np.testing.assert_array_equal(series.values, by_hand[name].values)
    assert by_hand["grad/0.weight"].kind == "gradient"


def test_a_quantity_on_its_own_schedule_is_captured_on_its_steps_only():
    class Counter(Quantity):
        schedule = every(3)

        def capture(self, rec, model, step):
            rec.emit("count", step, np.int64(step), "derived")

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(model, opt, schedule=2, quantities=[Counter()]) as rec:
        for _ in range(7):
            opt.step()
    r = rec.recording
    np.testing.assert_array_equal(r["count"].steps, [0, 3, 6])
    np.testing.assert_array_equal(r["weight"].steps, [0, 2, 4, 6])
