"""Gradient descent at the edge of stability: several step sizes on one timeline.

Run: ``python -m scenes.edge_of_stability`` (trains the reference experiment,
docs/experiments.md section 6, and writes ``outputs/edge_of_stability.mp4``); ``--help``
lists every flag. Above: the sharpness (the top Hessian eigenvalue of the training loss) of
each run, one colour per step size ``lr``, with its edge of stability ``2/lr`` as a dashed
line of the same colour, drawn from the start: the sharpness rises ("progressive
sharpening") until it meets its line, then hovers there; a small enough step size never
meets its line. Below: each run's loss on a log axis, falling, not monotonically, once its
run is at the edge. Right, where the recording holds a loss landscape (the experiment
computes one: :func:`dynamics.experiments.edge_of_stability.landscape_options`): the loss
over one plane through the runs' common start, on a log colour scale, along the top two
principal directions of all their parameter snapshots, each run's path growing in its
colour up to the current step, the current point marked; ``--no-landscape`` leaves it out,
and a recording without one is drawn without it. Cohen et al., ICLR 2021.

Reads ``metadata["runs"]`` (per run: ``lr``, ``edge`` and the names of its ``sharpness``
and ``loss`` series), which the experiment writes. A recording without it is read by the
kinds of its series: every ``curvature`` series with a ``<name>/edge`` beside it (what the
:class:`~dynamics.capture.Sharpness` quantity records when given the optimizer) is a run,
named after that series, its line at the recorded edge; the scalar ``loss`` is drawn
beneath when there is one run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from dynamics.recording import Recording, Series

from .base import Field, PanelScene
from .landscape import LandscapePanel, landscape_info, landscape_names, landscape_paths
from .plotting import CurvesPanel, axes_in, fit_into, thin_step_ticks
from .registry import register

__all__ = ["EdgeOfStabilityScene", "EdgeOfStabilitySceneConfig", "runs_of"]

#: Runs whose sharpness the header's readout shows (three fit beside the title at 16:9).
READOUT_RUNS = 3
#: The landscape the experiment writes (:mod:`dynamics.landscape`'s default name).
LANDSCAPE = "landscape"
#: Share of the width the landscape's column takes (its square plane, colorbar and labels).
LANDSCAPE_WIDTH = 0.45


@dataclass(frozen=True)
class EdgeOfStabilitySceneConfig:
    """What the edge-of-stability movie shows.

    Attributes
    ----------
    loss : bool
        Draw the runs' losses beneath the sharpness (--no-loss: the sharpness alone).
    log_loss : bool
        The loss on a log axis, where every value is positive (--no-log-loss: linear).
    landscape : bool
        Draw the runs' loss landscape in a right-hand column, where the recording holds one
        (--no-landscape: leave it out; ``--landscape-grid 0`` does not compute it).
    """

    loss: bool = True
    log_loss: bool = True
    landscape: bool = True


def runs_of(recording: Recording) -> list[dict]:
    """The runs a recording holds: ``{"lr", "edge", "sharpness", "loss"}`` each (``loss``
    may be None). From ``metadata["runs"]``, else from the kinds of its series (see the
    module docstring). ValueError when there is none, or a named series is missing."""
    runs = recording.metadata.get("runs")
    if runs:
        out = []
        for r in runs:
            recording.require(r["sharpness"])
            loss = r.get("loss") if r.get("loss") in recording else None
            out.append(
                {
                    "lr": float(r["lr"]),
                    "edge": float(r["edge"]),
                    "sharpness": r["sharpness"],
                    "loss": loss,
                }
            )
        return out
    out = []
    for name in recording.of_kind("curvature"):
        edge = f"{name}/edge"
        if edge in recording and not name.endswith("/edge") and len(recording[edge]):
            value = float(np.asarray(recording[edge].values, dtype=float)[-1])
            # the step size is not recorded (nor is 2/lr the edge of every optimizer): the run
            # goes by its series' name
            out.append({"lr": None, "edge": value, "sharpness": name, "loss": None})
    if not out:
        raise ValueError(
            "the recording has no runs: neither metadata['runs'] nor a curvature series with "
            "its <name>/edge (record the Sharpness quantity with optimizer=...)"
        )
    if len(out) == 1 and "loss" in recording and recording["loss"].shape == ():
        out[0]["loss"] = "loss"
    return sorted(out, key=lambda r: r["edge"])


def label(run: dict) -> str:
    """What a run is called: ``lr = 0.1``, or the name of its sharpness series."""
    return run["sharpness"] if run["lr"] is None else f"lr = {run['lr']:g}"


def edge_label(run: dict) -> str:
    """What its edge is called: ``2/lr = 20``, or ``edge = 20`` (the recorded edge)."""
    return f"{'edge' if run['lr'] is None else '2/lr'} = {run['edge']:.3g}"


def lead(series: Series) -> np.ndarray:
    """The top eigenvalue at each step: column 0 of a (T, k) series, or a (T,) series."""
    return np.asarray(series.values, dtype=float).reshape(len(series), -1)[:, 0]


@register(
    "edge_of_stability",
    experiment="dynamics.experiments.edge_of_stability",
    description="Train a small tanh MLP by full-batch gradient descent at several step sizes "
    "from one start and watch each run's sharpness rise to its edge of stability 2/lr and "
    "hover there while the loss keeps falling, not monotonically; the smallest step size "
    "never reaches its edge (Cohen et al., ICLR 2021).",
)
class EdgeOfStabilityScene(PanelScene):
    """Sharpness rising to 2/lr and hovering there, at several step sizes, the loss beneath.

    Reads, per run (:func:`runs_of`), its sharpness series (T, k) or (T,) and its loss ().
    """

    Config = EdgeOfStabilitySceneConfig
    title = "Gradient descent at the edge of stability"
    series_fields = ()

    def check(self) -> None:
        rec = self.recording
        self.runs_ = runs_of(rec)
        shown = self.config.landscape and LANDSCAPE in landscape_names(rec)
        if shown:
            landscape_info(rec, LANDSCAPE)  # its extent: refused here in one line if missing
        self.landscape_ = LANDSCAPE if shown else None
        for r in self.runs_:
            s = rec[r["sharpness"]]
            if len(s.shape) > 1:
                raise ValueError(
                    f"series {r['sharpness']!r} has snapshots of shape {s.shape}; sharpness is "
                    "a number or a vector of the top-k eigenvalues per step"
                )
            if r["loss"] is not None and rec[r["loss"]].shape != ():
                raise ValueError(
                    f"loss {r['loss']!r} has snapshots of shape {rec[r['loss']].shape}"
                )

    def timeline(self) -> np.ndarray:
        steps = [np.asarray(self.recording[r["sharpness"]].steps) for r in self.runs_]
        return np.unique(np.concatenate(steps))

    def readout_fields(self):
        """Each run's top eigenvalue beside the step (the first :data:`READOUT_RUNS` runs: more
        would run into the title)."""
        return [
            Field(r["sharpness"], f"{label(r).replace(' = ', ' ')}: λ", "{:.1f}", index=0)
            for r in self.runs_[:READOUT_RUNS]
        ]

    def colors(self) -> list[str]:
        """One colour per run, in the order of :func:`runs_of`."""
        return [f"C{k}" for k in range(len(self.runs_))]

    def panel_cells(self, fig: Figure) -> tuple[Bbox, Bbox | None, Bbox | None]:
        """Where the sharpness, the loss and the landscape go (figure fractions): the
        sharpness over 60% of the height below the header, the loss beneath (None without
        it), the landscape in a right-hand column :data:`LANDSCAPE_WIDTH` of the width wide
        over the whole height (None without it)."""
        left, right, bottom, top = 0.02, 0.98, 0.02, self.header_bottom
        side = None
        if self.landscape_:
            split = right - LANDSCAPE_WIDTH * (right - left)
            side = Bbox.from_extents(split, bottom, right, top)
            right = split
        if not (self.config.loss and any(r["loss"] for r in self.runs_)):
            return Bbox.from_extents(left, bottom, right, top), None, side
        split = bottom + 0.4 * (top - bottom)
        return (
            Bbox.from_extents(left, split, right, top),
            Bbox.from_extents(left, bottom, right, split),
            side,
        )

    def build(self, fig: Figure):
        rec, runs, colors = self.recording, self.runs_, self.colors()
        top, below, side = self.panel_cells(fig)
        ax = axes_in(fig, top)
        panels, highest = [], 0.0
        for r, color in zip(runs, colors):
            s = rec[r["sharpness"]]
            top_eigenvalue = lead(s)
            panels.append(
                CurvesPanel(
                    ax,
                    s.steps,
                    top_eigenvalue,
                    labels=[label(r)],
                    colors=[color],
                    xlabel="",
                    legend=False,
                )
            )
            highest = max(highest, float(np.nanmax(top_eigenvalue)), r["edge"])
        self._edges(ax, highest)
        ax.set_xlim(*self._steps_range())
        ax.set_ylabel("sharpness λ₁")
        ax.set_title(
            "top Hessian eigenvalue of the training loss (solid), and 2/lr (dashed)",
            fontsize="medium",
            loc="left",
        )
        if below is None:
            ax.set_xlabel("step")
        fit_into(ax, top)
        thin_step_ticks(ax)
        if below is not None:
            panels += self._loss_panels(fig, below, ax)
        if side is not None:
            panels.append(self._landscape_panel(fig, side, ax))
        return panels

    def _landscape_panel(self, fig: Figure, cell: Bbox, level) -> LandscapePanel:
        """The runs' landscape at the top of ``cell``, level with axes ``level`` (the
        sharpness): contours of the loss over the plane
        (equal aspect: distances are parameter-space distances), each run's path in its
        colour, the explained variance on the axes, and under it a note of what the plane
        keeps of the paths."""
        from matplotlib import patheffects

        rec = self.recording
        info = landscape_info(rec, LANDSCAPE)
        by_run = {r["sharpness"].removesuffix("/sharpness"): c
                  for r, c in zip(self.runs_, self.colors())}  # fmt: skip
        paths = landscape_paths(rec, LANDSCAPE)
        colors = [by_run.get(p["label"], f"C{k}") for k, p in enumerate(paths)]
        ax = axes_in(fig, cell, colorbar=True)
        panel = LandscapePanel(ax, rec, LANDSCAPE, colors=colors, short=True, legend=False)
        shares = info.get("explained_variance") or []
        start = info.get("origin") == "start"
        ax.set_title(f"loss on one plane through the {'start' if start else 'end'}",
                     fontsize="medium", loc="left")  # fmt: skip
        several = len(paths) > 1
        if info.get("directions") == "pca" and len(shares) == 2:
            whose, their = ("all runs' paths", "their") if several else ("the path", "its")
            ax.set_xlabel(f"PC1 of {whose} ({shares[0]:.1%} of {their} variance)")
            ax.set_ylabel(f"PC2 ({shares[1]:.1%})")
        if start:  # every path leaves from here
            x, y = panel.tracks[0][1][0]
            ax.annotate("start", (x, y), xytext=(-7, -5), textcoords="offset points",
                        ha="right", va="top", color="white", fontsize="small", zorder=7,
                        path_effects=[patheffects.withStroke(linewidth=2.5,
                                                             foreground="#111111")])  # fmt: skip
        fit_into(ax, cell)
        # up, level with the sharpness (within the cell); the note goes beneath
        renderer = fig.canvas.get_renderer()
        room = fig.transFigure.transform((0, cell.y1))[1] - 4 - ax.get_tightbbox(renderer).y1
        pos = ax.get_position()
        up = min(room / fig.bbox.height, level.get_position().y1 - pos.y1)
        ax.set_position((pos.x0, pos.y0 + max(up, 0.0), pos.width, pos.height))
        kept = info.get("in_plane")
        if kept is not None:
            tight = ax.get_tightbbox(renderer)
            y = fig.transFigure.inverted().transform((0, tight.y0))[1] - 0.015
            what = "each run's parameters" if several else "the parameters"
            note = (
                f"A path: {what} every {self._every(paths)} steps, projected onto\n"
                f"the plane (\u2605 where it ends), which keeps {kept:.1%} of their\n"
                f"squared distance from the {'start' if start else 'end'}. The contours are a "
                "slice:\nthe loss each run saw is on the left."
            )
            fig.text(cell.x0 + 0.01, y, note, fontsize="small", color="#444444", va="top",
                     ha="left", linespacing=1.4)  # fmt: skip
        return panel

    def _every(self, paths: list[dict]) -> str:
        """The steps between a path's snapshots, e.g. ``10`` (the most common gap)."""
        steps = np.asarray(self.recording[paths[0]["path"]].steps)
        gaps = np.diff(steps)
        return f"{int(np.bincount(gaps).argmax()):,d}" if len(gaps) else "?"

    def _edges(self, ax, highest: float, *, compact: bool = False) -> None:
        """Each run's ``2/lr`` as a dashed line of its colour across ``ax``, named at its right
        end (``compact``: the value alone, for a handout's small axes); the y axis from 0 to
        above the highest edge or sharpness."""
        for r, color in zip(self.runs_, self.colors()):
            ax.axhline(r["edge"], color=color, linestyle=(0, (5, 3)), linewidth=1.4, zorder=1.8)
            name = edge_label(r)
            ax.annotate(
                name if compact else f"{label(r)}:  {name}",
                (1, r["edge"]),
                xycoords=("axes fraction", "data"),
                xytext=(-4, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                color=color,
                fontsize="x-small" if compact else "small",
                weight="bold",
            )
        ax.set_ylim(0, 1.08 * highest)

    def handout_panels(self, sheet, cell, shared):
        """A keyframe of the handout: the whole sharpness curves with their edges beside the
        whole losses, a cursor at the keyframe's step in both; the page's legend names the
        step sizes."""
        from .handout import curves_panel, main_and_curves

        rec, runs, colors = self.recording, self.runs_, self.colors()
        labels = [label(r) for r in runs]
        with_loss = [(r, c, lab) for r, c, lab in zip(runs, colors, labels) if r["loss"]]

        def sharpness(ax):
            names = [r["sharpness"] for r in runs]  # curves_panel draws a vector's element 0
            panel = curves_panel(
                ax, rec, names, labels=labels, ylabel="sharpness λ₁", colors=colors, log=False
            )
            highest = max(
                [float(np.nanmax(lead(rec[n]))) for n in names] + [r["edge"] for r in runs]
            )
            self._edges(ax, highest, compact=True)
            return panel

        def losses(ax):
            values = np.concatenate([np.asarray(rec[r["loss"]].values) for r, _, _ in with_loss])
            finite = values[np.isfinite(values)]
            log = self.config.log_loss and finite.size > 0 and bool((finite > 0).all())
            return curves_panel(
                ax,
                rec,
                [r["loss"] for r, _, _ in with_loss],
                labels=[lab for *_, lab in with_loss],
                ylabel="loss (MSE)",
                colors=[c for _, c, _ in with_loss],
                log=log,
            )

        shown = losses if (self.config.loss and with_loss) else None
        return main_and_curves(sheet, sharpness, shown, aspect=None, share=0.55)

    def _steps_range(self) -> tuple[int, int]:
        steps = self.timeline()
        return int(steps[0]), int(max(steps[-1], steps[0] + 1))

    def _loss_panels(self, fig: Figure, cell: Bbox, above) -> list[CurvesPanel]:
        rec = self.recording
        ax = axes_in(fig, cell)
        runs = [(r, c) for r, c in zip(self.runs_, self.colors()) if r["loss"]]
        values = [np.asarray(rec[r["loss"]].values, dtype=float) for r, _ in runs]
        both = np.concatenate(values)
        finite = both[np.isfinite(both)]
        log = self.config.log_loss and finite.size > 0 and bool((finite > 0).all())
        panels = [
            CurvesPanel(
                ax,
                rec[r["loss"]].steps,
                v,
                colors=[c],
                log=log,
                ylabel="loss (MSE)",
                xlabel="step",
                legend=False,
            )
            for (r, c), v in zip(runs, values)
        ]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            ax.set_ylim(*((lo / 1.5, hi * 1.5) if log else (lo - 0.05 * (hi - lo), hi * 1.05)))
        ax.set_xlim(above.get_xlim())  # one timeline
        ax.set_title("training loss", fontsize="medium", loc="left")
        handles = [Line2D([], [], color=c, linewidth=1.8, label=label(r)) for r, c in runs]
        legend = ax.legend(  # above the axes, right of the title: no curve ever runs under it
            handles=handles,
            loc="lower right",
            bbox_to_anchor=(1, 1),
            ncol=len(handles),
            fontsize="small",
            frameon=False,
            borderaxespad=0.1,
        )
        legend.set_zorder(5)
        fit_into(ax, cell)
        thin_step_ticks(ax)
        return panels

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """Three runs from one start: at lr 0.1 and 0.05 the sharpness rises to 2/lr (20,
        40) and hovers there while the loss falls unevenly; at lr 0.02 it stays below 100;
        a small made-up landscape with the three paths on it."""
        rng = np.random.default_rng(seed)
        steps = np.arange(frames, dtype=np.int64) * 25
        fine = np.arange(steps[-1] + 1, dtype=np.int64)
        series, runs = {}, []
        for lr, rate in ((0.1, 4.0), (0.05, 2.0), (0.02, 0.8)):
            edge, name = 2 / lr, f"lr={lr:g}"
            rise = 5 + 60 * (1 - np.exp(-rate * np.arange(frames) / frames))
            top = np.minimum(rise, edge * (1 + 0.05 * rng.standard_normal(frames)))
            loss = np.exp(-rate * fine / len(fine)) * (
                1 + 0.2 * (top[fine // 25] > 0.9 * edge) * (fine % 7 == 3)
            )
            series[f"{name}/sharpness"] = Series(steps, top[:, None], kind="curvature")
            series[f"{name}/sharpness/edge"] = Series(steps, np.full(frames, edge), "curvature")
            series[f"{name}/loss"] = Series(fine, loss, kind="scalar")
            runs.append(
                {"lr": lr, "edge": edge, "sharpness": f"{name}/sharpness", "loss": f"{name}/loss"}
            )
        series.update(cls._example_landscape(steps, [r["sharpness"][: -len("/sharpness")]
                                                      for r in runs]))  # fmt: skip
        meta = {
            "runs": runs,
            "caption": "10-8-8-1 tanh MLP, gradient descent at lr 0.1, 0.05, "
            "0.02 (an example recording)",
            "landscape": {
                LANDSCAPE: {
                    "directions": "pca",
                    "explained_variance": [0.9, 0.07],
                    "in_plane": 0.97,
                    "extent": [-1.0, 5.0, -3.0, 3.0],
                    "size": 15,
                    "origin": "start",
                    "origin_step": 0,
                    "loss": "a made-up loss",
                    "paths": [
                        {"label": name, "path": f"{LANDSCAPE}/{name}/path"}
                        for name in ("lr=0.1", "lr=0.05", "lr=0.02")
                    ],
                }
            },
        }
        return Recording(series, meta)

    @staticmethod
    def _example_landscape(steps: np.ndarray, names: list[str]) -> dict[str, Series]:
        """A made-up landscape for :meth:`example`: a valley on a 15 x 15 grid, each run's
        path leaving the start at ``(0, 0)``, the larger step sizes going farther."""
        a, b = np.meshgrid(np.linspace(-1, 5, 15), np.linspace(-3, 3, 15))

        def loss(a, b):
            return 0.05 + 0.3 * (a - 4) ** 2 / 4 + (b + 0.4 * (a - 2)) ** 2

        t = np.linspace(0, 1, len(steps))
        out = {LANDSCAPE: Series(steps[-1:], loss(a, b)[None], kind="landscape")}
        for k, name in enumerate(names):
            reach = 4.2 - 1.0 * k
            coords = np.stack([reach * (1 - (1 - t) ** 2), (1 - k) * 0.8 * np.sin(np.pi * t)], 1)
            base = f"{LANDSCAPE}/{name}/path"
            out[base] = Series(steps, coords, kind="path")
            out[f"{base}/loss"] = Series(steps, loss(*coords.T), kind="path")
            out[f"{base}/plane_loss"] = Series(steps, loss(*coords.T), kind="path")
        return out


if __name__ == "__main__":
    from .cli import main

    main("edge_of_stability")
