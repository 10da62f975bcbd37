"""The scene registry: scenes register by decorator and are found by :func:`discover`.

The command line, the sweep layout and the tests read the registry; nothing keeps a list
of scenes by hand. A scene module dropped into ``scenes/`` is found by :func:`discover`
(which imports every module of the package) with no other edit.

A registered scene may name the experiment module that trains its recording
(``experiment="dynamics.experiments.relu_particles"``); a scene without one draws any
saved recording that has what it requires (``python -m scenes.weights RUN.rec``). The
experiment module imports torch, so it is imported only when a run is trained.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Sequence

__all__ = ["SceneEntry", "register", "REGISTRY", "discover", "get"]


@dataclasses.dataclass(frozen=True)
class SceneEntry:
    """A registered scene.

    Attributes
    ----------
    name : str
        ``python -m scenes.<name>`` runs it.
    scene : type
        The :class:`scenes.base.Scene` subclass.
    description : str
        One paragraph for ``--help`` (``python -m scenes`` lists the first line of the scene
        class's docstring).
    experiment : str or None
        Module with a config dataclass ``Config`` and ``run(config, path=..., overwrite=...,
        progress=...) -> Recording``; None for a scene that draws saved recordings only.
    default_sweep : tuple of str
        ``--sweep`` specs used when none (and no recording) is given: a scene whose default
        picture is a comparison of runs.
    """

    name: str
    scene: type
    description: str
    experiment: str | None = None
    default_sweep: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One line: the first line of the scene class's docstring."""
        import inspect

        return (inspect.getdoc(self.scene) or self.description).splitlines()[0].rstrip(".")

    @property
    def module(self):
        if self.experiment is None:
            raise ValueError(
                f"scenes.{self.name} has no experiment to train: give it a saved recording"
            )
        return importlib.import_module(self.experiment)

    @property
    def experiment_config(self) -> type | None:
        return self.module.Config if self.experiment else None

    def run(self, *args, **kwargs):
        """Train the experiment and return its Recording."""
        return self.module.run(*args, **kwargs)


REGISTRY: dict[str, SceneEntry] = {}


def register(
    name: str, *, description: str, experiment: str | None = None, default_sweep: Sequence[str] = ()
):
    """Class decorator: make a Scene known to ``python -m scenes``, the sweep layout and the tests.

    Registering the same name twice is an error, except for the one module that Python
    runs twice: ``python -m scenes.NAME`` executes it as ``__main__`` and importing the
    package later executes it again under its own name; the first registration stays.
    """

    def deco(cls: type) -> type:
        old = REGISTRY.get(name)
        if old is not None and old.scene is not cls:
            rerun = old.scene.__qualname__ == cls.__qualname__ and "__main__" in (
                old.scene.__module__,
                cls.__module__,
            )
            if not rerun:
                raise ValueError(
                    f"scene name {name!r} is registered twice: by {old.scene.__module__}."
                    f"{old.scene.__qualname__} and by {cls.__module__}.{cls.__qualname__}"
                )
            return cls
        REGISTRY[name] = SceneEntry(
            name, cls, " ".join(description.split()), experiment, tuple(default_sweep)
        )
        return cls

    return deco


def discover() -> dict[str, SceneEntry]:
    """Import every module of the ``scenes`` package (those that define scenes register them)
    and return the registry, sorted by name."""
    import scenes

    for info in pkgutil.iter_modules(scenes.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"scenes.{info.name}")
    return dict(sorted(REGISTRY.items()))


def get(name: str) -> SceneEntry:
    """The registered scene ``name`` (discovering the package if it is not registered yet)."""
    if name not in REGISTRY:
        discover()
    if name not in REGISTRY:
        raise KeyError(f"no scene named {name!r}; the scenes are: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]
