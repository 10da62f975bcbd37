"""Sweeps: run one experiment over a grid of config overrides, one recording each.

Runs are independent, so the runner hands them to any ``concurrent.futures.Executor``:
a local process pool by default, or the executor of a cluster engine that already exists
(Dask distributed: ``Client(address).get_executor()``). We do not schedule anything
ourselves. Every finished run is a complete recording on disk and is listed in the
sweep's index (``sweep.json``), so an interrupted sweep resumes where it stopped: a
configuration whose recording is complete, for the same config, is not run again. A
configuration that fails (a divergence, a bad value) is reported with its overrides and
does not stop the others.

Workers write recordings to the sweep directory themselves: on a cluster it must be on a
file system every worker sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import itertools
import json
import os
import re
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .recording import Recording, RecordingError, load, to_jsonable

__all__ = [
    "Sweep",
    "SweepPoint",
    "SweepResult",
    "grid_points",
    "open_executor",
    "parse_sweep_values",
    "usable_cpus",
]

INDEX = "sweep.json"


def usable_cpus() -> int:
    """CPUs this process may run on (respects affinity, unlike ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last key varying fastest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(list(grid[k]) for k in keys))]


def parse_sweep_values(config_cls: type, spec: str) -> tuple[str, list[Any]]:
    """``"radius=0.01,0.1,1"`` -> ``("radius", [0.01, 0.1, 1.0])``, typed as the config field."""
    name, sep, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if not sep or not values.strip():
        raise ValueError(f"--sweep needs NAME=V1,V2,..., got {spec!r}")
    if name not in fields:
        raise ValueError(
            f"--sweep: {name!r} is not a field of {config_cls.__name__}; choose from "
            f"{', '.join(fields)}"
        )
    kind = type(fields[name].default)
    out = []
    for text in values.split(","):
        text = text.strip()
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out.append(text.lower() in ("true", "1"))
            else:
                out.append(kind(text))
        except ValueError:
            raise ValueError(f"--sweep {name}: {text!r} is not a valid {kind.__name__}") from None
    if len(set(out)) != len(out):
        raise ValueError(f"--sweep {name}: values repeat in {values!r}")
    return name, out


def _slug(overrides: Mapping[str, Any]) -> str:
    text = "_".join(f"{k}-{v}" for k, v in overrides.items()) or "base"
    return re.sub(r"[^A-Za-z0-9.+=-]+", "_", text)


@dataclass
class SweepPoint:
    """One configuration of a sweep: its overrides, recording path and outcome."""

    index: int
    overrides: dict[str, Any]
    path: Path
    status: str = "pending"  # pending | done | failed
    error: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "overrides": to_jsonable(self.overrides),
            "file": self.path.name,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SweepResult:
    """What a sweep produced: every point with its status; recordings load lazily."""

    root: Path
    grid: dict[str, list[Any]]
    points: list[SweepPoint]
    ran: list[int] = field(default_factory=list)  # indices run by this call
    skipped: list[int] = field(default_factory=list)  # complete already, not run again

    @property
    def failed(self) -> list[SweepPoint]:
        return [p for p in self.points if p.status == "failed"]

    def recording(self, point: SweepPoint | int) -> Recording:
        point = self.points[point] if isinstance(point, int) else point
        return load(point.path)

    def recordings(self) -> list[Recording | None]:
        """One per point, in grid order; None where the point failed."""
        return [self.recording(p) if p.status == "done" else None for p in self.points]


def _run_point(experiment: str, config: dict, path: str) -> float:
    """Run one configuration in a worker and write its recording to ``path``; returns seconds."""
    module = importlib.import_module(experiment)
    start = time.perf_counter()
    module.run(module.Config(**config), path=path, overwrite=True)
    return time.perf_counter() - start


class Sweep:
    """An experiment, a base config and a grid (or list) of overrides.

    Parameters
    ----------
    experiment : str
        Module with a ``Config`` dataclass and ``run(config, path=..., overwrite=...)``,
        e.g. ``"dynamics.experiments.relu_particles"``.
    base : dataclass
        The config every override starts from.
    grid : mapping of str to sequence, optional
        ``{"radius": [0.01, 0.1, 1], "width": [5, 20, 100]}``: every combination, the
        first key along rows and the second along columns when drawn.
    points : sequence of mappings, optional
        An explicit list of overrides instead of a grid.
    root : path-like
        Directory of the sweep: one recording per point and the index ``sweep.json``.
    """

    def __init__(
        self,
        experiment: str,
        base: Any,
        grid: Mapping[str, Sequence[Any]] | None = None,
        *,
        points: Sequence[Mapping[str, Any]] | None = None,
        root: str | os.PathLike,
    ):
        if (grid is None) == (points is None):
            raise ValueError("a sweep needs either a grid or a list of points")
        self.experiment = experiment
        self.base = base
        self.grid = {k: list(v) for k, v in (grid or {}).items()}
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"sweep grid: {key!r} has no values")
        overrides = grid_points(self.grid) if grid is not None else [dict(p) for p in points]
        self.root = Path(root)
        names = {f.name for f in dataclasses.fields(base)}
        self.points: list[SweepPoint] = []
        for i, ov in enumerate(overrides):
            unknown = set(ov) - names
            if unknown:
                raise ValueError(
                    f"sweep: {sorted(unknown)} are not fields of {type(base).__name__}"
                )
            dataclasses.replace(base, **ov)  # validate every configuration before running any
            self.points.append(SweepPoint(i, dict(ov), self.root / f"{i:03d}-{_slug(ov)}.rec"))

    def config(self, point: SweepPoint) -> Any:
        return dataclasses.replace(self.base, **point.overrides)

    def _is_complete(self, point: SweepPoint) -> bool:
        try:
            rec = load(point.path)
        except (FileNotFoundError, RecordingError):
            return False
        wanted = to_jsonable(dataclasses.asdict(self.config(point)))
        return rec.complete and rec.metadata.get("config") == wanted

    def _write_index(self) -> None:
        index = {
            "experiment": self.experiment,
            "base": to_jsonable(dataclasses.asdict(self.base)),
            "grid": to_jsonable(self.grid),
            "points": [p.to_json() for p in self.points],
        }
        tmp = self.root / f".{INDEX}.tmp"
        tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
        os.replace(tmp, self.root / INDEX)

    def run(
        self,
        executor: Executor | None = None,
        *,
        jobs: int | None = None,
        progress: bool = False,
        on_done: Callable[[SweepPoint], None] | None = None,
    ) -> SweepResult:
        """Run every configuration whose recording is not complete yet.

        Parameters
        ----------
        executor : concurrent.futures.Executor, optional
            Where runs go; default a process pool of ``jobs`` workers (default: one per
            usable core). Pass ``Client(address).get_executor()`` to use a Dask cluster.
        jobs : int, optional
            Workers of the default pool (1: every run in this process, one after another).
        progress : bool
            A progress bar over configurations.
        on_done : callable, optional
            Called with each point as it finishes (done or failed), in the calling process.

        Returns
        -------
        SweepResult
            Failed points carry their error; the others have complete recordings.
        """
        from .progress import progress_bar

        self.root.mkdir(parents=True, exist_ok=True)
        result = SweepResult(self.root, self.grid, self.points)
        todo = []
        for point in self.points:
            if self._is_complete(point):
                point.status = "done"
                result.skipped.append(point.index)
            else:
                point.status, point.error = "pending", ""
                todo.append(point)
        self._write_index()
        bar = progress_bar(
            total=len(self.points),
            initial=len(result.skipped),
            desc="sweep",
            unit="run",
            disable=not progress,
        )

        def finish(
            point: SweepPoint, fut: Future | None, seconds: float | None, exc: BaseException | None
        ):
            if exc is None:
                point.status, point.seconds = "done", seconds
            else:
                point.status = "failed"
                point.error = (
                    f"{type(exc).__name__}: {exc}".splitlines()[0]
                    if str(exc)
                    else type(exc).__name__
                )
            result.ran.append(point.index)
            self._write_index()
            bar.update()
            if on_done is not None:
                on_done(point)

        # Longest first, when the experiment can estimate a run's cost: the executor still
        # decides where runs go, but a long run submitted last would leave the other
        # workers idle at the end (measured: 1.54x -> see README, "Sweeps").
        cost = getattr(importlib.import_module(self.experiment), "cost", None)
        if cost is not None:
            todo.sort(key=lambda p: -cost(self.config(p)))
        jobs = usable_cpus() if jobs is None else int(jobs)
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        try:
            if executor is None and (jobs == 1 or len(todo) <= 1):
                for point in todo:  # in this process: no pool to start for one worker
                    try:
                        seconds = _run_point(
                            self.experiment, dataclasses.asdict(self.config(point)), str(point.path)
                        )
                    except Exception as exc:  # reported with its overrides; the others go on
                        finish(point, None, None, exc)
                    else:
                        finish(point, None, seconds, None)
                return result
            own = executor is None
            if own:
                import multiprocessing as mp

                # spawn, not fork: the parent may hold torch/OpenMP threads a fork would copy
                # mid-state
                executor = ProcessPoolExecutor(
                    max_workers=min(jobs, len(todo)), mp_context=mp.get_context("spawn")
                )
            futures: dict[Future, Any] = {}  # filled one by one: a bad point's error surfaces
            try:
                for p in todo:
                    config = dataclasses.asdict(self.config(p))
                    futures[executor.submit(_run_point, self.experiment, config, str(p.path))] = p
                for fut in as_completed(futures):
                    point = futures[fut]
                    try:
                        seconds = fut.result()
                    except Exception as exc:
                        finish(point, fut, None, exc)
                    else:
                        finish(point, fut, seconds, None)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
            finally:
                if own:
                    executor.shutdown(wait=True, cancel_futures=True)
            return result
        finally:
            bar.close()
            self._write_index()


@contextlib.contextmanager
def open_executor(url: str | None):
    """``None``/``"local"``: yields None (the sweep's default process pool);
    ``"dask://HOST:PORT"``: the executor of that running Dask scheduler (needs the
    optional ``distributed`` package), closed again afterwards."""
    if url in (None, "", "local"):
        yield None
        return
    if not url.startswith("dask://"):
        raise ValueError(f"unknown executor {url!r}; use 'local' or 'dask://HOST:PORT'")
    try:
        from distributed import Client
    except ImportError:
        raise ValueError(
            "--executor dask://... needs the optional dependency: pip install 'dask[distributed]'"
        ) from None
    try:
        client = Client("tcp://" + url[len("dask://") :], timeout=10)
    except OSError as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {url}: {exc}") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
