"""The loss landscape around a recorded run: the loss over a plane through the final
parameters, the path of the training run in it, and the loss along the path.

Run: ``python -m scenes.landscape RUN.rec`` (writes ``outputs/landscape.mp4``). A recording
that already holds a landscape (series of kinds ``landscape`` and ``path``, written by
:func:`dynamics.landscape.landscape`) is drawn as it is, with no model and no torch. A
recording of a reference experiment that can rebuild its model and loss (``spiral``,
``classifiers``) without one gets it computed first (``--directions``, ``--grid``,
``--margin``, ``--seed``; ``--save PATH`` keeps the recording with it, so the next render
needs no model); any other is refused in one line that points to the Python API.

Left: filled contours of the loss on a log colour scale over the plane (for ``pca``: the
path's top two principal directions about the final point, each axis labelled with the
share of the path's variance it keeps; ``random``: two filter-normalised random
directions), the path of the recorded snapshots drawn up to the current step, the current
point on it. Right: the loss along the path on the same timeline: at each snapshot, and
(dashed) at its projection onto the plane, which is what the contours under the drawn path
show (the two differ where the path leaves the plane). ``--view surface`` draws the
landscape as a 3-D surface instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

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
    "axis_labels",
]

VIEWS = ("contour", "surface")
#: Filled contour levels (log-spaced between the grid's smallest and largest loss).
LEVELS = 24


def landscape_names(recording: Recording) -> list[str]:
    """Landscapes the recording holds: series of kind ``landscape`` of shape ``(N, N)`` whose
    ``NAME/path`` (kind ``path``) is there too."""
    return [
        n
        for n, s in recording.items()
        if s.kind == "landscape"
        and len(s.shape) == 2
        and len(s)
        and f"{n}/path" in recording
        and recording[f"{n}/path"].kind == "path"
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
    """The plane's axes: ``PC1 (71.6% of the path's variance)`` or ``random direction 1
    (filter-normalised)``; ``short``: ``PC1 (71.6%)``, ``random direction 1``."""
    shares = list(info.get("explained_variance") or [np.nan, np.nan])
    if info.get("directions") == "pca":
        what = "" if short else " of the path's variance"
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
    """Filled log-scale contours of a loss grid, the path grown up to the current step and the
    current point on it (shared by the landscape scene and the dashboard).

    Parameters
    ----------
    ax : Axes
    recording : Recording
    name : str
        The landscape's series (``name``, ``name/path``) and metadata entry.
    colorbar : bool
        Draw a colorbar beside ``ax`` (labelled ``loss, log scale``).
    legend : bool
        A legend of the markers (start, end, now).
    short : bool
        Short axis labels (``PC1 (71.6%)``), for a small panel.
    cmap : str
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
    ):
        from matplotlib import patheffects

        info = landscape_info(recording, name)
        grid = np.asarray(recording[name].values[-1], dtype=float)
        path = recording[f"{name}/path"]
        self.ax, self.steps = ax, np.asarray(path.steps)
        self.coords = np.asarray(path.values, dtype=float)
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
        outline = [patheffects.withStroke(linewidth=3.6, foreground="#111111")]
        ax.plot(*self.coords[0], "o", ms=8, mfc="none", mec="white", mew=1.8, zorder=4,
                path_effects=outline, label="start")  # fmt: skip
        ax.plot(*self.coords[-1], "*", ms=12, color="white", mec="#111111", mew=0.8, zorder=4,
                label="end")  # fmt: skip
        self.line = ax.plot([], [], color="white", lw=2.0, zorder=5, path_effects=outline)[0]
        self.dot = ax.plot([], [], "o", ms=9, color="#d62728", mec="white", mew=1.5, zorder=6,
                           label="now")[0]  # fmt: skip
        xl, yl = axis_labels(info, short)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        if legend:
            legend = ax.legend(loc="upper right", fontsize="small", framealpha=0.85,
                               handlelength=1.0, borderpad=0.4)  # fmt: skip
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
        return [self.line, self.dot]

    def position(self, step: int | float) -> tuple[int, np.ndarray]:
        """Snapshots drawn (the path up to and including index ``i``) and the point now."""
        i, j, w = bracket(self.steps, step)
        now = self.coords[i] + w * (self.coords[j] - self.coords[i])
        return i, now

    def draw(self, step: int | float) -> None:
        i, now = self.position(step)
        xy = np.vstack([self.coords[: i + 1], now[None]])
        self.line.set_data(xy[:, 0], xy[:, 1])
        self.dot.set_data([now[0]], [now[1]])


class SurfacePanel(Panel):
    """The landscape as a 3-D surface of log10 loss, the path (at its projections' losses)
    grown on it and the current point."""

    def __init__(self, ax: Axes, recording: Recording, name: str = "landscape", cmap="viridis"):
        info = landscape_info(recording, name)
        grid = np.asarray(recording[name].values[-1], dtype=float)
        path = recording[f"{name}/path"]
        self.steps = np.asarray(path.steps)
        self.coords = np.asarray(path.values, dtype=float)
        plane = f"{name}/path/plane_loss"
        heights = np.asarray(recording[plane].values if plane in recording else np.ones(len(path)))
        finite = grid[np.isfinite(grid) & (grid > 0)]
        lo = float(finite.min()) if finite.size else 1e-3
        z = np.log10(np.clip(np.where(np.isfinite(grid), grid, np.nanmax(finite)), lo, None))
        self.z = np.log10(np.clip(heights.astype(float), lo, None))
        a0, a1, b0, b1 = (float(v) for v in info["extent"])
        A, B = np.meshgrid(np.linspace(a0, a1, grid.shape[1]), np.linspace(b0, b1, grid.shape[0]))
        ax.plot_surface(A, B, z, cmap=get_cmap(cmap), linewidth=0, antialiased=False, alpha=0.85,
                        rcount=min(60, grid.shape[0]), ccount=min(60, grid.shape[1]))  # fmt: skip
        xl, yl = axis_labels(info)
        ax.set_xlabel(xl.split(" (")[0])
        ax.set_ylabel(yl.split(" (")[0])
        ax.set_zlabel("log10 loss")
        ax.view_init(elev=35, azim=-60)
        self.line = ax.plot([], [], [], color="white", lw=2.2, zorder=5)[0]
        self.dot = ax.plot([], [], [], "o", ms=8, color="#d62728", mec="white", zorder=6)[0]

    def moving(self) -> list[Any]:
        return [self.line, self.dot]

    def draw(self, step: int | float) -> None:
        i, j, w = bracket(self.steps, step)
        now = self.coords[i] + w * (self.coords[j] - self.coords[i])
        zn = self.z[i] + w * (self.z[j] - self.z[i])
        xy = np.vstack([self.coords[: i + 1], now[None]])
        self.line.set_data_3d(xy[:, 0], xy[:, 1], np.append(self.z[: i + 1], zn))
        self.dot.set_data_3d([now[0]], [now[1]], [zn])


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
    """

    name: str = "landscape"
    view: str = "contour"
    directions: str = "pca"
    grid: int = 51
    margin: float = 0.25
    seed: int = 0
    save: str = ""

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
        return np.asarray(self.recording[f"{self.config.name}/path"].steps)

    def info(self) -> dict[str, Any]:
        return landscape_info(self.recording, self.config.name)

    def subtitle(self) -> str:
        info = self.info()
        shares = info.get("explained_variance") or []
        if info.get("directions") == "pca" and len(shares) == 2:
            plane = (
                f"plane of the path's top 2 principal directions: {shares[0]:.1%} + "
                f"{shares[1]:.1%} of its variance"
            )
        else:
            plane = f"2 filter-normalised random directions (seed {info.get('seed')})"
        caption = str(self.recording.metadata.get("caption", ""))
        return f"{caption}; {plane}" if caption else plane

    def readout_fields(self):
        name = f"{self.config.name}/path/loss"
        return [Field(name, "loss", "{:.4g}")] if name in self.recording else []

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
            panels = [LandscapePanel(ax, rec, cfg.name)]
            ax.set_title(f"loss over the plane ({info.get('size')} x {info.get('size')} grid)",
                         fontsize="medium", loc="left")  # fmt: skip
            fit_into(ax, cells[0])
        curves = [n for n in (f"{cfg.name}/path/loss", f"{cfg.name}/path/plane_loss") if n in rec]
        if curves:
            ax2 = axes_in(fig, cells[1])
            values = np.stack([np.asarray(rec[n].values, dtype=float) for n in curves], axis=1)
            labels = ["at the snapshot", "at its projection onto the plane"][: len(curves)]
            panel = CurvesPanel(
                ax2,
                rec[curves[0]].steps,
                values,
                labels=labels,
                log=spans_decades(values),
                ylabel="loss",
                xlabel="step",
            )
            if len(panel.lines) > 1:
                panel.lines[1].set_linestyle("--")
                panel.lines[1].set_color("#d95f02")
                panel.dots[1].set_color("#d95f02")
                if panel.legend is not None:
                    panel.legend.remove()
                    panel.legend = ax2.legend(loc="upper right", fontsize="small", framealpha=0.9)
                    panel.legend.set_zorder(5)
            ax2.set_title("loss along the path", fontsize="medium", loc="left")
            what = info.get("loss")
            if what:
                ax2.set_title(str(what), fontsize="small", loc="right", color="#444444")
            panels.append(panel)
            fit_into(ax2, cells[1])
            thin_step_ticks(ax2)
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
