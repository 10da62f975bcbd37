"""Panels shared by scenes: each builds its artists on an axes once and updates them per frame.

Every panel follows one small protocol, so a layout can put several on one figure and
drive them from one timeline (:class:`scenes.base.PanelScene`):

* ``moving()``: artists redrawn every frame;
* ``stamped()``: artists that draw permanent marks into the cached background;
* ``draw(step)``: show training step ``step``. An ``int`` (one frame per snapshot, the
  default movie): each panel shows its own latest snapshot at or before it, so series
  recorded on different schedules stay in step. A ``float`` (a frame on a movie clock,
  :mod:`scenes.clock`, between snapshots): each panel shows the state at that step,
  blending its own two snapshots around it with :func:`interpolated` (or
  :func:`bracket`, for a panel that needs the indices and the weight), so motion is
  smooth when frames outnumber snapshots;
* ``stamp(step_lo, step_hi)``: set the permanent marks of snapshots with steps in
  ``[step_lo, step_hi)`` and return the artists to draw once.

Panels never touch pyplot's global state.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize

__all__ = [
    "Panel",
    "ParticlePanel",
    "CurvesPanel",
    "HeatmapPanel",
    "DistributionPanel",
    "HistogramPanel",
    "DecisionFieldPanel",
    "Readout",
    "COLORS",
    "CLASS_MARKERS",
    "get_cmap",
    "histogram_percentiles",
    "level_lines",
    "matrix_view",
    "snapshot_at",
    "bracket",
    "interpolated",
    "square_box",
]

COLORS = {
    "particle": "#1f5fbf",
    "particle_edge": "#0b2550",
    "path": "#8c8c8c",
    "reference": "#d62728",
    "ray": "black",
    "curve": "#1f5fbf",
    "cursor": "#555555",
    "grid": "#e6e6e6",
}

# Data points by class on a probability field: a dark filled circle and a white triangle
# with a dark edge read on both ends of a diverging map, and in greyscale.
CLASS_MARKERS = (
    {"marker": "o", "color": "#111111", "edgecolor": "white", "linewidths": 0.5},
    {"marker": "^", "color": "white", "edgecolor": "#111111", "linewidths": 0.7},
)


def _finite_range(values: np.ndarray, chunk_bytes: int = 64 << 20) -> tuple[float, float]:
    """Minimum and maximum of the finite entries of ``values`` (read ``chunk_bytes`` at a time,
    so a memmap larger than memory works); NaN, NaN if there are none."""
    lo, hi = np.inf, -np.inf
    per = max(1, chunk_bytes // max(values[0].nbytes if len(values) else 1, 1))
    for start in range(0, len(values), per):
        block = np.asarray(values[start : start + per], dtype=float)
        block = block[np.isfinite(block)]
        if block.size:
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return (lo, hi) if lo <= hi else (np.nan, np.nan)


def _index_ticks(axis, n: int, labels: Sequence[str] | None, most: int, length_px: float) -> None:
    """Ticks on cells ``0..n-1``: every one labelled up to ``most`` cells (with ``labels`` or
    the index), else integer ticks at least 45 pixels apart (at most 8)."""
    from matplotlib.ticker import MaxNLocator

    if n <= most:
        axis.set_ticks(range(n), list(labels) if labels is not None else [str(i) for i in range(n)])
    else:
        axis.set_major_locator(MaxNLocator(nbins=int(np.clip(length_px // 45, 2, 8)), integer=True))


def matrix_view(values: np.ndarray) -> np.ndarray:
    """Snapshots ``(T, *shape)`` as matrices ``(T, rows, cols)``: a vector is one row, a
    matrix stays, a tensor of higher rank keeps its first axis as rows and flattens the rest
    into columns (a convolution's ``(out, in, kh, kw)`` becomes ``out x (in * kh * kw)``).
    Lazy for a memmap (a reshape of C-ordered rows is a view)."""
    shape = values.shape[1:]
    if len(shape) == 0:
        raise ValueError("a scalar series is not a matrix")
    if len(shape) == 1:
        return values.reshape(len(values), 1, shape[0])
    return values.reshape(len(values), shape[0], -1)


def square_box(points: np.ndarray, margin: float = 0.1) -> tuple[float, float, float, float]:
    """A square ``(x0, x1, y0, y1)`` around every finite point of ``points`` (..., 2), with
    ``margin`` of its side on each edge (equal axes keep distances true)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        return (-1.0, 1.0, -1.0, 1.0)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-9)
    half *= 1 + 2 * margin
    return (centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)


def snapshot_at(steps: np.ndarray, step: int) -> int:
    """Index of the last snapshot taken at or before ``step`` (0 if ``step`` precedes all)."""
    return max(int(np.searchsorted(steps, step, side="right")) - 1, 0)


def bracket(steps: np.ndarray, step: int | float) -> tuple[int, int, float]:
    """The snapshots around ``step`` and how far it lies between them: ``(i, j, w)`` such
    that the state at ``step`` is ``(1 - w) * values[i] + w * values[j]``.

    A ``float`` step (a frame on a movie clock) between snapshots ``i`` and ``j = i + 1``
    gives ``w = (step - steps[i]) / (steps[j] - steps[i])`` in (0, 1). An ``int`` step (one
    frame per snapshot), a step on a snapshot, before the first or after the last gives
    ``(i, i, 0.0)`` with ``i = snapshot_at(steps, step)``: the latest snapshot at or
    before it, as a panel showed before there was a clock.
    """
    i = snapshot_at(steps, step)
    if isinstance(step, (int, np.integer)) or i + 1 >= len(steps) or not step > steps[i]:
        return i, i, 0.0
    lo, hi = float(steps[i]), float(steps[i + 1])
    return i, i + 1, min(max((float(step) - lo) / (hi - lo), 0.0), 1.0)


def interpolated(values: np.ndarray, steps: np.ndarray, step: int | float) -> np.ndarray:
    """The snapshot of ``values`` (``(T, ...)``, recorded at ``steps``) at ``step``: the two
    snapshots around a fractional step blended linearly, the latest at or before an
    integer one (see :func:`bracket`). Reads only those rows (a memmap stays lazy);
    returns a float array of one snapshot's shape.

    This is the hook of every panel that draws a snapshot: in ``draw(step)``, use
    ``interpolated(self.values, self.steps, step)`` where it read
    ``self.values[snapshot_at(self.steps, step)]``.
    """
    i, j, w = bracket(steps, step)
    a = np.asarray(values[i], dtype=float)
    if w == 0.0:
        return a
    b = np.asarray(values[j], dtype=float)
    return a + w * (b - a)


def get_cmap(name: str) -> Colormap:
    """A colormap by name from matplotlib or seaborn ("hot", "viridis", "rocket", "vlag" ...)."""
    try:
        return matplotlib.colormaps[name]
    except KeyError:
        pass
    try:
        import seaborn  # noqa: F401  (registers rocket, mako, flare, crest, vlag, icefire)

        return matplotlib.colormaps[name]
    except (ImportError, KeyError):
        known = ", ".join(sorted(n for n in matplotlib.colormaps if not n.endswith("_r"))[:12])
        raise ValueError(
            f"unknown colormap {name!r}; matplotlib and seaborn names work, e.g. {known} ..."
        ) from None


class Panel:
    """Base of every panel: no moving parts unless a subclass adds them."""

    def moving(self) -> list[Any]:
        """Artists redrawn every frame."""
        return []

    def stamped(self) -> list[Any]:
        """Artists drawn once into the background per new range of snapshots."""
        return []

    def draw(self, step: int | float) -> None:
        """Show training step ``step`` (a float: between snapshots, see the module docstring)."""

    def stamp(self, step_lo: int, step_hi: int) -> list[Any]:
        """Permanent marks of the snapshots with steps in ``[step_lo, step_hi)``."""
        return []


#: Above this many particles the ``auto`` view draws a density instead of markers: at the
#: default marker size (70 pt^2, 9 px across at 100 dpi) 2 000 particles cover the ~550 px
#: square axes of a 1280x720 frame several times over wherever they gather, so markers
#: show a solid blob, and their cost grows with every particle.
DENSITY_FROM = 2_000
VIEWS = ("auto", "particles", "density")
#: Colours of positive and negative output weight in the density view (blue / orange:
#: told apart with every common colour-vision deficiency).
MASS_COLORS = ("#2166ac", "#e08214")


def resolve_view(view: str, n: int) -> str:
    """``auto`` -> ``density`` above :data:`DENSITY_FROM` particles, else ``particles``."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    if view == "auto":
        return "density" if n > DENSITY_FROM else "particles"
    return view


class ParticlePanel(Panel):
    """Particles in the plane with their paths, plus reference points with rays from the origin.

    Parameters
    ----------
    ax : Axes
    steps : (T,) int array
        Training step of each snapshot.
    positions : (T, n, 2) array
        Particle positions at each snapshot (may be a memmap; rows are read on demand).
    references : (k, 2) array, optional
        Fixed reference points (teacher neurons), drawn as red dots with a ray from the origin.
    limit : float or (x0, x1, y0, y1)
        Axes limits, fixed for the whole movie: ``[-limit, limit]`` on both axes, or a box.
    trail : int
        0: every earlier position stays as a faint dot (the whole path, drawn
        incrementally into the background; in the density view, a faint density of every
        earlier snapshot); k > 0: only the last k positions.
    particle_size, path_size : float
        Marker areas (points^2) of particles and path dots.
    labels : (str, str)
        Legend entries of particles and references.
    legend : bool
        Draw the legend.
    raster : bool
        Draw the particles as sprites and the unchanging artists (rays, reference dots,
        legend) as cached layers straight into the frame buffer (:mod:`scenes.raster`);
        False draws them as matplotlib artists every frame (the reference for the tests).
    view : str
        ``particles`` (a marker per particle), ``density`` (a 2-D density image of the
        particles' mass) or ``auto`` (density above :data:`DENSITY_FROM` particles).
    mass : (T, n) array, optional
        Signed weight of each particle (the density view bins ``|mass|``, positive and
        negative in the two :data:`MASS_COLORS`); None: every particle weighs 1.
    dots : int
        In the density view, also draw this many particles (a fixed random subset) as dots.
    bins : int
        Bins per axis of the density image.
    """

    def __init__(
        self,
        ax: Axes,
        steps: np.ndarray,
        positions: np.ndarray,
        references: np.ndarray | None = None,
        *,
        limit: float | Sequence[float] = 2.0,
        trail: int = 0,
        particle_size: float = 70,
        path_size: float = 3,
        labels: tuple[str, str] = ("student neuron $a_i w_i$", "teacher neuron $a_j w_j$"),
        legend: bool = True,
        raster: bool = True,
        view: str = "auto",
        mass: np.ndarray | None = None,
        dots: int = 0,
        bins: int = 200,
    ):
        from .raster import SpriteScatter, StaticLayer

        self.ax, self.steps, self.positions = ax, np.asarray(steps), positions
        self.trail = int(trail)
        x0, x1, y0, y1 = (
            (-limit, limit, -limit, limit) if np.ndim(limit) == 0 else (float(v) for v in limit)
        )
        self.box = (x0, x1, y0, y1)
        self.references = (
            None if references is None else np.asarray(references, dtype=float).reshape(-1, 2)
        )
        n = positions.shape[1]
        self.view = resolve_view(view, n)
        self.mass, self.bins = mass, int(bins)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.grid(True, color=COLORS["grid"], linewidth=0.8, zorder=0)
        ax.axhline(0, color="#bdbdbd", linewidth=0.8, zorder=0.5)
        ax.axvline(0, color="#bdbdbd", linewidth=0.8, zorder=0.5)
        # Rays, reference dots and legend are drawn above the path (stamped into the
        # background as it grows) and the particles, so they are redrawn every frame:
        # as cached layers when ``raster``, else as the artists themselves.
        refs: list[Any] = []
        if self.references is not None:
            for p in self.references:
                reach = 1.5 * max(abs(x0), abs(x1), abs(y0), abs(y1))  # past the corner of the box
                far = p / max(np.linalg.norm(p), 1e-12) * reach
                # over a density the rays are thin and grey, so the mass along them shows
                ray = (
                    dict(color="#555555", linewidth=0.6, alpha=0.7)
                    if self.view == "density"
                    else dict(color=COLORS["ray"], linewidth=1.2)
                )
                refs += ax.plot([0, far[0]], [0, far[1]], zorder=3, **ray)
            refs.append(
                ax.scatter(
                    self.references[:, 0],
                    self.references[:, 1],
                    s=particle_size * 1.1,
                    color=COLORS["reference"],
                    edgecolor="black",
                    linewidth=0.8,
                    zorder=4,
                    label=labels[1],
                )
            )
        if raster:
            self.path = SpriteScatter(
                ax, size=path_size, facecolor=COLORS["path"], alpha=0.55, zorder=2
            )
        else:
            self.path = ax.scatter(
                np.zeros(0),
                np.zeros(0),
                s=path_size,
                color=COLORS["path"],
                alpha=0.55,
                linewidths=0,
                zorder=2,
            )
        self.image = self.particles = None
        handles: list[Any] = []
        if self.view == "density":
            from matplotlib.patches import Patch

            self.image = ax.imshow(
                np.zeros((self.bins, self.bins, 4)),
                extent=(x0, x1, y0, y1),
                origin="lower",
                interpolation="antialiased",
                zorder=1,
            )
            self._scale = self._mass_scale()
            self._history = np.zeros((self.bins, self.bins))
            self._history_upto = 0  # snapshots < this are in _history
            signed = mass is not None and bool(np.any(np.asarray(mass[-1]) < 0))
            handles = (
                [
                    Patch(color=MASS_COLORS[0], label="mass $|a_i|$ of $a_i > 0$"),
                    Patch(color=MASS_COLORS[1], label="mass $|a_i|$ of $a_i < 0$"),
                ]
                if signed
                else [Patch(color=MASS_COLORS[0], label=f"density of {n:,d} particles")]
            )
            if self.trail == 0:
                handles.append(Patch(color="#b0b0b0", label="earlier positions"))
            self.subset = (
                np.sort(np.random.default_rng(0).choice(n, size=min(dots, n), replace=False))
                if dots
                else None
            )
            if self.subset is not None:
                self.particles = SpriteScatter(
                    ax, size=6, facecolor="#222222", zorder=6, label="a random sample of particles"
                )
        elif raster:
            self.particles = SpriteScatter(
                ax,
                size=particle_size,
                facecolor=COLORS["particle"],
                edgecolor=COLORS["particle_edge"],
                linewidth=0.8,
                zorder=6,
                label=labels[0],
            )
        else:
            self.particles = ax.scatter(
                np.zeros(n),
                np.zeros(n),
                s=particle_size,
                color=COLORS["particle"],
                edgecolor=COLORS["particle_edge"],
                linewidth=0.8,
                zorder=6,
                label=labels[0],
            )
        over: list[Any] = []
        if legend:
            artists, names = ax.get_legend_handles_labels()
            box = ax.legend(
                handles=handles + artists,
                labels=[h.get_label() for h in handles] + names,
                loc="upper left",
                fontsize="small",
                framealpha=0.9,
            )
            box.set_zorder(10)
            over.append(box)
        if raster or self.view == "density":
            self.foreground = [StaticLayer(g) for g in (refs, over) if g]
        else:
            self.foreground = refs + over

    # -- the density view ----------------------------------------------------------------
    def _weights(self, t: int) -> np.ndarray | None:
        return None if self.mass is None else np.asarray(self.mass[t], dtype=float)

    def density(
        self, t: int | float, step: int | float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mass of snapshot ``t`` binned on the panel's grid: ``(positive, negative)``,
        each ``(bins, bins)`` (row 0 at the bottom), summing ``|mass|`` of the particles of
        either sign inside the axes box; particles outside it are left out."""
        pos = (
            np.asarray(self.positions[int(t)], dtype=float)
            if step is None
            else interpolated(self.positions, self.steps, step)
        )
        w = self._weights(int(t))
        return self._bin(pos, w)

    def _bin(self, pos: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        x0, x1, y0, y1 = self.box
        nb = self.bins
        fx = (pos[:, 0] - x0) / (x1 - x0) * nb
        fy = (pos[:, 1] - y0) / (y1 - y0) * nb
        inside = (fx >= 0) & (fx < nb) & (fy >= 0) & (fy < nb)
        flat = fy[inside].astype(np.int64) * nb + fx[inside].astype(np.int64)
        if w is None:
            one = np.bincount(flat, minlength=nb * nb).astype(float).reshape(nb, nb)
            return one, np.zeros_like(one)
        w = w[inside]
        pos_mass = np.bincount(flat, weights=np.where(w > 0, w, 0), minlength=nb * nb)
        neg_mass = np.bincount(flat, weights=np.where(w < 0, -w, 0), minlength=nb * nb)
        return pos_mass.reshape(nb, nb), neg_mass.reshape(nb, nb)

    def _mass_scale(self) -> float:
        """One brightness scale for the whole movie: the 99th percentile of the occupied
        bins of the last snapshot (where the mass has spread out; earlier, concentrated
        snapshots saturate)."""
        p, q = self.density(len(self.steps) - 1)
        total = p + q
        occupied = total[total > 0]
        return float(np.percentile(occupied, 99)) if len(occupied) else 1.0

    def _history_to(self, t: int) -> np.ndarray:
        """Summed ``|mass|`` density of snapshots ``0..t-1`` (kept incrementally)."""
        if t < self._history_upto:
            self._history[:] = 0
            self._history_upto = 0
        for k in range(self._history_upto, t):
            p, q = self.density(k)
            self._history += p + q
        self._history_upto = max(self._history_upto, t)
        return self._history

    def density_rgba(self, step: int | float) -> np.ndarray:
        """The density image at ``step``: ``(bins, bins, 4)`` float RGBA, row 0 at the bottom."""
        from matplotlib.colors import to_rgb

        t = snapshot_at(self.steps, step)
        p, q = self.density(t, step)
        ap = np.sqrt(np.clip(p / self._scale, 0, 1))
        aq = np.sqrt(np.clip(q / self._scale, 0, 1))
        alpha = 1 - (1 - ap) * (1 - aq)
        cp, cq = np.array(to_rgb(MASS_COLORS[0])), np.array(to_rgb(MASS_COLORS[1]))
        share = np.divide(ap, ap + aq, out=np.ones_like(ap), where=(ap + aq) > 0)[..., None]
        rgb = share * cp + (1 - share) * cq
        if self.trail == 0 and t > 0:  # earlier snapshots: a faint grey beneath
            h = self._history_to(t)
            hmax = h.max()
            ah = 0.35 * np.sqrt(h / hmax) if hmax > 0 else np.zeros_like(h)
            grey = np.array(to_rgb("#8c8c8c"))
            out_a = alpha + ah * (1 - alpha)
            rgb = np.divide(
                rgb * alpha[..., None] + grey * (ah * (1 - alpha))[..., None],
                out_a[..., None],
                out=np.zeros_like(rgb),
                where=out_a[..., None] > 0,
            )
            alpha = out_a
        return np.concatenate([rgb, alpha[..., None]], axis=-1)

    # -- frames ------------------------------------------------------------------------
    def moving(self) -> list[Any]:
        core = [self.image] if self.image is not None else []
        if self.trail and self.view == "particles":
            core.append(self.path)
        dots = [self.particles] if self.particles is not None else []
        return core + self.foreground + dots

    def stamped(self) -> list[Any]:
        return [] if (self.trail or self.view == "density") else [self.path]

    def draw(self, step: int | float) -> None:
        t = snapshot_at(self.steps, step)
        if self.view == "density":
            self.image.set_data(self.density_rgba(step))
            if self.subset is not None:
                self.particles.set_offsets(
                    interpolated(self.positions, self.steps, step)[self.subset]
                )
            return
        self.particles.set_offsets(interpolated(self.positions, self.steps, step))
        if self.trail:
            lo = max(0, t - self.trail + 1)
            self.path.set_offsets(np.asarray(self.positions[lo : t + 1]).reshape(-1, 2))

    def stamp(self, step_lo: int, step_hi: int) -> list[Any]:
        """Put the positions of snapshots with steps in ``[step_lo, step_hi)`` on the path."""
        t_lo, t_hi = np.searchsorted(self.steps, [step_lo, step_hi], side="left")
        if self.trail or self.view == "density" or t_hi <= t_lo:
            return []
        self.path.set_offsets(np.asarray(self.positions[t_lo:t_hi]).reshape(-1, 2))
        return [self.path]


class CurvesPanel(Panel):
    """Curves over steps, optionally grouped into averages, with the current step marked.

    Parameters
    ----------
    ax : Axes
    steps : (T,) int array
    values : (T,) or (T, ...) array
        Flattened to one curve per column: ``values[:, j]`` is curve ``j``.
    labels : sequence of str, optional
        One per curve (ignored when ``groups`` is given); a legend is drawn when given.
    groups : mapping of str to sequence of int, optional
        Named groups of columns, drawn as the mean of their members, e.g.
        ``{"W[0]": [0], "W[1]": [1], "mean of W[2:]": range(2, 15)}``. Each member is
        also drawn as a thin, faint line of its group's colour when ``members`` is true.
    members : bool
        With ``groups``: draw the individual curves faintly behind the averages.
    reveal : str
        ``"grow"``: curves are drawn up to the current step; ``"cursor"``: whole curves
        stay in the background and a vertical cursor moves along them.
    log : bool
        Logarithmic y axis (limits from the positive values).
    ylabel, xlabel : str
    colors : sequence of str, optional
        One per drawn curve (group); default: matplotlib's colour cycle.
    legend_loc : str
        Where the legend goes.
    """

    def __init__(
        self,
        ax: Axes,
        steps: np.ndarray,
        values: np.ndarray,
        *,
        labels: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[int]] | None = None,
        members: bool = True,
        reveal: str = "grow",
        log: bool = False,
        ylabel: str = "",
        xlabel: str = "step",
        colors: Sequence[str] | None = None,
        legend_loc: str = "best",
    ):
        if reveal not in ("grow", "cursor"):
            raise ValueError(f"reveal must be 'grow' or 'cursor', got {reveal!r}")
        self.ax, self.reveal = ax, reveal
        self.steps = np.asarray(steps)
        values = np.asarray(values, dtype=float)
        values = values.reshape(len(values), -1)
        if groups is not None:
            groups = {name: list(cols) for name, cols in groups.items()}
            bad = [c for cols in groups.values() for c in cols if not 0 <= c < values.shape[1]]
            if bad or not all(groups.values()):
                raise ValueError(
                    f"groups name columns {bad or 'none'} but the values have {values.shape[1]} "
                    "columns"
                )
            labels = list(groups)
            curves = np.stack([values[:, cols].mean(axis=1) for cols in groups.values()], axis=1)
        else:
            curves = values
        self.values = curves
        k = curves.shape[1]
        colors = list(colors) if colors else [COLORS["curve"]] + [f"C{j}" for j in range(1, k)]
        shown = values if (groups is not None and members) else curves
        finite = shown[np.isfinite(shown)]
        if log:
            ax.set_yscale("log")
            finite = finite[finite > 0]
        if finite.size:
            lo, hi = finite.min(), finite.max()
            if log:
                ax.set_ylim(lo / 2, hi * 2)
            else:
                pad = 0.05 * (hi - lo or 1)
                ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(self.steps[0], max(self.steps[-1], self.steps[0] + 1))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, color=COLORS["grid"], linewidth=0.8)
        if groups is not None and members:
            for j, cols in enumerate(groups.values()):
                for c in cols:
                    ax.plot(
                        self.steps,
                        values[:, c],
                        color=colors[j],
                        linewidth=0.7,
                        alpha=0.3,
                        zorder=1.5,
                    )
        width = 1.8 if groups is None else 2.4
        self.lines = [
            ax.plot(
                self.steps if reveal == "cursor" else [],
                curves[:, j] if reveal == "cursor" else [],
                color=colors[j],
                linewidth=width,
                zorder=2,
                label=None if labels is None else labels[j],
            )[0]
            for j in range(k)
        ]
        self.dots = [
            ax.plot([], [], "o", color=colors[j], markersize=6, markeredgecolor="white", zorder=4)[
                0
            ]
            for j in range(k)
        ]
        self.cursor = (
            ax.axvline(self.steps[0], color=COLORS["cursor"], linewidth=1.0, zorder=3)
            if reveal == "cursor"
            else None
        )
        self.legend = None
        if labels is not None:
            self.legend = ax.legend(loc=legend_loc, fontsize="small", framealpha=0.9)
            self.legend.set_zorder(5)

    def moving(self) -> list[Any]:
        grown = self.lines if self.reveal == "grow" else [self.cursor]
        # growing curves are drawn each frame, so a legend they may cross is too (above them)
        legend = [self.legend] if self.legend is not None and self.reveal == "grow" else []
        return [*grown, *self.dots, *legend]

    def draw(self, step: int | float) -> None:
        i, k, w = bracket(self.steps, step)
        n = i + 1
        if w:  # between snapshots i and k: the curves grow to the interpolated point
            x = self.steps[i] + w * (self.steps[k] - self.steps[i])
            y = self.values[i] + w * (self.values[k] - self.values[i])
            for j, (line, dot) in enumerate(zip(self.lines, self.dots)):
                if self.reveal == "grow":
                    line.set_data(np.append(self.steps[:n], x), np.append(self.values[:n, j], y[j]))
                dot.set_data([x], [y[j]])
            if self.cursor is not None:
                self.cursor.set_xdata([x] * 2)
            return
        for j, (line, dot) in enumerate(zip(self.lines, self.dots)):
            if self.reveal == "grow":
                line.set_data(self.steps[:n], self.values[:n, j])
            dot.set_data(self.steps[n - 1 : n], self.values[n - 1 : n, j])
        if self.cursor is not None:
            self.cursor.set_xdata([self.steps[n - 1]] * 2)


class HeatmapPanel(Panel):
    """A matrix over time as coloured cells, with colour limits fixed over the whole run.

    Readable from a 1 x 15 weight vector up to 512 x 512 matrices: lines between cells only
    while cells are at least 12 pixels wide (below that they would be all one sees), a
    label on every row and column only up to 20 of them (else about 10 numbered ticks), and
    the colorbar in an inset that follows the axes box. Large matrices are drawn as one
    pre-coloured image per frame (no per-cell artists).

    Parameters
    ----------
    ax : Axes
    steps : (T,) int array
    values : (T, rows, cols) or (T, cols) array
        The matrix at each snapshot (a vector is one row); may be a memmap, read a
        snapshot at a time.
    cmap : str
        Colormap name (matplotlib or seaborn).
    vmin, vmax : float, optional
        Colour limits; default: the minimum and maximum over every snapshot, so a colour
        means the same value in every frame.
    center : float, optional
        Centre the colour limits on this value (0 for a diverging map of weights): the
        limits become ``center -/+`` the largest distance from it over the run.
    row_labels, col_labels : sequence of str, optional
        Tick labels of rows and columns (default: their indices, thinned above 20).
    col_colors : sequence of str, optional
        Colour of each column's tick label (to tell kinds of columns apart).
    annotate : bool
        Write each cell's value in it (for small matrices).
    colorbar : str or None
        Label of a colorbar beside the panel; None for no colorbar.
    fmt : str
        Format of annotations.
    square : bool
        Square cells (the axes shrink to fit); otherwise cells fill the axes.
    edgecolor : str or None
        Colour of the lines between cells (grey reads against both ends of most maps);
        ``"auto"``: grey while cells are at least 12 pixels wide, none below; None: none.
    """

    MIN_EDGED_CELL_PX = 12
    MAX_LABELLED = 20

    def __init__(
        self,
        ax: Axes,
        steps: np.ndarray,
        values: np.ndarray,
        *,
        cmap: str = "hot",
        vmin: float | None = None,
        vmax: float | None = None,
        center: float | None = None,
        row_labels: Sequence[str] | None = None,
        col_labels: Sequence[str] | None = None,
        col_colors: Sequence[str] | None = None,
        annotate: bool = False,
        colorbar: str | None = "value",
        fmt: str = "{:+.2f}",
        square: bool = False,
        edgecolor: str | None = "auto",
    ):
        self.ax, self.steps = ax, np.asarray(steps)
        if values.ndim == 2:
            values = values[:, None, :]
        if values.ndim != 3:
            raise ValueError(
                f"heatmap values must be (T, rows, cols) or (T, cols), got shape {values.shape}"
            )
        self.values = values
        lo, hi = _finite_range(values)
        if center is not None:
            reach = max(abs(lo - center), abs(hi - center)) if np.isfinite([lo, hi]).all() else 1.0
            lo, hi = center - (reach or 1.0), center + (reach or 1.0)
        lo = vmin if vmin is not None else (lo if np.isfinite(lo) else 0.0)
        hi = vmax if vmax is not None else (hi if np.isfinite(hi) else 1.0)
        if hi <= lo:
            hi = lo + 1.0
        self.norm, self.cmap = Normalize(lo, hi), get_cmap(cmap)
        rows, cols = values.shape[1:]
        if square:
            ax.set_box_aspect(rows / cols)
        box = ax.get_position()
        w, h = ax.figure.get_size_inches() * ax.figure.dpi
        cell_w = box.width * w / cols
        cell_h = (box.width * w * rows / cols if square else box.height * h) / rows
        if square and cell_h * rows > box.height * h:  # a tall matrix: the height limits the box
            cell_w = cell_h = box.height * h / rows
        if edgecolor == "auto":
            edgecolor = "#8c8c8c" if min(cell_w, cell_h) >= self.MIN_EDGED_CELL_PX else None
        self.edged = edgecolor is not None
        if self.edged:
            self.mesh = ax.pcolormesh(
                np.arange(cols + 1) - 0.5,
                np.arange(rows + 1) - 0.5,
                np.asarray(values[0]),
                cmap=self.cmap,
                norm=self.norm,
                edgecolors=edgecolor,
                linewidth=1.0,
            )
            for spine in ax.spines.values():
                spine.set_color(edgecolor)
        else:  # one image, coloured here: matplotlib only resamples bytes per frame
            self.mesh = ax.imshow(
                self._rgba(values[0]),
                extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
                interpolation="nearest",
                aspect="auto",
            )
        ax.set_xlim(-0.5, cols - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)  # row 0 on top, as a matrix is written
        # every cell labelled while there are few and they are wide enough for a label
        _index_ticks(
            ax.xaxis,
            cols,
            col_labels,
            self.MAX_LABELLED if cell_w >= 16 or col_labels else 0,
            cols * cell_w,
        )
        _index_ticks(
            ax.yaxis,
            rows,
            row_labels,
            self.MAX_LABELLED if cell_h >= 12 or row_labels else 0,
            rows * cell_h,
        )
        ax.tick_params(length=0 if self.edged else 3)
        if col_colors is not None:
            for label, color in zip(ax.get_xticklabels(), col_colors):
                label.set_color(color)
        if colorbar is not None:  # in an inset, so it follows the axes box (also when square)
            from matplotlib.cm import ScalarMappable

            cax = ax.inset_axes((1.02, 0.0, min(0.05, 0.3 * rows / cols), 1.0))
            ax.figure.colorbar(ScalarMappable(self.norm, self.cmap), cax=cax).set_label(colorbar)
        self.texts = []
        if annotate:
            self.fmt = fmt
            self.texts = [
                ax.text(c, r, "", ha="center", va="center", fontsize="large", weight="bold")
                for r in range(rows)
                for c in range(cols)
            ]

    def _rgba(self, matrix) -> np.ndarray:
        return self.cmap(self.norm(np.asarray(matrix, dtype=float)), bytes=True)

    def moving(self) -> list[Any]:
        return [self.mesh, *self.texts]

    def draw(self, step: int | float) -> None:
        matrix = interpolated(self.values, self.steps, step)  # blended between snapshots
        if self.edged:
            self.mesh.set_array(matrix.ravel())
        else:
            self.mesh.set_data(self._rgba(matrix))
        for text, v in zip(self.texts, matrix.ravel()):
            text.set_text(self.fmt.format(v))
            # dark text on light cells, light on dark ones
            r, g, b, _ = self.cmap(self.norm(v))
            text.set_color("black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")

    def cell_center(self, row: int, col: int) -> tuple[float, float]:
        """Pixel position (x from the left, y from the top) of a cell's centre on the canvas."""
        fig = self.ax.figure
        x, y = self.ax.transData.transform((col, row))
        return float(x), float(fig.bbox.height - y)


def level_lines(
    xs: np.ndarray, ys: np.ndarray, field: np.ndarray, level: float = 0.5
) -> np.ndarray:
    """The ``level`` contour of ``field`` (rows along ``ys``, columns along ``xs``) as one
    ``(n, 2)`` array of points, separate lines joined by a row of NaN (what one Line2D
    draws as several lines). Empty ``(0, 2)`` when the field never crosses ``level``."""
    import contourpy  # a matplotlib dependency

    field = np.asarray(field, dtype=np.float64)
    lines = contourpy.contour_generator(
        xs, ys, np.ma.masked_invalid(field), line_type="Separate"
    ).lines(level)
    if not lines:
        return np.zeros((0, 2))
    gap = np.full((1, 2), np.nan)
    return np.concatenate([part for line in lines for part in (line, gap)][:-1])


class DecisionFieldPanel(Panel):
    """A class-probability field over the plane, its decision contour and the data points.

    The field is an image with fixed colour limits; its ``level`` contour (computed per
    frame with contourpy, drawn as one line) and the data points lie on top. Image,
    contour, points and the axes frame are redrawn every frame (the points and the frame
    must stay above the moving image); labels, ticks, legend and colorbar are background.

    Parameters
    ----------
    ax : Axes
    steps : (T,) int array
    fields : (T, ny, nx) array
        The probability at the centres of an ``ny x nx`` lattice of cells over ``extent``,
        row 0 at the bottom (may be a memmap; rows are read on demand).
    extent : (x0, x1, y0, y1)
        Outer edges of the lattice; also the axes limits.
    x : (n, 2) array, optional
        Data points, drawn by class on top of the field.
    y : (n,) array, optional
        Class of each point (0 or 1).
    cmap : str
        Colormap name (a diverging one puts the boundary at its neutral middle).
    vmin, vmax : float
        Colour limits (0 and 1 for a probability).
    level : float
        The contour drawn (0.5: the decision boundary).
    colorbar : str or None
        Label of a colorbar beside the panel; None for no colorbar.
    class_labels : (str, str)
        Legend entries of the two classes (the legend sits above the axes).
    marker_size : float
        Marker area in points^2.
    contour_color : str
    """

    @classmethod
    def from_recording(
        cls, ax: Axes, recording, *, markers: bool = True, **kwargs: Any
    ) -> "DecisionFieldPanel":
        """The panel of a recording's ``field`` series (grid extent from its metadata), with
        its training points (``data/x``, ``data/y`` less ``data/test``) when ``markers``."""
        field = recording["field"]
        extent = tuple(float(v) for v in (recording.metadata.get("grid") or {}).get("extent", ()))
        if len(extent) != 4:
            raise KeyError(
                "recording metadata has no grid extent ('grid': {'extent': [x0, x1, y0, y1]})"
            )
        x = y = None
        if markers and "data/x" in recording and "data/y" in recording:
            x = np.asarray(recording["data/x"].values[0], dtype=float)
            y = np.asarray(recording["data/y"].values[0])
            if "data/test" in recording:
                keep = ~np.asarray(recording["data/test"].values[0], dtype=bool)
                x, y = x[keep], y[keep]
        return cls(ax, field.steps, field.values, extent, x=x, y=y, **kwargs)

    @classmethod
    def small(cls, ax: Axes, recording, config) -> "DecisionFieldPanel":
        """A small-multiples cell (no legend, no colorbar, small markers), labelled with the
        run's final accuracy; ``config`` has ``cmap``, ``markers`` and ``marker_size``."""
        panel = cls.from_recording(
            ax,
            recording,
            markers=config.markers,
            cmap=config.cmap,
            colorbar=None,
            legend=False,
            marker_size=max(3, config.marker_size / 3),
        )
        for name, label in (("test_accuracy", "test"), ("train_accuracy", "train")):
            if name in recording:
                ax.set_xlabel(
                    f"{label} accuracy {float(recording[name].values[-1]):.3f}", fontsize="small"
                )
                break
        ax.tick_params(labelsize="x-small")
        return panel

    def __init__(
        self,
        ax: Axes,
        steps: np.ndarray,
        fields: np.ndarray,
        extent: Sequence[float],
        *,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
        cmap: str = "RdBu_r",
        vmin: float = 0.0,
        vmax: float = 1.0,
        level: float = 0.5,
        colorbar: str | None = "p(class 1)",
        class_labels: tuple[str, str] = ("class 0", "class 1"),
        marker_size: float = 14,
        contour_color: str = "black",
        legend: bool = True,
    ):
        self.ax, self.steps, self.fields, self.level = ax, np.asarray(steps), fields, float(level)
        if fields.ndim != 3:
            raise ValueError(f"fields must be (T, ny, nx), got shape {fields.shape}")
        x0, x1, y0, y1 = (float(v) for v in extent)
        self.extent = (x0, x1, y0, y1)
        ny, nx = fields.shape[1:]
        self.xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx  # cell centres
        self.ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
        self.cmap, self.norm = get_cmap(cmap), Normalize(vmin, vmax)
        # coloured here (uint8 RGBA, by the colormap itself) so that per frame matplotlib
        # only resamples bytes: a 1280x720 spiral frame went from about 42 to 35 ms
        self.image = ax.imshow(
            self._rgba(fields[0]),
            extent=self.extent,
            origin="lower",
            interpolation="nearest",
            zorder=1,
        )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        (self.contour,) = ax.plot(
            [],
            [],
            color=contour_color,
            linewidth=2.0,
            zorder=3,
            label=f"p = {self.level:g}" if colorbar else None,
        )
        self.points = []
        if x is not None and y is not None:
            x, y = np.asarray(x, dtype=float), np.asarray(y)
            for cls, (style, label) in enumerate(zip(CLASS_MARKERS, class_labels)):
                pts = x[y == cls]
                self.points.append(
                    ax.scatter(pts[:, 0], pts[:, 1], s=marker_size, zorder=4, label=label, **style)
                )
        if self.points and legend:  # above the axes: inside, the moving image would cover it
            ax.legend(
                loc="lower left",
                bbox_to_anchor=(0.0, 1.0),
                ncol=3,
                fontsize="small",
                frameon=False,
                borderaxespad=0.2,
                handletextpad=0.5,
                columnspacing=1.2,
            )
        if colorbar is not None:
            from matplotlib.cm import ScalarMappable

            cax = ax.inset_axes((1.03, 0.0, 0.04, 1.0))
            bar = ax.figure.colorbar(ScalarMappable(self.norm, self.cmap), cax=cax)
            bar.set_label(colorbar)
            if vmin < self.level < vmax:
                cax.axhline(self.level, color=contour_color, linewidth=2.0)

    def moving(self) -> list[Any]:
        return [self.image, self.contour, *self.points, *self.ax.spines.values()]

    def draw(self, step: int | float) -> None:
        field = interpolated(self.fields, self.steps, step)  # blended between snapshots
        self.image.set_data(self._rgba(field))
        line = level_lines(self.xs, self.ys, field, self.level)
        self.contour.set_data(line[:, 0], line[:, 1])

    def _rgba(self, field: np.ndarray) -> np.ndarray:
        return self.cmap(self.norm(np.asarray(field, dtype=float)), bytes=True)

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """Pixel position (x from the left, y from the top) of data point ``(x, y)``."""
        px, py = self.ax.transData.transform((x, y))
        return float(px), float(self.ax.figure.bbox.height - py)


class Readout:
    """A one-line monospace readout such as ``step 12,000   loss 0.0123``, cheap per frame.

    The labels are one static text in the cached background; each value is its own
    small text placed over the blanks left for it, so only the value glyphs are drawn
    per frame (text rendering dominated frame time when the whole line was redrawn).

    Parameters
    ----------
    fig : Figure
        Must have a canvas (the Scene base class attaches one before ``setup``).
    xy : (float, float)
        Anchor in figure coordinates.
    fields : sequence of (label, format, width)
        ``("step", "{:,d}", 6)``: each value is formatted and right-aligned in a slot of
        ``width`` characters after its label.
    ha : str
        Horizontal alignment of the whole line at ``xy``.
    sep : str
        Blank space between fields.
    raster : bool
        Draw the values from cached glyphs (:class:`scenes.raster.GlyphText`, 10x cheaper
        than laying out and rendering a text each frame); False: matplotlib texts.
    """

    def __init__(
        self,
        fig,
        xy: tuple[float, float],
        fields: Sequence[tuple[str, str, int]],
        *,
        ha: str = "left",
        sep: str = "   ",
        fontsize: str = "large",
        raster: bool = True,
        **text_kw: Any,
    ):
        self.fields = list(fields)
        line, ends = "", []
        for k, (label, _, width) in enumerate(self.fields):
            line += (sep if k else "") + label + " " + " " * width
            ends.append(len(line))
        style = dict(fontsize=fontsize, family="monospace", va="center", **text_kw)
        static = fig.text(*xy, line, ha=ha, **style)
        box = static.get_window_extent(fig.canvas.get_renderer())
        char = box.width / len(line)  # monospace: every character is as wide
        if raster:
            from .raster import GlyphText

            style.pop("va")
            self.texts = [
                GlyphText(fig, ((box.x0 + end * char) / fig.bbox.width, xy[1]), char, **style)
                for end in ends
            ]
        else:
            self.texts = [
                fig.text((box.x0 + end * char) / fig.bbox.width, xy[1], "", ha="right", **style)
                for end in ends
            ]

    def moving(self) -> list[Any]:
        return list(self.texts)

    def update(self, *values: Any) -> None:
        """Show ``values``, one per field."""
        for text, (_, fmt, _), value in zip(self.texts, self.fields, values):
            text.set_text(fmt.format(value))


def histogram_percentiles(counts: np.ndarray, edges: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Percentiles ``qs`` (0-100) of the values behind histograms, by linear interpolation
    inside bins (what TensorBoard's distributions view draws).

    ``counts`` (T, bins) and ``edges`` (T, bins + 1) or (bins + 1,); returns (T, len(qs)),
    NaN where a histogram is empty.
    """
    counts = np.asarray(counts, dtype=float)
    edges = np.broadcast_to(np.asarray(edges, dtype=float), (len(counts), counts.shape[1] + 1))
    out = np.full((len(counts), len(qs)), np.nan)
    cum = np.cumsum(counts, axis=1)
    for t in range(len(counts)):
        total = cum[t, -1]
        if total > 0:
            cdf = np.concatenate([[0.0], cum[t] / total])
            out[t] = np.interp(np.asarray(qs, dtype=float) / 100, cdf, edges[t])
    return out


class DistributionPanel(Panel):
    """Percentile bands of a tensor's values over steps (TensorBoard's distributions view),
    drawn whole in the background, with a cursor at the current step.

    Parameters
    ----------
    ax : Axes
    steps : (T,) int array
    counts : (T, bins) array
        Histogram counts at each step.
    edges : (T, bins + 1) or (bins + 1,) array
        Bin edges at each step (adaptive bins) or shared by all steps.
    color : str
        Colour of the bands; the median is drawn darkest.
    ylim : (float, float), optional
        Value axis limits (default: the 0th to 100th percentile over the run, padded).
    """

    BANDS = ((0, 100), (7, 93), (16, 84), (31, 69))

    def __init__(
        self,
        ax: Axes,
        steps: np.ndarray,
        counts: np.ndarray,
        edges: np.ndarray,
        *,
        color: str = "#e6550d",
        ylim: tuple[float, float] | None = None,
        xlabel: str = "step",
        ylabel: str = "value",
    ):
        self.ax, self.steps = ax, np.asarray(steps)
        qs = [q for band in self.BANDS for q in band] + [50]
        p = histogram_percentiles(counts, edges, qs)
        for k, alpha in zip(range(len(self.BANDS)), (0.15, 0.25, 0.35, 0.45)):
            ax.fill_between(
                self.steps, p[:, 2 * k], p[:, 2 * k + 1], color=color, alpha=alpha, linewidth=0
            )
        ax.plot(self.steps, p[:, -1], color=color, linewidth=1.4)
        finite = p[np.isfinite(p)]
        if ylim is None and finite.size:
            lo, hi = finite.min(), finite.max()
            pad = 0.05 * (hi - lo or 1)
            ylim = (lo - pad, hi + pad)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xlim(self.steps[0], max(self.steps[-1], self.steps[0] + 1))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, color=COLORS["grid"], linewidth=0.8)
        self.cursor = ax.axvline(self.steps[0], color=COLORS["cursor"], linewidth=1.0, zorder=3)

    def moving(self) -> list[Any]:
        return [self.cursor]

    def draw(self, step: int | float) -> None:
        i, j, w = bracket(self.steps, step)
        self.cursor.set_xdata([self.steps[i] + w * (self.steps[j] - self.steps[i])] * 2)


class HistogramPanel(Panel):
    """The histogram of a tensor's values at the current step, as a filled step outline.

    Densities (count / total / bin width) are drawn, so adaptive bins of different widths
    compare; the axes limits are fixed over the whole run.

    Parameters
    ----------
    ax : Axes
    steps : (T,) int array
    counts : (T, bins) array
    edges : (T, bins + 1) or (bins + 1,) array
    color : str
    """

    def __init__(
        self,
        ax: Axes,
        steps: np.ndarray,
        counts: np.ndarray,
        edges: np.ndarray,
        *,
        color: str = "#e6550d",
        xlabel: str = "value",
        ylabel: str = "density",
    ):
        self.ax, self.steps = ax, np.asarray(steps)
        counts = np.asarray(counts, dtype=float)
        self.edges = np.broadcast_to(
            np.asarray(edges, dtype=float), (len(counts), counts.shape[1] + 1)
        )
        total = counts.sum(axis=1, keepdims=True)
        width = np.diff(self.edges, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.density = np.where(
                total > 0, counts / np.maximum(total, 1) / np.where(width > 0, width, np.inf), 0.0
            )
        finite = np.isfinite(self.edges)
        lo, hi = self.edges[finite].min(), self.edges[finite].max()
        ax.set_xlim(lo, hi if hi > lo else lo + 1)
        top = float(np.nanmax(self.density)) if np.isfinite(self.density).any() else 1.0
        ax.set_ylim(0, 1.05 * top if top > 0 else 1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, color=COLORS["grid"], linewidth=0.8)
        (self.line,) = ax.plot([], [], color=color, linewidth=1.6, drawstyle="steps-post")

    def moving(self) -> list[Any]:
        return [self.line]

    def draw(self, step: int | float) -> None:
        # not blended between snapshots: adaptive bins differ from one snapshot to the next
        t = snapshot_at(self.steps, step)
        e, d = self.edges[t], self.density[t]
        self.line.set_data(e, np.append(d, d[-1:]))
