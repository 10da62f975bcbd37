"""The loss landscape around a recorded run: the loss over a plane through the final
parameters, the path of the training run in it, and the loss along the path.

Run: ``python -m scenes.landscape RUN.rec`` (writes ``outputs/landscape.mp4``). A recording
that already holds a landscape (series of kinds ``landscape`` and ``path``, written by
:func:`dynamics.landscape.landscape`) is drawn as it is, with no model and no torch. A
recording of a reference experiment that can rebuild its model and loss (``spiral``,
``classifiers``, ``edge_of_stability``) without one gets it computed first
(``--directions``, ``--grid``, ``--margin``, ``--seed``; ``--save PATH`` keeps the
recording with it, so the next render needs no model); any other is refused in one line
that points to the Python API.

Left: filled contours of the loss on a log colour scale over the plane (for ``pca``: the
path's top two principal directions about the final point, each axis labelled with the
share of the path's variance it keeps; ``random``: two filter-normalised random
directions), the path of the recorded snapshots drawn up to the current step, the current
point on it. Right: the loss along the path on the same timeline: at each snapshot, and
(dashed) at its projection onto the plane, which is what the contours under the drawn path
show (the two differ where the path leaves the plane). ``--view surface`` draws the
landscape as a 3-D surface instead.

Several paths on one plane (runs side by side, such as the edge-of-stability step sizes,
listed in ``metadata["landscape"][NAME]["paths"]``) are drawn each in its own colour, with
their losses in the same colours beside.

The plane is drawn with equal aspect (``--no-equal-aspect``: stretched to fill the panel):
its coordinates are parameter-space distances (the principal directions are orthonormal,
the random ones have equal norms), so a stretched picture would misstate how far a path
goes along the second direction against the first. The panel shrinks to the plane's shape
inside its cell; an experiment that wants the panel filled asks for a square grid
(:func:`dynamics.landscape.landscape` with ``square=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from dynamics.limits import SEED, check_limits
from dynamics.recording import Recording, Series

from .base import Field, PanelScene
from .curves import spans_decades
from .plotting import (
    CurvesPanel,
    Panel,
    axes_in,
    bracket,
    colorbar_axes,
    fit_colorbar_label,
    fit_into,
    get_cmap,
    packed_cells,
    thin_step_ticks,
)
from .registry import register

__all__ = [
    "LandscapeScene",
    "LandscapeSceneConfig",
    "LandscapePanel",
    "landscape_names",
    "landscape_paths",
    "path_steps",
    "axis_labels",
]

VIEWS = ("contour", "surface")
#: Filled contour levels (log-spaced between the grid's smallest and largest loss).
LEVELS = 24


def landscape_paths(recording: Recording, name: str = "landscape") -> list[dict[str, Any]]:
    """The paths drawn on landscape ``name``: per path ``label`` (``""`` for the one path of
    a single run), ``path`` (its ``(T, 2)`` series of kind ``path``), ``loss`` and
    ``plane_loss`` (the series of the loss at each snapshot and at its projection, None where
    absent). Several paths on one plane are listed in ``metadata["landscape"][name]["paths"]``
    (:func:`dynamics.landscape.landscape` with ``paths``); else the one path is ``NAME/path``.
    Only paths whose series is there, of kind ``path``."""
    info = (recording.metadata.get("landscape") or {}).get(name)
    listed = info.get("paths") if isinstance(info, dict) else None
    if isinstance(listed, list) and listed:
        found = [(str(p.get("label", "")), str(p.get("path", ""))) for p in listed]
    else:
        found = [("", f"{name}/path")]
    out = []
    for label, path in found:
        if path in recording and recording[path].kind == "path" and len(recording[path]):
            loss, plane = f"{path}/loss", f"{path}/plane_loss"
            out.append(
                {
                    "label": label,
                    "path": path,
                    "loss": loss if loss in recording else None,
                    "plane_loss": plane if plane in recording else None,
                }
            )
    return out


def path_steps(recording: Recording, name: str = "landscape") -> np.ndarray:
    """Every step at which a path of landscape ``name`` has a snapshot, sorted."""
    steps = [np.asarray(recording[p["path"]].steps) for p in landscape_paths(recording, name)]
    return np.unique(np.concatenate(steps)) if steps else np.zeros(0, np.int64)


def landscape_names(recording: Recording) -> list[str]:
    """Landscapes the recording holds: series of kind ``landscape`` of shape ``(N, N)`` with
    at least one path (:func:`landscape_paths`: ``NAME/path``, or the paths its metadata
    lists)."""
    return [
        n
        for n, s in recording.items()
        if s.kind == "landscape" and len(s.shape) == 2 and len(s) and landscape_paths(recording, n)
    ]


def landscape_info(recording: Recording, name: str) -> dict[str, Any]:
    """``metadata["landscape"][name]``: directions, explained variance, extent, ..."""
    info = (recording.metadata.get("landscape") or {}).get(name)
    if not isinstance(info, dict) or len(info.get("extent") or ()) != 4:
        raise ValueError(
            f"recording has a landscape series {name!r} but no metadata['landscape'][{name!r}] "
            "with its extent: write it with dynamics.landscape.landscape"
        )
    return info


def axis_labels(info: dict[str, Any], short: bool = False) -> tuple[str, str]:
    """The plane's axes: ``PC1 (71.6% of the path's variance)`` (``paths'`` for several) or
    ``random direction 1 (filter-normalised)``; ``short``: ``PC1 (71.6%)``, ``random
    direction 1``."""
    shares = list(info.get("explained_variance") or [np.nan, np.nan])
    if info.get("directions") == "pca":
        whose = "paths'" if len(info.get("paths") or ()) > 1 else "path's"
        what = "" if short else f" of the {whose} variance"
        return tuple(f"PC{k + 1} ({shares[k]:.1%}{what})" for k in range(2))
    what = "" if short else " (filter-normalised)"
    return tuple(f"random direction {k + 1}{what}" for k in range(2))


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Three to six ticks between ``lo`` and ``hi`` (positive) on a log axis: 1-2-5 values of
    each decade, or four log-spaced values rounded to two digits over a narrow range."""
    decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
    for subs in ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0)):
        ticks = [m * 10**d for d in decades for m in subs if lo <= m * 10**d <= hi]
        if 3 <= len(ticks) <= 6:
            return ticks
        if len(ticks) > 6:
            step = int(np.ceil(len(ticks) / 6))
            return ticks[::step]
    return [float(f"{v:.2g}") for v in np.geomspace(lo, hi, 5)[1:-1]]


class LandscapePanel(Panel):
    """Filled log-scale contours of a loss grid, each path grown up to the current step and
    the current point on it (shared by the landscape scene, the edge-of-stability scene and
    the dashboard).

    Parameters
    ----------
    ax : Axes
    recording : Recording
    name : str
        The landscape's series (``name``, its paths: :func:`landscape_paths`) and metadata
        entry.
    colorbar : bool
        Draw a colorbar beside ``ax`` (labelled ``loss, log scale``).
    legend : bool
        A legend of the markers (start, end, now; for several paths, each path's label).
    short : bool
        Short axis labels (``PC1 (71.6%)``), for a small panel.
    cmap : str
    colors : sequence of str, optional
        One colour per path, for several paths (default: matplotlib's cycle, ``C0``, ``C1``
        ...). The one path of a single run is drawn white, its current point red.
    equal : bool
        Equal aspect (default): a unit along either axis is the same distance in parameter
        space (the principal directions are orthonormal; the two random ones have equal
        norms), so the picture stretches no path; the axes shrink in their box to keep it.
        False: the plane fills the box, stretched along the shorter direction.
    """

    def __init__(
        self,
        ax: Axes,
        recording: Recording,
        name: str = "landscape",
        *,
        colorbar: bool = True,
        legend: bool = True,
        short: bool = False,
        cmap: str = "viridis",
        colors: Sequence[str] | None = None,
        equal: bool = True,
    ):
        from matplotlib import patheffects
        from matplotlib.lines import Line2D

        info = landscape_info(recording, name)
        grid = np.asarray(recording[name].values[-1], dtype=float)
        self.paths = landscape_paths(recording, name)
        if not self.paths:
            raise ValueError(f"landscape {name!r} has no path (series {name}/path, kind path)")
        self.ax = ax
        self.tracks = [
            (np.asarray(recording[p["path"]].steps), np.asarray(recording[p["path"]].values,
                                                                 dtype=float))
            for p in self.paths
        ]  # fmt: skip
        self.steps, self.coords = self.tracks[0]
        several = len(self.paths) > 1
        colors = list(colors or [f"C{k}" for k in range(len(self.paths))])
        n = grid.shape[0]
        a0, a1, b0, b1 = (float(v) for v in info["extent"])
        alphas, betas = np.linspace(a0, a1, grid.shape[1]), np.linspace(b0, b1, n)
        finite = grid[np.isfinite(grid) & (grid > 0)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (1e-3, 1.0)
        hi = max(hi, lo * 1.001)
        shown = np.clip(np.where(np.isfinite(grid), grid, hi), lo, hi)  # NaN/inf: the top colour
        levels = np.geomspace(lo, hi, LEVELS + 1)
        norm = LogNorm(lo, hi)
        filled = ax.contourf(alphas, betas, shown, levels=levels, norm=norm, cmap=get_cmap(cmap))
        ax.contour(alphas, betas, shown, levels=levels[::3], colors="white", linewidths=0.5,
                   alpha=0.45)  # fmt: skip
        ax.set_xlim(a0, a1)
        ax.set_ylim(b0, b1)
        if equal:
            ax.set_aspect("equal", adjustable="box")
        dark = [patheffects.withStroke(linewidth=3.6, foreground="#111111")]
        light = [patheffects.withStroke(linewidth=4.2, foreground="white")]
        self.lines, self.dots = [], []
        for k, (_, coords) in enumerate(self.tracks):
            color = colors[k % len(colors)] if several else "white"
            ax.plot(*coords[0], "o", ms=8, mfc="none", mec="white", mew=1.8, zorder=4,
                    path_effects=dark, label="start" if k == 0 else None)  # fmt: skip
            ax.plot(*coords[-1], "*", ms=12, color=color, mec="#111111", mew=0.8, zorder=4,
                    label="end" if not several else None)  # fmt: skip
            # the first path on top (for runs from one start: the largest step size first)
            z = 5 + 0.01 * (len(self.tracks) - k)
            self.lines.append(
                ax.plot(
                    [], [], color=color, lw=2.0, zorder=z, path_effects=light if several else dark
                )[0]  # fmt: skip
            )
            self.dots.append(
                ax.plot(
                    [],
                    [],
                    "o",
                    ms=9 if not several else 8,
                    color="#d62728" if not several else color,
                    mec="white",
                    mew=1.5,
                    zorder=z + 1,
                    label="now" if not several else None,
                )[0]  # fmt: skip
            )
        self.line, self.dot = self.lines[0], self.dots[0]
        xl, yl = axis_labels(info, short)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        if legend:
            handles = None
            if several:  # the paths by their colours, then what the markers mean
                handles = [
                    Line2D([], [], color=colors[k % len(colors)], lw=2.0, label=p["label"])
                    for k, p in enumerate(self.paths)
                ] + [
                    Line2D([], [], ls="", marker="o", ms=7, mfc="none", mec="#111111",
                           label="start"),
                    Line2D([], [], ls="", marker="*", ms=10, color="#999999", mec="#111111",
                           label="end"),
                ]  # fmt: skip
            legend = ax.legend(handles=handles, loc="upper right", fontsize="small",
                               framealpha=0.85, handlelength=1.0, borderpad=0.4)  # fmt: skip
            legend.set_zorder(7)
        self.colorbar = None
        if colorbar:
            cb = ax.figure.colorbar(filled, cax=colorbar_axes(ax))
            cb.set_ticks(_log_ticks(lo, hi))
            cb.set_ticklabels([f"{t:.3g}" for t in cb.get_ticks()])
            cb.ax.minorticks_off()
            fit_colorbar_label(cb, ["loss, log scale", "loss\nlog scale", "loss"])
            self.colorbar = cb

    def moving(self) -> list[Any]:
        return [*self.lines, *self.dots]

    def position(self, step: int | float, k: int = 0) -> tuple[int, np.ndarray]:
        """Snapshots of path ``k`` drawn (up to and including index ``i``) and its point now."""
        steps, coords = self.tracks[k]
        i, j, w = bracket(steps, step)
        now = coords[i] + w * (coords[j] - coords[i])
        return i, now

    def draw(self, step: int | float) -> None:
        for k, (line, dot) in enumerate(zip(self.lines, self.dots)):
            i, now = self.position(step, k)
            xy = np.vstack([self.tracks[k][1][: i + 1], now[None]])
            line.set_data(xy[:, 0], xy[:, 1])
            dot.set_data([now[0]], [now[1]])


class SurfacePanel(Panel):
    """The landscape as a 3-D surface of log10 loss, each path (at its projections' losses)
    grown on it and the current point."""

    def __init__(self, ax: Axes, recording: Recording, name: str = "landscape", cmap="viridis"):
        info = landscape_info(recording, name)
        grid = np.asarray(recording[name].values[-1], dtype=float)
        paths = landscape_paths(recording, name)
        finite = grid[np.isfinite(grid) & (grid > 0)]
        lo = float(finite.min()) if finite.size else 1e-3
        z = np.log10(np.clip(np.where(np.isfinite(grid), grid, np.nanmax(finite)), lo, None))
        self.tracks = []  # (steps, coords, log10 loss at the projections)
        for p in paths:
            s = recording[p["path"]]
            plane = p["plane_loss"]
            heights = np.asarray(recording[plane].values) if plane else np.ones(len(s))
            self.tracks.append((np.asarray(s.steps), np.asarray(s.values, dtype=float),
                                np.log10(np.clip(heights.astype(float), lo, None))))  # fmt: skip
        a0, a1, b0, b1 = (float(v) for v in info["extent"])
        A, B = np.meshgrid(np.linspace(a0, a1, grid.shape[1]), np.linspace(b0, b1, grid.shape[0]))
        ax.plot_surface(A, B, z, cmap=get_cmap(cmap), linewidth=0, antialiased=False, alpha=0.85,
                        rcount=min(60, grid.shape[0]), ccount=min(60, grid.shape[1]))  # fmt: skip
        xl, yl = axis_labels(info)
        ax.set_xlabel(xl.split(" (")[0])
        ax.set_ylabel(yl.split(" (")[0])
        ax.set_zlabel("log10 loss")
        ax.view_init(elev=35, azim=-60)
        several = len(paths) > 1
        self.lines, self.dots = [], []
        for k in range(len(paths)):
            color = f"C{k}" if several else "white"
            self.lines.append(ax.plot([], [], [], color=color, lw=2.2, zorder=5)[0])
            self.dots.append(ax.plot([], [], [], "o", ms=8, color=color if several else "#d62728",
                                     mec="white", zorder=6)[0])  # fmt: skip

    def moving(self) -> list[Any]:
        return [*self.lines, *self.dots]

    def draw(self, step: int | float) -> None:
        for (steps, coords, z), line, dot in zip(self.tracks, self.lines, self.dots):
            i, j, w = bracket(steps, step)
            now = coords[i] + w * (coords[j] - coords[i])
            zn = z[i] + w * (z[j] - z[i])
            xy = np.vstack([coords[: i + 1], now[None]])
            line.set_data_3d(xy[:, 0], xy[:, 1], np.append(z[: i + 1], zn))
            dot.set_data_3d([now[0]], [now[1]], [zn])


@dataclass(frozen=True)
class LandscapeSceneConfig:
    """What the landscape movie shows, and how a recording without a landscape gets one.

    Attributes
    ----------
    name : str
        The landscape to draw (its series ``NAME``, ``NAME/path``, ``NAME/path/loss``).
    view : str
        ``contour`` (filled contours on a log colour scale) or ``surface`` (a 3-D surface).
    directions : str
        For a recording without a landscape: the plane, ``pca`` (the path's top two
        principal directions about the final point) or ``random`` (two filter-normalised
        random directions, Li et al. 2018).
    grid : int
        For a recording without a landscape: grid points per side (grid x grid losses).
    margin : float
        For a recording without a landscape: room around the path, a fraction of its span.
    seed : int
        For a recording without a landscape: the seed of the random directions.
    save : str
        Write the recording with its computed landscape to this new directory (so the next
        render needs no model); "": do not.
    equal_aspect : bool
        Draw the plane with equal aspect, a unit the same length along both axes: distances
        in the picture are distances in parameter space (--no-equal-aspect: the plane fills
        its panel, stretched along the shorter direction).
    """

    name: str = "landscape"
    view: str = "contour"
    directions: str = "pca"
    grid: int = 51
    margin: float = 0.25
    seed: int = 0
    save: str = ""
    equal_aspect: bool = True

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "grid": (2, 2000),
        "margin": (0, 100),
        "seed": SEED,
    }

    def __post_init__(self):
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {self.view!r}")
        if self.directions not in ("pca", "random"):
            raise ValueError(f"directions must be pca or random, got {self.directions!r}")
        check_limits(self, self.LIMITS)


@register(
    "landscape",
    description="Draw the loss landscape around a saved recording: filled log-scale contours of "
    "the loss over the plane of the path's top two principal directions (or two "
    "filter-normalised random ones) through the final parameters, the path of the run growing "
    "in it, and the loss along the path beside it. A reference experiment's recording without a "
    "landscape gets one computed (its experiment rebuilds the model and loss).",
)
class LandscapeScene(PanelScene):
    """The loss landscape around a run: contours over a plane, the path in it, the loss along it.

    Reads series ``landscape`` (N, N) (kind ``landscape``), ``landscape/path`` (T, 2),
    ``landscape/path/loss`` and ``landscape/path/plane_loss`` (T,) (kind ``path``) and
    ``metadata["landscape"]["landscape"]``; computes them first for a reference experiment's
    recording that lacks them.
    """

    Config = LandscapeSceneConfig
    title = "The loss landscape around the run"

    def check(self) -> None:
        rec, cfg = self.recording, self.config
        if cfg.name not in rec:
            have = landscape_names(rec)
            if have:
                raise KeyError(
                    f"recording has no landscape {cfg.name!r}; it has: {', '.join(have)} "
                    "(choose with --name)"
                )
            self.recording = rec = self._computed()
        if cfg.name not in landscape_names(rec):
            s = rec[cfg.name]
            raise ValueError(
                f"series {cfg.name!r} ({s.kind or 'kind not said'}, shape {s.shape}) is not a "
                f"landscape: an (N, N) series of kind landscape with {cfg.name}/path beside it"
            )
        landscape_info(rec, cfg.name)

    def _computed(self) -> Recording:
        """The recording with a landscape computed by its experiment (torch, only here)."""
        from dynamics.landscape import of_experiment, rebuild

        cfg = self.config
        rebuild(self.recording)  # refuses, in one line, a recording that cannot be rebuilt
        out = of_experiment(
            self.recording,
            directions=cfg.directions,
            size=cfg.grid,
            margin=cfg.margin,
            seed=cfg.seed,
            name=cfg.name,
            progress=self.options.progress,
        )
        secs = out.metadata["landscape"][cfg.name]["seconds"]
        self.note(f"computed the landscape ({cfg.grid} x {cfg.grid} losses, {secs:.1f} s)")
        if cfg.save:
            out.save(cfg.save)
            self.note(f"saved the recording with its landscape to {cfg.save}")
        return out

    def timeline(self) -> np.ndarray:
        return path_steps(self.recording, self.config.name)

    def heading(self) -> str:
        several = len(landscape_paths(self.recording, self.config.name)) > 1
        return f"{self.title}s" if several else self.title

    def info(self) -> dict[str, Any]:
        return landscape_info(self.recording, self.config.name)

    def subtitle(self) -> str:
        info = self.info()
        shares = info.get("explained_variance") or []
        several = len(landscape_paths(self.recording, self.config.name))
        caption = str(self.recording.metadata.get("caption", ""))
        if info.get("directions") == "pca" and len(shares) == 2:
            whose, its = ("the paths'", "their") if several > 1 else ("the path's", "its")
            plane = (
                f"plane of {whose} top 2 principal directions: {shares[0]:.1%} + "
                f"{shares[1]:.1%} of {its} variance"
            )
            if several > 1 and caption:  # the axes say the shares: room for the caption
                plane = f"one plane for all {several} paths"
        else:
            plane = f"2 filter-normalised random directions (seed {info.get('seed')})"
        return f"{caption}; {plane}" if caption else plane

    def readout_fields(self):
        """The loss at the current snapshot, of each path (the first three: more would run into
        the title)."""
        paths = [p for p in landscape_paths(self.recording, self.config.name) if p["loss"]]
        if len(paths) == 1:
            return [Field(paths[0]["loss"], "loss", "{:.4g}")]
        return [
            Field(p["loss"], f"{p['label'].replace('=', ' ')}: loss", "{:.3g}") for p in paths[:3]
        ]

    def build(self, fig: Figure):
        cfg, rec = self.config, self.recording
        info = self.info()
        cells = packed_cells([[1.25, 1]], left=0.01, right=0.99, bottom=0.02,
                             top=self.header_bottom)  # fmt: skip
        if cfg.view == "surface":
            box = cells[0]
            ax = fig.add_axes((box.x0, box.y0, box.width, box.height), projection="3d")
            panels: list[Any] = [SurfacePanel(ax, rec, cfg.name)]
        else:
            ax = axes_in(fig, cells[0], colorbar=True)
            panels = [LandscapePanel(ax, rec, cfg.name, equal=cfg.equal_aspect)]
            ax.set_title(f"loss over the plane ({info.get('size')} x {info.get('size')} grid)",
                         fontsize="medium", loc="left")  # fmt: skip
            fit_into(ax, cells[0])
        paths = [p for p in landscape_paths(rec, cfg.name) if p["loss"] or p["plane_loss"]]
        if paths:
            ax2 = axes_in(fig, cells[1])
            panels += self._path_losses(ax2, paths)
            ax2.set_title("loss along the path" + ("s" if len(paths) > 1 else ""),
                          fontsize="medium", loc="left")  # fmt: skip
            what = info.get("loss")
            if what:
                ax2.set_title(str(what), fontsize="small", loc="right", color="#444444")
            fit_into(ax2, cells[1])
            thin_step_ticks(ax2)
        return panels

    def _path_losses(self, ax: Axes, paths: list[dict[str, Any]]) -> list[CurvesPanel]:
        """Each path's loss at its snapshots (solid) and at their projections (dashed): white
        and orange for one path, the path's colour for several."""
        from matplotlib.lines import Line2D

        rec = self.recording
        rows = []
        for p in paths:
            names = [n for n in (p["loss"], p["plane_loss"]) if n]
            values = np.stack([np.asarray(rec[n].values, dtype=float) for n in names], axis=1)
            rows.append((rec[names[0]].steps, values, len(names) == 2))
        every = np.concatenate([v.ravel() for _, v, _ in rows])
        log = spans_decades(every, 2.0 if len(rows) == 1 else 1.0)
        labels = ["at the snapshot", "at its projection onto the plane"]
        if len(paths) == 1:
            steps, values, both = rows[0]
            panel = CurvesPanel(ax, steps, values, labels=labels[: values.shape[1]], log=log,
                                ylabel="loss", xlabel="step")  # fmt: skip
            if both:
                panel.lines[1].set_linestyle("--")
                panel.lines[1].set_color("#d95f02")
                panel.dots[1].set_color("#d95f02")
                if panel.legend is not None:
                    panel.legend.remove()
                    panel.legend = ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
                    panel.legend.set_zorder(5)
            return [panel]
        panels = []
        for k, (steps, values, both) in enumerate(rows):
            color = f"C{k}"
            panel = CurvesPanel(ax, steps, values, colors=[color] * values.shape[1], log=log,
                                ylabel="loss", xlabel="step", legend=False)  # fmt: skip
            if both:
                panel.lines[1].set_linestyle("--")
            panels.append(panel)
        finite = every[np.isfinite(every)]
        if finite.size:  # every path's losses (each panel set the limits of its own)
            lo, hi = float(finite.min()), float(finite.max())
            ax.set_ylim(*((lo / 1.3, hi * 1.3) if log else (lo - 0.05 * (hi - lo), hi * 1.05)))
        handles = [
            Line2D([], [], color=f"C{k}", lw=1.8, label=p["label"]) for k, p in enumerate(paths)
        ] + [
            Line2D([], [], color="#444444", lw=1.4, label=labels[0]),
            Line2D([], [], color="#444444", lw=1.4, ls="--", label="at its projection"),
        ]
        legend = ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.9)
        legend.set_zorder(5)
        return panels

    @classmethod
    def example(cls, frames: int = 12, size: int = 41, seed: int = 0) -> Recording:
        """A synthetic landscape (numpy only): a tilted valley with a ripple, and a path that
        spirals down into its minimum at the origin; the path lies in the plane, so its two
        losses agree."""
        rng = np.random.default_rng(seed)

        def loss(a, b):
            return 0.02 + 0.5 * a**2 + 3.0 * (b - 0.15 * a**2) ** 2 + 0.05 * np.sin(4 * a) ** 2

        t = np.linspace(0, 1, frames)
        radius = 2.4 * (1 - t) ** 1.5
        angle = np.pi * (1.0 + 1.6 * t)
        coords = np.stack([radius * np.cos(angle), 0.4 * radius * np.sin(angle)], axis=1)
        coords[1:-1] += rng.normal(0, 0.03, (frames - 2, 2))
        coords[-1] = 0.0
        extent = [-3.0, 1.0, -1.4, 1.0]
        A, B = np.meshgrid(np.linspace(*extent[:2], size), np.linspace(*extent[2:], size))
        steps = np.arange(frames, dtype=np.int64) * 50
        path_loss = loss(coords[:, 0], coords[:, 1])
        series = {
            "landscape": Series(steps[-1:], loss(A, B)[None], kind="landscape"),
            "landscape/path": Series(steps, coords, kind="path"),
            "landscape/path/loss": Series(steps, path_loss, kind="path"),
            "landscape/path/plane_loss": Series(steps, path_loss.copy(), kind="path"),
        }
        info = {
            "directions": "pca",
            "explained_variance": [0.82, 0.18],
            "in_plane": 1.0,
            "extent": extent,
            "size": size,
            "origin_step": int(steps[-1]),
            "loss": "a made-up loss",
        }
        metadata = {
            "caption": "a made-up valley (an example recording)",
            "landscape": {"landscape": info},
        }
        return Recording(series, metadata)


if __name__ == "__main__":
    from .cli import main

    main("landscape")
