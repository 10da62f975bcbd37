"""How each probed layer represents a fixed batch over training: its points in 2-D, and CKA.

Run: ``python -m scenes.representations RUN.rec [--show probe/0,probe/2]`` (writes
``outputs/representations.mp4``); ``--help`` lists every flag. Reads the series a
:class:`dynamics.capture.Probe` records: ``probe/<module>`` ``(T, n, *features)``, and
``probe/labels`` (one per example) for the colours.

* Per chosen layer (default: the first 3 probe series, side by side), the ``n`` probe
  points in the plane, coloured by label (a categorical palette for up to 20 classes, a
  colour scale otherwise).
* The projection does not flicker, by construction: PCA is fitted *once*, on one snapshot
  (``--fit final`` by default, ``initial``, or a step), and every frame is projected onto
  those two axes (:class:`Projection`), with the axis limits fixed over the run. A fixed
  linear map with orthonormal axes moves a point at most as far as it moves in feature
  space, and cannot flip a sign between frames (``tests/test_probe.py`` checks both on a
  recorded run). The axes say how much of the fitted snapshot's variance each holds; at
  other steps the points show that representation seen along those directions.
* ``--projection procrustes`` instead: each snapshot on its *own* first two principal axes
  (the view that shows it best), turned to the previous frame's coordinates by orthogonal
  Procrustes (the rotation or reflection that moves it least onto them), chained from the
  ``--fit`` snapshot both ways (:func:`procrustes_points`); axis limits are fixed over the
  run as well. A per-snapshot PCA alone flips an axis' sign, or swaps the two axes, where
  the variances cross; the alignment takes that out.
* Below, linear CKA of each layer to its initial representation (``--cka final``: to its
  final one; :func:`dynamics.similarity.cka_over_training`), a cursor at the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dynamics.recording import Recording, Series
from dynamics.similarity import cka_over_training, probe_series

from .base import Field, PanelScene, split_names
from .plotting import (
    COLORS,
    CurvesPanel,
    Panel,
    axes_in,
    fit_into,
    get_cmap,
    interpolated,
    packed_cells,
    snapshot_at,
    square_box,
    thin_step_ticks,
)
from .registry import register

__all__ = [
    "RepresentationsScene",
    "RepresentationsSceneConfig",
    "Projection",
    "ProjectionPanel",
    "label_colors",
    "procrustes_points",
    "projected_points",
]

#: Layers side by side in one frame (each a square panel of about 3 inches).
MAX_LAYERS = 3
#: Up to this many distinct integer labels get a categorical palette and a legend.
MAX_CLASSES = 20
CKA_REFERENCES = ("initial", "final", "none")
PROJECTIONS = ("pca", "procrustes")
#: The CKA curves' colours, one per layer: greys, apart from the labels' palette.
CURVE_COLORS = ("#222222", "#777777", "#b0b0b0")


@dataclass(frozen=True)
class Projection:
    """A fixed linear map of snapshots ``(n, *features)`` to the plane: the first two
    principal axes of one snapshot.

    Attributes
    ----------
    mean : (d,) float64 array
        The fitted snapshot's mean over its examples (subtracted from every snapshot).
    axes : (d, 2) float64 array
        Orthonormal principal axes (a zero column where the snapshot has fewer than two
        directions), each signed so that its largest entry is positive: fitting is
        deterministic.
    explained : (2,) float64 array
        The fraction of the fitted snapshot's variance along each axis.
    """

    mean: np.ndarray
    axes: np.ndarray
    explained: np.ndarray

    @classmethod
    def fit(cls, snapshot: np.ndarray) -> "Projection":
        """PCA of ``snapshot`` ``(n, *features)`` (features flattened)."""
        x = np.asarray(snapshot, dtype=np.float64).reshape(len(snapshot), -1)
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        k = min(2, len(vt))
        axes = np.zeros((x.shape[1], 2))
        axes[:, :k] = vt[:k].T
        top = np.abs(axes).argmax(axis=0)
        axes *= np.where(axes[top, [0, 1]] < 0, -1.0, 1.0)
        var = s**2
        explained = np.zeros(2)
        if var.sum() > 0:
            explained[:k] = var[:k] / var.sum()
        return cls(mean, axes, explained)

    def __call__(self, snapshot: np.ndarray) -> np.ndarray:
        """``snapshot`` ``(n, *features)`` on the two axes: ``(n, 2)`` float64."""
        x = np.asarray(snapshot, dtype=np.float64).reshape(len(snapshot), -1)
        return (x - self.mean) @ self.axes


def _procrustes(moving: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``moving`` ``(n, 2)`` turned by the orthogonal 2 x 2 matrix ``R`` (a rotation or a
    reflection) that minimises ``||moving R - target||``: ``R = U V^T`` from the SVD of
    ``moving^T target``."""
    u, _, vt = np.linalg.svd(moving.T @ target)
    return moving @ (u @ vt)


def procrustes_points(series: Series, anchor: int) -> np.ndarray:
    """Every snapshot of ``series`` ``(T, n, *features)`` on its own first two principal
    axes (:class:`Projection` fitted on it), turned onto the previous frame's coordinates by
    orthogonal Procrustes, chained from snapshot ``anchor`` (on its own PCA axes) forwards
    and backwards: ``(T, n, 2)`` float64.

    A rotation or reflection of a snapshot's own PCA coordinates changes no distance within
    the frame; chosen to move the points least from the frame before, it takes out the sign
    flips and axis swaps a per-frame PCA makes, so that where the top two principal
    directions change slowly the points move about as far as their features do.
    Deterministic (each SVD is).
    """
    own = [Projection.fit(series.values[t]) for t in range(len(series))]
    points = [None] * len(series)
    points[anchor] = own[anchor](series.values[anchor])
    order = [*range(anchor + 1, len(series)), *range(anchor - 1, -1, -1)]
    for t in order:
        before = t - 1 if t > anchor else t + 1
        points[t] = _procrustes(own[t](series.values[t]), points[before])
    return np.stack(points)


def projected_points(
    series: Series, anchor: int, projection: str = "pca"
) -> tuple[Projection, np.ndarray]:
    """Every snapshot of ``series`` in the plane, ``(T, n, 2)``, and the PCA fitted on
    snapshot ``anchor``: ``projection="pca"`` projects every snapshot onto that PCA's axes
    (fitted once: nothing flickers); ``"procrustes"`` puts each on its own PCA axes, aligned
    frame to frame (:func:`procrustes_points`)."""
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {projection!r}")
    proj = Projection.fit(series.values[anchor])
    if projection == "procrustes":
        return proj, procrustes_points(series, anchor)
    return proj, np.stack([proj(series.values[t]) for t in range(len(series))])


def label_colors(labels: np.ndarray | None, n: int) -> tuple[np.ndarray, list, Normalize | None]:
    """RGBA colours of ``n`` points by label: ``(colors (n, 4), legend, norm)``. Up to
    :data:`MAX_CLASSES` distinct integer labels: one colour of ``tab10`` (``tab20`` past
    10) each, and the legend's ``(label, colour)`` pairs; any other labels: ``viridis``
    over their range (``norm``); no labels: one colour."""
    from matplotlib.colors import to_rgba

    if labels is None:
        return np.tile(to_rgba(COLORS["particle"]), (n, 1)), [], None
    labels = np.asarray(labels)
    classes = np.unique(labels)
    floats = labels.dtype.kind == "f"
    integral = labels.dtype.kind in "iub" or (
        floats and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
    )
    if integral and len(classes) <= MAX_CLASSES:
        cmap = get_cmap("tab10" if len(classes) <= 10 else "tab20")
        palette = [cmap(i) for i in range(len(classes))]
        index = np.searchsorted(classes, labels)
        legend = [(_label_text(c), palette[i]) for i, c in enumerate(classes)]
        return np.array([palette[i] for i in index]), legend, None
    finite = labels[np.isfinite(labels)] if floats else labels
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    return get_cmap("viridis")(norm(labels.astype(float))), [], norm


def _label_text(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class ProjectionPanel(Panel):
    """The probe points of one layer in the plane (``points`` ``(T, n, 2)``, recorded at
    ``steps``), on axes fixed over the run; on a movie clock between snapshots, the points
    blended linearly (the projection is linear, so this is the blend in feature space)."""

    def __init__(self, ax, steps: np.ndarray, points: np.ndarray, colors: np.ndarray):
        self.steps, self.points = np.asarray(steps), points
        x0, x1, y0, y1 = square_box(points, margin=0.06)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize="small")
        ax.grid(True, color=COLORS["grid"], linewidth=0.8)
        ax.set_axisbelow(True)
        self.dots = ax.scatter(
            points[0, :, 0], points[0, :, 1], s=22, c=colors, edgecolors="white",
            linewidths=0.3, zorder=3,
        )  # fmt: skip

    def moving(self) -> list:
        return [self.dots]

    def draw(self, step: int | float) -> None:
        self.dots.set_offsets(interpolated(self.points, self.steps, step))


@dataclass(frozen=True)
class RepresentationsSceneConfig:
    """What the representations show.

    Attributes
    ----------
    show : str
        Comma-separated probe series to draw, side by side (at most 3); default: the first
        3 probe series of the recording.
    fit : str
        The snapshot each layer's PCA is fitted on, once: final (the last), initial (the
        first) or a step (the snapshot at or before it). Every frame is projected onto
        those two axes, so nothing flickers. With ``projection="procrustes"``: the snapshot
        the frame-to-frame alignment starts from.
    cka : str
        The curve below the points: linear CKA of each layer to its initial representation,
        to its final one, or none.
    projection : str
        pca: every frame on the PCA axes fitted once (on the ``fit`` snapshot); procrustes:
        each frame on its own PCA axes, turned onto the previous frame's points by
        orthogonal Procrustes (chained from the ``fit`` snapshot), so no axis flips or swaps
        between frames.
    """

    show: str = ""
    fit: str = "final"
    cka: str = "initial"
    projection: str = "pca"

    def __post_init__(self):
        if len(split_names(self.show)) > MAX_LAYERS:
            raise ValueError(
                f"show takes at most {MAX_LAYERS} series side by side, got "
                f"{len(split_names(self.show))}"
            )
        if self.fit not in ("final", "initial") and not (self.fit.isdigit() and self.fit.isascii()):
            raise ValueError(f"fit must be final, initial or a step (>= 0), got {self.fit!r}")
        if self.cka not in CKA_REFERENCES:
            raise ValueError(f"cka must be one of {', '.join(CKA_REFERENCES)}, got {self.cka!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(
                f"projection must be one of {', '.join(PROJECTIONS)}, got {self.projection!r}"
            )


@register(
    "representations",
    description="Draw how each probed layer represents a fixed batch over training (the "
    "series of dynamics.capture.Probe): the probe points in 2-D, coloured by label, on PCA "
    "axes fitted once (--fit) and fixed over the run, layers side by side, with linear CKA "
    "to the initial representation below (--cka).",
)
class RepresentationsScene(PanelScene):
    """A fixed probe batch as each layer represents it over training, and its CKA to the start.

    Reads the probe series named by ``show`` (default: the first 3), ``probe/labels`` for
    the colours when present, and ``loss`` for the readout when present.
    """

    Config = RepresentationsSceneConfig
    title = "Representations over training"
    readout = (Field("loss", "loss", "{:.4g}"),)

    def check(self) -> None:
        rec = self.recording
        names = split_names(self.config.show)
        if not names:
            probes = probe_series(rec)
            if not probes:
                kinds = sorted({s.kind or "kind not said" for _, s in rec.items()})
                raise KeyError(
                    "recording has no probe series (record them with "
                    "dynamics.capture.Probe); it has "
                    f"{len(rec)} series of kinds: {', '.join(kinds) or 'none'}"
                )
            names = probes[:MAX_LAYERS]
            self.note_choice(names, f"the first {len(names)} probe series", probes[MAX_LAYERS:])
        rec.require(*names)
        for name in names:
            shape = rec[name].shape
            if len(shape) < 1 or shape[0] < 2 or not len(rec[name]):
                raise ValueError(
                    f"series {name!r} of shape {shape} is not a representation "
                    "(n, *features) of at least 2 examples"
                )
        self.shown_ = names
        labels = rec["probe/labels"] if "probe/labels" in rec else None
        self.labels_ = {}
        for name in names:
            n = rec[name].shape[0]
            fits = labels is not None and len(labels) and labels.shape == (n,)
            self.labels_[name] = np.asarray(labels.values[-1]) if fits else None

    def timeline(self) -> np.ndarray:
        return np.unique(np.concatenate([np.asarray(self.recording[n].steps) for n in self.shown_]))

    def fitted_index(self, series: Series) -> int:
        """The snapshot of ``series`` its projection is fitted on (``config.fit``)."""
        fit = self.config.fit
        if fit == "final":
            return len(series) - 1
        if fit == "initial":
            return 0
        return snapshot_at(np.asarray(series.steps), int(fit))

    def projected(self, name: str) -> tuple[Projection, int, np.ndarray]:
        """The PCA of series ``name`` on its ``fit`` snapshot, that snapshot's index, and every
        snapshot in the plane ``(T, n, 2)`` by ``projection`` (:func:`projected_points`;
        read one snapshot at a time)."""
        series = self.recording[name]
        at = self.fitted_index(series)
        proj, points = projected_points(series, at, self.config.projection)
        return proj, at, points

    def build(self, fig: Figure):
        rec, k = self.recording, len(self.shown_)
        legend, norm = [], None
        colors = {}
        for name in self.shown_:
            colors[name], classes, scale = label_colors(self.labels_[name], rec[name].shape[0])
            if classes or scale is not None:  # the labels are the batch's: one key for all
                legend, norm = classes, scale
        key = bool(legend) or norm is not None
        curve = self.config.cka != "none"
        split = 0.38 if curve else 0.02
        cells = packed_cells(
            [[1] * k + ([0.45] if key else [])],
            left=0.02, right=0.98, bottom=split, top=self.header_bottom - 0.01,
        )  # fmt: skip
        panels = []
        for cell, name in zip(cells, self.shown_):
            ax = axes_in(fig, cell)
            proj, at, points = self.projected(name)
            panels.append(ProjectionPanel(ax, rec[name].steps, points, colors[name]))
            features = int(np.prod(rec[name].shape[1:]))
            ax.set_title(
                f"{name}  ({features} features)",
                fontsize="medium", loc="left",
            )  # fmt: skip
            fitted = int(rec[name].steps[at])
            if self.config.projection == "procrustes":
                ax.set_xlabel("each step's PC1, PC2, aligned (Procrustes)", fontsize="small")
            else:
                ax.set_xlabel(
                    f"PC1 of step {fitted:,d} ({proj.explained[0]:.0%})", fontsize="small"
                )
                ax.set_ylabel(f"PC2 ({proj.explained[1]:.0%})", fontsize="small")
            fit_into(ax, cell)
        if key:
            self._key(fig, cells[-1], legend, norm)
        if curve:
            (cell,) = packed_cells([[1]], left=0.02, right=0.98, bottom=0.02, top=split - 0.01)
            ax = axes_in(fig, cell)
            curves = [cka_over_training(rec, n, self.config.cka) for n in self.shown_]
            steps = np.unique(np.concatenate([s for s, _ in curves]))
            values = np.full((len(steps), k), np.nan)
            for j, (s, v) in enumerate(curves):
                values[np.searchsorted(steps, s), j] = v
            first = int(steps[0] if self.config.cka == "initial" else steps[-1])
            panels.append(
                CurvesPanel(
                    ax, steps, values, labels=self.shown_, reveal="cursor",
                    ylabel=f"CKA to step {first:,d}", colors=list(CURVE_COLORS[:k]),
                )
            )  # fmt: skip
            ax.set_title(
                f"linear CKA of each layer to its {self.config.cka} representation",
                fontsize="medium", loc="left",
            )  # fmt: skip
            fit_into(ax, cell)
            thin_step_ticks(ax)
        return panels

    @staticmethod
    def _key(fig: Figure, cell, legend: list, norm: Normalize | None) -> None:
        """What the colours mean, in ``cell``: a legend of the classes, or a colour bar."""
        if legend:
            ax = fig.add_axes(cell.bounds)
            ax.axis("off")
            handles = [
                Line2D([], [], marker="o", linestyle="", color=c, markersize=7, label=text)
                for text, c in legend
            ]
            ax.legend(
                handles=handles, title="label", loc="center left", fontsize="small",
                ncol=1 if len(handles) <= 10 else 2, frameon=False, borderaxespad=0,
            )  # fmt: skip
            return
        from matplotlib.cm import ScalarMappable

        x0, y0, w, h = cell.bounds
        ax = fig.add_axes((x0 + 0.02, y0 + 0.15 * h, 0.015, 0.7 * h))
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=get_cmap("viridis")), cax=ax)
        bar.set_label("label", fontsize="small")
        ax.tick_params(labelsize="small")

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """Three classes of 2-D inputs (60 points) as a hidden layer of 12 features and a
        3-logit output represent them: mixed at the start, separated by the end."""
        rng = np.random.default_rng(seed)
        n, steps = 60, np.arange(frames, dtype=np.int64) * 10
        labels = np.repeat(np.arange(3), n // 3)
        angle = labels * 2 * np.pi / 3 + rng.normal(0, 0.5, n)
        inputs = np.stack([np.cos(angle), np.sin(angle)], axis=1) * rng.uniform(0.5, 1.5, (n, 1))
        t = np.linspace(0, 1, frames)
        ease = (t * t * (3 - 2 * t))[:, None, None]  # smoothstep: slow, fast, slow
        series = {}
        for name, width, spread in (("probe/hidden", 12, 0.6), ("probe/out", 3, 0.3)):
            start = np.tanh(inputs @ rng.normal(0, 1, (2, width))) + rng.normal(0, 0.3, (n, width))
            centres = rng.normal(0, 2.0, (3, width))
            end = centres[labels] + rng.normal(0, spread, (n, width))
            series[name] = Series(
                steps, ((1 - ease) * start + ease * end).astype(np.float32), kind="probe",
                source=name.removeprefix("probe/"),
            )  # fmt: skip
        first = np.zeros(1, np.int64)
        series["probe/inputs"] = Series(first, inputs[None].astype(np.float32), kind="data")
        series["probe/labels"] = Series(first, labels[None], kind="data")
        series["loss"] = Series(steps, np.geomspace(1.1, 0.05, frames), kind="scalar")
        return Recording(series, {"caption": "a 2-12-3 classifier (an example recording)"})


if __name__ == "__main__":
    from .cli import main

    main("representations")
