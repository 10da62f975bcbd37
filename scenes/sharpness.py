"""Sharpness over training: the top Hessian eigenvalues against the edge of stability.

Run: ``python -m scenes.sharpness RUN.rec`` for a recording made with the
:class:`~dynamics.capture.Sharpness` quantity (writes ``outputs/sharpness.mp4``). Above: the
k largest eigenvalues of the loss's Hessian over training (``sharpness``), with the edge of
stability the optimizer's step size puts them against (``sharpness/edge``: ``2/lr`` for
gradient descent, recorded when the quantity was given the optimizer; ``--lr`` draws
``2/lr`` for a recording without it). Below: the loss. Both grow up to the current step.
Under full-batch gradient descent the sharpness rises to about ``2/lr`` and hovers there
while the loss keeps falling, non-monotonically (Cohen et al., ICLR 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series

from .base import Field, PanelScene
from .curves import spans_decades
from .plotting import CurvesPanel, axes_in, fit_into, packed_cells, thin_step_ticks
from .registry import register

__all__ = ["SharpnessScene", "SharpnessSceneConfig"]


@dataclass(frozen=True)
class SharpnessSceneConfig:
    """What the sharpness movie shows.

    Attributes
    ----------
    series : str
        The eigenvalues to draw: ``sharpness`` (default), ``sharpness/preconditioned`` (of
        ``P^-1 H``, Adam's), or the ``name`` given to the quantity.
    loss : str
        The scalar series drawn below ("": none).
    lr : float
        Draw the edge ``2/lr`` (0: the recorded ``<series>/edge``, if any; at most 10,000).
    """

    series: str = "sharpness"
    loss: str = "loss"
    lr: float = 0.0

    def __post_init__(self):
        if not 0 <= self.lr <= 1e4:  # NaN and inf too
            raise ValueError(
                f"lr must be 0 (the recorded edge) or a step size up to 10,000, got {self.lr}"
            )


@register(
    "sharpness",
    description="Draw the sharpness of a saved recording (the top Hessian eigenvalues that "
    "the Sharpness quantity recorded) against the edge of stability 2/lr, the loss beneath.",
)
class SharpnessScene(PanelScene):
    """The top-k Hessian eigenvalues over training, the edge of stability, the loss.

    Reads series ``sharpness`` (T, k) (or ``config.series``), ``sharpness/edge`` when
    recorded, and ``loss`` when present.
    """

    Config = SharpnessSceneConfig
    title = "Sharpness and the edge of stability"
    series_fields = ("series", "loss")
    optional_series = ("loss",)

    def check(self) -> None:
        rec, cfg = self.recording, self.config
        rec.require(cfg.series)
        s = rec[cfg.series]
        if len(s.shape) > 1:
            raise ValueError(
                f"series {cfg.series!r} has snapshots of shape {s.shape}; sharpness is a number "
                "or a vector of the top-k eigenvalues per step"
            )
        if cfg.loss and rec[cfg.loss].shape != ():
            raise ValueError(f"loss {cfg.loss!r} has snapshots of shape {rec[cfg.loss].shape}")

    def timeline(self) -> np.ndarray:
        return np.asarray(self.recording[self.config.series].steps)

    def readout_fields(self):
        cfg = self.config
        fields = [Field(cfg.series, "λ1", "{:.4g}", index=0)]  # the largest eigenvalue
        if cfg.loss:
            fields.append(Field(cfg.loss, cfg.loss, "{:.4g}"))
        return fields

    def _edge(self) -> Series | None:
        """The edge of stability over the sharpness' steps: ``2/lr`` given, or recorded."""
        cfg, s = self.config, self.recording[self.config.series]
        if cfg.lr:
            return Series(s.steps, np.full(len(s), 2 / cfg.lr), kind="curvature")
        name = f"{cfg.series}/edge"
        return self.recording[name] if name in self.recording else None

    def build(self, fig: Figure):
        cfg, rec = self.config, self.recording
        s = rec[cfg.series]
        values = np.asarray(s.values, dtype=float).reshape(len(s), -1)
        rows = [[1], [1]] if cfg.loss else [[1]]
        cells = packed_cells(rows, left=0.02, right=0.98, bottom=0.02, top=self.header_bottom)
        ax = axes_in(fig, cells[0])
        k = values.shape[1]
        labels = [f"λ{i + 1}" for i in range(k)]
        edge = self._edge()
        curves = [values] if edge is None else [values, np.asarray(edge.values, dtype=float)]
        ax.set_title(
            f"top {k} Hessian eigenvalue{'s' * (k > 1)} ({cfg.series})"
            + ("" if edge is None else ", and the edge of stability"),
            fontsize="medium",
            loc="left",
        )
        panels = [
            CurvesPanel(
                ax, s.steps, values, labels=labels, ylabel="eigenvalue", xlabel="step", legend=False
            )
        ]
        if edge is not None:  # the whole edge from the start: the line the sharpness meets
            last = float(np.asarray(edge.values)[-1])
            what = "2/lr" if cfg.lr else "recorded"
            ax.plot(edge.steps, edge.values, "--", color="#555555", lw=1.5,
                    label=f"edge of stability ({what}: {last:.3g})")  # fmt: skip
        ax.legend(loc="upper left", fontsize="small")
        hi = max(float(np.nanmax(c)) for c in curves)
        ax.set_ylim(min(0.0, float(np.nanmin(values))), 1.1 * hi)
        fit_into(ax, cells[0])
        thin_step_ticks(ax)
        if cfg.loss:
            loss = rec[cfg.loss]
            ax2 = axes_in(fig, cells[1])
            ax2.set_title(cfg.loss, fontsize="medium", loc="left")
            panels.append(
                CurvesPanel(
                    ax2,
                    loss.steps,
                    loss.values,
                    log=spans_decades(loss.values),
                    ylabel=cfg.loss,
                    xlabel="step",
                )
            )
            ax2.set_xlim(ax.get_xlim())  # one timeline
            fit_into(ax2, cells[1])
            thin_step_ticks(ax2)
        return panels

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """Progressive sharpening to the edge 2/lr = 20, then hovering there while the loss
        falls, non-monotonically; the top two eigenvalues."""
        rng = np.random.default_rng(seed)
        steps = np.arange(frames, dtype=np.int64) * 25
        rise = 20 * (1 - np.exp(-np.arange(frames) / 3)) + rng.normal(0, 0.3, frames)
        top = np.stack([rise, 0.6 * rise], axis=1)
        loss = np.geomspace(1, 0.02, frames) * (1 + 0.3 * (np.arange(frames) % 3 == 2))
        series = {
            "sharpness": Series(steps, top, kind="curvature"),
            "sharpness/edge": Series(steps, np.full(frames, 20.0), kind="curvature"),
            "loss": Series(steps, loss, kind="scalar"),
        }
        return Recording(series, {"caption": "gradient descent at lr 0.1 (an example recording)"})


if __name__ == "__main__":
    from .cli import main

    main("sharpness")
