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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .base import PanelScene, frame_indices, grid_axes
from .cli import main, register
from .plotting import CurvesPanel, DistributionPanel, HistogramPanel, Readout, histogram_percentiles, snapshot_at
from .writers import open_writer

__all__ = ["DistributionsScene", "DistributionsSceneConfig"]

KIND_COLORS = {"weight": "#1f5fbf", "activation": "#e6550d", "pre-activation": "#7b3294", "gradient": "#2ca02c"}


def _kind(name: str) -> str:
    if name.startswith("grad/"):
        return "gradient"
    if name.startswith("act/"):
        return "activation" if name[4:].startswith("act") else "pre-activation"
    return "weight"


def _label(name: str) -> str:
    return {"weight": f"{name}", "gradient": f"gradient of {name[5:]}",
            "activation": f"activation {name[4:]}", "pre-activation": f"pre-activation {name[4:]}"}[_kind(name)]


def _hist(recording, name: str):
    """steps, counts, edges of a summarised tensor (edges per step, or fixed from metadata)."""
    hist = recording[f"hist/{name}"]
    if f"edges/{name}" in recording:
        edges = np.asarray(recording[f"edges/{name}"].values)
    else:
        edges = np.asarray(recording.metadata["recorder"]["summaries"]["edges"])
    return np.asarray(hist.steps), np.asarray(hist.values), edges


@dataclass(frozen=True)
class DistributionsSceneConfig:
    """What the distributions movie shows.

    Attributes
    ----------
    tensors : str
        Comma-separated summarised tensors, one row each in a single run's dashboard
        (``conv1.weight``, ``grad/fc1.weight``, ``act/conv1`` for a pre-activation,
        ``act/act1`` for an activation ...); in a comparison the first one is drawn.
    single : bool
        Train and draw only the configured run (a dashboard), instead of the default
        comparison of Adam vs gradient descent and ReLU vs tanh.
    """

    tensors: str = "act/fc1,act/act3,conv2.weight"
    single: bool = False

    @property
    def names(self) -> list[str]:
        names = [t.strip() for t in self.tensors.split(",") if t.strip()]
        if not names:
            raise ValueError("tensors needs at least one name")
        return names

    def __post_init__(self):
        self.names  # noqa: B018  (validates)


@register(
    "distributions",
    experiment="dynamics.experiments.distributions",
    description="Train the course's small CNN on generated digits and animate the distributions of its "
    "weights, pre-activations and activations over training (TensorBoard's histogram and distribution "
    "views, every step kept), comparing Adam with gradient descent and ReLU with tanh.",
    default_sweep=("optimizer=adam,gd", "activation=relu,tanh"),
)
class DistributionsScene(PanelScene):
    """One run's dashboard: per tensor, percentile bands over steps, the histogram at the
    current step and mean/std/min/max curves; test accuracy in the header.

    Reads ``hist/<tensor>``, ``stats/<tensor>`` and ``edges/<tensor>`` series (see
    :class:`dynamics.Recorder`, ``summaries=`` and ``activations=``), and ``loss``,
    ``test_accuracy`` when present.
    """

    requires = ("loss",)
    timeline = "loss"
    Config = DistributionsSceneConfig
    title = "Distributions of weights and activations over training"

    def __init__(self, recording, config=None, options=None):
        super().__init__(recording, config, options)
        names = self.config.names
        recording.require(*(f"{p}/{n}" for n in names for p in ("hist", "stats")))
        # frames follow the summaries' schedule, not every logged loss
        self.summary_steps_ = np.asarray(recording[f"hist/{names[0]}"].steps)
        self.frames_ = frame_indices(len(self.summary_steps_), self.options.stride)

    def timeline_steps(self) -> np.ndarray:
        return self.summary_steps_

    def build(self, fig: Figure):
        rec, names = self.recording, self.config.names
        fig.patch.set_facecolor("white")
        gs = grid_axes(fig, len(names), 3, top=0.84, bottom=0.08, left=0.07, right=0.98, hspace=0.55, wspace=0.28)
        panels = []
        for r, name in enumerate(names):
            steps, counts, edges = _hist(rec, name)
            color = KIND_COLORS[_kind(name)]
            last = r == len(names) - 1
            ax = fig.add_subplot(gs[r, 0])
            panels.append(DistributionPanel(ax, steps, counts, edges, color=color, xlabel="step" if last else "",
                                            ylabel=""))
            ax.set_title(f"{_label(name)}: percentiles", fontsize="medium", loc="left", color=color)
            ax = fig.add_subplot(gs[r, 1])
            panels.append(HistogramPanel(ax, steps, counts, edges, color=color, xlabel="value" if last else "",
                                         ylabel=""))
            ax.set_title("histogram at this step", fontsize="medium", loc="left")
            ax = fig.add_subplot(gs[r, 2])
            stats = rec[f"stats/{name}"]
            panels.append(CurvesPanel(ax, stats.steps, stats.values, labels=["mean", "std", "min", "max"],
                                      reveal="cursor", colors=["#333333", color, "#9e9e9e", "#9e9e9e"],
                                      xlabel="step" if last else "", legend_loc="upper left"))
            ax.set_title("mean, std, min, max", fontsize="medium", loc="left")
        c = rec.metadata.get("config", {})
        details = ", ".join(f"{k} {c[k]}" for k in ("optimizer", "lr", "activation", "init") if k in c)
        fig.text(0.07, 0.955, self.title, fontsize="x-large", weight="bold", va="center")
        fig.text(0.07, 0.905, f"CNN on generated digits: {details}" if details else "", fontsize="medium",
                 color="#444444", va="center")
        self.scores_ = {n: rec[n] for n in ("loss", "test_accuracy") if n in rec}
        fields = [("step", "{:,d}", len(f"{int(self.summary_steps_[-1]):,d}"))]
        fields += [{"loss": ("loss", "{:.3f}", 6), "test_accuracy": ("test acc", "{:.3f}", 5)}[n] for n in self.scores_]
        self.readout_ = Readout(fig, (0.98, 0.955), fields, ha="right")
        self.animate(*self.readout_.moving())
        return panels

    def caption(self, step: int) -> None:
        self.readout_.update(step, *(float(s.values[snapshot_at(s.steps, step)]) for s in self.scores_.values()))

    # -- small multiples (the default comparison) -------------------------------------------
    @classmethod
    def sweep_scales(cls, recordings, config) -> dict:
        """One value axis for every run: the widest 0th-100th percentile range."""
        name = config.names[0]
        lo, hi = np.inf, -np.inf
        for rec in recordings:
            steps, counts, edges = _hist(rec, name)
            p = histogram_percentiles(counts, edges, [0, 100])
            if np.isfinite(p).any():
                lo, hi = min(lo, np.nanmin(p)), max(hi, np.nanmax(p))
        if not np.isfinite([lo, hi]).all():
            return {}
        pad = 0.05 * (hi - lo or 1)
        return {"ylim": (lo - pad, hi + pad)}

    @classmethod
    def small_panel(cls, ax, recording, config, shared, cell):
        name = config.names[0]
        steps, counts, edges = _hist(recording, name)
        panel = DistributionPanel(ax, steps, counts, edges, color=KIND_COLORS[_kind(name)], ylim=shared.get("ylim"),
                                  xlabel="step" if cell[0] == cell[2] - 1 else "",
                                  ylabel=_label(name) if cell[1] == 0 else "")
        if "test_accuracy" in recording:
            acc = recording["test_accuracy"]
            ax.text(0.98, 0.04, f"test accuracy {float(acc.values[-1]):.3f} at step {int(acc.steps[-1]):,d}",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize="small",
                    bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
        ax.tick_params(labelsize="x-small")
        return panel

    @classmethod
    def sweep_figures(cls, recordings, labels, config, options, stem: Path) -> list[Path]:
        """Ridge plots: the first tensor's histograms at ten steps, offset upward, one per run."""
        name = config.names[0]
        runs = [(label, rec) for label, rec in zip(labels, recordings) if rec is not None]
        fig = Figure(figsize=((options.width + 0.01) / options.dpi, (options.height + 0.01) / options.dpi),
                     dpi=options.dpi)
        FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        color = KIND_COLORS[_kind(name)]
        for j, (label, rec) in enumerate(runs):
            ax = fig.add_subplot(1, len(runs), j + 1)
            steps, counts, edges = _hist(rec, name)
            edges = np.broadcast_to(edges, (len(counts), counts.shape[1] + 1))
            pick = np.unique(np.linspace(0, len(steps) - 1, 10).round().astype(int))
            dens = [counts[t] / max(counts[t].sum(), 1) / np.maximum(np.diff(edges[t]), 1e-300) for t in pick]
            scale = 1.0 / max(float(np.max(d)) for d in dens) * 2.5
            for k, (t, d) in enumerate(zip(pick, dens)):
                base = k
                ax.fill_between(edges[t][:-1], base, base + d * scale, step="post", color=color, alpha=0.35,
                                linewidth=0, zorder=len(pick) - k)
                ax.plot(edges[t], np.append(base + d * scale, base + d[-1] * scale), drawstyle="steps-post",
                        color=color, linewidth=1.0, zorder=len(pick) - k)
            ax.set_yticks(range(len(pick)), [f"{int(steps[t]):,d}" for t in pick])
            ax.set_ylabel("step" if j == 0 else "")
            ax.set_xlabel(_label(name))
            ax.set_title(label, fontsize="medium")
            ax.grid(True, axis="x", color="#e6e6e6")
        fig.suptitle(f"Histograms of {_label(name)} over training", fontsize="large", weight="bold")
        fig.tight_layout()
        fig.canvas.draw()
        path = Path(f"{stem}_ridge.png")
        with open_writer(path) as writer:
            writer.write(np.asarray(fig.canvas.buffer_rgba()))
        return [writer.path]

    def write_figures(self, stem: Path) -> list[Path]:
        c = self.recording.metadata.get("config", {})
        label = ", ".join(str(c[k]) for k in ("optimizer", "activation", "init") if k in c) or "run"
        return self.sweep_figures([self.recording], [label], self.config, self.options, stem)


if __name__ == "__main__":
    main("distributions")
