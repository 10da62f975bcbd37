"""Recordings written before dynamics/recording.py became a package load bit for bit.

tests/data/v2_fixture.rec (a small training run through the Recorder: parameters, gradients,
summaries, activations, data, logged scalars) and v2_fixture_dtypes.rec (one series of every
dtype a series may have) were written by commit 764b234; v2_fixture_values.npz holds what
they held then, as plain arrays (tests/data/make_v2_fixture.py made all three).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dynamics.recording import DTYPES, load, verify

DATA = Path(__file__).parent / "data"
FIXTURES = {"run": DATA / "v2_fixture.rec", "dtypes": DATA / "v2_fixture_dtypes.rec"}


@pytest.fixture(scope="module")
def then():
    with np.load(DATA / "v2_fixture_values.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.mark.parametrize("which", sorted(FIXTURES))
def test_an_older_recording_loads_bit_for_bit_and_verifies(which, then, tmp_path):
    path = shutil.copytree(FIXTURES[which], tmp_path / "copy.rec")  # a load may not write
    assert verify(path) == []
    rec = load(path, verify=True)
    assert rec.complete
    names = {k.split(":")[1] for k in then if k.startswith(f"{which}:")}
    assert set(rec.keys()) == names and len(names) >= 14
    for name, series in rec.items():
        steps, values = then[f"{which}:{name}:steps"], then[f"{which}:{name}:values"]
        assert series.steps.dtype == steps.dtype and series.values.dtype == values.dtype
        assert series.steps.tobytes() == steps.tobytes()
        assert np.asarray(series.values).tobytes() == values.tobytes(), name
    if which == "dtypes":
        assert {np.dtype(s.values.dtype).str for _, s in rec.items()} == set(DTYPES)
        assert rec.metadata == {"note": "every dtype", "nested": {"a": [1, 2.5, None]}}
    else:
        assert rec["grad/0.weight"].kind == "gradient" and rec.summaries()


@pytest.mark.parametrize("which", sorted(FIXTURES))
def test_saved_again_by_todays_writer_the_series_files_are_the_same_bytes(which, tmp_path):
    old = FIXTURES[which]
    new = load(old).save(tmp_path / "again.rec")

    def files(root: Path) -> dict[str, dict]:
        manifest = json.loads((root / "manifest.json").read_text())
        return {
            name: {
                **{k: v for k, v in spec.items() if k != "file"},
                "steps": (root / f"{spec['file']}.steps").read_bytes(),
                "values": (root / f"{spec['file']}.values").read_bytes(),
            }
            for name, spec in manifest["series"].items()
        }

    assert files(new) == files(old)
    assert load(new).metadata == load(old).metadata
