"""Distributions of a CNN's weights and activations over training, compared across runs.

Run: ``python -m scenes.distributions`` trains four runs (Adam or gradient descent, ReLU
or tanh) and renders their distributions side by side on one timeline
(``outputs/distributions_sweep.mp4``, plus ridge plots of the histograms,
``outputs/distributions_sweep_ridge.png``); ``--single`` trains and draws one run as a
dashboard of percentile bands, histograms and statistics. ``--help`` lists every flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series, Summary

from .base import (
    Cell,
    Field,
    PanelScene,
    figure_to_png,
    grid_axes,
    new_figure,
    resolve_series,
    split_names,
)
from .plotting import CurvesPanel, DistributionPanel, HistogramPanel, histogram_percentiles
from .registry import register

__all__ = ["DistributionsScene", "DistributionsSceneConfig"]

ROLE_COLORS = {
    "parameter": "#1f5fbf",
    "activation": "#e6550d",
    "pre-activation": "#7b3294",
    "gradient": "#2ca02c",
}


def _role(recording: Recording, summary: Summary) -> str:
    """What a summarised tensor is: parameter, gradient, or a module output whose role
    (activation, pre-activation) the experiment wrote into ``metadata["roles"]``."""
    if summary.of != "activation":
        return summary.of
    return str((recording.metadata.get("roles") or {}).get(summary.source, "activation"))


def _label(recording: Recording, summary: Summary) -> str:
    role = _role(recording, summary)
    if role == "parameter":
        return summary.source
    if role == "gradient":
        return f"gradient of {summary.source}"
    return f"{role} {summary.source}"


def summary_series(steps, samples, source: str, of: str, bins: int = 20) -> dict[str, Series]:
    """The ``stats``, ``histogram`` and ``edges`` series of a summarised tensor (``bins``
    adaptive bins) made from one sample of values per step, as the recorder writes them:
    for example recordings."""
    stats, hist, edges = [], [], []
    for values in samples:
        counts, e = np.histogram(values, bins)
        stats.append([values.mean(), values.std(), values.min(), values.max()])
        hist.append(counts)
        edges.append(e)
    return {
        f"{kind}/{source}": Series(steps, np.array(data), kind=kind, source=source, of=of)
        for kind, data in (("stats", stats), ("histogram", hist), ("edges", edges))
    }


def tensor_names(recording: Recording) -> dict[str, str]:
    """Every name ``tensors`` takes for a summarised tensor, mapped to its ``stats`` series:
    the title this scene gives it (``pre-activation fc1`` where the experiment names
    roles), its label (``activation fc1``, ``gradient of fc1.weight``, ``conv2.weight``)
    and the names of its series (``stats/fc1``, ``histogram/fc1``)."""
    names: dict[str, str] = {}
    for summary in recording.summaries().values():
        for series in (summary.stats, summary.histogram, summary.edges):
            if series:
                names[series] = summary.stats
    for label, summary in recording.summaries().items():
        names.setdefault(label, summary.stats)
        names.setdefault(_label(recording, summary), summary.stats)
    return names


def default_choice(recording: Recording) -> tuple[list[Summary], str]:
    """What is drawn without ``tensors``, and which rule chose it: the experiment's
    ``metadata["show"]``, else the first and last module output and the first parameter."""
    summaries = recording.summaries()
    if not summaries:
        raise KeyError(
            f"recording has no summarised tensors (stats and histogram series); it has: "
            f"{', '.join(recording.keys()) or 'none'}"
        )
    names = tensor_names(recording)
    by_stats = {s.stats: s for s in summaries.values()}
    wanted = [by_stats[names[n]] for n in recording.metadata.get("show") or [] if n in names]
    if wanted:
        return list(dict.fromkeys(wanted)), "the experiment's choice"
    outputs = [s for s in summaries.values() if s.of == "activation"]
    params = [s for s in summaries.values() if s.of == "parameter"]
    picks = outputs[:1] + outputs[-1:] + params[:1]
    if picks:
        return list(dict.fromkeys(picks)), "the first and last module output, the first parameter"
    return list(summaries.values())[:3], "the first three"


def chosen(recording: Recording, config) -> list[Summary]:
    """The summaries a scene draws: ``config.tensors``, each by any name of
    :func:`tensor_names` (a misspelt one fails in one line with the closest names), else
    :func:`default_choice`."""
    if not config.names:
        return default_choice(recording)[0]
    names = tensor_names(recording)
    by_stats = {s.stats: s for s in recording.summaries().values()}
    return [
        by_stats[resolve_series(recording, n, what="summarised tensor", aliases=names)]
        for n in config.names
    ]


@dataclass(frozen=True)
class DistributionsSceneConfig:
    """What the distributions movie shows.

    Attributes
    ----------
    tensors : str
        Comma-separated summarised tensors, one row each in a single run's dashboard, named
        as the panel titles show them: ``conv2.weight``, ``gradient of conv2.weight``,
        ``activation fc1`` (or, where the experiment names roles, ``pre-activation fc1``),
        or by a series of theirs (``stats/fc1``); in a comparison the first one is drawn.
        Empty: the experiment's choice, else the first and last module output and the
        first parameter (the command says which, when there were more).
    """

    tensors: str = ""

    @property
    def names(self) -> list[str]:
        return split_names(self.tensors)


@register(
    "distributions",
    experiment="dynamics.experiments.distributions",
    description="Train the course's small CNN on generated digits and animate the distributions "
    "of its "
    "weights, pre-activations and activations over training (TensorBoard's histogram and "
    "distribution "
    "views, every step kept), comparing Adam with gradient descent and ReLU with tanh; draws the "
    "summaries of any saved recording too.",
    default_sweep=("optimizer=adam,gd", "activation=relu,tanh"),
)
class DistributionsScene(PanelScene):
    """One run's summarised tensors: percentile bands, histogram and statistics per tensor.

    Per tensor: percentile bands over steps, the histogram at the current step and
    mean/std/min/max curves; loss and test accuracy in the header.

    Reads the ``stats``, ``histogram`` and ``edges`` series of summarised tensors (see
    :class:`dynamics.Recorder`, ``summaries=`` and ``activations=``), the metadata entries
    ``roles`` and ``show`` when present, and ``loss``, ``test_accuracy`` when present.
    """

    Config = DistributionsSceneConfig
    title = "Distributions of weights and activations over training"
    readout = (Field("loss", "loss", "{:.3f}"), Field("test_accuracy", "test acc", "{:.3f}"))
    small_multiples = True
    header_left = 0.07

    def check(self) -> None:
        self.summaries_ = chosen(self.recording, self.config)
        if not self.config.names:  # chosen here: say what, and what else there is
            rec, (_, why) = self.recording, default_choice(self.recording)
            others = [s for s in rec.summaries().values() if s not in self.summaries_]
            self.note_choice(
                [_label(rec, s) for s in self.summaries_],
                f"{why}; a comparison draws the first",
                [_label(rec, s) for s in others],
                flag="--tensors",
            )

    def timeline(self) -> np.ndarray:
        # frames follow the summaries' schedule, not every logged loss
        return np.asarray(self.recording[self.summaries_[0].histogram].steps)

    def build(self, fig: Figure):
        rec = self.recording
        gs = grid_axes(
            fig,
            len(self.summaries_),
            3,
            top=0.84,
            bottom=0.08,
            left=0.07,
            right=0.98,
            hspace=0.55,
            wspace=0.28,
        )
        panels = []
        for r, summary in enumerate(self.summaries_):
            steps, counts, edges = summary.read(rec)
            color, label = ROLE_COLORS[_role(rec, summary)], _label(rec, summary)
            last = r == len(self.summaries_) - 1
            ax = fig.add_subplot(gs[r, 0])
            panels.append(
                DistributionPanel(
                    ax, steps, counts, edges, color=color, xlabel="step" if last else "", ylabel=""
                )
            )
            ax.set_title(f"{label}: percentiles", fontsize="medium", loc="left", color=color)
            ax = fig.add_subplot(gs[r, 1])
            panels.append(
                HistogramPanel(
                    ax, steps, counts, edges, color=color, xlabel="value" if last else "", ylabel=""
                )
            )
            ax.set_title("histogram at this step", fontsize="medium", loc="left")
            ax = fig.add_subplot(gs[r, 2])
            stats = rec[summary.stats]
            panels.append(
                CurvesPanel(
                    ax,
                    stats.steps,
                    stats.values,
                    labels=["mean", "std", "min", "max"],
                    reveal="cursor",
                    colors=["#333333", color, "#9e9e9e", "#9e9e9e"],
                    xlabel="step" if last else "",
                    legend_loc="upper left",
                )
            )
            ax.set_title("mean, std, min, max", fontsize="medium", loc="left")
        return panels

    def handout_panels(self, sheet, cell: Cell, shared: dict):
        """A keyframe of the handout: the first tensor's percentile bands over steps with a
        cursor at the step, beside its histogram at the step."""
        from .handout import main_and_curves

        rec = self.recording
        summary = self.summaries_[0]
        steps, counts, edges = summary.read(rec)
        color, label = ROLE_COLORS[_role(rec, summary)], _label(rec, summary)

        def bands(ax):
            ax.set_title(f"{label}: percentiles", loc="left", color=color)
            return DistributionPanel(
                ax, steps, counts, edges, color=color, ylim=shared.get("ylim"), ylabel=label
            )

        def histogram(ax):
            ax.set_title("histogram at this step", loc="left")
            return HistogramPanel(ax, steps, counts, edges, color=color, xlabel=label)

        return main_and_curves(sheet, bands, histogram, aspect=None, share=0.55)

    # -- small multiples (the default comparison) -------------------------------------------
    @classmethod
    def sweep_scales(cls, recordings, config) -> dict:
        """One value axis for every run: the widest 0th-100th percentile range."""
        lo, hi = np.inf, -np.inf
        for rec in recordings:
            steps, counts, edges = chosen(rec, config)[0].read(rec)
            p = histogram_percentiles(counts, edges, [0, 100])
            if np.isfinite(p).any():
                lo, hi = min(lo, np.nanmin(p)), max(hi, np.nanmax(p))
        if not np.isfinite([lo, hi]).all():
            return {}
        pad = 0.05 * (hi - lo or 1)
        return {"ylim": (lo - pad, hi + pad)}

    @classmethod
    def small_panel(cls, ax, recording: Recording, config, shared: dict, cell: Cell):
        summary = chosen(recording, config)[0]
        steps, counts, edges = summary.read(recording)
        panel = DistributionPanel(
            ax,
            steps,
            counts,
            edges,
            color=ROLE_COLORS[_role(recording, summary)],
            ylim=shared.get("ylim"),
            xlabel="step" if cell.last_row else "",
            ylabel=_label(recording, summary) if cell.first_col else "",
        )
        if "test_accuracy" in recording:
            acc = recording["test_accuracy"]
            ax.text(
                0.98,
                0.04,
                f"test accuracy {float(acc.values[-1]):.3f} at step {int(acc.steps[-1]):,d}",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize="small",
                bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0},
            )
        ax.tick_params(labelsize="x-small")
        return panel

    @classmethod
    def sweep_figures(cls, recordings, labels, config, options, stem: Path) -> list[Path]:
        """Ridge plots: the first tensor's histograms at ten steps, offset upward, one per run."""
        runs = [(label, rec) for label, rec in zip(labels, recordings) if rec is not None]
        fig = new_figure(options)
        fig.patch.set_facecolor("white")
        first = runs[0][1]
        summary = chosen(first, config)[0]
        color, name = ROLE_COLORS[_role(first, summary)], _label(first, summary)
        for j, (label, rec) in enumerate(runs):
            ax = fig.add_subplot(1, len(runs), j + 1)
            steps, counts, edges = chosen(rec, config)[0].read(rec)
            edges = np.broadcast_to(edges, (len(counts), counts.shape[1] + 1))
            pick = np.unique(np.linspace(0, len(steps) - 1, 10).round().astype(int))
            dens = [
                counts[t] / max(counts[t].sum(), 1) / np.maximum(np.diff(edges[t]), 1e-300)
                for t in pick
            ]
            scale = 1.0 / max(float(np.max(d)) for d in dens) * 2.5
            for k, (t, d) in enumerate(zip(pick, dens)):
                base = k
                ax.fill_between(
                    edges[t][:-1],
                    base,
                    base + d * scale,
                    step="post",
                    color=color,
                    alpha=0.35,
                    linewidth=0,
                    zorder=len(pick) - k,
                )
                ax.plot(
                    edges[t],
                    np.append(base + d * scale, base + d[-1] * scale),
                    drawstyle="steps-post",
                    color=color,
                    linewidth=1.0,
                    zorder=len(pick) - k,
                )
            ax.set_yticks(range(len(pick)), [f"{int(steps[t]):,d}" for t in pick])
            ax.set_ylabel("step" if j == 0 else "")
            ax.set_xlabel(name)
            ax.set_title(label, fontsize="medium")
            ax.grid(True, axis="x", color="#e6e6e6")
        fig.suptitle(f"Histograms of {name} over training", fontsize="large", weight="bold")
        fig.tight_layout()
        return [figure_to_png(fig, Path(f"{stem}_ridge.png"))]

    def write_figures(self, stem: Path) -> list[Path]:
        return self.sweep_figures([self.recording], ["this run"], self.config, self.options, stem)

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """Summaries (numpy's, 20 adaptive bins) of a weight, a pre-activation and an
        activation whose spread shrinks over training; loss and test accuracy."""
        rng = np.random.default_rng(seed)
        steps = np.arange(frames, dtype=np.int64) * 10
        series = {
            "loss": Series(steps, np.geomspace(2.3, 0.3, frames), kind="scalar"),
            "test_accuracy": Series(
                steps[::3], np.linspace(0.1, 0.9, len(steps[::3])), kind="scalar"
            ),
        }
        for of, source, scale in (
            ("activation", "fc1", 3.0),
            ("activation", "act3", 1.0),
            ("parameter", "conv2.weight", 0.1),
        ):
            samples = [rng.normal(0, scale * (1 - 0.5 * t / frames), 2000) for t in range(frames)]
            if source == "act3":
                samples = [np.maximum(v, 0) for v in samples]
            series.update(summary_series(steps, samples, source, of))
        meta = {
            "roles": {"fc1": "pre-activation", "act3": "activation"},
            "caption": "three tensors whose spread shrinks (an example recording)",
        }
        return Recording(series, meta)


if __name__ == "__main__":
    from .cli import main

    main("distributions")
