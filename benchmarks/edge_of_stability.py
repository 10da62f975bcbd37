"""Measurement: does full-batch gradient descent reach the edge of stability, per seed?

Runs the edge-of-stability reference experiment (``dynamics.experiments.edge_of_stability``,
docs/experiments.md section 6) at its defaults over several seeds, and prints, per seed and
step size, the figures of :func:`~dynamics.experiments.edge_of_stability.summary` and which
of the expected outcome's claims hold (:func:`~dynamics.experiments.edge_of_stability.criteria`):
every step size but the smallest should reach its edge ``2/lr`` (peak >= 0.9), hover there
over the last half of the run (median within +-20%) while the loss falls below its value
where the edge was first reached; the smallest step size is the control, whose sharpness
should stay below its edge for the whole run.

Run: ``python benchmarks/edge_of_stability.py`` (seeds 0-4, about 40 s of CPU time on one
thread); ``--seeds 0,1`` or any config flag as ``--lrs 0.2,0.1,0.02`` to try others.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from dynamics.experiments import edge_of_stability as eos  # noqa: E402


def table(seeds, config: eos.Config, out=print) -> bool:
    """Train every seed, print one row per seed and step size; True if every claim held."""
    smallest = min(config.step_sizes)
    out(
        f"{'seed':>4} {'lr':>6} {'2/lr':>6} {'peak':>6} {'reached':>7} {'late':>6} "
        f"{'loss@edge':>9} {'loss end':>8} {'rises':>5}  claims"
    )
    ok = True
    for seed in seeds:
        try:
            rec = eos.run(dataclasses.replace(config, seed=seed))
        except FloatingPointError as exc:  # one run diverged: the seed's other runs stop too
            out(f"{seed:>4} {exc}")
            ok = False
            continue
        for f in eos.summary(rec):
            control = f["lr"] == smallest
            held = eos.criteria(f, control=control)
            ok &= all(held.values())
            claims = ", ".join(f"{k} {'ok' if v else 'FAILS'}" for k, v in held.items())
            reached = "never" if f["reached"] is None else f["reached"]
            at_edge = "-" if f["loss_reached"] is None else f"{f['loss_reached']:.4f}"
            out(
                f"{seed:>4} {f['lr']:>6g} {f['edge']:>6.3g} {f['peak']:>6.3f} {reached:>7} "
                f"{f['late']:>6.3f} {at_edge:>9} {f['loss_end']:>8.4f} {f['loss_rises']:>5}  "
                f"{'control: ' if control else ''}{claims}"
            )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    for f in dataclasses.fields(eos.Config):
        if f.name != "seed":
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                type=type(f.default),
                default=f.default,
                help=f"config field {f.name}",
            )
    a = parser.parse_args()
    config = eos.Config(
        **{f.name: getattr(a, f.name) for f in dataclasses.fields(eos.Config) if f.name != "seed"}
    )
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    print(eos.caption(config) + f", {config.steps} steps, seeds {a.seeds}")
    start = time.process_time()
    ok = table(seeds, config)
    print("peak: largest sharpness / (2/lr); reached: first measured step with sharpness >= 2/lr;")
    print("late: median sharpness over the last half / (2/lr); loss@edge: the loss at 'reached';")
    print("rises: steps at which the loss went up")
    print(f"every claim held: {ok}  ({time.process_time() - start:.0f} s of CPU time)")


if __name__ == "__main__":
    main()
