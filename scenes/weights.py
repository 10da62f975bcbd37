"""Heatmaps of any recorded matrices over training, side by side on one timeline.

Run: ``python -m scenes.weights RUN.rec [--show 0.weight,2.weight]`` (writes
``outputs/weights.mp4``); ``--help`` lists every flag. A tensor of higher rank is drawn as
a matrix whose rows are its first axis and whose columns are the rest flattened (a
convolution's ``(out, in, kh, kw)`` weight becomes ``out x (in * kh * kw)``); a vector is
one row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series

from .base import Cell, Field, PanelScene, grid_axes, split_names
from .plotting import HeatmapPanel, get_cmap, matrix_view
from .registry import register

__all__ = ["WeightsScene", "WeightsSceneConfig", "matrix_series"]

NOT_MATRICES = ("scalar", "stats", "histogram", "edges", "data")


def matrix_series(recording: Recording) -> list[str]:
    """Series that can be drawn as matrices over training: at least two snapshots of at
    least two numbers, not scalars, summaries or data; parameters first."""
    names = [
        n
        for n, s in recording.items()
        if s.kind not in NOT_MATRICES
        and len(s.shape) >= 1
        and int(np.prod(s.shape)) >= 2
        and len(s) >= 2
    ]
    return sorted(
        names, key=lambda n: recording[n].kind != "parameter"
    )  # stable: recording order otherwise


@dataclass(frozen=True)
class WeightsSceneConfig:
    """What the heatmaps show.

    Attributes
    ----------
    show : str
        Comma-separated series to draw, side by side (at most 4); default: the recorded
        parameters that are matrices (or of higher rank), else any matrix or vector series.
    cmap : str
        Colormap, any matplotlib or seaborn name; a diverging one ("RdBu_r", "vlag") with
        ``center`` shows the sign of each weight.
    center : bool
        Colour limits centred on 0 (-m to m, m the largest |value| over the run), so white
        means zero in every frame; --no-center uses the run's minimum and maximum.
    """

    show: str = ""
    cmap: str = "RdBu_r"
    center: bool = True

    def __post_init__(self):
        get_cmap(self.cmap)  # fail early, with the list of names
        if len(split_names(self.show)) > 4:
            raise ValueError(
                f"show takes at most 4 series side by side, got {len(split_names(self.show))}"
            )


@register(
    "weights",
    description="Draw any recorded matrices (weights, gradients, derived tensors) of a saved "
    "recording as heatmaps over training, side by side on one timeline, with colour limits fixed "
    "over "
    "the run.",
)
class WeightsScene(PanelScene):
    """Heatmaps of recorded matrices over training, with colour limits fixed over the run.

    Reads the series named by ``show`` (default: the parameters that are matrices), and
    ``loss`` for the readout when present.
    """

    Config = WeightsSceneConfig
    title = "Weights over training"
    readout = (Field("loss", "loss", "{:.3e}"),)
    small_multiples = True

    @classmethod
    def shown(cls, recording: Recording, config) -> list[str]:
        names = split_names(config.show)
        if names:
            recording.require(*names)
            bad = [n for n in names if recording[n].shape == ()]
            if bad:
                raise ValueError(
                    f"series {bad[0]!r} is a scalar, not a matrix (draw it with scenes.curves)"
                )
            return names
        matrices = matrix_series(recording)
        params = [n for n in matrices if recording[n].kind == "parameter"]
        picks = [n for n in params if len(recording[n].shape) >= 2] or params or matrices
        if not picks:
            raise KeyError(
                "recording has no matrix or vector series to draw as heatmaps; it has: "
                + (", ".join(f"{k} {s.shape}" for k, s in recording.items()) or "none")
            )
        return picks[:4]

    def check(self) -> None:
        self.shown_ = self.shown(self.recording, self.config)

    def timeline(self) -> np.ndarray:
        return np.unique(np.concatenate([np.asarray(self.recording[n].steps) for n in self.shown_]))

    def heading(self) -> str:
        kinds = {self.recording[n].kind for n in self.shown_}
        what = (
            "Weights"
            if kinds == {"parameter"}
            else "Gradients"
            if kinds == {"gradient"}
            else "Matrices"
        )
        return f"{what} over training"

    @classmethod
    def _panel(
        cls, ax, recording: Recording, name: str, config, colorbar: bool, **limits
    ) -> HeatmapPanel:
        series = recording[name]
        values = matrix_view(series.values)
        rows, cols = values.shape[1:]
        square = 0.1 <= rows / cols <= 10  # square cells unless that would make a sliver
        return HeatmapPanel(
            ax,
            series.steps,
            values,
            cmap=config.cmap,
            center=0.0 if config.center else None,
            colorbar="value" if colorbar else None,
            square=square,
            **limits,
        )

    def build(self, fig: Figure):
        n = len(self.shown_)
        rows, cols = (2, 2) if n == 4 else (1, n)
        gs = grid_axes(
            fig,
            rows,
            cols,
            top=self.header_bottom - 0.06,
            bottom=0.1,
            left=0.06,
            right=0.9,
            wspace=0.55,
            hspace=0.45,
        )
        panels = []
        for k, name in enumerate(self.shown_):
            ax = fig.add_subplot(gs[divmod(k, cols)])
            shape = self.recording[name].shape
            view = matrix_view(self.recording[name].values).shape[1:]
            note = "" if len(shape) == 2 else f", from {'x'.join(map(str, shape))}"
            ax.set_title(f"{name}  ({view[0]} x {view[1]}{note})", fontsize="medium", loc="left")
            panels.append(self._panel(ax, self.recording, name, self.config, colorbar=True))
            ax.set_xlabel("column")
            ax.set_ylabel("row")
        return panels

    @classmethod
    def sweep_scales(cls, recordings, config) -> dict:
        """One colour scale for every run: the first matrix's range over all of them."""
        from .plotting import _finite_range

        ranges = [_finite_range(r[cls.shown(r, config)[0]].values) for r in recordings]
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        if not np.isfinite([lo, hi]).all():
            return {}
        if config.center:
            m = max(abs(lo), abs(hi)) or 1.0
            return {"vmin": -m, "vmax": m}
        return {"vmin": lo, "vmax": hi}

    @classmethod
    def small_panel(cls, ax, recording: Recording, config, shared: dict, cell: Cell):
        """One run of a sweep: its first matrix, on the shared colour scale."""
        panel = cls._panel(
            ax, recording, cls.shown(recording, config)[0], config, colorbar=cell.last_col, **shared
        )
        ax.tick_params(labelsize="x-small")
        return panel

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """A 24 x 16 and a 4 x 24 weight matrix drifting from a random start, and a loss."""
        rng = np.random.default_rng(seed)
        t = np.linspace(0, 1, frames)[:, None, None]
        series = {}
        for name, shape in (("0.weight", (24, 16)), ("2.weight", (4, 24))):
            start, drift = rng.normal(0, 0.3, shape), rng.normal(0, 0.6, shape)
            series[name] = Series(
                np.arange(frames, dtype=np.int64) * 10,
                (start + t * drift).astype(np.float32),
                kind="parameter",
                source=name,
            )
        series["loss"] = Series(
            np.arange(frames, dtype=np.int64) * 10, np.geomspace(1, 1e-2, frames), kind="scalar"
        )
        return Recording(series, {"caption": "a 16-24-4 MLP (an example recording)"})


if __name__ == "__main__":
    from .cli import main

    main("weights")
