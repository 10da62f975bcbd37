"""Draw any recording: a dashboard chosen from the kinds of its series.

Run: ``python -m scenes.render RUN.rec`` (writes ``outputs/render.mp4``); ``--show
SERIES[,SERIES]`` chooses what is drawn, and the output, size and quality flags are those
of every scene (``--help`` lists them). What each series becomes:

* a ``(T, n, 2)`` series that is not a parameter: particles in the plane, with their paths;
* a matrix or vector (a parameter, gradient, buffer or derived tensor): a heatmap, colour
  limits fixed over the run and centred on 0;
* a summarised tensor (``stats`` with ``histogram`` series): its percentile bands;
* a scalar: a growing curve (log axis where it spans decades).

Without ``--show`` the dashboard takes, in this order, one particle series, two
summaries, two matrices (parameters first) and scalars, at most six panels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series

from .base import Field, PanelScene, grid_axes, split_names
from .curves import scalar_series, spans_decades
from .particles import ParticlesScene, ParticlesSceneConfig, planar_series
from .plotting import (
    CurvesPanel,
    DistributionPanel,
    ParticlePanel,
)
from .registry import register
from .weights import WeightsScene, WeightsSceneConfig, matrix_series

__all__ = ["DashboardScene", "DashboardSceneConfig", "plan"]

MAX_PANELS = 6


@dataclass(frozen=True)
class View:
    """One panel of the dashboard: how (``particles``, ``heatmap``, ``distribution``,
    ``curve``) to draw what (a series name, or a summary's label)."""

    how: str
    name: str
    steps: np.ndarray


def plan(recording: Recording, show: list[str] | None = None) -> list[View]:
    """The panels a dashboard of ``recording`` draws: those of the series in ``show``, else a
    choice by kind (see the module docstring)."""
    summaries = recording.summaries()
    by_series = {
        getattr(s, k): s
        for s in summaries.values()
        for k in ("stats", "histogram", "edges")
        if getattr(s, k)
    }
    planar = [
        n
        for n in planar_series(recording)
        if recording[n].kind != "parameter" and len(recording[n]) >= 2
    ]
    # matrices before vectors (a layer's weight says more than its bias), parameters first
    matrices = sorted(
        (n for n in matrix_series(recording) if n not in planar),
        key=lambda n: (recording[n].kind != "parameter", len(recording[n].shape) < 2),
    )
    scalars = scalar_series(recording)

    def series_view(name: str) -> View:
        how = (
            "particles"
            if name in planar
            else "heatmap"
            if name in matrices
            else "curve"
            if name in scalars
            else None
        )
        if how is None:
            s = recording[name]
            raise ValueError(
                f"series {name!r} ({s.kind or 'kind not said'}, {len(s)} snapshots of shape "
                f"{s.shape}) is not drawable: it needs at least two snapshots"
            )
        return View(how, name, np.asarray(recording[name].steps))

    def summary_view(summary) -> View:
        return View("distribution", summary.label, np.asarray(recording[summary.histogram].steps))

    if show:
        if len(show) > MAX_PANELS:
            raise ValueError(f"--show takes at most {MAX_PANELS} series, got {len(show)}")
        views = []
        for name in show:  # a series by its own name first, else a summary by label
            if name in recording and name not in by_series:
                views.append(series_view(name))
            elif name in summaries or name in by_series:
                views.append(summary_view(summaries.get(name) or by_series[name]))
            else:
                recording.require(name)
        return views
    # the experiment's choice of summaries first (metadata "show"), then the recorder's order
    preferred = [n for n in recording.metadata.get("show") or [] if n in summaries]
    picked = [summaries[n] for n in dict.fromkeys(preferred + list(summaries))][:2]
    views = [series_view(n) for n in planar[:1]] + [summary_view(s) for s in picked]
    views += [series_view(n) for n in matrices[:2]]
    views += [series_view(n) for n in scalars[: max(0, MAX_PANELS - len(views))]]
    if not views:
        present = ", ".join(
            f"{n} ({s.kind or 'kind not said'}, {len(s)} x {s.shape})" for n, s in recording.items()
        )
        raise KeyError(
            "nothing to draw: no scalar, matrix, (T, n, 2) or summarised series with snapshots; "
            f"the recording has: {present or 'no series'}"
        )
    return views


@dataclass(frozen=True)
class DashboardSceneConfig:
    """What the dashboard shows.

    Attributes
    ----------
    show : str
        Comma-separated series (or summary labels such as ``activation fc1``) to draw, one
        panel each, at most 6; default: chosen from the kinds of the series.
    """

    show: str = ""


@register(
    "render",
    description="Draw any saved recording as a dashboard chosen from the kinds of its series: "
    "scalars as curves, matrices as heatmaps, summaries as percentile bands, (T, n, 2) series as "
    "particles.",
)
class DashboardScene(PanelScene):
    """Any recording as a dashboard: curves, heatmaps, percentile bands and particles by kind."""

    Config = DashboardSceneConfig
    title = "Training dashboard"

    def check(self) -> None:
        self.views_ = plan(self.recording, split_names(self.config.show))

    def timeline(self) -> np.ndarray:
        return np.unique(np.concatenate([v.steps for v in self.views_]))

    def heading(self) -> str:
        name = self.recording.metadata.get("experiment") or (
            self.recording.path.stem if self.recording.path else ""
        )
        return f"{self.title}: {name}" if name else self.title

    def readout_fields(self):
        return [Field(v.name, v.name, "{:.4g}") for v in self.views_ if v.how == "curve"][:3]

    def build(self, fig: Figure):
        n = len(self.views_)
        cols = n if n <= 3 else math.ceil(n / 2)
        rows = math.ceil(n / cols)
        gs = grid_axes(
            fig,
            rows,
            cols,
            top=self.header_bottom - 0.05,
            bottom=0.09,
            left=0.06,
            right=0.92,
            wspace=0.45,
            hspace=0.5,
        )
        panels = []
        rec = self.recording
        summaries = rec.summaries()
        for k, v in enumerate(self.views_):
            ax = fig.add_subplot(gs[divmod(k, cols)])
            ax.set_title(v.name, fontsize="medium", loc="left")
            if v.how == "curve":
                s = rec[v.name]
                panels.append(
                    CurvesPanel(ax, s.steps, s.values, log=spans_decades(s.values), xlabel="step")
                )
            elif v.how == "heatmap":  # as scenes.weights draws it
                panels.append(
                    WeightsScene._panel(ax, rec, v.name, WeightsSceneConfig(), colorbar=True)
                )
            elif v.how == "distribution":
                steps, counts, edges = summaries[v.name].read(rec)
                panels.append(DistributionPanel(ax, steps, counts, edges, xlabel="step"))
            else:
                s = rec[v.name]  # references and limits as scenes.particles finds them
                refs, _ = ParticlesScene.references(rec, v.name)
                box = ParticlesScene._limit(ParticlesSceneConfig(), s.values, refs)
                panels.append(
                    ParticlePanel(
                        ax,
                        s.steps,
                        s.values,
                        refs,
                        limit=box,
                        particle_size=max(8.0, 40 / max(rows, cols)),
                        legend=False,
                        labels=("particle", "reference"),
                    )
                )
        return panels

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """One series of each drawable kind: particles, a weight matrix, a summary, a loss."""
        from .distributions import DistributionsScene
        from .particles import ParticlesScene
        from .weights import WeightsScene

        series: dict[str, Series] = {}
        series.update(ParticlesScene.example(frames, seed=seed).items())
        series["0.weight"] = WeightsScene.example(frames, seed)["0.weight"]
        dist = DistributionsScene.example(frames, seed)
        series.update((k, s) for k, s in dist.items() if s.source == "fc1")
        return Recording(
            series,
            {"experiment": "example", "caption": "one series of each kind (an example recording)"},
        )


if __name__ == "__main__":
    from .cli import main

    main("render")
