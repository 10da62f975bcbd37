"""Several runs on one timeline: their curves overlaid, their distributions side by side.

Run: ``python -m scenes.render runs/a runs/b [...]`` (recordings, TensorBoard logs, or
both), or ``python -m scenes.render LOGDIR`` where LOGDIR holds several TensorBoard runs
(writes ``outputs/compare.mp4``). The runs are read by :func:`dynamics.load_runs` and named
after their folders (made unique by their parents). A frame shows one training step in
every panel: the timeline is the union of the runs' steps, and each run's curve is drawn
up to the frame's step (a run that has not reached it yet has no line there).

What is drawn:

* one panel per scalar series the runs share, by name (at most :data:`MAX_CURVES`; by
  default those two or more runs have, the most shared first; ``--show`` chooses), one
  line per run in the run's colour, on a log axis where the lines span decades;
* for a tensor the runs summarise (a TensorBoard histogram, a recorder's ``summaries=``),
  its percentile bands side by side, one panel per run, on the same value axis (the first
  one two or more runs share; ``--tensors`` chooses, at most :data:`MAX_TENSORS`);
* one legend of the runs, beside the panels.

A run without a series has no line (or panel) for it, and the command says so. This
scene is not registered on its own: the scene contract builds a scene from one recording
(``cls(cls.example())``, saved and loaded again), and packing several runs into one
recording would rename every series. ``python -m scenes.render`` hands two or more
recordings, or a log directory of several runs, to it (:attr:`DashboardScene.compare_scene
<scenes.render.DashboardScene>`); one recording gets the dashboard as before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dynamics.recording import Recording, Series, Summary

from .base import PanelScene, RenderOptions, closest_names, series_aliases, split_names
from .curves import scalar_series, spans_decades
from .distributions import summary_series
from .plotting import (
    COLORS,
    DistributionPanel,
    Panel,
    axes_in,
    bracket,
    fit_into,
    histogram_percentiles,
    packed_cells,
    thin_step_ticks,
)

__all__ = ["CompareScene", "CompareSceneConfig", "RunsPanel", "MAX_RUNS", "MAX_CURVES"]

#: Runs in one comparison: each gets one of matplotlib's first colours (C0 ... C7), and
#: their distributions fit side by side in one row.
MAX_RUNS = 8
#: Curve panels in one frame (two rows of three, with a row of distributions below).
MAX_CURVES = 6
#: Summarised tensors drawn side by side (one row each).
MAX_TENSORS = 2
#: Rows of panels in one frame.
MAX_ROWS = 3
#: Curve panels in one row.
PER_ROW = 3
#: Run names longer than this are shortened in the middle in the legend and titles.
MAX_NAME = 28
#: The subtitle lists the runs' names where they take at most this many characters.
MAX_SUBTITLE = 110
#: What the numbers of a summarised tensor are (the value axis of its bands).
SUMMARISED = {"parameter": "weight", "gradient": "gradient", "activation": "activation"}


@dataclass(frozen=True)
class CompareSceneConfig:
    """What a comparison of runs shows.

    Attributes
    ----------
    show : str
        With two or more runs: comma-separated scalar series to compare, one panel each
        with a line per run that has it, at most 6; default: the scalars that two or more
        runs share, the most shared first.
    tensors : str
        With two or more runs: comma-separated summarised tensors (labels such as
        fc1.weight, gradient of fc1.weight, activation fc1, or their series) drawn side by
        side, one panel per run on the same value axis, one row each, at most 2; default:
        the first that two or more runs share.
    """

    show: str = ""
    tensors: str = ""


@dataclass(frozen=True)
class Compared:
    """One panel (or row) of the comparison: a series (or a summary's label) and, for each
    run that has it, its series (or summary)."""

    name: str
    runs: dict[str, Any]


def _short(name: str, most: int = MAX_NAME) -> str:
    if len(name) <= most:
        return name
    keep = most - 1
    return name[: keep // 2] + "\u2026" + name[len(name) - (keep - keep // 2) :]


class RunsPanel(Panel):
    """One series of several runs on one axes: a line per run, each on its own steps, grown
    to the frame's step (a run that has not begun by then has none), a dot at its end.

    Parameters
    ----------
    ax : Axes
    steps, values : sequence of (T_k,) arrays
        One pair per run.
    colors, labels : sequence of str
        One per run (the lines' labels, for a legend outside the axes).
    xlim : (float, float)
        The shared timeline's first and last step.
    log : bool
        Logarithmic y axis (limits from the positive values).
    """

    def __init__(
        self,
        ax,
        steps: Sequence[np.ndarray],
        values: Sequence[np.ndarray],
        colors: Sequence[str],
        labels: Sequence[str],
        *,
        xlim: tuple[float, float],
        log: bool = False,
        xlabel: str = "step",
        ylabel: str = "",
    ):
        self.ax = ax
        self.steps = [np.asarray(s) for s in steps]
        self.values = [np.asarray(v, dtype=float) for v in values]
        finite = np.concatenate([v[np.isfinite(v)] for v in self.values] or [np.zeros(0)])
        if log:
            ax.set_yscale("log")
            finite = finite[finite > 0]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            if log:
                ax.set_ylim(lo / 2, hi * 2)
            else:
                pad = 0.05 * (hi - lo or 1)
                ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(xlim[0], max(xlim[1], xlim[0] + 1))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, color=COLORS["grid"], linewidth=0.8)
        self.lines = [
            ax.plot([], [], color=c, linewidth=1.8, zorder=2, label=label)[0]
            for c, label in zip(colors, labels)
        ]
        self.dots = [
            ax.plot([], [], "o", color=c, markersize=5, markeredgecolor="white", zorder=4)[0]
            for c in colors
        ]

    def moving(self) -> list[Any]:
        return [*self.lines, *self.dots]

    def draw(self, step: int | float) -> None:
        for s, v, line, dot in zip(self.steps, self.values, self.lines, self.dots):
            if not len(s) or step < s[0]:
                line.set_data([], [])
                dot.set_data([], [])
                continue
            i, k, w = bracket(s, step)
            x, y = s[: i + 1].astype(float), v[: i + 1]
            if w:  # between snapshots i and k: the line grows to the interpolated point
                x = np.append(x, s[i] + w * (s[k] - s[i]))
                y = np.append(y, v[i] + w * (v[k] - v[i]))
            line.set_data(x, y)
            dot.set_data(x[-1:], y[-1:])


def _listed(names: Sequence[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")


class CompareScene(PanelScene):
    """Several runs on one timeline: overlaid curves, distributions side by side.

    Parameters
    ----------
    runs : mapping of str to Recording
        Two or more runs by name (:func:`dynamics.load_runs` reads and names them), at most
        :data:`MAX_RUNS`; the legend lists them in this order.
    config : CompareSceneConfig, optional
    options : RenderOptions, optional

    Attributes
    ----------
    curves_ : list of Compared
        The scalar series drawn, one panel each.
    tensors_ : list of Compared
        The summarised tensors drawn, one row of panels (one per run) each.
    colors_ : dict of str to str
        Each run's colour.
    """

    Config = CompareSceneConfig
    title = "Comparing runs"
    series_fields = ()  # resolved against every run in check()

    def __init__(
        self,
        runs: Mapping[str, Recording],
        config: CompareSceneConfig | None = None,
        options: RenderOptions | None = None,
    ):
        if not isinstance(runs, Mapping):
            raise TypeError(
                f"runs must map run names to recordings (dynamics.load_runs gives one), got "
                f"{type(runs).__name__}"
            )
        self.runs = dict(runs)
        if len(self.runs) < 2:
            raise ValueError(f"a comparison needs two or more runs, got {len(self.runs)}")
        if len(self.runs) > MAX_RUNS:
            raise ValueError(
                f"at most {MAX_RUNS} runs fit one comparison, got {len(self.runs)} "
                f"({_listed(list(self.runs))}); give at most {MAX_RUNS} of them as paths"
            )
        super().__init__(next(iter(self.runs.values())), config, options)

    # -- what is drawn ------------------------------------------------------------------
    def check(self) -> None:
        runs = self.runs
        self.colors_ = {name: f"C{j}" for j, name in enumerate(runs)}
        scalars = {run: scalar_series(rec) for run, rec in runs.items()}
        summaries = {run: rec.summaries() for run, rec in runs.items()}
        shared_scalars = _shared(scalars)
        shared_tensors = _shared({run: list(s) for run, s in summaries.items()})
        if not shared_scalars and not shared_tensors:
            has = "; ".join(
                f"{run} has {_listed([*scalars[run], *summaries[run]]) or 'no scalar or summary'}"
                for run in runs
            )
            raise ValueError(f"the runs share no scalar or summarised series to compare: {has}")
        cfg = self.config
        show = [self._resolve_scalar(n, scalars) for n in split_names(cfg.show)]
        tensors = [self._resolve_tensor(n, summaries) for n in split_names(cfg.tensors)]
        if len(show) > MAX_CURVES:
            raise ValueError(f"--show takes at most {MAX_CURVES} series, got {len(show)}")
        if len(tensors) > MAX_TENSORS:
            raise ValueError(f"--tensors takes at most {MAX_TENSORS} tensors, got {len(tensors)}")
        if not tensors:  # chosen here: say what, and what else there is
            tensors = shared_tensors[:1]
            self.note_choice(
                tensors, "the first that two or more runs summarise", shared_tensors[1:],
                flag="--tensors",
            )  # fmt: skip
        room = (MAX_ROWS - len(tensors)) * PER_ROW
        if not show:
            show = shared_scalars[: min(room, MAX_CURVES)]
            self.note_choice(
                show,
                f"scalars two or more runs have, at most {min(room, MAX_CURVES)} panels",
                shared_scalars[len(show) :],
            )
        elif len(show) > room:
            raise ValueError(
                f"{len(show)} curves and {len(tensors)} rows of distributions do not fit one "
                f"frame (at most {MAX_ROWS} rows of {PER_ROW} panels): choose fewer with --show "
                "or --tensors"
            )
        self.curves_ = [
            Compared(n, {run: runs[run][n] for run in runs if n in scalars[run]}) for n in show
        ]
        self.tensors_ = [
            Compared(n, {run: summaries[run][n] for run in runs if n in summaries[run]})
            for n in tensors
        ]
        lacking = [
            f"{c.name} ({', '.join(run for run in runs if run not in c.runs)})"
            for c in (*self.curves_, *self.tensors_)
            if len(c.runs) < len(runs)
        ]
        if lacking:
            self.note("runs without a series have no line or panel for it: " + "; ".join(lacking))

    def _resolve_scalar(self, name: str, scalars: dict[str, list[str]]) -> str:
        """``name``, a scalar series of at least one run (else one line: the closest names)."""
        if any(name in names for names in scalars.values()):
            return name
        have = [n for names in scalars.values() for n in names]
        if any(name in series_aliases(rec) for rec in self.runs.values()):
            if any(name in rec.summaries() for rec in self.runs.values()):
                raise ValueError(
                    f"{name!r} is a summarised tensor: a comparison draws it side by side, "
                    f'chosen with --tensors "{name}" (--show takes scalars)'
                )
        elsewhere = [run for run, rec in self.runs.items() if name in rec]
        if elsewhere:
            s = self.runs[elsewhere[0]][name]
            kind = s.kind or "kind not said"
            raise ValueError(
                f"series {name!r} of {', '.join(elsewhere)} is not a scalar ({kind}, snapshots "
                f"of shape {s.shape}): a comparison draws scalars as curves (--show) and "
                "summarised tensors side by side (--tensors)"
            )
        close = ", ".join(repr(c) for c in closest_names(name, have))
        raise KeyError(
            f"no run has a scalar series {name!r}; closest: {close or 'none'} "
            f"(runs: {', '.join(self.runs)})"
        )

    def _resolve_tensor(self, name: str, summaries: dict[str, dict[str, Summary]]) -> str:
        """The label of the summary ``name`` stands for (its label, or one of its series) in
        at least one run (else one line: the closest labels)."""
        aliases: dict[str, str] = {}
        for found in summaries.values():
            for label, s in found.items():
                aliases.update({k: label for k in (s.stats, s.histogram, s.edges) if k})
                aliases[label] = label
        if name in aliases:
            return aliases[name]
        labels = [label for found in summaries.values() for label in found]
        close = ", ".join(repr(c) for c in closest_names(name, labels))
        raise KeyError(
            f"no run has a summarised tensor {name!r}; closest: {close or 'none'} "
            f"(runs: {', '.join(self.runs)})"
        )

    def timeline(self) -> np.ndarray:
        steps = [np.asarray(s.steps) for c in self.curves_ for s in c.runs.values()]
        steps += [
            np.asarray(rec[s.histogram].steps)
            for c in self.tensors_
            for rec, s in ((self.runs[run], s) for run, s in c.runs.items())
        ]
        return np.unique(np.concatenate(steps)) if steps else np.zeros(0, np.int64)

    def default_chapters(self) -> list:
        """None: one run's chapters would not fit the others."""
        return []

    def heading(self) -> str:
        return f"{self.title}: {len(self.runs)} runs on one timeline"

    def subtitle(self) -> str:
        """The runs' names, where they fit one line (else the legend names them)."""
        names = ", ".join(self.runs)
        return names if len(names) <= MAX_SUBTITLE else ""

    def with_options(self, **changes: Any) -> "CompareScene":
        return CompareScene(self.runs, self.config, replace(self.options, **changes))

    # -- drawing --------------------------------------------------------------------------
    def build(self, fig: Figure):
        return self._layout(fig, top=self.header_bottom - 0.01, right=0.84, legend=True)

    def handout_panels(self, sheet, cell, shared: dict):
        """A keyframe of the handout: the movie's layout on the whole cell; the page's
        legend names the runs (the lines carry their names)."""
        return self._layout(sheet, top=1.0, right=1.0, legend=False)

    def _layout(self, fig, *, top: float, right: float, legend: bool) -> list[Panel]:
        n = len(self.curves_)
        cols = n if n <= PER_ROW else 2 if n == 4 else PER_ROW
        rows = [[1] * min(cols, n - r) for r in range(0, n, cols)] if n else []
        rows += [[1] * len(t.runs) for t in self.tensors_]
        cells = iter(packed_cells(rows, left=0.0, right=right, bottom=0.0, top=top))
        lo, hi = float(self.steps_[0]), float(self.steps_[-1])
        panels: list[Panel] = []
        last_curve_row = {k for k in range(n) if k + cols >= n}
        for k, c in enumerate(self.curves_):
            cell = next(cells)
            ax = axes_in(fig, cell)
            ax.set_title(c.name, fontsize="medium", loc="left")
            runs = list(c.runs)
            values = [np.asarray(s.values, dtype=float) for s in c.runs.values()]
            panels.append(
                RunsPanel(
                    ax,
                    [np.asarray(s.steps) for s in c.runs.values()],
                    values,
                    [self.colors_[run] for run in runs],
                    [_short(run) for run in runs],
                    xlim=(lo, hi),
                    log=spans_decades(np.concatenate([v.ravel() for v in values])),
                    xlabel="step" if k in last_curve_row or self.tensors_ else "",
                )
            )
            fit_into(ax, cell)
            thin_step_ticks(ax)
        for t in self.tensors_:
            panels += self._distribution_row(fig, t, [next(cells) for _ in t.runs], (lo, hi))
        if legend:
            self._legend(fig, top=top, left=right + 0.01)
        return panels

    def _legend(self, fig, *, top: float, left: float) -> None:
        """The legend of the runs, in the column right of ``left``: a smaller font, then
        names shortened in the middle, until it fits the frame."""
        handles = [Line2D([], [], color=self.colors_[run], linewidth=2.4) for run in self.runs]
        renderer = fig.canvas.get_renderer()
        sizes, most = ["medium", "small", "x-small"], MAX_NAME
        while True:
            legend = fig.legend(
                handles,
                [_short(run, most) for run in self.runs],
                loc="upper left",
                bbox_to_anchor=(left, top - 0.02),
                fontsize=sizes[0],
                title="run",
                title_fontsize=sizes[0],
                frameon=False,
                handlelength=1.6,
                borderaxespad=0.0,
            )
            if legend.get_window_extent(renderer).x1 <= fig.bbox.x1 - 4 or most <= 8:
                return
            legend.remove()
            if len(sizes) > 1:
                sizes.pop(0)
            else:
                most -= 2

    def _distribution_row(self, fig, t: Compared, cells, xlim) -> list[Panel]:
        """The percentile bands of summary ``t``, one panel per run, on one value axis."""
        read = {run: s.read(self.runs[run]) for run, s in t.runs.items()}
        bounds = [
            histogram_percentiles(counts, edges, [0, 100]) for _, counts, edges in read.values()
        ]
        finite = np.concatenate([b[np.isfinite(b)] for b in bounds])
        ylim = None
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            pad = 0.05 * (hi - lo or 1)
            ylim = (lo - pad, hi + pad)
        of = next(iter(t.runs.values())).of
        panels = []
        for j, (cell, (run, (steps, counts, edges))) in enumerate(zip(cells, read.items())):
            ax = axes_in(fig, cell)
            panel = DistributionPanel(
                ax,
                steps,
                counts,
                edges,
                color=self.colors_[run],
                ylim=ylim,
                ylabel=f"{SUMMARISED.get(of, 'value')}: {t.name}" if j == 0 else "",
            )
            ax.set_xlim(*xlim)  # the shared timeline, as the curves above
            if j:
                ax.tick_params(labelleft=False)  # the same value axis as the first
            ax.set_title(_short(run), fontsize="medium", loc="left", color=self.colors_[run])
            fit_into(ax, cell)
            thin_step_ticks(ax)
            panels.append(panel)
        return panels

    @classmethod
    def example_runs(cls, frames: int = 12, seed: int = 0) -> dict[str, Recording]:
        """Three runs of one small network at three learning rates (numpy only), the third
        on a coarser step grid and without an accuracy: a loss, an accuracy and the summary
        of a weight (20 adaptive bins) whose spread grows with the learning rate."""
        rng = np.random.default_rng(seed)
        out = {}
        for k, lr in enumerate((0.01, 0.1, 1.0)):
            steps = np.arange(frames, dtype=np.int64) * (20 if k == 2 else 10)
            t = np.linspace(0, 1, frames)
            series = {"loss": Series(steps, 2.3 * np.exp(-6 * t * (k + 1)), kind="scalar")}
            if k < 2:
                series["accuracy"] = Series(steps, 0.5 + 0.45 * t ** (1 / (1 + k)), kind="scalar")
            samples = [
                rng.normal(0, 0.1 * (1 + lr * 4 * step / frames), 2000) for step in range(frames)
            ]
            series.update(summary_series(steps, samples, "fc1.weight", "parameter"))
            out[f"lr={lr:g}"] = Recording(series, {"experiment": f"lr={lr:g}"})
        return out


def _shared(have: Mapping[str, Sequence[str]]) -> list[str]:
    """The names that two or more runs have, the most shared first (then in the order the
    runs have them)."""
    count: dict[str, int] = {}
    for names in have.values():
        for n in dict.fromkeys(names):
            count[n] = count.get(n, 0) + 1
    return sorted((n for n, c in count.items() if c >= 2), key=lambda n: -count[n])
