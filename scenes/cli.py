"""Shared command line of the scene modules: flags are generated from dataclasses.

Defaults and help texts are written once, in each dataclass (its numpy-style
``Attributes`` section): :class:`~scenes.base.RenderOptions` (the frame),
:class:`~scenes.writers.Mp4Options` (the encoder), the experiment's config and the scene's
config. This module turns them into ``argparse`` flags, so a new field gets a working
flag with no edit here, and no scene's field is special-cased.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from dynamics.limits import describe

from .base import QUALITY_PRESETS, RenderOptions, Scene
from .handout import MAX_KEYFRAMES, PAPERS, check_handout_path, check_paper
from .registry import SceneEntry, get
from .writers import Mp4Options, Mp4Writer, check_output_path, open_writer, output_path

__all__ = ["main", "build_parser", "add_dataclass_arguments", "dataclass_from_args", "field_docs"]

# RenderOptions fields that have flags of another shape (--size) or none (--quiet)
_RENDER_SKIP = ("width", "height", "progress", "chapters")


def field_docs(cls: type) -> dict[str, str]:
    """Per-field help from the numpy-style ``Attributes`` sections of ``cls``'s docstring and
    of its base classes' (a subclass's entry wins: a field it does not document keeps its
    base's help)."""
    merged: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is not object and "__doc__" in vars(klass):
            merged.update(_own_field_docs(klass))
    return merged


def _own_field_docs(cls: type) -> dict[str, str]:
    doc = cls.__doc__ or ""
    doc = inspect.cleandoc(doc)
    docs: dict[str, str] = {}
    current: list[str] | None = None
    for line in doc.splitlines():
        m = re.match(r"^(\w+(?:, \w+)*) : .*$", line)
        if m:
            current = []
            for name in m.group(1).split(", "):
                docs[name] = current  # type: ignore[assignment]
        elif line.startswith("    ") and current is not None:
            current.append(line.strip())
        elif not line.strip():
            continue
        else:
            current = None
    return {k: " ".join(v) for k, v in docs.items()}  # type: ignore[arg-type]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    title: str,
    *,
    skip: Sequence[str] = (),
    defaults: dict[str, Any] | None = None,
    suppress_defaults: bool = False,
) -> None:
    """One flag per field of dataclass ``cls``, typed from its default, help from its docstring.

    With ``suppress_defaults`` a flag that is not given stays absent from the namespace,
    so a preset can supply the default instead (the help still shows ``defaults``).
    """
    group = parser.add_argument_group(title)
    docs = field_docs(cls)
    limits = getattr(cls, "LIMITS", {})
    hints = typing.get_type_hints(cls)
    shown = defaults or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = shown.get(f.name, f.default)
        help_text = docs.get(f.name, "")
        if f.name in limits:
            help_text = f"{help_text} Range: {describe(limits[f.name])}.".strip()
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        # the text says the default itself; "%(default)" in it tells argparse's
        # ArgumentDefaultsHelpFormatter not to append it a second time
        shown_default = str(default).replace("%", "%%")
        marker = "" if suppress_defaults else "%(default).0s"  # SUPPRESS: nothing appended
        kwargs: dict[str, Any] = {"help": f"{help_text} (default: {shown_default}){marker}"}
        if suppress_defaults:
            kwargs["default"] = argparse.SUPPRESS
        else:
            kwargs["default"] = f.default
        hint = hints.get(f.name, type(f.default))
        if hint is bool:
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            typ = hint if hint in (int, float, str) else type(f.default)
            group.add_argument(_flag(f.name), type=typ, metavar=typ.__name__.upper(), **kwargs)


def dataclass_from_args(cls: type, args: argparse.Namespace, **extra: Any):
    """Build dataclass ``cls`` from the parsed flags that name its fields."""
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    return cls(**{**values, **extra})


def build_parser(entry: SceneEntry) -> argparse.ArgumentParser:
    """The parser of ``python -m scenes.<name>``: input and output, sweeps (for scenes that
    train and draw small multiples), rendering and encoding, the experiment, the picture."""
    trains = entry.experiment is not None
    compares = entry.scene.compare_scene
    parser = argparse.ArgumentParser(
        prog=f"python -m scenes.{entry.name}",
        description=entry.description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    io = parser.add_argument_group("input and output")
    io.add_argument(
        "recording_arg",
        nargs="*",
        type=Path,
        default=[],
        metavar="RECORDING",
        help="a saved recording (a .rec directory, or a TensorBoard log) to draw"
        + (" instead of training (same as --recording)" if trains else " (required)")
        + (
            "; two or more, or a TensorBoard log directory of several runs, are compared on "
            "one timeline (their curves overlaid, their distributions side by side)"
            if compares
            else ""
        ),
    )
    io.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file; its extension (.mp4, .gif, .png, .html) picks the format "
        f"(default: outputs/{entry.name}.<format>)",
    )
    io.add_argument(
        "--format",
        choices=["mp4", "gif", "png", "html"],
        default=None,
        help="output format when --out is not given; png writes a still of the last frame, "
        "html an interactive player (play, pause, frame steps, a slider, chapter buttons) in "
        "one self-contained page (default: mp4)",
    )
    io.add_argument(
        "--recording",
        type=Path,
        default=None,
        help="re-render a saved recording (a .rec directory) instead of training"
        if trains
        else "the saved recording to draw (same as RECORDING)",
    )
    if trains:
        io.add_argument(
            "--save-recording",
            type=Path,
            default=None,
            help="also stream the training run into this recording directory, to re-render later",
        )
        io.add_argument(
            "--overwrite",
            action="store_true",
            help="replace an existing --save-recording directory",
        )
    io.add_argument(
        "--still",
        type=Path,
        default=None,
        help="also write a PNG still of the last frame to this path",
    )
    io.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write the scene's static figures (PNG) beside the movie, if it has any",
    )
    io.add_argument(
        "--handout",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write a handout: the movie's keyframes (first step, chapters, last step) "
        "as a grid on one page, a vector .pdf or a .png",
    )
    io.add_argument(
        "--handout-frames",
        type=int,
        default=None,
        metavar="N",
        help="the handout shows N evenly spaced frames instead of the chapters (1 to 12; "
        "default: the chapters, or when there are none 6, or 4 for a scene drawn whole in each "
        "cell: curves, render, layers, a sweep's grid)",
    )
    io.add_argument(
        "--paper",
        default="a4",
        metavar="SIZE",
        help="page of the handout, landscape: a4 (297 x 210 mm) or letter (US Letter, 11 x 8.5 "
        "in) (default: a4)",
    )
    io.add_argument("--quiet", action="store_true", help="no progress bars")
    io.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the whole traceback instead of one line (for bug reports)",
    )
    if trains and entry.scene.small_multiples:
        sweep = parser.add_argument_group(
            "sweeps (small multiples: one panel per configuration, one timeline)"
        )
        sweep.add_argument(
            "--sweep",
            action="append",
            default=None,
            metavar="NAME=V1,V2,...",
            help="run every value of an experiment field, e.g. --sweep radius=0.01,0.1,1; give it "
            "twice for a grid (first: rows, second: columns). Finished runs are kept in "
            "--sweep-dir and not run again, so repeating the command resumes or re-renders",
        )
        if entry.default_sweep:
            sweep.add_argument(
                "--single",
                action="store_true",
                help="train and draw one run with the given flags, instead of the default "
                "comparison (" + " x ".join(entry.default_sweep) + ")",
            )
        sweep.add_argument(
            "--jobs",
            type=int,
            default=None,
            help="local worker processes for a sweep (default: one per usable CPU core; 1: one "
            "after another)",
        )
        sweep.add_argument(
            "--executor",
            default="local",
            metavar="URL",
            help="where sweep runs go: 'local' (a process pool of --jobs workers) or "
            "dask://HOST:PORT (a running Dask scheduler; needs dask[distributed] and a folder "
            "every worker sees)",
        )
        sweep.add_argument(
            "--sweep-dir",
            type=Path,
            default=None,
            help="folder of the sweep's recordings and index (default: "
            f"outputs/{entry.name}_sweep)",
        )
    render = parser.add_argument_group("rendering")
    render.add_argument(
        "--quality",
        choices=list(QUALITY_PRESETS),
        default="final",
        help="named preset: draft = 640x360 and a fast encoder (4 px text: tests, quick "
        "looks), final = 1280x720, notebook = 1920x1080 (what Scene.show uses: the same "
        "layout, text at least 9 px high) (default: final)",
    )
    render.add_argument(
        "--size",
        default=None,
        metavar="WxH",
        help="frame size in pixels, both even, overriding the preset (e.g. 1920x1080)",
    )
    render.add_argument(
        "--chapter",
        action="append",
        default=None,
        metavar="STEP:TITLE",
        help="a chapter (repeatable): at the first frame that reaches STEP the movie pauses "
        "for --chapter-hold seconds under a title card; the MP4 lists the chapters, and a "
        "WebVTT file of them is written beside it. Replaces the experiment's own chapters "
        "(default: the chapters the recording carries, if any)",
    )
    render.add_argument(
        "--no-chapters",
        action="store_true",
        help="no chapters, not even the experiment's own",
    )
    add_dataclass_arguments(
        parser,
        RenderOptions,
        "rendering (override the --quality preset)",
        skip=_RENDER_SKIP,
        suppress_defaults=True,
        defaults=QUALITY_PRESETS["final"],
    )
    add_dataclass_arguments(
        parser,
        Mp4Options,
        "MP4 encoding (override the --quality preset)",
        suppress_defaults=True,
        defaults=Mp4Writer.QUALITY["final"],
    )
    if trains:
        add_dataclass_arguments(parser, entry.experiment_config, "experiment")
    if entry.scene.Config is not None:
        add_dataclass_arguments(parser, entry.scene.Config, "picture")
    extra = _compare_only(entry)
    if extra:
        add_dataclass_arguments(
            parser,
            compares.Config,
            "comparing runs (two or more recordings, or a log directory of several runs)",
            skip=[f.name for f in dataclasses.fields(compares.Config) if f.name not in extra],
        )
    return parser


def _compare_only(entry: SceneEntry) -> list[str]:
    """The fields of the config of the scene's comparison (``compare_scene``) that its own
    config lacks: their flags mean something only with two or more runs."""
    compares = entry.scene.compare_scene
    if compares is None or compares.Config is None:
        return []
    own = {f.name for f in dataclasses.fields(entry.scene.Config)} if entry.scene.Config else set()
    return [f.name for f in dataclasses.fields(compares.Config) if f.name not in own]


def _parse_size(text: str) -> dict[str, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    if not m:
        raise ValueError(f"--size must look like 1280x720, got {text!r}")
    return {"width": int(m.group(1)), "height": int(m.group(2))}


def _given(cls: type, args: argparse.Namespace, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of dataclass ``cls`` that were given as flags."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if f.name not in skip and hasattr(args, f.name)
    }


def main(name: str, argv: Sequence[str] | None = None) -> Path:
    """Entry point of ``python -m scenes.<name>``: train or load, render, print the paths.

    Errors reach the user as one line (exit 2 for a bad value, 1 for a full disk, a failed
    encoder or too little memory, 130 for Ctrl-C at any moment); ``--debug`` shows the
    traceback instead. Called from other code it returns the movie's path (or raises
    SystemExit); as the command itself it ends the process (:func:`_end_command`)."""
    prog = f"python -m scenes.{name}"
    command = _is_command()
    args = None
    try:
        entry = get(name)
        parser = build_parser(entry)
        prog = parser.prog
        args = parser.parse_args(argv)
        path = _main(entry, args)
        if command:  # the outputs are complete: nothing may end the process without a word
            _end_command(prog, 0, "interrupted after the outputs above were written in full")
        return path
    except (
        ValueError,
        KeyError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        PermissionError,
    ) as exc:
        if args is not None and args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        _fail(prog, command, 2, f"{prog}: error: {msg}")
    except (OSError, MemoryError) as exc:  # a full disk, a failed encoder, too little memory
        if args is not None and args.debug:
            raise
        what = str(exc) or ("out of memory" if isinstance(exc, MemoryError) else repr(exc))
        _fail(prog, command, 1, f"{prog}: error: {what}")
    except KeyboardInterrupt:
        if args is not None and args.debug:
            raise
        what = "interrupted; no partial output was left at the target path"
        if command:  # a second Ctrl-C while this is said: the same line, the same exit
            _on_ctrl_c(prog, what)
        print(f"{prog}: {what}", file=sys.stderr)
        if command:  # exit now, with 130, whatever is left to unwind
            # (seen in 1 of 9 interrupts: Python then exited by SIGINT itself, status -2)
            _flush()
            os._exit(130)
        raise SystemExit(130) from None
    except SystemExit as exc:  # argparse's usage errors (2) and --help (0)
        if command:
            code = exc.code
            if not isinstance(code, (int, type(None))):  # a message: said, status 1 (as Python)
                print(code, file=sys.stderr)
                code = 1
            _end_command(prog, code or 0, "interrupted")
        raise


def _fail(prog: str, command: bool, code: int, line: str) -> typing.NoReturn:
    """Print the one-line error and exit with ``code``."""
    if command:
        _on_ctrl_c(prog, "interrupted")
    print(line, file=sys.stderr)
    if command:
        _end_command(prog, code, "interrupted")
    raise SystemExit(code) from None


def _is_command() -> bool:
    """True when this process is ``python -m scenes.NAME`` (or ``python -m scenes NAME``):
    scenes/__init__.py installed its start-up handler, and the main module is a scene's.
    Called from other code (a test, a notebook), :func:`main` leaves the process alone."""
    import scenes

    spec = sys.modules["__main__"].__spec__
    return (
        getattr(scenes, "_interrupted_while_starting", None) is not None
        and spec is not None
        and spec.name.split(".")[0] == "scenes"
    )


def _on_ctrl_c(prog: str, what: str) -> None:
    """From now on a Ctrl-C ends the process at once with ``prog: what`` and status 130 (no
    more KeyboardInterrupt: the writers have finished or removed their files)."""
    import signal

    def interrupted(signum, frame):
        os.write(2, f"{prog}: {what}\n".encode())
        os._exit(130)

    if threading_main():
        signal.signal(signal.SIGINT, interrupted)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can be said
            pass


def _end_command(prog: str, code: int, what: str) -> typing.NoReturn:
    """End the command with status ``code``; a Ctrl-C until the very end gives ``prog:
    what`` and 130.

    Python's own exit would reset SIGINT to its default action before it tears the modules
    down (torch and matplotlib: a noticeable time), and a Ctrl-C then killed the process by
    the signal: status -2, not a word. So this does what that exit does that anyone can
    see, in its order, under a handler of its own: it waits for the threads that are not
    daemons (and runs threading's exit hooks, as ``concurrent.futures`` registers them),
    runs the ``atexit`` functions (a recording's finalizer commits there, ``logging``
    flushes its files), flushes stdout and stderr, and ends with :func:`os._exit`, skipping
    the teardown of the modules. A file object left open, unflushed, in a module's globals
    is not closed (the teardown closes it, when it gets to it; ``with open(...)`` does not
    depend on it)."""
    import atexit
    import threading

    _on_ctrl_c(prog, what)
    threading._shutdown()  # what Python's exit calls first: join the non-daemon threads
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)


def _hand_over_interrupts() -> None:
    """The start-up handler of ``python -m`` (scenes/__init__.py: one line, exit 130) stays
    until the imports are done: a KeyboardInterrupt raised inside torch's import, in Python
    code that C++ called, aborted the process ("terminate called after throwing ...").
    From here on Ctrl-C raises KeyboardInterrupt, which :func:`main` turns into one line
    after the writers have removed their partial files. A caller's own handler stays."""
    import signal

    import scenes

    starting = getattr(scenes, "_interrupted_while_starting", None)
    if starting is not None and threading_main() and signal.getsignal(signal.SIGINT) is starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def threading_main() -> bool:
    """True in the main thread (the only one that may set signal handlers)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def _main(entry: SceneEntry, args: argparse.Namespace) -> Path:
    from dynamics.recording import load

    given = list(args.recording_arg)
    if args.recording is not None:
        if given and given != [args.recording]:
            raise ValueError("give the recording once: as RECORDING or as --recording")
        given = [args.recording]
    compared = _compared(entry, given)
    recording_path = given[0] if given and not compared else None
    if entry.experiment is None and recording_path is None and not compared:
        raise ValueError(
            f"scenes.{entry.name} draws a saved recording: give its path "
            f"(python -m scenes.{entry.name} RUN.rec)"
        )
    sweep = getattr(args, "sweep", None)
    if entry.default_sweep and not sweep and not recording_path and not args.single:
        sweep = list(entry.default_sweep)  # this scene's default is a comparison of runs
    overrides = _given(RenderOptions, args, _RENDER_SKIP)
    if args.size:
        overrides.update(_parse_size(args.size))
    if args.no_chapters and args.chapter:
        raise ValueError("give --chapter or --no-chapters, not both")
    if args.no_chapters or args.chapter:
        overrides["chapters"] = tuple(args.chapter or ())
    options = RenderOptions.preset_for(args.quality, progress=not args.quiet, **overrides)
    encoder = _given(Mp4Options, args)
    Mp4Options(
        **{**Mp4Writer.QUALITY[args.quality], **encoder}
    )  # bad settings fail before any work
    # the writer is built once, here, before any work: it validates the path and opens no
    # file until the first frame arrives
    default_name = f"{entry.name}_sweep" if sweep else "compare" if compared else entry.name
    out = output_path(args.out, args.format, default_name)
    writer = open_writer(out, options.fps, quality=args.quality, **encoder)
    if args.still:
        check_output_path(args.still)
    if args.handout:
        check_handout_path(args.handout)
    try:
        args.paper = check_paper(args.paper)
    except ValueError:
        raise ValueError(f"--paper must be {' or '.join(PAPERS)}, got {args.paper!r}") from None
    if args.handout_frames is not None and not 1 <= args.handout_frames <= MAX_KEYFRAMES:
        raise ValueError(
            f"--handout-frames must be between 1 and {MAX_KEYFRAMES}, got {args.handout_frames}"
        )
    if sweep:
        _check_folder(_sweep_root(entry, args), "--sweep-dir")
    elif getattr(args, "save_recording", None) and not recording_path:
        _check_recording_target(args.save_recording, args.overwrite)
    scene_config = dataclass_from_args(entry.scene.Config, args) if entry.scene.Config else None
    if compared:  # (a scene that compares runs trains none: no --sweep)
        scene_config = dataclass_from_args(entry.scene.compare_scene.Config, args)
    else:
        for name in _compare_only(entry):
            if getattr(args, name) != getattr(entry.scene.compare_scene.Config(), name):
                raise ValueError(
                    f"{_flag(name)} chooses what a comparison of runs draws: give two or more "
                    "recordings, or a log directory of several runs"
                )
    if entry.experiment is not None:
        entry.experiment_config  # noqa: B018  (imports the experiment, torch with it)
    _hand_over_interrupts()
    if sweep:
        scene = _sweep(entry, args, sweep, options, scene_config)
    elif compared:
        from dynamics.recording import load_runs

        scene = entry.scene.compare_scene(load_runs(*compared), scene_config, options)
    else:
        if recording_path:
            recording = load(recording_path)
        else:
            config = dataclass_from_args(entry.experiment_config, args)
            recording = entry.run(
                config, path=args.save_recording, overwrite=args.overwrite, progress=not args.quiet
            )
        scene = entry.scene(recording, scene_config, options)
    for text in scene.notes_:  # what the scene chose by itself: the user sees what was drawn
        print(f"python -m scenes.{entry.name}: {text}", file=sys.stderr)
    return _render_outputs(scene, writer, args)


def _compared(entry: SceneEntry, paths: list[Path]) -> list[Path]:
    """The paths to compare on one timeline (the scene's ``compare_scene`` draws them): two
    or more, or one TensorBoard log directory of several runs; else none. Several runs
    given to a scene that draws one: ValueError naming the scenes that compare runs."""
    several = len(paths) > 1
    if len(paths) == 1 and paths[0].is_dir() and not paths[0].is_symlink():
        from dynamics.recording import MANIFEST

        if not (paths[0] / MANIFEST).exists():
            from dynamics.tensorboard import runs

            found = runs(paths[0], depth=2)  # as far down as load() looks for runs
            several = len(found) > 1
    if not several:
        return []
    if entry.scene.compare_scene is not None:
        return paths
    from .registry import discover

    names = [e.name for e in discover().values() if e.scene.compare_scene]
    compare = " or ".join(f"python -m scenes.{n}" for n in names) or "another scene"
    compare += " " + " ".join(map(str, paths))
    if len(paths) > 1:
        raise ValueError(
            f"scenes.{entry.name} draws one run, got {len(paths)} recordings; compare them "
            f"with {compare}"
        )
    listed = ", ".join(list(found)[:5]) + (" ..." if len(found) > 5 else "")
    raise ValueError(
        f"scenes.{entry.name} draws one run, and {paths[0]} holds {len(found)} TensorBoard runs "
        f"({listed}): give one of them (e.g. {next(iter(found.values()))}), or compare them "
        f"with {compare}"
    )


def _sweep_root(entry: SceneEntry, args: argparse.Namespace) -> Path:
    return args.sweep_dir or Path("outputs") / f"{entry.name}_sweep"


def _check_folder(folder: Path, flag: str, given: Path | None = None) -> None:
    """``folder`` is a folder that takes new files (made if need be), checked before any
    work; else ValueError naming ``flag`` and the path the user gave it (``given``, default
    ``folder``) and, if another, the path in the way."""
    from .writers import refuses_files

    given = folder if given is None else given
    what = f"{flag} {given}"
    above = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if above is not None and not above.is_dir():
        where = "" if above == given else f": {above}"
        raise ValueError(f"{what}{where} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"{what}: cannot create the folder {folder} ({exc.strerror or exc})"
        ) from None
    refused = refuses_files(folder)
    if refused:
        raise ValueError(f"{what}: the folder {folder} {refused}")


def _check_recording_target(path: Path, overwrite: bool) -> None:
    """What ``--save-recording PATH`` may not write to, in the flags' words, before any
    training: a link (a recording is replaced by renaming folders, never through a link),
    a file, or an existing recording without ``--overwrite``. The recorder checks the rest
    (a folder that is not a recording, another writer's lock)."""
    what = f"--save-recording {path}"
    if path.is_symlink():
        raise ValueError(
            f"{what} is a symbolic link (to {os.readlink(path)}); give the recording's own "
            "path: a recording is not written through a link"
        )
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} is a file, not a recording (a folder)")
    if path.exists() and not overwrite:
        raise ValueError(f"{what} already exists; add --overwrite to replace it")
    _check_folder(path.parent, "--save-recording", path)


def _sweep(
    entry: SceneEntry,
    args: argparse.Namespace,
    specs: Sequence[str],
    options: RenderOptions,
    scene_config,
) -> Scene:
    from dynamics.sweep import Sweep, open_executor, parse_sweep_values

    from .sweep import SweepScene

    if args.recording or args.recording_arg or args.save_recording:
        raise ValueError(
            "a recording (RECORDING, --recording, --save-recording) does not combine with --sweep: "
            "the sweep keeps its recordings in --sweep-dir, and repeating the command re-renders "
            "them"
        )
    grid: dict[str, list] = {}
    for spec in specs:
        name, values = parse_sweep_values(entry.experiment_config, spec)
        if name in grid:
            raise ValueError(f"--sweep {name} is given twice")
        grid[name] = values
    if len(grid) > 2:
        raise ValueError(
            f"at most two --sweep fields (rows and columns), got {len(grid)}: {', '.join(grid)}"
        )
    if args.jobs is not None and not 1 <= args.jobs <= 1024:
        raise ValueError(f"--jobs must be between 1 and 1024, got {args.jobs}")
    base = dataclass_from_args(entry.experiment_config, args)
    sweep = Sweep(entry.experiment, base, grid, root=_sweep_root(entry, args))
    with open_executor(args.executor) as executor:
        result = sweep.run(executor, jobs=args.jobs, progress=not args.quiet)
    prog = f"python -m scenes.{entry.name}"
    for point in result.failed:
        print(f"{prog}: configuration {point.overrides} failed: {point.error}", file=sys.stderr)
    return SweepScene(
        entry.scene,
        result.recordings(),
        grid,
        errors=[p.error for p in result.points],
        config=scene_config,
        options=options,
    )


def _render_outputs(scene: Scene, writer, args: argparse.Namespace) -> Path:
    """Render the movie, then the optional still and static figures; print each path."""
    path = scene.render(writer)
    print(path)
    if writer.vtt_path is not None:
        print(writer.vtt_path)
    if args.still:
        print(scene.still(args.still))
    if args.handout:
        print(scene.handout(args.handout, count=args.handout_frames, paper=args.paper))
    if args.figures:
        for figure in scene.write_figures(path.with_suffix("")):
            print(figure)
    return path
