"""Command line: --help everywhere, one-line errors for bad input, train/save/re-render round
trip."""

import subprocess
import sys

import imageio.v3 as iio
import pytest

from scenes.cli import main

TINY = [
    "--frames",
    "4",
    "--samples-per-frame",
    "100",
    "--eval-samples",
    "100",
    "--quality",
    "draft",
    "--quiet",
]


SCENE_HELP = {
    "relu_particles": ["--width", "(default: 20)", "mean-field", "--trail"],
    "mass_shuffle": [
        "--view",
        "--optimizer",
        "--variant",
        "--curvature",
        "--cmap",
        "(default: 30000)",
    ],
    "distributions": [
        "--single",
        "--tensors",
        "--activation",
        "--init",
        "--optimizer",
        "(default: 600)",
    ],
    "classifiers": [
        "--dataset",
        "--model",
        "--hidden",
        "--optimizer",
        "--grad-check",
        "(default: 1000)",
    ],
    "spiral": [
        "--activation",
        "--hidden",
        "--field-every",
        "--grid",
        "--no-markers",
        "--cmap",
        "(default: 3000)",
    ],
}


@pytest.mark.parametrize("name", sorted(SCENE_HELP))
def test_help_lists_every_flag_with_its_default(name):
    out = subprocess.run(
        [sys.executable, "-m", f"scenes.{name}", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--out",
        "--recording",
        "--save-recording",
        "--fps",
        "--dpi",
        "--size",
        "--quality",
        "--seed",
        "--no-figures",
        *SCENE_HELP[name],
    ):
        assert flag in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--width", "-3"], "width must be a positive integer, got -3"),
        (["--frames", "0"], "frames must be a positive integer, got 0"),
        (["--out", "movie.avi"], "unknown output extension '.avi'"),
        (["--size", "641x360"], "frame size must be even"),
        (["--fps", "0"], "fps must be positive"),
    ],
)
def test_bad_values_give_one_line_and_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main("relu_particles", args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--view", "side"], "view must be one of all, heatmap, curves, averaged, got 'side'"),
        (["--cmap", "hott"], "unknown colormap 'hott'"),
        (["--optimizer", "rmsprop"], "optimizer must be one of adam, gd"),
    ],
)
def test_mass_shuffle_bad_values_give_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main("mass_shuffle", args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.slow
def test_mass_shuffle_writes_the_movie_and_the_scatter(tmp_path):
    out = tmp_path / "m.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scenes.mass_shuffle",
            "--steps",
            "200",
            "--record-every",
            "40",
            "--view",
            "heatmap",
            "--quality",
            "draft",
            "--quiet",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.split() == [str(out), str(tmp_path / "m_scatter.png")]
    assert iio.imread(out, index=None).shape == (6, 360, 640, 3)  # steps 0, 40, ..., 200
    assert iio.imread(tmp_path / "m_scatter.png").shape == (360, 640, 3)


def test_unwritable_output_folder_and_bad_recording(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for args, message in (
        (["--out", str(blocker / "sub" / "a.mp4")], "cannot create output folder"),
        (["--recording", str(blocker)], "not a recording"),
    ):
        with pytest.raises(SystemExit) as exc:
            main("relu_particles", args)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err


def test_unknown_option_is_an_error():
    proc = subprocess.run(
        [sys.executable, "-m", "scenes.relu_particles", "--widht", "3"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "unrecognized arguments: --widht" in proc.stderr


def test_train_save_and_rerender_from_the_recording(tmp_path):
    out = tmp_path / "a.mp4"
    rec = tmp_path / "run.rec"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scenes.relu_particles",
            *TINY,
            "--out",
            str(out),
            "--save-recording",
            str(rec),
            "--still",
            str(tmp_path / "last.png"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.split() == [str(out), str(tmp_path / "last.png")]
    assert len(iio.imread(out, index=None)) == 5
    gif = tmp_path / "b.gif"
    assert (
        main(
            "relu_particles",
            ["--recording", str(rec), "--out", str(gif), "--quality", "draft", "--quiet"],
        )
        == gif
    )
    frames = iio.imread(gif, index=None)
    assert frames.shape == (5, 360, 640, 3)


@pytest.mark.slow
def test_ctrl_c_at_any_moment_gives_one_line_and_exit_130(tmp_path):
    """SIGINT sent to `python -m scenes.relu_particles` from the imports (0.15 s: the scenes
    package is importing) through training and rendering: one line, exit 130, no file."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "x.mp4"
    # 1500 frames: a run of about 30 s, so every delay below falls inside it
    command = [sys.executable, "-m", "scenes.relu_particles", "--quiet", "--out", str(out)]
    command += ["--frames", "1500", "--no-figures"]
    seen = []
    for delay in (0.15, 0.3, 0.6, 1.0, 1.5, 2.2, 3.0, 4.5, 6.5):
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        lines = [line for line in stderr.splitlines() if line.strip()]
        seen.append((delay, proc.returncode, lines))
        assert proc.returncode == 130, seen[-1]
        assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr, seen
        assert not out.exists() and not list(tmp_path.glob(".x*")), seen[-1]


#: Ctrl-C at the moments after the movie is complete, each sent by the process to itself
#: from a sitecustomize module (imported at start-up), which first leaves a mark.
CTRL_C_AFTER_THE_MOVIE = {
    # the writer has just renamed the finished PNG onto the target
    "moved into place": """
        import os, signal
        _replace = os.replace
        def replace(src, dst, *args, **kwargs):
            _replace(src, dst, *args, **kwargs)
            if os.fspath(dst) == os.environ["CTRL_C_TARGET"]:
                open(os.environ["CTRL_C_MARK"], "w").close()
                os.kill(os.getpid(), signal.SIGINT)
        os.replace = replace
    """,
    # the command has returned: Python runs its exit functions
    "at exit": """
        import atexit, os, signal, time
        def ctrl_c():
            open(os.environ["CTRL_C_MARK"], "w").close()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        atexit.register(ctrl_c)
    """,
    # Python tears its modules down (SIGINT had its default action there: status -2, silent)
    "teardown": """
        import os, signal
        class CtrlC:  # what __del__ needs, kept here: modules are being emptied
            kill, pid, sigint = os.kill, os.getpid(), signal.SIGINT
            open, close, flags = os.open, os.close, os.O_CREAT | os.O_WRONLY
            mark = os.environ["CTRL_C_MARK"]
            def __del__(self):
                self.close(self.open(self.mark, self.flags))
                self.kill(self.pid, self.sigint)
        ctrl_c = CtrlC()
    """,
}


@pytest.mark.parametrize("moment", sorted(CTRL_C_AFTER_THE_MOVIE))
def test_ctrl_c_after_the_movie_is_written_gives_one_line_and_exit_130(tmp_path, moment):
    """A Ctrl-C once the output is in place (after the rename, at exit, in the interpreter's
    teardown): one line and 130 (it was status -2 and not a word), the PNG complete; where
    the process reaches no such moment (it skips the teardown), it ends with 0."""
    import os
    import textwrap

    from scenes.curves import CurvesScene

    rec = CurvesScene.example().save(tmp_path / "c.rec")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(CTRL_C_AFTER_THE_MOVIE[moment]))
    out, mark = tmp_path / "x.png", tmp_path / "ctrl_c_sent"
    env = {**os.environ, "CTRL_C_TARGET": str(out), "CTRL_C_MARK": str(mark)}
    env["PYTHONPATH"] = os.pathsep.join([str(hook), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "scenes.curves", str(rec), "--out", str(out)]
    proc = subprocess.run(
        command + ["--quality", "draft", "--quiet"], capture_output=True, text=True, env=env
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    sent = mark.exists()
    assert sent or moment == "teardown", proc.stderr  # the hook ran
    assert proc.returncode == (130 if sent else 0), (proc.returncode, proc.stderr)
    if sent:
        assert len(lines) == 1 and "interrupted" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert iio.imread(out).shape == (360, 640, 3)  # complete, at the target
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary
