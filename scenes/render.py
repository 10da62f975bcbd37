"""Draw any recording: a dashboard chosen from the kinds of its series.

Run: ``python -m scenes.render RUN.rec`` (writes ``outputs/render.mp4``); ``--show
SERIES[,SERIES]`` chooses what is drawn, and the output, size and quality flags are those
of every scene (``--help`` lists them). Two or more recordings (``python -m scenes.render
runs/a runs/b``), or a TensorBoard log directory of several runs, are compared on one
timeline instead (:mod:`scenes.compare`, ``outputs/compare.mp4``). What each series
becomes:

* a ``(T, n, 2)`` series that is not a parameter: particles in the plane, with their paths;
* a matrix or vector (a parameter, gradient, buffer or derived tensor): a heatmap as
  ``scenes.weights`` draws it (colour limits fixed over the run and centred on 0, per frame
  for gradients; a convolution kernel as a filter grid);
* a summarised tensor (``stats`` with ``histogram`` series): its percentile bands;
* a scalar: a growing curve (log axis where it spans decades);
* a loss landscape (series of kinds ``landscape`` and ``path``, :mod:`dynamics.landscape`):
  its contours with the path growing in it, as ``scenes.landscape`` draws them.

Without ``--show`` the dashboard takes, in this order, one landscape, one particle series, two
summaries, two matrices (parameters first) and scalars, at most six panels. A model of
more than :data:`MANY_TENSORS` parameter tensors gets, instead of two of its matrices,
one picture of them all: the ``scenes.layers`` map of every tensor's relative update
(twice as wide as the other panels).

Layout: panels are packed row by row with no hole (rows of equal height, each split among
its panels), every axis is labelled with its quantity (the loss axis says ``loss``), a
heatmap is at most :data:`~scenes.weights.MAX_STRETCH` times as wide as tall (or tall as
wide), and each panel is fitted into its cell by measuring what it draws, so that no
label reaches into another panel.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dynamics.recording import Recording, Series

from .base import Field, PanelScene, resolve_series, split_names
from .compare import CompareScene
from .curves import scalar_series, spans_decades
from .landscape import LandscapePanel, landscape_names, path_steps
from .layers import map_panel, tensor_map
from .particles import ParticlesScene, ParticlesSceneConfig, planar_series
from .plotting import (
    CurvesPanel,
    DistributionPanel,
    ParticlePanel,
    axes_in,
    fit_into,
    packed_cells,
    thin_step_ticks,
)
from .registry import register
from .weights import WeightsScene, WeightsSceneConfig, matrix_series

__all__ = ["DashboardScene", "DashboardSceneConfig", "plan", "drawable", "pack_rows"]

MAX_PANELS = 6
#: Above this many parameter tensors, the dashboard draws the map of every tensor
#: (``scenes.layers``) instead of two heatmaps.
MANY_TENSORS = 12
#: The name (``--show layers``) and title of the panel of every tensor.
LAYERS = "layers"
#: Width units in one row of the dashboard (a map of every tensor takes two).
ROW_UNITS = 3
#: What the numbers of a summarised tensor are (its percentile bands' axis).
SUMMARISED = {"parameter": "weight", "gradient": "gradient", "activation": "activation"}


@dataclass(frozen=True)
class View:
    """One panel of the dashboard: how (``particles``, ``heatmap``, ``distribution``,
    ``curve``, ``layers``) to draw what (a series name, a summary's label, or ``layers``:
    every parameter tensor)."""

    how: str
    name: str
    steps: np.ndarray


def drawable(recording: Recording) -> tuple[list[str], dict, list[str], list[str]]:
    """What a dashboard can draw, by kind, in the order it chooses: ``(T, n, 2)`` series
    that are not parameters, summaries (by label), matrices and vectors (parameters
    first), scalars."""
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
    # curvature (Sharpness: the top-k eigenvalues, the edge of stability) as curves, first
    curvature = [n for n, s in recording.items() if s.kind == "curvature" and len(s)]
    scalars = curvature + [n for n in scalar_series(recording) if n not in curvature]
    return planar, recording.summaries(), matrices, scalars


def plan(recording: Recording, show: list[str] | None = None) -> list[View]:
    """The panels a dashboard of ``recording`` draws: those of the series in ``show``, else a
    choice by kind (see the module docstring)."""
    planar, summaries, matrices, scalars = drawable(recording)
    landscapes = landscape_names(recording)
    by_series = {
        getattr(s, k): s
        for s in summaries.values()
        for k in ("stats", "histogram", "edges")
        if getattr(s, k)
    }

    def series_view(name: str) -> View:
        if name in landscapes:  # drawn over its path's steps
            return View("landscape", name, path_steps(recording, name))
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
            why = (
                "it needs at least two snapshots"
                if len(s) < 2
                else "a dashboard draws logged and derived scalars as curves, vectors and "
                "matrices as heatmaps, (n, 2) series as particles"
            )
            raise ValueError(
                f"series {name!r} ({s.kind or 'kind not said'}, {len(s)} snapshots of shape "
                f"{s.shape}) is not drawable: {why}"
            )
        return View(how, name, np.asarray(recording[name].steps))

    def layers_view() -> View:
        params = recording.of_kind("parameter")
        if not params or max(len(s) for s in params.values()) < 2:
            raise ValueError(
                f"{LAYERS!r} (every tensor's relative update) needs parameter series of at least "
                f"two snapshots; the recording has {len(params)} parameter series"
            )
        steps = np.unique(np.concatenate([np.asarray(s.steps) for s in params.values()]))
        return View("layers", LAYERS, steps)

    def summary_view(summary) -> View:
        return View("distribution", summary.label, np.asarray(recording[summary.histogram].steps))

    if show:
        if len(show) > MAX_PANELS:
            raise ValueError(f"--show takes at most {MAX_PANELS} series, got {len(show)}")
        views = []
        for name in show:  # a series by its own name first, else a summary by label
            if name in recording and name not in by_series:
                views.append(series_view(name))
            elif name == LAYERS:
                views.append(layers_view())
            elif name in summaries or name in by_series:
                views.append(summary_view(summaries.get(name) or by_series[name]))
            else:
                recording.require(name)
        return views
    # the experiment's choice of summaries first (metadata "show"), then the recorder's order
    preferred = [n for n in recording.metadata.get("show") or [] if n in summaries]
    picked = [summaries[n] for n in dict.fromkeys(preferred + list(summaries))][:2]
    views = [series_view(n) for n in landscapes[:1] + planar[:1]]
    views += [summary_view(s) for s in picked]
    params = recording.of_kind("parameter")
    if len(params) > MANY_TENSORS and max(len(s) for s in params.values()) >= 2:
        views.append(layers_view())
    else:
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
        Comma-separated series (or summary labels such as ``activation fc1``, or layers: the
        relative update of every parameter tensor, one row each) to draw, one panel each, at
        most 6; default: chosen from the kinds of the series (layers for more than 12
        parameter tensors). Each panel's title is the name this takes. With two or more
        runs: the scalar series to compare (see --tensors).
    """

    show: str = ""


@register(
    "render",
    description="Draw any saved recording as a dashboard chosen from the kinds of its series: "
    "scalars as curves, matrices as heatmaps, summaries as percentile bands, (T, n, 2) series as "
    "particles. Two or more recordings, or a TensorBoard log directory of several runs, are "
    "compared on one timeline: their curves overlaid, their distributions side by side.",
)
class DashboardScene(PanelScene):
    """Any recording as a dashboard: curves, heatmaps, percentile bands and particles by kind.

    After the figure is built, ``cells_`` holds each panel's cell (figure fractions): they
    tile the area below the header with no hole, and each panel lies inside its own.
    """

    Config = DashboardSceneConfig
    title = "Training dashboard"
    compare_scene = CompareScene  # two or more recordings: their curves overlaid
    series_fields = ()  # resolved in check(): --show also takes "layers"

    def check(self) -> None:
        rec = self.recording
        show = [
            n if n == LAYERS and n not in rec else resolve_series(rec, n)
            for n in split_names(self.config.show)
        ]
        self.views_ = plan(rec, show)
        if not show:  # chosen here: say what, and what else there is
            planar, summaries, matrices, scalars = drawable(rec)
            drawn = {v.name for v in self.views_}
            if LAYERS in drawn:  # every parameter tensor is in its map
                drawn.update(rec.of_kind("parameter"))
            others = [
                n
                for n in (*landscape_names(rec), *planar, *summaries, *matrices, *scalars)
                if n not in drawn
            ]
            self.note_choice(
                [v.name for v in self.views_],
                f"by kind, at most {MAX_PANELS} panels",
                others,
            )

    def timeline(self) -> np.ndarray:
        return np.unique(np.concatenate([v.steps for v in self.views_]))

    def heading(self) -> str:
        name = self.recording.metadata.get("experiment") or (
            self.recording.path.stem if self.recording.path else ""
        )
        return f"{self.title}: {name}" if name else self.title

    def readout_fields(self):
        return [
            Field(v.name, v.name, "{:.4g}")
            for v in self.views_
            if v.how == "curve" and self.recording[v.name].shape == ()
        ][:3]

    def build(self, fig: Figure):
        units = [2 if v.how == "layers" else 1 for v in self.views_]
        cells = self.cells_ = packed_cells(
            pack_rows(units), left=0.01, right=0.99, bottom=0.01, top=self.header_bottom - 0.01
        )
        panels = []
        rec = self.recording
        summaries = rec.summaries()
        small = len(self.views_) > 3
        for cell, v in zip(cells, self.views_):
            ax = axes_in(fig, cell, colorbar=v.how in ("heatmap", "layers", "landscape"))
            ax.set_title(v.name, fontsize="medium", loc="left")
            if v.how == "curve":
                s = rec[v.name]
                k = int(np.prod(s.shape))  # a (k,) series: k lines (top-k eigenvalues)
                panels.append(
                    CurvesPanel(
                        ax,
                        s.steps,
                        s.values,
                        labels=[f"{v.name}[{i}]" for i in range(k)] if k > 1 else None,
                        log=spans_decades(s.values),
                        xlabel="step",
                        ylabel=v.name,
                    )
                )
            elif v.how == "heatmap":  # as scenes.weights draws it
                config = WeightsSceneConfig()
                note = WeightsScene.describe(rec, v.name, config)[len(v.name) :].strip(" ()")
                ax.set_title(note, fontsize="small", loc="right", color="#444444")
                panels.append(WeightsScene.heatmap_panel(ax, rec, v.name, config, colorbar=True))
            elif v.how == "layers":  # as scenes.layers draws it
                tmap = tensor_map(rec, "update")
                ax.set_title(
                    f"relative update of all {len(tmap.labels)} tensors",
                    fontsize="small",
                    loc="right",
                    color="#444444",
                )
                panels.append(map_panel(ax, tmap))
            elif v.how == "landscape":  # as scenes.landscape draws it
                panels.append(LandscapePanel(ax, rec, v.name, legend=False, short=True))
            elif v.how == "distribution":
                summary = summaries[v.name]
                steps, counts, edges = summary.read(rec)
                panels.append(
                    DistributionPanel(
                        ax,
                        steps,
                        counts,
                        edges,
                        xlabel="step",
                        ylabel=SUMMARISED.get(summary.of, "value"),
                    )
                )
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps: no "2.5"
            else:
                s = rec[v.name]  # references and limits as scenes.particles finds them
                refs, _ = ParticlesScene.references(rec, v.name)
                box = ParticlesScene.view_limit(ParticlesSceneConfig(), s.values, refs)
                panels.append(
                    ParticlePanel(
                        ax,
                        s.steps,
                        s.values,
                        refs,
                        limit=box,
                        particle_size=20.0 if small else 40.0,
                        legend=False,
                        labels=("particle", "reference"),
                        raster=self.raster,
                    )
                )
                ax.set_xlabel("coordinate 0")  # of the series its title names
                ax.set_ylabel("coordinate 1")
            fit_into(ax, cell)
            if v.how not in ("particles", "landscape"):
                thin_step_ticks(ax)
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


def pack_rows(units: list[int], per_row: int = ROW_UNITS) -> list[list[int]]:
    """Panels of ``units`` widths (in order) cut into the fewest rows of at most about
    ``per_row`` units, as even as can be: ``[1, 1, 1, 1, 1]`` -> ``[[1, 1, 1], [1, 1]]``,
    ``[1, 1, 2, 1]`` -> ``[[1, 1], [2, 1]]``. Each row is then split among its panels by
    their units, so the grid has no hole."""
    n = len(units)
    rows = max(1, math.ceil(sum(units) / per_row))
    best = None
    for r in range(min(rows, n), n + 1):
        for cuts in itertools.combinations(range(1, n), r - 1):
            bounds = (0, *cuts, n)
            parts = [units[a:b] for a, b in zip(bounds, bounds[1:])]
            widest = max(sum(p) for p in parts)
            score = (widest > per_row, widest, -min(sum(p) for p in parts))
            if best is None or score < best[0]:
                best = (score, parts)
        if best is not None and not best[0][0]:
            break
    return [list(p) for p in best[1]]


if __name__ == "__main__":
    from .cli import main

    main("render")
