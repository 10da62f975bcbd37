"""Benchmark: summarising every parameter and activation every step, ours vs TensorBoard.

The CNN of ``dynamics.experiments.distributions`` (16x16 digits, batch 50, Adam 1e-4, one
torch thread) trains for ``--steps`` steps in each variant, from the same seed:

* bare        -- the training step alone;
* ours        -- ``Recorder(..., params=None, summaries="*", activations=<every conv,
                 dense and activation module>, schedule=1)``: mean, std, min, max and a
                 30-bin histogram of 8 parameters and 7 module outputs every step,
                 streamed to a recording on disk;
* TensorBoard -- ``SummaryWriter.add_histogram`` (30 bins) of the same 8 parameters
                 every step and of the same 7 module outputs (forward hooks) at the same
                 cadence, written to an event file.

Variants alternate in ``--rounds`` rounds (each round in another order); each round gives
every variant's median time per step, and the ratio of TensorBoard's recording cost to
ours (each against that round's bare step). Target: ours at most half of
``add_histogram``'s in every round.

Then the summaries alone: ``Summarizer`` over the 15 tensors of one training step, against
a floor of two plain passes over the same tensors (``x.sum()`` and ``torch.aminmax(x)``),
interleaved in ``--rounds`` rounds, medians in ms per million values.

Run: ``python benchmarks/summaries_vs_tensorboard.py`` (a few minutes); needs the
``tensorboard`` package for the comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing

from dynamics import Recorder  # noqa: E402
from dynamics.experiments import distributions as ds  # noqa: E402
from dynamics.summaries import Summarizer  # noqa: E402


def make(seed: int):
    cfg = ds.Config(train_size=1000, test_size=10, seed=seed)
    x, y, _, _ = ds._data(cfg)
    model = ds.DigitsCNN(cfg.image_size, cfg.activation, cfg.dropout)
    model.initialise(cfg.init, torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return model, opt, x, y


def train(model, opt, x, y, steps, after=None):
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    times = []
    for step in range(steps):
        idx = torch.randint(0, len(x), (50,), generator=g)
        t = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        if after is not None:
            after(step)
        times.append(time.perf_counter() - t)
    return times


def bare(steps, tmp):
    return train(*make(0), steps)


def ours(steps, tmp):
    model, opt, x, y = make(0)
    with Recorder(
        model,
        opt,
        params=None,
        summaries="*",
        activations=list(ds.ACTIVATION_MODULES),
        summarizer=Summarizer(bins=30),
        schedule=1,
        path=Path(tmp) / "ours.rec",
        overwrite=True,
    ):
        return train(model, opt, x, y, steps)


def tensorboard(steps, tmp):
    from torch.utils.tensorboard import SummaryWriter

    model, opt, x, y = make(0)
    writer = SummaryWriter(log_dir=str(Path(tmp) / "tb"))
    state = {"step": 0}
    modules = dict(model.named_modules())
    hooks = [
        modules[name].register_forward_hook(
            lambda m, i, o, name=name: writer.add_histogram(
                f"act/{name}", o.detach(), state["step"], bins=30
            )
        )
        for name in ds.ACTIVATION_MODULES
    ]

    def log(step):
        state["step"] = step + 1
        for name, p in model.named_parameters():
            writer.add_histogram(name, p.detach(), step + 1, bins=30)

    try:
        return train(model, opt, x, y, steps, after=log)
    finally:
        for h in hooks:
            h.remove()
        writer.close()


def step_tensors() -> list[torch.Tensor]:
    """The 8 parameters and 7 module outputs of the CNN after one training step."""
    model, opt, x, y = make(0)
    outputs = []
    modules = dict(model.named_modules())
    hooks = [
        modules[name].register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
        for name in ds.ACTIVATION_MODULES
    ]
    train(model, opt, x, y, 1)
    for h in hooks:
        h.remove()
    return [p.detach().clone() for p in model.parameters()] + outputs


def summaries_alone(rounds: int) -> None:
    """Print the time of the summaries alone per million values, against the floor."""
    tensors = step_tensors()
    values = sum(t.numel() for t in tensors) / 1e6
    summarize = Summarizer(bins=30)

    def ours():
        for t in tensors:
            summarize(t)

    def floor():
        for t in tensors:
            t.sum()
            torch.aminmax(t.reshape(-1))

    times = {"ours": [], "floor": []}
    for _ in range(max(rounds, 1) * 5):
        for name, f in (("ours", ours), ("floor", floor)):
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    ours_m, floor_m = (statistics.median(times[n]) * 1e3 / values for n in ("ours", "floor"))
    print(
        f"\nsummaries alone ({len(tensors)} tensors, {values:.2f} M values per step): "
        f"ours {ours_m:.2f} ms per million values, floor (x.sum() + torch.aminmax(x)) "
        f"{floor_m:.2f} ms: {ours_m / floor_m:.1f}x the floor"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60, help="timed steps per run (default: 60)")
    p.add_argument("--rounds", type=int, default=4, help="rounds of all variants (default: 4)")
    args = p.parse_args()
    torch.set_num_threads(1)
    ours_name, tb_name = "ours: Recorder summaries", "TensorBoard add_histogram"
    variants = {"bare": bare, ours_name: ours}
    try:
        import tensorboard as _  # noqa: F401

        variants[tb_name] = tensorboard
    except ImportError:
        print("TensorBoard comparison skipped: pip install tensorboard to run it")
    per = {name: [] for name in variants}
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(variants)[r % len(variants) :] + list(variants)[: r % len(variants)]
            for name in order:
                times = variants[name](args.steps, tmp)
                per[name].append(statistics.median(times[5:]))
            line = f"  round {r + 1}: " + " | ".join(
                f"{n} {per[n][-1] * 1e3:.1f} ms" for n in order
            )
            if tb_name in per:
                bare_r = per["bare"][-1]
                ratios.append((per[tb_name][-1] - bare_r) / max(per[ours_name][-1] - bare_r, 1e-9))
                line += f" | TensorBoard/ours recording cost {ratios[-1]:.1f}x"
            print(line, flush=True)
    base = statistics.median(per["bare"])
    print(f"\n{'variant':<28} {'ms/step':>8} {'overhead':>9}")
    for name, values in per.items():
        m = statistics.median(values)
        print(f"{name:<28} {m * 1e3:8.2f} {100 * (m / base - 1):+8.1f}%")
    if ratios:
        ours_m, tb_m = statistics.median(per[ours_name]), statistics.median(per[tb_name])
        print(
            f"\nours {(ours_m - base) * 1e3:.2f} ms/step of recording vs TensorBoard "
            f"{(tb_m - base) * 1e3:.2f} ms/step (medians): "
            f"{(tb_m - base) / max(ours_m - base, 1e-9):.1f}x cheaper; per round "
            f"{', '.join(f'{q:.1f}x' for q in ratios)} -> target (>= 2x cheaper in "
            f"every round): "
            f"{'MET' if min(ratios) >= 2 else 'NOT MET'}"
        )
    summaries_alone(args.rounds)


if __name__ == "__main__":
    main()
