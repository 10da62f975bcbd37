"""What the command line says: a bad path gives one line naming the path the user gave (not a
temporary file), a series name that is not one gives the closest names, and a scene that
chose what to draw by itself says what it drew, what else there was and how to choose."""

import os
from pathlib import Path

import numpy as np
import pytest

from dynamics.recording import Recording, Series
from scenes.cli import main
from scenes.registry import SceneEntry

DRAFT = ["--quality", "draft", "--quiet"]


class WouldTrain(Exception):
    """Raised instead of training: the command went past its checks."""


@pytest.fixture
def no_training(monkeypatch):
    """Training and sweeps refuse to run: a bad path must be refused before any work."""

    def refuse(*args, **kwargs):
        raise WouldTrain

    monkeypatch.setattr(SceneEntry, "run", refuse)
    monkeypatch.setattr("dynamics.sweep.Sweep.run", refuse)


def error_of(capsys, name, args, code=2) -> str:
    """The one line on stderr of ``python -m scenes.<name> ARGS``, which exits ``code``."""
    with pytest.raises(SystemExit) as exc:
        main(name, args)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == code, err
    assert "\n" not in err and err.startswith(f"python -m scenes.{name}: error: "), err
    return err


def notes_of(capsys, name, args) -> list[str]:
    """The lines on stderr of a command that succeeds."""
    main(name, args)
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# -- paths --------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_in_a_folder_that_takes_no_file_names_the_given_path(tmp_path, capsys):
    from scenes.curves import CurvesScene

    rec = CurvesScene.example().save(tmp_path / "c.rec")
    err = error_of(capsys, "curves", [str(rec), "--out", "/proc/x.png", *DRAFT])
    assert "/proc/x.png" in err and ".tmp" not in err and "Errno" not in err, err
    assert not os.path.lexists("/proc/x.png")


def test_a_write_that_fails_names_the_target_not_the_temporary_file(tmp_path):
    from scenes.writers import PngWriter

    folder = tmp_path / "gone"
    folder.mkdir()
    writer = PngWriter(folder / "x.png")
    folder.rmdir()  # the folder went away after the checks
    with pytest.raises(OSError) as exc:
        writer.write(np.zeros((4, 6, 3), np.uint8))
    message = str(exc.value)
    assert str(folder / "x.png") in message and ".tmp" not in message and "\n" not in message


def test_sweep_dir_that_is_a_file_is_refused_before_any_run(tmp_path, capsys, no_training):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = tmp_path / "s.png"
    sweep = ["--sweep", "width=2,3", "--out", str(out), *DRAFT]
    for given in (blocker, blocker / "sub"):
        err = error_of(capsys, "relu_particles", [*sweep, "--sweep-dir", str(given)])
        assert f"--sweep-dir {given}" in err and f"{blocker} is a file" in err, err
        assert "Errno" not in err
    assert blocker.read_text() == "x" and not out.exists()


def test_save_recording_through_a_link_is_refused_before_training(tmp_path, capsys, no_training):
    from scenes.relu_particles import ReluParticlesScene

    target = ReluParticlesScene.example().save(tmp_path / "kept.rec")
    link = tmp_path / "link.rec"
    link.symlink_to(target.name)
    out = tmp_path / "p.png"
    args = ["--out", str(out), *DRAFT, "--save-recording", str(link), "--overwrite"]
    err = error_of(capsys, "relu_particles", args)
    assert f"--save-recording {link} is a symbolic link" in err, err
    assert "not a recording" not in err  # it points to one: the problem is the link
    assert link.is_symlink() and (target / "manifest.json").is_file() and not out.exists()
    # an existing recording without --overwrite: the flag's words, not the API's
    err = error_of(capsys, "relu_particles", [*args[:-3], "--save-recording", str(target)])
    assert f"--save-recording {target} already exists; add --overwrite" in err, err
    assert "overwrite=True" not in err


# -- series names -------------------------------------------------------------------------
def test_a_curve_that_is_not_a_series_is_refused_with_the_closest_names(tmp_path, capsys):
    from scenes.particles import ParticlesScene

    rec = ParticlesScene.example().save(tmp_path / "p.rec")
    out = tmp_path / "p.png"
    base = [str(rec), "--out", str(out), *DRAFT]
    err = error_of(capsys, "relu_particles", [*base, "--curve", "los"])
    assert "'los'" in err and "closest: 'loss'" in err, err
    err = error_of(capsys, "relu_particles", [*base, "--curve", "positions"])
    assert "'positions'" in err and "scalar" in err, err
    assert not out.exists()
    # the default (loss) is drawn where there is one, and left out where there is none
    assert main("relu_particles", [*base, "--curve", "loss"]) == out
    bare = Recording({"positions": ParticlesScene.example()["positions"]})
    assert main("particles", [str(bare.save(tmp_path / "bare.rec")), *base[1:]]) == out


# -- what a scene chose by itself ---------------------------------------------------------
def six_matrices(path: Path) -> Path:
    steps = np.arange(3, dtype=np.int64)
    rng = np.random.default_rng(0)
    series = {
        f"{i}.weight": Series(
            steps, rng.normal(size=(3, 4, 3)).astype(np.float32), kind="parameter"
        )
        for i in range(6)
    }
    series["loss"] = Series(steps, np.array([1.0, 0.5, 0.2]), kind="scalar")
    return Recording(series).save(path)


def five_summaries(path: Path) -> Path:
    """The distributions example (fc1 a pre-activation, act3, conv2.weight) with two more
    module outputs, fc2 and fc3."""
    from scenes.distributions import DistributionsScene

    example = DistributionsScene.example()
    series = dict(example.items())
    for source in ("fc2", "fc3"):
        for kind in ("stats", "histogram", "edges"):
            s = example[f"{kind}/fc1"]
            series[f"{kind}/{source}"] = Series(
                s.steps, s.values, kind=kind, source=source, of="activation"
            )
    return Recording(series, example.metadata).save(path)


def test_weights_and_render_say_what_they_chose(tmp_path, capsys):
    rec = str(six_matrices(tmp_path / "six.rec"))
    out = ["--out", str(tmp_path / "w.png"), *DRAFT]
    (note,) = notes_of(capsys, "weights", [rec, *out])
    assert note.startswith("python -m scenes.weights: drew 0.weight, 1.weight, 2.weight, 3.weight")
    assert "2 more not drawn: 4.weight, 5.weight" in note and "--show NAME,..." in note
    assert notes_of(capsys, "weights", [rec, *out, "--show", "4.weight,5.weight"]) == []
    (note,) = notes_of(capsys, "render", [rec, *out])
    assert note.startswith("python -m scenes.render: drew ") and "more not drawn" in note
    assert "--show NAME,..." in note


def test_distributions_says_what_it_chose_and_takes_its_titles(tmp_path, capsys):
    rec = str(five_summaries(tmp_path / "d.rec"))
    out = ["--out", str(tmp_path / "d.png"), "--no-figures", *DRAFT]
    (note,) = notes_of(capsys, "distributions", [rec, *out])
    assert "drew pre-activation fc1, activation fc3, conv2.weight" in note, note
    assert "2 more not drawn" in note and "--tensors NAME,..." in note, note
    # the titles' names (a role), labels and series names are taken, and nothing is noted
    chosen = "pre-activation fc1,activation fc2,histogram/fc3"
    assert notes_of(capsys, "distributions", [rec, *out, "--tensors", chosen]) == []
    err = error_of(capsys, "distributions", [rec, *out, "--tensors", "preactivation fc1"])
    assert "'preactivation fc1'" in err and "closest: 'pre-activation fc1'" in err, err
