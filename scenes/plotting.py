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
from matplotlib.ticker import MaxNLocator

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


def finite_range(values: np.ndarray, chunk_bytes: int = 64 << 20) -> tuple[float, float]:
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
    """Particles in the plane with their paths, plus reference points (optionally with rays
    from the origin) drawn above them.

    Parameters
    ----------
    ax : Axes
    steps : (T,) int array
        Training step of each snapshot.
    positions : (T, n, 2) array
        Particle positions at each snapshot (may be a memmap; rows are read on demand).
    references : (k, 2) array, optional
        Fixed reference points (teacher neurons, the modes of a data set), drawn as red dots
        above the particles, so a particle that reaches one never hides it.
    rays : bool
        Also draw a ray from the origin through each reference point (where a reference's
        direction is what matters, as a ReLU neuron's ``a_j w_j``), beneath the particles.
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
        rays: bool = False,
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
        # background as it grows), so they are redrawn every frame: as cached layers when
        # ``raster``, else as the artists themselves. The rays lie beneath the particles,
        # the reference dots and the legend above them.
        lines: list[Any] = []
        refs: list[Any] = []
        if self.references is not None and rays:
            for p in self.references:
                reach = 1.5 * max(abs(x0), abs(x1), abs(y0), abs(y1))  # past the corner of the box
                far = p / max(np.linalg.norm(p), 1e-12) * reach
                # over a density the rays are thin and grey, so the mass along them shows
                ray = (
                    dict(color="#555555", linewidth=0.6, alpha=0.7)
                    if self.view == "density"
                    else dict(color=COLORS["ray"], linewidth=1.2)
                )
                lines += ax.plot([0, far[0]], [0, far[1]], zorder=3, **ray)
        if self.references is not None:
            refs.append(
                ax.scatter(
                    self.references[:, 0],
                    self.references[:, 1],
                    s=particle_size * 1.1,
                    color=COLORS["reference"],
                    edgecolor="black",
                    linewidth=0.8,
                    zorder=7,
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
            self.foreground = [StaticLayer(g) for g in (lines, refs, over) if g]
        else:
            self.foreground = lines + refs + over

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
        One per curve (ignored when ``groups`` is given): the lines' labels, and a legend
        when ``legend`` is true.
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
    legend : bool
        Draw a legend of the labels on the axes (False: the lines keep their labels, for
        a legend shared by several panels, :meth:`handles`).
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
        legend: bool = True,
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
        if labels is not None and len(labels) != k:
            raise ValueError(f"{len(labels)} labels for {k} curves: give one label per curve")
        colors = list(colors) if colors else [COLORS["curve"]] + [f"C{j}" for j in range(1, k)]
        if len(colors) < k:
            raise ValueError(f"{len(colors)} colors for {k} curves: give one color per curve")
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps: no "2.5"
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
        if labels is not None and legend:
            self.legend = ax.legend(loc=legend_loc, fontsize="small", framealpha=0.9)
            self.legend.set_zorder(5)

    def handles(self) -> list[Any]:
        """The curves' lines, each labelled (for a legend outside the axes)."""
        return list(self.lines)

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
        lo, hi = finite_range(values)
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
        run's final accuracy (said as final: a still of one step relabels it with
        :meth:`readout`); ``config`` has ``cmap``, ``markers`` and ``marker_size``."""
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
                panel.accuracy = label, recording[name]
                ax.set_xlabel(
                    f"final {label} accuracy {float(recording[name].values[-1]):.3f}",
                    fontsize="small",
                )
                break
        ax.tick_params(labelsize="x-small")
        return panel

    #: ``(label, series)`` of the accuracy a small cell is labelled with (None: none)
    accuracy = None

    def readout(self, step: float) -> str | None:
        """The accuracy at ``step`` (its last snapshot at or before it), for a still of that
        step (a handout's keyframe), never the run's final figure."""
        if self.accuracy is None:
            return None
        label, series = self.accuracy
        i = int(np.searchsorted(series.steps, step, side="right")) - 1
        if i < 0:
            return f"{label} accuracy: not measured yet"
        return f"{label} accuracy {float(series.values[i]):.3f} (step {int(series.steps[i]):,d})"

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


# -- colour scales that follow each frame, convolution filter grids, rows over steps ------
# (Added for models of many tensors: gradients that shrink over decades, convolution
# kernels, a picture of every tensor of a model at once.)

#: Colour scales of :class:`ScaledHeatmapPanel`: ``run`` (limits fixed over the run),
#: ``frame`` (limits from a robust percentile of each frame), ``symlog`` (symmetric log,
#: fixed over the run).
HEATMAP_SCALES = ("run", "frame", "symlog")
#: Under the ``frame`` scale, each frame's colour limits are ``center -/+`` this percentile
#: of ``|value - center|`` (uncentred: this and ``100 -`` this percentile): a few outlying
#: entries saturate instead of washing every other cell out to white.
FRAME_PERCENTILE = 99.0


def frame_limits(
    values,
    *,
    center: float | None = 0.0,
    q: float = FRAME_PERCENTILE,
    chunk_bytes: int = 64 << 20,
) -> np.ndarray:
    """``(T, 2)`` colour limits of each snapshot of ``values`` (``(T, ...)``): ``center -/+``
    the ``q``-th percentile of ``|value - center|``, or without ``center`` the ``100 - q``-th
    and ``q``-th percentiles. NaN entries are ignored; a snapshot with no spread (all zero,
    all NaN) gets the widest limits of the others (or ``center -/+ 1``). Reads
    ``chunk_bytes`` of snapshots at a time, so a memmap larger than memory works."""
    n = len(values)
    out = np.full((n, 2), np.nan)
    per = max(1, chunk_bytes // max(values[0].nbytes if n else 1, 1))
    for lo in range(0, n, per):
        block = np.asarray(values[lo : lo + per], dtype=float).reshape(min(per, n - lo), -1)
        with np.errstate(all="ignore"):
            block = np.where(np.isfinite(block), block, np.nan)
            if center is not None:
                reach = np.nanpercentile(np.abs(block - center), q, axis=1)
                out[lo : lo + per] = np.stack([center - reach, center + reach], axis=1)
            else:
                out[lo : lo + per] = np.nanpercentile(block, [100 - q, q], axis=1).T
    spread = out[:, 1] - out[:, 0]
    good = np.isfinite(spread) & (spread > 0)
    if not good.all():
        mid = 0.0 if center is None else center
        wide = (out[good, 0].min(), out[good, 1].max()) if good.any() else (mid - 1.0, mid + 1.0)
        out[~good] = wide
    return out


def _tick_text(v: float) -> str:
    """A colorbar tick of a scale that changes every frame: one width whatever the decade."""
    return "0" if v == 0 else f"{v:.1e}".replace("-", "\u2212")


def colorbar_axes(ax: Axes, width_in: float = 0.15, gap_in: float = 0.08) -> Axes:
    """An inset beside ``ax`` for a vertical colorbar, ``width_in`` wide and ``gap_in`` from it
    (inches: as wide beside a narrow panel as beside a wide one); it follows the axes box."""
    inches = max(ax.get_window_extent().width / ax.figure.dpi, 1e-3)
    return ax.inset_axes((1 + gap_in / inches, 0.0, width_in / inches, 1.0))


def fit_colorbar_label(colorbar, labels: Sequence[str], fontsize: str = "small") -> str:
    """Label ``colorbar`` (vertical) with the first of ``labels`` whose length fits the bar's
    height (measured with the figure's renderer), else the shortest at ``x-small``; returns
    the label used. Long labels first: ``"gradient, per-frame scale"``, then shorter ones
    or ones broken into lines."""
    cax = colorbar.ax
    renderer = cax.figure.canvas.get_renderer()
    height = cax.get_window_extent(renderer).height
    for label in labels:
        colorbar.set_label(label, fontsize=fontsize)
        if colorbar.ax.yaxis.label.get_window_extent(renderer).height <= 1.05 * height:
            return label
    colorbar.set_label(labels[-1], fontsize="x-small")
    return labels[-1]


class ScaledHeatmapPanel(HeatmapPanel):
    """A :class:`HeatmapPanel` with a chosen colour scale, and a colorbar that says which.

    * ``run``: limits fixed over the run (the plain heatmap): a colour means one value in
      every frame;
    * ``frame``: limits from a robust percentile of each frame (:func:`frame_limits`),
      blended between snapshots, so a gradient that shrinks over decades stays readable:
      the colorbar is fixed, and its tick labels (drawn every frame) give the frame's values;
    * ``symlog``: a symmetric log scale fixed over the run (linear within the smallest
      frame's spread), so values of every decade get their own colours.

    Parameters
    ----------
    ax, steps, values
        As :class:`HeatmapPanel` (``values`` may be a lazy view, e.g. :class:`FilterGrid`).
    scale : str
        One of :data:`HEATMAP_SCALES`.
    quantity : str
        What the cells are (``"weight"``, ``"gradient"``): the colorbar's label, with the scale.
    colorbar : bool
        Draw the colorbar (in an inset beside the axes).
    q : float
        The percentile of the ``frame`` scale.
    **kwargs
        The other arguments of :class:`HeatmapPanel` (``cmap``, ``center``, ``vmin`` ...).
    """

    def __init__(
        self,
        ax: Axes,
        steps: np.ndarray,
        values,
        *,
        scale: str = "run",
        quantity: str = "value",
        colorbar: bool = True,
        q: float = FRAME_PERCENTILE,
        **kwargs: Any,
    ):
        if scale not in HEATMAP_SCALES:
            raise ValueError(f"scale must be one of {', '.join(HEATMAP_SCALES)}, got {scale!r}")
        super().__init__(ax, steps, values, colorbar=None, **kwargs)
        self.scale, self.quantity = scale, quantity
        center = kwargs.get("center")
        self.center = center
        self.limits = None  # (T, 2) under the frame scale
        if scale == "frame":
            self.limits = frame_limits(self.values, center=center, q=q)
            self.norm.vmin, self.norm.vmax = self.limits[-1]
        elif scale == "symlog":
            from matplotlib.colors import SymLogNorm

            spread = frame_limits(self.values, center=center, q=q)
            half = (spread[:, 1] - spread[:, 0]) / 2
            reach = max(abs(self.norm.vmin), abs(self.norm.vmax))
            linthresh = float(max(half.min(), reach * 1e-8, np.finfo(float).tiny))
            self.norm = SymLogNorm(linthresh, vmin=self.norm.vmin, vmax=self.norm.vmax, base=10)
            if self.edged:
                self.mesh.set_norm(self.norm)
        self.scale_texts: list[Any] = []
        self.colorbar = self._colorbar() if colorbar else None

    def _colorbar(self):
        from matplotlib.cm import ScalarMappable
        from matplotlib.transforms import blended_transform_factory, offset_copy

        ax = self.ax
        cax = colorbar_axes(ax)
        fig = ax.figure
        scale = {"run": "scale fixed over run", "frame": "per-frame scale", "symlog": "symlog"}
        what = scale[self.scale]
        short = {"run": "fixed scale", "frame": "per frame", "symlog": "symlog"}[self.scale]
        q = self.quantity
        labels = [f"{q}, {what}", f"{q}\n{what}", f"{q}\n{short}"]
        if self.scale != "frame":
            cb = fig.colorbar(ScalarMappable(self.norm, self.cmap), cax=cax)
            ticks = self._symlog_ticks(cax.get_window_extent().height)
            if self.scale == "symlog" and ticks:
                cb.set_ticks(ticks)
            fit_colorbar_label(cb, labels)
            return cb
        # The bar is fixed (what changes is the values its ticks stand for): ticks at fixed
        # fractions with invisible labels as wide as any frame's (so the label sits past
        # them), and texts over them that each frame rewrites.
        centred = self.center is not None
        fractions = np.array([-1, -0.5, 0, 0.5, 1.0]) if centred else np.linspace(0, 1, 5)
        cb = fig.colorbar(ScalarMappable(Normalize(fractions[0], 1.0), self.cmap), cax=cax)
        widest = _tick_text(-8.8e-88)
        cb.set_ticks(fractions, labels=[widest] * len(fractions))
        cax.tick_params(labelcolor="none")
        size = matplotlib.rcParams["ytick.labelsize"]
        pad = matplotlib.rcParams["ytick.major.size"] + matplotlib.rcParams["ytick.major.pad"]
        where = offset_copy(
            blended_transform_factory(cax.transAxes, cax.transData), fig=fig, x=pad, units="points"
        )
        self.fractions = fractions
        self.scale_texts = [
            cax.text(1.0, f, "", transform=where, ha="left", va="center", fontsize=size)
            for f in fractions
        ]
        fit_colorbar_label(cb, labels)
        self._label_scale(*self.limits[-1])
        return cb

    def _symlog_ticks(self, height_px: float) -> list[float]:
        """Under the symlog scale (else none): 0 and signed decades from the linear range
        out, every k-th so that their labels stand apart on a bar ``height_px`` tall."""
        norm = self.norm
        if self.scale != "symlog":
            return []
        font_px = matplotlib.font_manager.FontProperties(
            size=matplotlib.rcParams["ytick.labelsize"]
        ).get_size_in_points()
        need = 1.5 * font_px * self.ax.figure.dpi / 72 / max(height_px, 1.0)  # bar fraction
        reach = max(abs(norm.vmin), abs(norm.vmax))
        first = int(np.ceil(np.log10(norm.linthresh)))
        decades = [10.0**d for d in range(first, int(np.floor(np.log10(reach))) + 1)]
        if not decades:  # within one decade: matplotlib's own ticks
            return []
        gap = (float(norm(decades[-1])) - float(norm(decades[0]))) / max(len(decades) - 1, 1)
        every = max(1, int(np.ceil(need / max(gap, 1e-9))))
        picked = decades[::-1][::every]  # the largest decade always shows
        zero = float(norm(0.0))
        keep = [v for v in picked if float(norm(v)) - zero >= need]
        ticks = [0.0] + [s * v for v in keep for s in (1, -1)]
        return sorted(t for t in ticks if norm.vmin <= t <= norm.vmax)

    def _label_scale(self, lo: float, hi: float) -> None:
        if self.center is not None:
            values = self.center + self.fractions * (hi - lo) / 2
        else:
            values = lo + self.fractions * (hi - lo)
        for text, v in zip(self.scale_texts, values):
            text.set_text(_tick_text(float(v)))

    def limits_at(self, step: int | float) -> tuple[float, float]:
        """The colour limits at ``step`` (under the ``frame`` scale, blended between the
        snapshots around it, as the cells are)."""
        if self.limits is None:
            return float(self.norm.vmin), float(self.norm.vmax)
        i, j, w = bracket(self.steps, step)
        lo, hi = self.limits[i] + w * (self.limits[j] - self.limits[i])
        return float(lo), float(hi)

    def moving(self) -> list[Any]:
        return [*super().moving(), *self.scale_texts]

    def draw(self, step: int | float) -> None:
        if self.limits is not None:
            lo, hi = self.limits_at(step)
            self.norm.vmin, self.norm.vmax = lo, hi
            if self.scale_texts:
                self._label_scale(lo, hi)
        super().draw(step)


#: A filter grid keeps at most this many cells along each side (tiles and the blank cells
#: between them): the size up to which a heatmap stays readable (see HeatmapPanel).
MAX_GRID_CELLS = 512


class FilterGrid:
    """Convolution kernels ``(T, out, in, *kernel)`` as one matrix per snapshot: ``out x in``
    tiles of ``kh x kw`` (rows: output channels, columns: input channels), a blank (NaN)
    cell between tiles. Lazy: ``grid[i]`` and ``grid[a:b]`` read only those snapshots (of a
    memmap), as :class:`HeatmapPanel` and :func:`frame_limits` index it.

    A rank-3 kernel ``(out, in, k)`` (1-D convolution) gives tiles of ``1 x k``; a rank-5
    kernel ``(out, in, d, kh, kw)`` (3-D convolution) one depth slice, ``depth`` (default the
    middle one). Beyond :data:`MAX_GRID_CELLS` cells along a side the first channels are
    shown (``out_shown``, ``in_shown`` say how many).

    Attributes
    ----------
    shape : tuple of int
        ``(T, rows, cols)`` of the matrices.
    tile : (int, int)
        ``(kh, kw)``.
    channels, out_shown, in_shown : ints
        ``(out, in)`` of the kernel, and how many of each are drawn.
    depth : int or None
        The depth slice of a 3-D kernel, and ``depths`` how many there are.
    """

    ndim = 3

    def __init__(self, values, depth: int | None = None, most: int = MAX_GRID_CELLS):
        shape = tuple(values.shape[1:])
        if not 3 <= len(shape) <= 5:
            raise ValueError(
                f"a filter grid draws kernels of rank 3 to 5 (out, in, ...), got shape {shape}"
            )
        self.values = values
        self.channels = shape[:2]
        kernel = shape[2:]
        self.depth = self.depths = None
        if len(kernel) == 3:
            self.depths = kernel[0]
            self.depth = self.depths // 2 if depth is None or depth < 0 else int(depth)
            if not 0 <= self.depth < self.depths:
                raise ValueError(
                    f"depth {depth} is outside the kernel's {self.depths} depth slices "
                    f"(0 to {self.depths - 1})"
                )
            kernel = kernel[1:]
        self.tile = (1, kernel[0]) if len(kernel) == 1 else (kernel[0], kernel[1])
        kh, kw = self.tile
        self.out_shown = min(self.channels[0], max(1, (most + 1) // (kh + 1)))
        self.in_shown = min(self.channels[1], max(1, (most + 1) // (kw + 1)))
        self.shape = (
            len(values),
            self.out_shown * (kh + 1) - 1,
            self.in_shown * (kw + 1) - 1,
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            i = range(len(self))[index]
            return self[i : i + 1][0]
        block = self.values[index][:, : self.out_shown, : self.in_shown]
        if self.depth is not None:
            block = block[:, :, :, self.depth]
        block = np.asarray(block, dtype=float)
        n = len(block)
        kh, kw = self.tile
        block = block.reshape(n, self.out_shown, self.in_shown, kh, kw)
        grid = np.full((n, self.out_shown, kh + 1, self.in_shown, kw + 1), np.nan)
        grid[:, :, :kh, :, :kw] = block.transpose(0, 1, 3, 2, 4)
        grid = grid.reshape(n, self.out_shown * (kh + 1), self.in_shown * (kw + 1))
        return grid[:, :-1, :-1]

    def centres(self, axis: int) -> np.ndarray:
        """Cell coordinate of the middle of each tile along ``axis`` (0: rows, the output
        channels; 1: columns, the input channels)."""
        k, n = (self.tile[0], self.out_shown) if axis == 0 else (self.tile[1], self.in_shown)
        return np.arange(n) * (k + 1) + (k - 1) / 2

    def tiles(self, matrix: np.ndarray) -> np.ndarray:
        """The ``(out_shown, in_shown, kh, kw)`` kernels back from one grid matrix."""
        kh, kw = self.tile
        padded = np.pad(matrix, ((0, 1), (0, 1)), constant_values=np.nan)
        return padded.reshape(self.out_shown, kh + 1, self.in_shown, kw + 1)[
            :, :kh, :, :kw
        ].transpose(0, 2, 1, 3)

    def label_tiles(self, ax: Axes, min_px: float = 22) -> None:
        """Ticks on the tiles' centres, labelled with channel indices (every k-th where
        tiles are narrower than ``min_px``), and the axes labelled with the channels (and
        the depth slice of a 3-D kernel)."""
        box = ax.get_window_extent()
        depth = "" if self.depth is None else f" (depth slice {self.depth} of {self.depths})"
        for axis, n, px, label in (
            (ax.yaxis, self.out_shown, box.height, "output channel"),
            (ax.xaxis, self.in_shown, box.width, "input channel" + depth),
        ):
            centres = self.centres(0 if axis is ax.yaxis else 1)
            every = max(1, int(np.ceil(min_px / max(px / n, 1e-9))))
            picks = np.arange(0, n, every)
            axis.set_ticks(centres[picks], [str(i) for i in picks])
            axis.set_label_text(label)
        ax.tick_params(length=2)


class StepMapPanel(Panel):
    """One row per item (a tensor of a model) over training steps: a per-item quantity as a
    log-coloured image, whole from the first frame, with a cursor at the current step.

    Readable from 1 to 500 rows: every row is labelled while rows are tall enough for a
    label; below that, runs of rows that share a module prefix are labelled as one group
    (``encoder.layers.0.self_attn (4)``), with a thin line between groups; failing that,
    every k-th row. Zero (a tensor that did not move) is drawn grey, no value (no snapshot
    yet, e.g. the update before the second one) white.

    Parameters
    ----------
    ax : Axes
    edges : (C + 1,) float array
        Step edges of the image's columns (uniform).
    values : (rows, C) float array
        The quantity of each row in each column.
    labels : sequence of str
        One per row (the items' names, in order).
    cmap : str
    colorbar : str or None
        What the colours are (the colorbar's label); None: no colorbar.
    xlabel, ylabel : str
    """

    ZERO, MISSING = "#c8c8c8", "white"
    MAX_LABEL = 40

    def __init__(
        self,
        ax: Axes,
        edges: np.ndarray,
        values: np.ndarray,
        labels: Sequence[str],
        *,
        cmap: str = "viridis",
        colorbar: str | None = "value",
        xlabel: str = "step",
        ylabel: str = "tensor",
    ):
        from matplotlib.colors import LogNorm

        self.ax, self.edges = ax, np.asarray(edges, dtype=float)
        self.values = np.asarray(values, dtype=float)
        rows, cols = self.values.shape
        if len(labels) != rows or len(self.edges) != cols + 1:
            raise ValueError(
                f"{rows} rows need {rows} labels (got {len(labels)}), {cols} columns "
                f"{cols + 1} edges (got {len(self.edges)})"
            )
        self.labels = list(labels)
        positive = self.values[np.isfinite(self.values) & (self.values > 0)]
        lo, hi = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
        if hi <= lo * 10:  # at least a decade, so the colorbar has a labelled tick
            mid = np.sqrt(lo * hi)
            lo, hi = mid / np.sqrt(10), mid * np.sqrt(10)
        self.norm = LogNorm(lo, hi)
        self.cmap = get_cmap(cmap).with_extremes(under=self.ZERO, bad=self.MISSING)
        v = self.values
        with np.errstate(invalid="ignore"):
            shown = np.where(v > 0, v, np.where(v == 0, lo / 10, np.nan))
        box = ax.get_window_extent()
        sampled = rows > box.height or cols > box.width  # more cells than pixels: average
        self.image = ax.imshow(
            self.cmap(self.norm(shown), bytes=True),
            extent=(self.edges[0], self.edges[-1], rows - 0.5, -0.5),
            aspect="auto",
            interpolation="antialiased" if sampled else "nearest",
        )
        ax.set_xlim(self.edges[0], self.edges[-1])
        ax.set_ylim(rows - 0.5, -0.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        self.row_ticks = self._label_rows(box.height / rows)
        self.cursor = ax.axvline(self.edges[0], color="#d62728", linewidth=1.5, zorder=3)
        self.colorbar = None
        if colorbar is not None:
            from matplotlib.cm import ScalarMappable

            cax = colorbar_axes(ax)
            zeros = bool((self.values == 0).any())
            self.colorbar = ax.figure.colorbar(
                ScalarMappable(self.norm, self.cmap), cax=cax, extend="min" if zeros else "neither"
            )
            fit_colorbar_label(
                self.colorbar, [f"{colorbar} (log scale)", f"{colorbar}\n(log scale)", colorbar]
            )

    @classmethod
    def shorten(cls, labels: Sequence[str]) -> list[str]:
        """``labels`` in at most :attr:`MAX_LABEL` characters each: the first ``k`` parts of
        every dotted name cut to 3 letters (those longer than 4), the same ``k`` for all
        (the least that makes them fit; ``enc.lay.0.self_attn.in_proj_weight``: layer
        indices and the tensor's own name stay, siblings alike), then what is still too long
        shortened in the middle."""
        split = [label.split(".") for label in labels]

        def cut(parts: list[str], k: int) -> str:
            k = min(k, len(parts) - 2)
            return ".".join([p[:3] if len(p) > 4 else p for p in parts[:k]] + parts[max(k, 0) :])

        out = list(labels)
        for k in range(max((len(p) for p in split), default=0) - 1):
            out = [cut(p, k) for p in split]
            if all(len(label) <= cls.MAX_LABEL for label in out):
                break
        keep = cls.MAX_LABEL - 1
        return [
            label
            if len(label) <= cls.MAX_LABEL
            else label[: keep // 2] + "\u2026" + label[len(label) - (keep - keep // 2) :]
            for label in out
        ]

    def _label_rows(self, row_px: float) -> str:
        """Label rows (see the class docstring); returns how: ``"each"``, ``"groups"`` or
        ``"every k"``."""
        ax, labels = self.ax, self.labels
        font_px = matplotlib.font_manager.FontProperties(size="x-small").get_size_in_points()
        font_px *= ax.figure.dpi / 72
        fit = max(1, int(len(labels) * row_px // (1.6 * font_px)))
        ax.tick_params(axis="y", labelsize="x-small", length=2)
        if len(labels) <= fit:
            ax.set_yticks(range(len(labels)), self.shorten(labels))
            return "each"
        runs = module_runs(labels, fit, min_gap=1.6 * font_px / row_px)
        if runs is not None:
            centres = [(a + b - 1) / 2 for _, a, b in runs]
            ax.set_yticks(centres, self.shorten([f"{key} ({b - a})" for key, a, b in runs]))
            for _, a, _ in runs[1:]:
                ax.axhline(a - 0.5, color="white", linewidth=0.8, zorder=2)
            return "groups"
        every = int(np.ceil(len(labels) / fit))
        picks = range(0, len(labels), every)
        ax.set_yticks(list(picks), self.shorten([f"{i}: {labels[i]}" for i in picks]))
        return f"every {every}"

    def moving(self) -> list[Any]:
        return [self.cursor]

    def draw(self, step: int | float) -> None:
        self.cursor.set_xdata([float(step)] * 2)


def module_runs(
    names: Sequence[str], most: int, min_gap: float = 0.0
) -> list[tuple[str, int, int]] | None:
    """``names`` (dotted, in model order) cut into runs of consecutive names in one module:
    ``(module, first, stop)`` each. Starting from the whole model, the largest runs that
    can be (all of one size, so sibling layers alike) are split by one more level of the
    module path (a run whose names all lie in one submodule takes its name:
    ``bert.encoder`` becomes ``bert.encoder.layer``), while there
    are at most ``most`` runs with centres at least ``min_gap`` rows apart (so that their
    labels never run into each other): BERT's 42 tensors give ``bert.embeddings``,
    ``bert.encoder.layer.0.attention``, ... where rows are tall enough, ``bert.embeddings``,
    ``bert.encoder.layer.0``, ``bert.encoder.layer.1``, ``cls`` where they are not. None
    where no split fits (one run says nothing)."""
    paths = [n.split(".")[:-1] or [n] for n in names]

    def split(depth: int, a: int, b: int) -> list[tuple[int, int, int]]:
        """Run ``a:b`` at ``depth`` split one level deeper (descending while it stays one)."""
        while any(len(paths[i]) > depth for i in range(a, b)):
            depth += 1
            parts: list[tuple[int, int, int]] = []
            for i in range(a, b):
                key = paths[i][:depth]
                if parts and paths[parts[-1][1]][:depth] == key:
                    parts[-1] = (depth, parts[-1][1], i + 1)
                else:
                    parts.append((depth, i, i + 1))
            if len(parts) > 1:
                return parts
        return [(depth, a, b)]

    def fits(runs: list[tuple[int, int, int]]) -> bool:
        centres = [(a + b - 1) / 2 for _, a, b in runs]
        return len(runs) <= most and (len(runs) < 2 or min(np.diff(centres)) >= min_gap)

    runs = split(0, 0, len(names))
    if len(runs) < 2 or not fits(runs):
        return None
    while True:
        parts = [split(*run) for run in runs]
        sizes = [b - a for (_, a, b), p in zip(runs, parts) if len(p) > 1]
        if not sizes:
            break
        largest = max(sizes)  # split every run of that size, so sibling layers alike
        trial = [
            r
            for (d, a, b), p in zip(runs, parts)
            for r in (p if b - a == largest and len(p) > 1 else [(d, a, b)])
        ]
        if not fits(trial):
            break
        runs = trial
    return [(".".join(paths[a][:depth]), a, b) for depth, a, b in runs]


# -- layout: panels packed into cells, each fitted so that nothing it draws leaves its cell


def packed_cells(
    rows: Sequence[Sequence[float]],
    *,
    left: float,
    right: float,
    bottom: float,
    top: float,
) -> list[Any]:
    """Cells (figure-fraction :class:`~matplotlib.transforms.Bbox`, row by row) that tile
    the box ``left..right`` x ``bottom..top`` with no hole: equal-height rows, each split
    among its panels in proportion to their weights (``[[2, 1], [1, 1]]``: a double-width
    panel and a single one above two halves)."""
    from matplotlib.transforms import Bbox

    cells = []
    height = (top - bottom) / len(rows)
    for r, weights in enumerate(rows):
        y1 = top - r * height
        x = left
        total = float(sum(weights))
        for w in weights:
            x1 = x + (right - left) * w / total
            cells.append(Bbox.from_extents(x, y1 - height, x1, y1))
            x = x1
    return cells


def axes_in(fig, cell, *, colorbar: bool = False) -> Axes:
    """Axes inside ``cell`` (figure fractions), leaving first guesses of the room its tick
    labels, axis labels, title (and colorbar) take; :func:`fit_into` then makes it exact."""
    w, h = fig.get_size_inches()
    left, right = 0.75 / w, (1.1 if colorbar else 0.25) / w
    bottom, top = 0.6 / h, 0.35 / h
    return fig.add_axes(
        (
            cell.x0 + left,
            cell.y0 + bottom,
            max(cell.width - left - right, 0.05),
            max(cell.height - bottom - top, 0.05),
        )
    )


def axes_titles(ax: Axes) -> dict[str, Any]:
    """``ax``'s non-empty titles by ``loc`` (``left``, ``center``, ``right``)."""
    from matplotlib.text import Text

    texts = [t for t in ax.get_children() if isinstance(t, Text)]
    out = {}
    for loc in ("left", "center", "right"):
        text = ax.get_title(loc=loc)
        found = [t for t in texts if text and t.get_text() == text and t not in out.values()]
        if found:
            out[loc] = found[0]
    return out


def _fit_text(title, room_px: float, renderer, *, drop: bool = False) -> None:
    """Make ``title`` at most ``room_px`` wide: a smaller font first (down to x-small), then
    shortened in the middle; with ``drop``, emptied instead where under 3 characters would
    be left."""
    for size in ("small", "x-small"):
        if title.get_window_extent(renderer).width <= room_px:
            return
        title.set_fontsize(size)
    text = title.get_text()
    while len(text) > 4 and title.get_window_extent(renderer).width > room_px:
        keep = len(text) - 2
        text = text[: keep // 2] + "\u2026" + text[len(text) - (keep - keep // 2) + 1 :]
        title.set_text(text)
    if drop and title.get_window_extent(renderer).width > room_px:
        title.set_text("")


def _fit_titles(ax: Axes, right_px: float, renderer) -> None:
    """Fit ``ax``'s titles left of ``right_px``: the left (or centre) one, then the right one
    in the room between it and the axes' right edge (dropped if there is none)."""
    titles = axes_titles(ax)
    main = titles.get("left") or titles.get("center")
    if main is not None:
        _fit_text(main, right_px - ax.get_window_extent(renderer).x0, renderer)
    side = titles.get("right")
    if side is not None:
        start = main.get_window_extent(renderer).x1 + 12 if main is not None else 0
        _fit_text(side, ax.get_window_extent(renderer).x1 - start, renderer, drop=True)


def _overflow(lo: float, hi: float, cell_lo: float, cell_hi: float) -> tuple[float, float, float]:
    """``(shift, shrink_lo, shrink_hi)`` that bring the extent ``lo..hi`` inside
    ``cell_lo..cell_hi``: move towards free room first, shrink by what is left."""
    lo_over, hi_over = cell_lo - lo, hi - cell_hi  # > 0: sticks out on that side
    if lo_over <= 0 and hi_over <= 0:
        return 0.0, 0.0, 0.0
    if lo_over > 0 and hi_over > 0:
        return 0.0, lo_over, hi_over
    if hi_over > 0:
        move = min(hi_over, -lo_over)
        return -move, 0.0, hi_over - move
    move = min(lo_over, -hi_over)
    return move, lo_over - move, 0.0


def fit_into(ax: Axes, cell, *, pad_px: float = 4.0, rounds: int = 8) -> None:
    """Move and shrink ``ax`` so that all it draws (:meth:`Axes.get_tightbbox`: tick labels,
    axis labels, title, colorbar insets) lies inside ``cell`` (figure fractions), ``pad_px``
    from its edges: so panels in neighbouring cells never overlap. A title wider than the
    room left of the cell's right edge gets a smaller font, then is shortened in the middle
    (a right-hand title fits between it and the axes' right edge, or is dropped). Axes with
    a fixed aspect shrink keeping it. Measured with the figure's renderer, once, at build
    time: the frame size never changes."""
    if _settled(ax):
        return
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    (cx0, cy0), (cx1, cy1) = fig.transFigure.transform(cell.get_points())
    cx0, cy0, cx1, cy1 = cx0 + pad_px, cy0 + pad_px, cx1 - pad_px, cy1 - pad_px
    ax.set_position(ax.get_position())  # the drawn box (after any aspect) is the one to fit
    for _ in range(rounds):
        _fit_titles(ax, cx1, renderer)
        tight = ax.get_tightbbox(renderer)
        sx, lx, hx = _overflow(tight.x0, tight.x1, cx0, cx1)
        sy, ly, hy = _overflow(tight.y0, tight.y1, cy0, cy1)
        if not any((sx, lx, hx, sy, ly, hy)):
            return
        (x0, y0), (x1, y1) = ax.get_window_extent(renderer).get_points()
        x0, x1, y0, y1 = x0 + sx + lx, x1 + sx - hx, y0 + sy + ly, y1 + sy - hy
        if x1 - x0 < 8 or y1 - y0 < 8:
            return  # nothing sensible fits: leave it
        (fx0, fy0), (fx1, fy1) = fig.transFigure.inverted().transform([(x0, y0), (x1, y1)])
        ax.set_position((fx0, fy0, fx1 - fx0, fy1 - fy0))


def _settled(ax: Axes) -> bool:
    """True where ``ax``'s figure already knows its layout, so measuring is skipped: the
    later keyframes of a handout take the first one's (:class:`scenes.handout.Sheet`)."""
    return getattr(ax.figure, "template", None) is not None


def thin_step_ticks(ax: Axes, gap_px: float = 10.0) -> None:
    """Fewer integer ticks on ``ax``'s x axis (a step axis) until its labels stand at least
    ``gap_px`` apart: a narrow panel of a long run gets 0, 3000, 6000, not ten labels run
    together."""
    if _settled(ax):
        return
    renderer = ax.figure.canvas.get_renderer()
    lo, hi = sorted(ax.get_xlim())
    for bins in (8, 6, 5, 4, 3, 2, 1):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=bins, integer=True))
        ax.get_tightbbox(renderer)  # places the ticks and their labels
        boxes = sorted(
            (
                t.get_window_extent(renderer)
                for t in ax.get_xticklabels()
                if t.get_text() and lo <= t.get_position()[0] <= hi
            ),
            key=lambda b: b.x0,
        )
        if all(b.x0 - a.x1 >= gap_px for a, b in zip(boxes, boxes[1:])):
            return
