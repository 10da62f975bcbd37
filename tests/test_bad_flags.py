"""Every numeric flag of every scene command, given values no one can mean (inf, nan, -1,
1e308, 1e20, text): one line on stderr, exit 2, nothing trained and nothing written."""

import contextlib
import dataclasses
import io

import pytest

from scenes.base import RenderOptions
from scenes.registry import SceneEntry, discover
from scenes.writers import Mp4Options

BAD = ["inf", "-inf", "nan", "-1", "1e308", "1e20", "abc"]
#: Values among BAD that a field does take (a parabola may open either way).
MEANT = {("curvature", "-1")}
#: Frame size flags have a shape of their own (--size); --width is the experiment's.
OWN_SHAPE = {"width", "height"}


class WouldTrain(Exception):
    """Raised instead of training: a bad value was accepted."""


def numeric_flags(entry) -> list[str]:
    classes = [entry.experiment_config, entry.scene.Config, RenderOptions, Mp4Options]
    names = []
    for cls in classes:
        if cls is None:
            continue
        for f in dataclasses.fields(cls):
            numeric = isinstance(f.default, (int, float)) and not isinstance(f.default, bool)
            if numeric and not (cls is RenderOptions and f.name in OWN_SHAPE):
                names.append(f.name)
    return names


@pytest.mark.parametrize("name", sorted(discover()))
def test_every_numeric_flag_refuses_what_cannot_be_meant(name, tmp_path, monkeypatch):
    from scenes.cli import main

    entry = discover()[name]

    def refuse(*args, **kwargs):
        raise WouldTrain

    monkeypatch.setattr(SceneEntry, "run", refuse)
    monkeypatch.setattr("dynamics.sweep.Sweep.run", refuse)
    base = ["--out", str(tmp_path / "x.mp4"), "--quiet"]
    if entry.experiment is None:
        base.insert(0, str(entry.scene.example().save(tmp_path / "in.rec")))
    tried, one_line, problems = 0, 0, []
    for field in numeric_flags(entry):
        flag = "--" + field.replace("_", "-")
        for value in BAD:
            if (field, value) in MEANT:
                continue
            tried += 1
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    main(name, [*base, flag, value])
            except SystemExit as exc:
                lines = [line for line in err.getvalue().splitlines() if line.strip()]
                errors = [line for line in lines if ": error: " in line]
                # argparse prints its usage line above its one error line
                usage_only = all(line.startswith(("usage:", " ")) for line in lines[:-1])
                if exc.code == 2 and len(errors) == 1 and (len(lines) == 1 or usage_only):
                    one_line += 1
                else:
                    problems.append((flag, value, exc.code, lines[-3:]))
            except WouldTrain:
                problems.append((flag, value, "accepted"))
            except Exception as exc:  # a traceback would reach the user
                problems.append((flag, value, type(exc).__name__, str(exc)[:80]))
    assert problems == [], problems
    assert tried == one_line and tried >= 8 * 7  # RenderOptions and Mp4Options: 8 flags
    assert not list(tmp_path.glob("*.mp4"))
    print(f"{name}: {tried} values tried, {one_line} one-line errors, 0 tracebacks")
