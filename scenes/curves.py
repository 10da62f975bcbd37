"""Any scalar series of a recording as curves, and the norms of its weights and gradients.

Run: ``python -m scenes.curves RUN.rec [--show loss,accuracy]`` (writes
``outputs/curves.mp4``); ``--help`` lists every flag. Besides the scalars it draws, from
the recorded parameters and gradients, ``||W||``, ``||grad W||`` and the relative update
``||W_t - W_{t-1}|| / ||W_t||`` between snapshots, on log axes where values span decades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series

from .base import Field, PanelScene, grid_axes, split_names
from .plotting import CurvesPanel
from .registry import register

__all__ = ["CurvesScene", "CurvesSceneConfig", "scalar_series", "norm_curves", "spans_decades"]

MAX_PANELS = 6


def scalar_series(recording: Recording) -> list[str]:
    """Series of one number per snapshot: logged scalars (or series that say nothing of
    themselves and are scalars by shape), with at least one snapshot."""
    return [
        n for n, s in recording.items() if s.shape == () and s.kind in ("scalar", "") and len(s)
    ]


def spans_decades(values: np.ndarray, decades: float = 2.0) -> bool:
    """True if ``values`` are all positive (where finite) and span ``decades`` or more."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool((v > 0).all()) and float(v.max()) >= 10**decades * float(v.min())


def _norms(values: np.ndarray, chunk: int = 256) -> np.ndarray:
    out = np.empty(len(values))
    for lo in range(0, len(values), chunk):  # a memmap is read a block of snapshots at a time
        block = np.asarray(values[lo : lo + chunk], dtype=float).reshape(
            min(chunk, len(values) - lo), -1
        )
        out[lo : lo + chunk] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


def norm_curves(recording: Recording) -> list[tuple[str, np.ndarray, np.ndarray, list[str]]]:
    """``(title, steps, values (T, k), labels)`` of the weight norms, the gradient norms and
    the relative updates of the recorded parameters (those on the first one's schedule)."""
    out = []
    params = recording.of_kind("parameter")
    if params:
        steps = next(iter(params.values())).steps
        same = {n: s for n, s in params.items() if np.array_equal(s.steps, steps)}
        norms = np.stack([_norms(s.values) for s in same.values()], axis=1)
        out.append(("weight norm ||W||", steps, norms, list(same)))
        if len(steps) >= 2:
            updates = []
            for s in same.values():
                prev = np.asarray(s.values[:-1], dtype=float).reshape(len(s) - 1, -1)
                diff = np.asarray(s.values[1:], dtype=float).reshape(len(s) - 1, -1) - prev
                updates.append(np.sqrt((diff * diff).sum(axis=1)))
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.stack(updates, axis=1) / norms[1:]
            out.append(("relative update ||W_t - W_t-1|| / ||W_t||", steps[1:], rel, list(same)))
    grads = recording.of_kind("gradient")
    if grads:
        steps = next(iter(grads.values())).steps
        same = {s.source or n: s for n, s in grads.items() if np.array_equal(s.steps, steps)}
        out.append(
            (
                "gradient norm ||grad W||",
                steps,
                np.stack([_norms(s.values) for s in same.values()], axis=1),
                list(same),
            )
        )
    return out


@dataclass(frozen=True)
class CurvesSceneConfig:
    """What the curves show.

    Attributes
    ----------
    show : str
        Comma-separated scalar series, one panel each (default: every scalar series).
    norms : bool
        Also draw the norms of the recorded parameters and gradients and the relative
        update between snapshots (--no-norms: scalars only).
    """

    show: str = ""
    norms: bool = True


@register(
    "curves",
    description="Draw the scalar series of a saved recording (losses, accuracies) as curves "
    "growing over training, with the norms of its recorded weights and gradients and their "
    "relative "
    "update, on log axes where values span decades.",
)
class CurvesScene(PanelScene):
    """Scalar series as growing curves, with weight norms, gradient norms and relative updates.

    Reads every scalar series (or those named by ``show``) and the parameter and gradient
    series, by kind.
    """

    Config = CurvesSceneConfig
    title = "Training curves"

    def check(self) -> None:
        rec, cfg = self.recording, self.config
        names = split_names(cfg.show)
        if names:
            rec.require(*names)
            bad = [n for n in names if rec[n].shape != ()]
            if bad:
                raise ValueError(
                    f"series {bad[0]!r} has snapshots of shape {rec[bad[0]].shape}, not scalars "
                    "(draw it with scenes.weights)"
                )
        else:
            names = scalar_series(rec)
        curves = [
            (n, rec[n].steps, np.asarray(rec[n].values, dtype=float)[:, None], None) for n in names
        ]
        if cfg.norms:
            curves += norm_curves(rec)
        curves = [c for c in curves if len(c[1])]
        if not curves:
            raise KeyError(
                "recording has no scalar, parameter or gradient series to draw as curves; it has: "
                + (", ".join(f"{k} {s.shape}" for k, s in rec.items()) or "none")
            )
        if len(curves) > MAX_PANELS:
            raise ValueError(
                f"{len(curves)} panels do not fit one frame (at most {MAX_PANELS}); choose scalars "
                f"with --show (the recording has {', '.join(scalar_series(rec))})"
            )
        self.curves_ = curves

    def timeline(self) -> np.ndarray:
        return np.unique(np.concatenate([np.asarray(c[1]) for c in self.curves_]))

    def readout_fields(self):
        return [Field(n, n, "{:.4g}") for n, _, _, labels in self.curves_ if labels is None][:3]

    def build(self, fig: Figure):
        n = len(self.curves_)
        cols = min(n, 3)
        rows = math.ceil(n / cols)
        gs = grid_axes(
            fig,
            rows,
            cols,
            top=self.header_bottom - 0.04,
            bottom=0.09,
            left=0.07,
            right=0.97,
            wspace=0.3,
            hspace=0.45,
        )
        panels = []
        for k, (title, steps, values, labels) in enumerate(self.curves_):
            ax = fig.add_subplot(gs[divmod(k, cols)])
            panels.append(
                CurvesPanel(
                    ax,
                    steps,
                    values,
                    labels=labels[:8] if labels else None,
                    log=spans_decades(values),
                    xlabel="step",
                    colors=None,
                    legend_loc="best",
                )
            )
            ax.set_title(title, fontsize="medium", loc="left")
        return panels

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """Two parameters and their gradients of a small network, a loss over three decades
        and an accuracy."""
        rng = np.random.default_rng(seed)
        steps = np.arange(frames, dtype=np.int64) * 10
        t = np.linspace(0, 1, frames)[:, None, None]
        series = {
            "loss": Series(steps, np.geomspace(1, 1e-3, frames), kind="scalar"),
            "accuracy": Series(steps, np.linspace(0.3, 0.95, frames), kind="scalar"),
        }
        for name, shape in (("0.weight", (8, 4)), ("2.weight", (2, 8))):
            w = rng.normal(0, 0.5, shape) + t * rng.normal(0, 0.5, shape)
            series[name] = Series(steps, w.astype(np.float32), kind="parameter", source=name)
            series[f"grad/{name}"] = Series(
                steps,
                (w * np.geomspace(1, 1e-2, frames)[:, None, None]).astype(np.float32),
                kind="gradient",
                source=name,
            )
        return Recording(series, {"caption": "a small network (an example recording)"})


if __name__ == "__main__":
    from .cli import main

    main("curves")
