"""Any scalar series of a recording as curves, and the norms of its weights and gradients.

Run: ``python -m scenes.curves RUN.rec [--show loss,accuracy]`` (writes
``outputs/curves.mp4``); ``--help`` lists every flag. Besides the scalars it draws, from
the recorded parameters and gradients, ``||W||``, ``||grad W||`` and the relative update
``||W_t - W_{t-1}|| / ||W_t||`` between snapshots, on log axes where values span decades.

A model of 1 to 500 tensors reads the same: up to :data:`MAX_LINES` tensors get a line
each; more are grouped by module (:func:`group_by_module`: a transformer's 24 tensors
become its 12 modules, BERT's 200 its 12 layers, embeddings, pooler and head), each group
drawn as the norm of its tensors together. The three norm panels share one legend beside
them, one colour per tensor or group in every panel. ``--show`` takes the names the panel
titles show: a scalar series, or a summarised tensor (``activation layers.0.linear1``, or
its series ``stats/act/layers.0.linear1``) drawn as its mean, std, min and max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from dynamics.recording import Recording, Series

from .base import Field, PanelScene, grid_axes, split_names
from .plotting import CurvesPanel, thin_step_ticks
from .registry import register

__all__ = [
    "CurvesScene",
    "CurvesSceneConfig",
    "scalar_series",
    "norm_curves",
    "group_by_module",
    "spans_decades",
]

#: Panels in one frame (a 3 x 3 grid keeps its texts apart, 12.7 px high at notebook size).
MAX_PANELS = 9
#: Lines in a norm panel, and entries in their shared legend: beyond this many tensors
#: they are grouped by module (16 entries in two colours each of tab20 stay apart, and
#: their legend fits the frame's height at both quality presets).
MAX_LINES = 16
#: The columns of a ``stats`` series (see :class:`dynamics.Recorder`, ``summaries=``).
STATS = ("mean", "std", "min", "max")
#: Legend entries longer than this are shortened in the middle.
MAX_LABEL = 36


def scalar_series(recording: Recording) -> list[str]:
    """Series of one number per snapshot: logged scalars, derived ones (a function of the
    model, a recorder quantity's number) and series that say nothing of themselves and are
    scalars by shape, with at least one snapshot."""
    return [
        n
        for n, s in recording.items()
        if s.shape == () and s.kind in ("scalar", "derived", "") and len(s)
    ]


def spans_decades(values: np.ndarray, decades: float = 2.0) -> bool:
    """True if ``values`` are all positive (where finite) and span ``decades`` or more."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool((v > 0).all()) and float(v.max()) >= 10**decades * float(v.min())


def _norms(values: np.ndarray, chunk: int = 256) -> np.ndarray:
    out = np.empty(len(values))
    for lo in range(0, len(values), chunk):  # a memmap is read a block of snapshots at a time
        block = np.asarray(values[lo : lo + chunk], dtype=float).reshape(
            min(chunk, len(values) - lo), -1
        )
        out[lo : lo + chunk] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


def group_by_module(names: list[str], most: int = MAX_LINES) -> dict[str, list[int]]:
    """Tensors grouped by the modules their names lie in, into at most ``most`` groups.

    Each of ``names`` (``layers.0.linear1.weight``) lies in the module its name leaves
    off the last part of (``layers.0.linear1``; a name without dots lies in itself). One
    group of every tensor is split by one more level of the module path, the largest
    groups first and all groups of that size together (so sibling layers are split
    alike), while the groups number at most ``most``: a 2-layer transformer's 24 tensors
    give ``layers.0.self_attn``, ``layers.0.self_attn.out_proj``, ``layers.0.linear1``,
    ... (12 groups); BERT's 200 give ``bert.embeddings``, ``bert.encoder.layer.0`` to
    ``.11``, ``bert.pooler``, ``cls``. With ``most`` or fewer names each is its own group.

    Returns
    -------
    dict of str to list of int
        Group name (a module path; ``""`` for a group of every tensor with no common
        module) to the indices of its members in ``names``, by first member.
    """
    if len(names) <= most:
        return {n: [i] for i, n in enumerate(names)}
    paths = [tuple(n.split(".")[:-1]) or (n,) for n in names]
    groups: dict[tuple[str, ...], list[int]] = {(): list(range(len(names)))}
    while True:
        deeper = {k: m for k, m in groups.items() if any(len(paths[i]) > len(k) for i in m)}
        if not deeper:
            break
        largest = max(len(m) for m in deeper.values())
        split: dict[tuple[str, ...], list[int]] = {}
        for key, members in groups.items():
            if key in deeper and len(members) == largest:
                for i in members:
                    split.setdefault(paths[i][: len(key) + 1], []).append(i)
            else:
                split[key] = members
        if len(split) > most:
            break
        groups = split
    return {".".join(k): m for k, m in sorted(groups.items(), key=lambda kv: kv[1][0])}


def _norm_table(series: dict[str, Series], update: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``||W_t||`` ``(T, k)`` of each of ``series`` (one schedule) and, with ``update``,
    ``||W_t - W_t-1||`` ``(T - 1, k)``."""
    norms = np.stack([_norms(s.values) for s in series.values()], axis=1)
    if not update:
        return norms, None
    updates = []
    for s in series.values():
        prev = np.asarray(s.values[:-1], dtype=float).reshape(len(s) - 1, -1)
        diff = np.asarray(s.values[1:], dtype=float).reshape(len(s) - 1, -1) - prev
        updates.append(np.sqrt((diff * diff).sum(axis=1)))
    return norms, np.stack(updates, axis=1)


def _combined(columns: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """The norm of each group's tensors together, ``sqrt(sum ||W_i||^2)``, from theirs."""
    return np.stack(
        [
            columns[:, m[0]] if len(m) == 1 else np.sqrt((columns[:, m] ** 2).sum(axis=1))
            for m in groups
        ],
        axis=1,
    )


def norm_curves(
    recording: Recording, most: int | None = None
) -> list[tuple[str, np.ndarray, np.ndarray, list[str]]]:
    """``(title, steps, values (T, k), labels)`` of the weight norms, the gradient norms and
    the relative updates of the recorded parameters (those on the first one's schedule).

    With ``most`` and more tensors than that, the tensors are grouped by module
    (:func:`group_by_module`, over the parameters and the gradients' parameters together,
    so a group has one label in every panel): a group's curve is the norm of its tensors
    together (``sqrt(sum_i ||W_i||^2)``; its relative update ``sqrt(sum_i ||dW_i||^2) /
    sqrt(sum_i ||W_i||^2)``), labelled ``"module (count)"``.
    """
    params, grads = _normed(recording)
    names = list(dict.fromkeys([*params, *grads]))
    label = {n: n for n in names}
    if most is not None and len(names) > most:
        for key, members in group_by_module(names, most).items():
            for i in members:
                label[names[i]] = f"{key or 'all'} ({len(members)})"

    def grouped(which: list[str]) -> tuple[list[str], list[list[int]]]:
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(which):
            groups.setdefault(label[n], []).append(i)
        return list(groups), list(groups.values())

    out = []
    if params:
        steps = next(iter(params.values())).steps
        labels, groups = grouped(list(params))
        norms, updates = _norm_table(params, update=len(steps) >= 2)
        weight = _combined(norms, groups)
        out.append(("weight norm ||W||", steps, weight, labels))
        if updates is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = _combined(updates, groups) / weight[1:]
            out.append(("relative update ||ΔW|| / ||W||", steps[1:], rel, labels))
    if grads:
        labels, groups = grouped(list(grads))
        norms, _ = _norm_table(grads, update=False)
        steps = next(iter(grads.values())).steps
        out.append(("gradient norm ||grad W||", steps, _combined(norms, groups), labels))
    return out


def _normed(recording: Recording) -> tuple[dict[str, Series], dict[str, Series]]:
    """The parameters and the gradients (by their parameter's name) whose norms are drawn:
    those on the schedule of the first of their kind."""
    out = []
    for kind in ("parameter", "gradient"):
        series = recording.of_kind(kind)
        if series:
            steps = next(iter(series.values())).steps
            series = {
                (s.source or n) if kind == "gradient" else n: s
                for n, s in series.items()
                if np.array_equal(s.steps, steps)
            }
        out.append(series)
    return out[0], out[1]


def _short_labels(labels: list[str]) -> tuple[str, list[str]]:
    """Legend entries of at most :data:`MAX_LABEL` characters: where some label is longer,
    the dotted prefix that every label shares (``"model."``, returned) is left off, and
    what is still too long is shortened in the middle (where names of sibling tensors
    agree). Labels that fit are kept whole: they are the names the recording has."""
    parts = [label.split(".") for label in labels]
    common = 0
    while any(len(label) > MAX_LABEL for label in labels) and all(
        len(p) > common + 1 and p[common] == parts[0][common] for p in parts
    ):
        common += 1
    prefix = ".".join(parts[0][:common]) + "." if common else ""
    short = []
    for label in labels:
        label = label[len(prefix) :]
        if len(label) > MAX_LABEL:
            keep = MAX_LABEL - 1
            label = label[: keep // 2] + "\u2026" + label[len(label) - (keep - keep // 2) :]
        short.append(label)
    return prefix, short


def _palette(n: int) -> list[str]:
    """``n`` distinct colours: matplotlib's cycle (tab10) up to 10, tab20 beyond."""
    import matplotlib
    from matplotlib.colors import to_hex

    if n <= 10:
        return [f"C{j}" for j in range(n)]
    tab20 = matplotlib.colormaps["tab20"].colors
    return [to_hex(tab20[j % 20]) for j in range(n)]


@dataclass(frozen=True)
class Curve:
    """One panel of the curves scene.

    Attributes
    ----------
    title : str
        The panel's title: for a series, the name ``--show`` takes.
    steps : (T,) int array
    values : (T, k) float array
        One column per line.
    labels : list of str or None
        One per line (None: a single unlabelled line).
    shared : bool
        The lines are tensors (or groups of them) keyed by ``labels`` in the legend shared
        by every such panel, with one colour per label.
    series : str
        The series drawn ("" for the norms, computed from many).
    """

    title: str
    steps: np.ndarray
    values: np.ndarray
    labels: list[str] | None = None
    shared: bool = False
    series: str = ""


@dataclass(frozen=True)
class CurvesSceneConfig:
    """What the curves show.

    Attributes
    ----------
    show : str
        Comma-separated series, one panel each, named as the panel titles show them: a
        scalar series (``loss``), or a summarised tensor (``activation layers.0.linear1``,
        or its series ``stats/act/layers.0.linear1``) drawn as its mean, std, min and max.
        Default: every scalar series (as many as fit beside the norms; the command says
        which it left out).
    norms : bool
        Also draw the norms of the recorded parameters and gradients and the relative
        update between snapshots, grouped by module beyond 16 tensors (--no-norms:
        scalars only).
    """

    show: str = ""
    norms: bool = True


@register(
    "curves",
    description="Draw the scalar series of a saved recording (losses, accuracies) as curves "
    "growing over training, with the norms of its recorded weights and gradients and their "
    "relative update, on log axes where values span decades; beyond 16 tensors the norms are "
    "grouped by module.",
)
class CurvesScene(PanelScene):
    """Scalar series as growing curves, with weight norms, gradient norms and relative updates.

    Reads every scalar series (or those named by ``show``: scalars and summaries' ``stats``
    series) and the parameter and gradient series, by kind.
    """

    Config = CurvesSceneConfig
    title = "Training curves"

    def check(self) -> None:
        rec, cfg = self.recording, self.config
        names = split_names(cfg.show)  # series names: the base class resolved titles' labels
        self.grouped_ = (
            cfg.norms and len(dict.fromkeys(k for d in _normed(rec) for k in d)) > MAX_LINES
        )
        norms = [
            Curve(title, steps, values, labels, shared=True)
            for title, steps, values, labels in (norm_curves(rec, MAX_LINES) if cfg.norms else [])
            if len(steps)
        ]
        if names:
            if len(names) + len(norms) > MAX_PANELS:
                raise ValueError(
                    f"{len(names)} series and {len(norms)} norm panels do not fit one frame (at "
                    f"most {MAX_PANELS} panels): choose fewer with --show, or add --no-norms"
                )
            curves = [self._curve(n) for n in names]
        else:
            scalars = scalar_series(rec)
            room = MAX_PANELS - len(norms)
            curves = [self._curve(n) for n in scalars[:room]]
            self._say_what_was_chosen(scalars[:room], scalars[room:], norms)
        curves += norms
        if not curves:
            raise KeyError(
                "recording has no scalar, parameter or gradient series to draw as curves; it has "
                f"{len(rec.keys())} series, of kinds: "
                + (", ".join(sorted({s.kind or "kind not said" for _, s in rec.items()})) or "none")
            )
        self.curves_ = curves

    def _curve(self, name: str) -> Curve:
        """The panel of series ``name``: a scalar, or a summary's ``stats``."""
        s = self.recording[name]
        labels = {m.stats: label for label, m in self.recording.summaries().items()}
        if s.shape == ():
            return Curve(name, s.steps, np.asarray(s.values, dtype=float)[:, None], series=name)
        if name in labels and s.shape == (len(STATS),):
            values = np.asarray(s.values, dtype=float)
            return Curve(labels[name], s.steps, values, list(STATS), series=name)
        raise ValueError(
            f"series {name!r} has snapshots of shape {s.shape}: curves draws scalars and "
            "summarised tensors (draw it with scenes.weights)"
        )

    def _say_what_was_chosen(self, shown: list[str], left: list[str], norms: list[Curve]):
        """A note of what the default picture leaves out or groups (nothing: no note)."""
        parts = []
        if shown:
            parts.append(f"scalar{'s' * (len(shown) > 1)} {', '.join(shown)}")
        if left:
            parts.append(
                f"not {len(left)} more ({', '.join(left[:3])}{', ...' * (len(left) > 3)}: "
                f"at most {MAX_PANELS} panels)"
            )
        if norms:
            counts = [
                f"{len(d)} {kind}{'s' * (len(d) > 1)}"
                for kind, d in zip(("parameter", "gradient"), _normed(self.recording))
                if d
            ]
            lines = len(dict.fromkeys(label for c in norms for label in c.labels))
            parts.append(
                f"norms of {' and '.join(counts)}"
                + (f", grouped by module into {lines} lines" if self.grouped_ else "")
            )
        if left or self.grouped_:  # not every series, or not each on its own line: say so
            self.note("drew " + "; ".join(parts) + " (choose with --show NAME,...)")

    def timeline(self) -> np.ndarray:
        return np.unique(np.concatenate([np.asarray(c.steps) for c in self.curves_]))

    def readout_fields(self):
        return [Field(c.series, c.title, "{:.4g}") for c in self.curves_ if c.labels is None][:3]

    def build(self, fig: Figure):
        n = len(self.curves_)
        cols = n if n <= 3 else 2 if n == 4 else 3
        rows = math.ceil(n / cols)
        keys = list(dict.fromkeys(label for c in self.curves_ if c.shared for label in c.labels))
        top = self.header_bottom - 0.04
        right = 0.97 if not keys else 0.77  # the shared legend takes the right-hand column
        gs = grid_axes(
            fig,
            rows,
            cols,
            top=top,
            bottom=0.09,
            left=0.07,
            right=right,
            wspace=0.3,
            hspace=0.45 + 0.1 * (rows > 2),
        )
        colors = dict(zip(keys, _palette(len(keys))))
        handles: dict[str, object] = {}
        panels = []
        for k, c in enumerate(self.curves_):
            ax = fig.add_subplot(gs[divmod(k, cols)])
            panel = CurvesPanel(
                ax,
                c.steps,
                c.values,
                labels=c.labels,
                log=spans_decades(c.values),
                xlabel="step" if k + cols >= n else "",  # the bottom panel of each column
                colors=[colors[label] for label in c.labels] if c.shared else None,
                legend=not c.shared,
                legend_loc="best",
            )
            thin_step_ticks(ax)  # a run from step 10 to 110 would label "100110"
            if c.shared:
                handles.update(zip(c.labels, panel.handles()))
            panels.append(panel)
            ax.set_title(c.title, fontsize="medium", loc="left")
        if handles:
            prefix, short = _short_labels(keys)
            fig.legend(
                [handles[key] for key in keys],
                short,
                loc="upper left",
                bbox_to_anchor=(right + 0.02, top),
                fontsize="small" if len(keys) <= 12 else "x-small",
                title=("module (tensors)" if self.grouped_ else "tensor")
                + (f" in {prefix}*" if prefix else ""),
                title_fontsize="small",
                frameon=False,
                handlelength=1.5,
                borderaxespad=0.0,
            )
        return panels

    def handout_panels(self, sheet, cell, shared: dict):
        """A keyframe of the handout: the movie's curves grown to the step, each fitted with
        its title and labels into its own part of the cell (the norms' tensors named once,
        in the page's legend)."""
        from .plotting import axes_in, fit_into, packed_cells

        n = len(self.curves_)
        cols = n if n <= 3 else 2 if n == 4 else 3
        rows = [[1] * min(cols, n - r) for r in range(0, n, cols)]
        boxes = packed_cells(rows, left=0.0, right=1.0, bottom=0.0, top=1.0)
        keys = list(dict.fromkeys(label for c in self.curves_ if c.shared for label in c.labels))
        colors = dict(zip(keys, _palette(len(keys))))
        panels = []
        for box, c in zip(boxes, self.curves_):
            ax = axes_in(sheet, box)
            ax.set_title(c.title, loc="left")
            panels.append(
                CurvesPanel(
                    ax,
                    c.steps,
                    c.values,
                    labels=c.labels,
                    log=spans_decades(c.values),
                    colors=[colors[label] for label in c.labels] if c.shared else None,
                    legend=not c.shared,
                )
            )
            fit_into(ax, box)
            thin_step_ticks(ax)
        return panels

    @classmethod
    def example(cls, frames: int = 12, seed: int = 0) -> Recording:
        """Two parameters and their gradients of a small network, a loss over three decades
        and an accuracy."""
        rng = np.random.default_rng(seed)
        steps = np.arange(frames, dtype=np.int64) * 10
        t = np.linspace(0, 1, frames)[:, None, None]
        series = {
            "loss": Series(steps, np.geomspace(1, 1e-3, frames), kind="scalar"),
            "accuracy": Series(steps, np.linspace(0.3, 0.95, frames), kind="scalar"),
        }
        for name, shape in (("0.weight", (8, 4)), ("2.weight", (2, 8))):
            w = rng.normal(0, 0.5, shape) + t * rng.normal(0, 0.5, shape)
            series[name] = Series(steps, w.astype(np.float32), kind="parameter", source=name)
            series[f"grad/{name}"] = Series(
                steps,
                (w * np.geomspace(1, 1e-2, frames)[:, None, None]).astype(np.float32),
                kind="gradient",
                source=name,
            )
        return Recording(series, {"caption": "a small network (an example recording)"})


if __name__ == "__main__":
    from .cli import main

    main("curves")
