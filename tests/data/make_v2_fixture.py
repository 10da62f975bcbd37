"""Write tests/data/v2_fixture.rec, v2_fixture_dtypes.rec and v2_fixture_values.npz: a small
training run's recording and one series of every dtype, made by the code of commit 764b234
(the last before dynamics/recording.py became a package), and what they hold as plain arrays.
tests/test_recording_fixture.py loads them with today's code.

Run from the repository root: ``python tests/data/make_v2_fixture.py`` (it refuses to replace
the committed files: they must stay what the older code wrote).
"""

from pathlib import Path

import numpy as np
import torch

from dynamics import Recorder

HERE = Path(__file__).parent
REC, DTYPES_REC = HERE / "v2_fixture.rec", HERE / "v2_fixture_dtypes.rec"
VALUES = HERE / "v2_fixture_values.npz"


def main() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with Recorder(
        model, opt, path=REC, grads=True, summaries="0.weight", activations="1", schedule=2
    ) as rec:
        rec.put("data/x", x)
        for _ in range(6):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            rec.log(loss=loss, correct=int((model(x).argmax(1) == y).sum()))
    # every dtype a series may have, appended by hand
    from dynamics.recording import DTYPES, RecordingWriter, load

    rng = np.random.default_rng(0)
    with RecordingWriter(DTYPES_REC, {"note": "every dtype", "nested": {"a": [1, 2.5, None]}}) as w:
        for code in sorted(DTYPES):
            dtype = np.dtype(code)
            name = f"{dtype.name}"
            w.declare(name, dtype, (2, 3), kind="derived")
            values = (rng.standard_normal((4, 2, 3)) * 100).astype(dtype)
            w.extend(name, np.array([0, 3, 7, 20]), values)
    arrays = {}
    for prefix, path in (("run", REC), ("dtypes", DTYPES_REC)):
        for name, s in load(path).items():
            arrays[f"{prefix}:{name}:steps"] = np.asarray(s.steps)
            arrays[f"{prefix}:{name}:values"] = np.asarray(s.values)
    np.savez(VALUES, **arrays)


if __name__ == "__main__":
    if REC.exists() or VALUES.exists():
        raise SystemExit(f"{REC} exists: the fixture is what the older code wrote; keep it")
    main()
