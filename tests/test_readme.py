"""The README's and the docs' snippets are true: each named block runs as written (wherever it
lives: tests/snippets.py finds it), and the README's quick start is what .ci/run runs."""

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from snippets import after_snippet, snippet

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_record_your_own_snippet_runs_and_renders(tmp_path, monkeypatch):
    code = snippet("record-your-own")
    assert len(code.strip().splitlines()) < 15
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    from dynamics import load

    rec = load(tmp_path / "outputs/mine.rec")
    assert rec.complete and rec["positions"].values.shape == (61, 20, 2)
    assert rec["loss"].values[-1] < rec["loss"].values[0]
    frames = iio.imread(tmp_path / "outputs/mine.mp4", index=None)
    assert frames.shape == (61, 720, 1280, 3)


@pytest.mark.slow
def test_any_recording_renders_with_the_command_line(tmp_path, monkeypatch):
    import subprocess
    import sys

    code = snippet("render-any")
    command = after_snippet("render-any").strip()
    assert (
        len(code.strip().splitlines()) + 1 < 15
        and command == "python -m scenes.render outputs/mlp.rec"
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = subprocess.run(
        command.replace("python", sys.executable, 1).split(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["outputs/render.mp4"]
    frames = iio.imread(tmp_path / "outputs/render.mp4", index=None)
    assert frames.shape == (81, 720, 1280, 3)  # steps 0..80: the loss every step
    assert np.abs(frames[-1].astype(int) - frames[1]).max() > 100  # the picture changed


def test_quick_start_matches_ci():
    ci = (README.parent / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    lines = [b.strip() for b in blocks[:2]]
    assert all(line in ci for line in lines), lines


def test_lecture_snippet_runs(capsys):
    exec(compile(snippet("lecture"), "README.md", "exec"), {})
    frames, mid, last = map(int, capsys.readouterr().out.split())
    assert frames == 360 and last == 110 and 0 < mid < 110 / 2  # log time: halfway is early
