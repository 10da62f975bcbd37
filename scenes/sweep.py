"""Small multiples: one panel per configuration of a sweep, all on one shared timeline.

Any registered scene that declares ``small_multiples`` (its ``small_panel`` draws one run,
``sweep_scales`` says what the cells share) can be drawn as a grid: rows and columns
labelled by the swept values, the same training step in every panel of a frame, and, where
the scene says so, shared axes limits and colour scales. ``python -m scenes.<name> --sweep
key=v1,v2 --sweep key2=...`` uses it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording

from .base import Cell, PanelScene, RenderOptions, fit_to_aspect, grid_axes

__all__ = ["SweepScene"]


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class SweepScene(PanelScene):
    """A grid of small panels, one per configuration, sharing one timeline.

    Parameters
    ----------
    scene_cls : type
        The single-run scene (a :class:`~scenes.base.PanelScene` that declares
        ``small_multiples``): its ``small_panel`` draws one configuration, its
        ``sweep_scales`` computes what the panels share (colour limits ...).
    recordings : sequence of Recording or None
        One per configuration, in grid order (the last swept key varies fastest);
        None where a configuration failed.
    grid : mapping of str to sequence
        The swept values: one key gives one row, two keys give rows x columns.
    errors : sequence of str, optional
        Why each configuration failed ("" where it did not), shown in its cell.
    config : dataclass, optional
        The single-run scene's config (limits, colormap ...), shared by every panel.
    options : RenderOptions, optional
    """

    Config = None
    header_left = 0.04
    header_bottom = 0.82

    def __init__(
        self,
        scene_cls: type[PanelScene],
        recordings: Sequence[Recording | None],
        grid: Mapping[str, Sequence[Any]],
        *,
        errors: Sequence[str] = (),
        config: Any = None,
        options: RenderOptions | None = None,
    ):
        if not scene_cls.small_multiples:
            raise ValueError(f"{scene_cls.__name__} cannot be drawn as small multiples")
        keys = list(grid)
        if not 1 <= len(keys) <= 2:
            raise ValueError(
                "small multiples take one or two swept fields (rows and columns), got "
                f"{len(keys)}: {keys}"
            )
        self.grid = {k: list(v) for k, v in grid.items()}
        self.shape_ = (
            (len(self.grid[keys[0]]), len(self.grid[keys[1]]))
            if len(keys) == 2
            else (1, len(self.grid[keys[0]]))
        )
        if self.shape_[0] * self.shape_[1] != len(recordings):
            raise ValueError(
                f"{len(recordings)} recordings for a {self.shape_[0]}x{self.shape_[1]} grid"
            )
        done = [r for r in recordings if r is not None]
        if not done:
            raise ValueError("no configuration of the sweep finished; there is nothing to draw")
        self.scene_cls = scene_cls
        self.recordings = list(recordings)
        self.errors = list(errors) or [""] * len(recordings)
        config = (
            config if config is not None else (scene_cls.Config() if scene_cls.Config else None)
        )
        # each run is checked, and gives its timeline, as the single-run scene would
        singles = replace(options or RenderOptions(), chapters=())  # a run's own: the grid's
        self.singles_ = [scene_cls(r, config, singles) for r in done]
        super().__init__(done[0], config, options)
        # the runs' own heading where they agree; where they differ (a lazy and a mean-field
        # run), one that claims nothing only some of them show
        headings = {single.heading() for single in self.singles_}
        neutral = scene_cls.neutral_title or scene_cls.title
        self.title = headings.pop() if len(headings) == 1 else neutral
        for text in dict.fromkeys(t for single in self.singles_ for t in single.notes_):
            self.note(text)  # what each run's scene chose by itself (said once if alike)

    def check(self) -> None:
        """Every finished run was checked by its single-run scene."""

    def default_chapters(self) -> list:
        """None: each run's own chapters (its loss thresholds) would not fit the others."""
        return []

    def timeline(self) -> np.ndarray:
        # the union of every run's steps: a frame shows one training step in every panel
        return np.unique(np.concatenate([s.steps_ for s in self.singles_]))

    def subtitle(self) -> str:
        return "sweep over " + " x ".join(
            f"{k} in {{{', '.join(map(_value, v))}}}" for k, v in self.grid.items()
        )

    def with_options(self, **changes: Any) -> "SweepScene":
        return SweepScene(
            self.scene_cls,
            self.recordings,
            self.grid,
            errors=self.errors,
            config=self.config,
            options=replace(self.options, **changes),
        )

    def build(self, fig: Figure):
        rows, cols = self.shape_
        keys = list(self.grid)
        row_values = self.grid[keys[0]] if len(keys) == 2 else [None]
        col_values = self.grid[keys[-1]]
        done = [r for r in self.recordings if r is not None]
        shared = self.scene_cls.sweep_scales(done, self.config)
        top, bottom, hspace, wspace = self.header_bottom, 0.08, 0.3, 0.15
        left, right = (0.1 if len(keys) == 2 else 0.04), 0.93
        left, right = fit_to_aspect(
            fig, rows, cols, self.scene_cls.small_panel_aspect,
            top=top, bottom=bottom, left=left, right=right, hspace=hspace, wspace=wspace,
        )  # fmt: skip
        gs = grid_axes(
            fig,
            rows,
            cols,
            top=top,
            bottom=bottom,
            left=left,
            right=right,
            hspace=hspace,
            wspace=wspace,
        )
        panels = []
        for k, rec in enumerate(self.recordings):
            r, c = divmod(k, cols)
            ax = fig.add_subplot(gs[r, c])
            if r == 0:
                ax.set_title(f"{keys[-1]} = {_value(col_values[c])}", fontsize="medium")
            if c == 0 and len(keys) == 2:
                ax.annotate(
                    f"{keys[0]} = {_value(row_values[r])}",
                    (0, 0.5),
                    xycoords="axes fraction",
                    xytext=(-34, 0),
                    textcoords="offset points",
                    rotation=90,
                    ha="right",
                    va="center",
                    fontsize="medium",
                )
            if rec is None:
                ax.set_axis_off()
                ax.text(
                    0.5,
                    0.5,
                    "failed:\n" + (self.errors[k] or "no recording"),
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color="#c0392b",
                    fontsize="small",
                    wrap=True,
                )
                continue
            panels.append(
                self.scene_cls.small_panel(ax, rec, self.config, shared, Cell(r, c, rows, cols))
            )
            # shared limits: tick labels on the outer panels are enough
            ax.tick_params(labelleft=c == 0, labelbottom=r == rows - 1)
        return panels

    def handout_aspect(self) -> float:
        """A handout's keyframe is the whole grid: its columns of small panels side by side."""
        rows, cols = self.shape_
        return cols / rows * (self.scene_cls.small_panel_aspect or 16 / 9)

    def labels(self) -> list[str]:
        """``"radius=0.1, width=20"`` for each configuration, in grid order."""
        keys = list(self.grid)
        rows = self.grid[keys[0]] if len(keys) == 2 else [None]
        return [
            ", ".join(
                f"{k}={_value(v)}" for k, v in zip(keys, combo if len(keys) == 2 else combo[1:])
            )
            for combo in ((r, c) for r in rows for c in self.grid[keys[-1]])
        ]

    def write_figures(self, stem):
        """The single-run scene's static figures of the whole sweep (its ``sweep_figures``)."""
        return self.scene_cls.sweep_figures(
            self.recordings, self.labels(), self.config, self.options, stem
        )
