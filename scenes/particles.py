"""Any ``(T, n, 2)`` series as particles moving in the plane, with their paths.

Run: ``python -m scenes.particles RUN.rec [--show SERIES]`` (writes
``outputs/particles.mp4``); ``--help`` lists every flag. Without ``--show`` it draws the
``(T, n, 2)`` series most likely meant (:func:`planar_series`: what the run computed or
saw, such as a GAN's ``samples``, before a parameter that happens to have two columns),
names it in its title and, when there were others, says so on stderr. Reference points
are drawn above the particles when the recording's metadata has them
(``metadata["references"][SERIES] = {"points": [[x, y], ...], "label": "..."}``;
``--no-references`` leaves them out, ``--rays`` adds a ray from the origin through each),
and a scalar curve beside the particles when the recording has that series (``--curve
loss``, the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from matplotlib.figure import Figure

from dynamics.limits import check_limits
from dynamics.recording import Recording, Series

from .base import Cell, Field, PanelScene, split_names
from .plotting import CurvesPanel, ParticlePanel, resolve_view, square_box
from .registry import register

__all__ = ["ParticlesScene", "ParticlesSceneConfig", "planar_series"]


#: Kinds of ``(T, n, 2)`` series, most likely to be points in the plane first: what the
#: run computed (``derived``: a GAN's samples, a network's neurons as points) or saw
#: (``data``) before a tensor that merely has two columns (a parameter, its gradient).
PLANAR_KINDS = ("derived", "data", "", "buffer", "parameter", "gradient")


def planar_series(recording: Recording) -> list[str]:
    """Names of the series whose snapshots are ``(n, 2)``: points in the plane, the most
    likely meant first: series with two snapshots or more (that move) before single
    snapshots, then by kind (:data:`PLANAR_KINDS`), then in recording order."""
    planar = [
        name
        for name, s in recording.items()
        if len(s.shape) == 2 and s.shape[1] == 2 and s.shape[0] > 0
    ]

    def rank(name: str) -> tuple[bool, int]:
        s = recording[name]
        kind = PLANAR_KINDS.index(s.kind) if s.kind in PLANAR_KINDS else len(PLANAR_KINDS)
        return len(s) < 2, kind

    return sorted(planar, key=rank)


@dataclass(frozen=True)
class ParticlesSceneConfig:
    """What the particle picture shows.

    Attributes
    ----------
    show : str
        The ``(T, n, 2)`` series drawn as particles ("": the one most likely meant, derived
        and data series before parameters; the title names it, and the command says so
        when there were others).
    limit : float
        The axes span [-limit, limit] on both axes, fixed for the whole movie; 0 fits a
        square around every position of the run, with a margin.
    trail : int
        0 keeps every earlier position as a faint grey dot (the whole path); k > 0 keeps
        only the last k positions.
    curve : str
        A scalar series drawn as a curve beside the particles ("": none); the default,
        loss, only where the recording has it.
    view : str
        ``particles`` (a marker per particle), ``density`` (a 2-D image of the particles'
        mass, positive and negative weight in two colours, earlier positions as a faint
        grey density) or ``auto``: density above 2 000 particles.
    mass : str
        A ``(T, n)`` series of each particle's signed weight for the density view ("": the
        one the recording's ``metadata["mass"][show]`` names, else 1 per particle).
    dots : int
        In the density view, also draw this many particles (a fixed random subset) as dots.
    references : bool
        Draw the reference points the recording's metadata gives for the series (above
        the particles); --no-references leaves them out.
    rays : bool
        Also draw a ray from the origin through each reference point, beneath the
        particles (where a point's direction is what matters, as a ReLU neuron's).
    """

    show: str = ""
    limit: float = 0.0
    trail: int = 0
    curve: str = "loss"
    view: str = "auto"
    mass: str = ""
    dots: int = 0
    references: bool = True
    rays: bool = False

    #: Ranges of the numeric fields (:func:`dynamics.limits.check_limits`).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "limit": (0, 1_000_000),
        "trail": (0, 1_000_000),
        "dots": (0, 10_000_000),
    }

    def __post_init__(self):
        resolve_view(self.view, 0)
        if self.dots < 0:
            raise ValueError(f"dots must be >= 0, got {self.dots}")
        if not self.limit >= 0:
            raise ValueError(f"limit must be >= 0 (0: from the data), got {self.limit}")
        if self.trail < 0:
            raise ValueError(f"trail must be >= 0, got {self.trail}")
        check_limits(self, self.LIMITS)


@register(
    "particles",
    description="Draw any (T, n, 2) series of a saved recording as particles moving in "
    "the plane, with their paths, reference points and a loss curve where the recording has them.",
)
class ParticlesScene(PanelScene):
    """Any (T, n, 2) series as particles with their paths; references and a curve if present.

    Reference points are drawn above the particles, with rays from the origin if asked.

    Reads the ``(T, n, 2)`` series named by ``show`` (default: the one most likely meant,
    :func:`planar_series`), the scalar series named by ``curve`` when present, and
    ``metadata["references"][show]`` when present.
    """

    Config = ParticlesSceneConfig
    title = "Particles over training"
    readout = (Field("loss", "loss", "{:.2e}"),)
    small_multiples = True
    small_panel_aspect = 1.0  # the particle axes are square
    #: Legend entries of the particles and of the reference points.
    labels = ("particle", "reference point")
    xlabel, ylabel = "first coordinate", "second coordinate"
    #: Axis label of the curve beside the particles, by series name (default: the name).
    curve_labels: dict[str, str] = {}
    #: What one step of the timeline is (the curve's x label).
    step_label = "step"
    series_fields = ("show", "mass", "curve")
    optional_series = ("curve",)  # loss where there is one

    def curve_label(self, name: str | None) -> str:
        """Axis label of the curve ``name`` beside the particles (``curve_labels``, else the
        name); ``None``: of its step axis (``step_label``)."""
        return self.step_label if name is None else self.curve_labels.get(name, name)

    # -- what it reads ---------------------------------------------------------------------
    @classmethod
    def series_name(cls, recording: Recording, config) -> str:
        if config.show:
            return config.show
        planar = planar_series(recording)
        if not planar:
            kinds: dict[str, int] = {}
            for _, s in recording.items():
                kinds[s.kind or "kind not said"] = kinds.get(s.kind or "kind not said", 0) + 1
            raise KeyError(
                "recording has no (T, n, 2) series to draw as particles (it has "
                + (", ".join(f"{n} {k}" for k, n in kinds.items()) or "no series")
                + "); record points in the plane with Recorder(derived={NAME: fn})"
            )
        return planar[0]

    @classmethod
    def shown_references(cls, recording: Recording, config, name: str):
        """The reference points drawn (None with ``references`` off) and their label."""
        refs, label = cls.references(recording, name)
        return (refs if config.references else None), label

    @classmethod
    def references(cls, recording: Recording, name: str) -> tuple[np.ndarray | None, str]:
        """Reference points of series ``name`` from the metadata, and their legend label."""
        ref = (recording.metadata.get("references") or {}).get(name)
        if not ref:
            return None, cls.labels[1]
        return np.asarray(ref["points"], dtype=float).reshape(-1, 2), str(
            ref.get("label", cls.labels[1])
        )

    def check(self) -> None:
        name = self.series_name(self.recording, self.config)
        self.recording.require(name)
        s = self.recording[name]
        if len(s.shape) != 2 or s.shape[1] != 2:
            raise ValueError(
                f"series {name!r} has snapshots of shape {s.shape}; particles need (n, 2)"
            )
        self._curve()  # a series that is not one scalar per step fails here, in one line
        others = [n for n in planar_series(self.recording) if n != name]
        if not self.config.show and others:  # chosen among several: say which, and the rest
            also = ", ".join(
                f"{n} ({self.recording[n].kind or 'kind not said'})" for n in others[:3]
            )
            self.note(
                f"drew {name!r} ({s.kind or 'kind not said'}, {s.shape[0]:,d} points, "
                f"{len(s)} snapshots) as particles"
                + f"; also (T, n, 2): {also}{', ...' * (len(others) > 3)} (choose with --show NAME)"
            )

    def timeline(self) -> np.ndarray:
        return np.asarray(self.recording[self.series_name(self.recording, self.config)].steps)

    def heading(self) -> str:
        """``SERIES: n particles [and k reference points] over training``: the series drawn
        by the name ``--show`` takes."""
        name = self.series_name(self.recording, self.config)
        refs, _ = self.shown_references(self.recording, self.config, name)
        n = self.recording[name].shape[0]
        return (
            f"{name}: {n:,d} particles"
            + (
                f" and {len(refs)} reference point{'s' * (len(refs) != 1)}"
                if refs is not None
                else ""
            )
            + " over training"
        )

    @classmethod
    def mass_values(cls, recording: Recording, config, name: str):
        """The ``(T, n)`` signed weights of the particles of series ``name``, or None."""
        mass = config.mass or (recording.metadata.get("mass") or {}).get(name, "")
        if not mass:
            return None
        recording.require(mass)
        series, positions = recording[mass], recording[name]
        if series.shape != positions.shape[:1] or len(series.steps) != len(positions.steps):
            raise ValueError(
                f"mass series {mass!r} has {len(series.steps)} snapshots of shape {series.shape}; "
                f"the particles {name!r} need {len(positions.steps)} of shape {positions.shape[:1]}"
            )
        return series.values

    def _curve(self) -> Series | None:
        """The scalar series of the curve beside the particles (None: no curve); ``curve``
        names a series (the base class resolved it, or left the default out)."""
        names = split_names(self.config.curve)
        if not names:
            return None
        if len(names) > 1:
            raise ValueError(f"curve takes one series, got {len(names)}: {', '.join(names)}")
        series = self.recording[names[0]]
        if series.shape != ():
            raise ValueError(
                f"curve {names[0]!r} has snapshots of shape {series.shape}; the curve beside "
                "the particles draws a scalar series (one number per step)"
            )
        return series

    # -- layout ------------------------------------------------------------------------------
    @classmethod
    def view_limit(cls, config, positions: np.ndarray, refs: np.ndarray | None):
        if config.limit:
            return config.limit
        pts = np.asarray(positions).reshape(-1, 2)
        return square_box(pts if refs is None else np.concatenate([pts, refs]))

    def build(self, fig: Figure):
        rec, cfg = self.recording, self.config
        name = self.series_name(rec, cfg)
        positions = rec[name]
        refs, ref_label = self.shown_references(rec, cfg, name)
        curve = self._curve()
        top = self.header_bottom - 0.01
        ax = fig.add_axes(
            (0.035, 0.07, 0.5, top - 0.07) if curve is not None else (0.25, 0.07, 0.5, top - 0.07)
        )
        panels = [
            ParticlePanel(
                ax,
                positions.steps,
                positions.values,
                refs,
                limit=self.view_limit(cfg, positions.values, refs),
                trail=cfg.trail,
                labels=(self.labels[0], ref_label),
                rays=cfg.rays,
                view=cfg.view,
                mass=self.mass_values(rec, cfg, name),
                dots=cfg.dots,
                raster=self.raster,
            )
        ]
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        if curve is not None:
            cax = fig.add_axes((0.62, 0.14, 0.35, top - 0.2))
            panels.append(
                CurvesPanel(
                    cax,
                    curve.steps,
                    curve.values,
                    log=bool(np.all(np.asarray(curve.values) > 0)),
                    ylabel=self.curve_label(cfg.curve),
                    xlabel=self.curve_label(None),
                )
            )
        return panels

    @classmethod
    def small_panel(cls, ax, recording: Recording, config, shared: dict, cell: Cell):
        """One run of a sweep: its particles, paths and references, on the shared limits."""
        name = cls.series_name(recording, config)
        positions = recording[name]
        refs, ref_label = cls.shown_references(recording, config, name)
        panel = ParticlePanel(
            ax,
            positions.steps,
            positions.values,
            refs,
            limit=shared.get("limit") or cls.view_limit(config, positions.values, refs),
            trail=config.trail,
            particle_size=max(12, 70 * cell.scale),
            path_size=max(1, 3 * cell.scale),
            labels=(cls.labels[0], ref_label),  # for a legend outside the cell
            legend=False,
            rays=config.rays,
            view=config.view,
            mass=cls.mass_values(recording, config, name),
            dots=config.dots,
            bins=max(50, int(200 * cell.scale)),
            raster=cls.raster,
        )
        ax.tick_params(labelsize="x-small")
        return panel

    def handout_panels(self, sheet, cell: Cell, shared: dict):
        """A keyframe of the handout: the particles, their paths and the references on
        labelled axes, beside the curve (``curve``) with a cursor at the step."""
        from .handout import curves_panel, main_and_curves

        rec, cfg = self.recording, self.config

        def main(ax):
            panel = self.small_panel(ax, rec, cfg, shared, cell)
            ax.set_xlabel("first coordinate")  # of the particles the page's legend names
            ax.set_ylabel("second coordinate")
            return panel

        curve = split_names(cfg.curve)[:1] if self._curve() is not None else []
        return main_and_curves(
            sheet,
            main,
            (
                lambda ax: curves_panel(
                    ax,
                    rec,
                    curve,
                    ylabel=self.curve_label(curve[0]),
                    xlabel=self.curve_label(None),
                )
            )
            if curve
            else None,
            aspect=self.small_panel_aspect,
        )

    @classmethod
    def sweep_scales(cls, recordings, config) -> dict:
        """One box for every run, around all their positions (unless ``limit`` is given)."""
        if config.limit:
            return {}
        boxes = [
            cls.view_limit(
                config,
                r[cls.series_name(r, config)].values,
                cls.shown_references(r, config, cls.series_name(r, config))[0],
            )
            for r in recordings
        ]
        b = np.array(boxes)
        half = max((b[:, 1] - b[:, 0]).max(), (b[:, 3] - b[:, 2]).max()) / 2
        cx, cy = (b[:, 0].min() + b[:, 1].max()) / 2, (b[:, 2].min() + b[:, 3].max()) / 2
        return {"limit": (cx - half, cx + half, cy - half, cy + half)}

    @classmethod
    def example(cls, frames: int = 12, n: int = 5, seed: int = 0) -> Recording:
        """Particles on straight lines from near the origin to known end points, two
        reference points, a loss that falls by three decades."""
        rng = np.random.default_rng(seed)
        ends = rng.uniform(-1.5, 1.5, size=(n, 2))
        t = np.linspace(0, 1, frames)[:, None, None]
        positions = (0.05 * ends + t * 0.95 * ends).astype(np.float32)
        steps = np.arange(frames, dtype=np.int64) * 10
        loss = np.geomspace(1e-1, 1e-4, frames)
        meta = {
            "references": {"positions": {"points": [[1.0, 1.0], [-1.0, 0.5]], "label": "target"}},
            "caption": f"{n} particles on straight lines (an example recording)",
        }
        return Recording(
            {
                "positions": Series(steps, positions, kind="derived"),
                "loss": Series(steps, loss, kind="scalar"),
            },
            meta,
        )


if __name__ == "__main__":
    from .cli import main

    main("particles")
