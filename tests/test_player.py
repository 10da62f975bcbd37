"""The interactive player and notebooks: the HTML page driven in headless Chromium (Debian's
``chromium`` through Playwright), the inline preset, quiet progress bars, and the README's
notebook example executed with nbclient."""

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from dynamics.progress import bar_kind, progress_bar
from scenes.base import RenderOptions
from scenes.particles import ParticlesScene

README = Path(__file__).resolve().parents[1] / "README.md"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# .ci/run installs Chromium and sets this: there the browser test must run, not skip
REQUIRE_BROWSER = os.environ.get("NNDYNAMICS_REQUIRE_BROWSER") == "1"


def browser():
    """Playwright's sync API, with Debian's Chromium; skips without them (fails under .ci/run)."""
    missing = None if CHROMIUM else "needs Debian's chromium (apt-get install chromium)"
    try:
        from playwright import sync_api
    except ImportError:
        missing = missing or "needs playwright (pip install playwright)"
    if missing:
        if REQUIRE_BROWSER:
            pytest.fail(f"NNDYNAMICS_REQUIRE_BROWSER=1, but the browser test {missing}")
        pytest.skip(missing)
    return sync_api


def player_page(tmp_path) -> Path:
    """30 snapshots of the example particles and two chapters held for 15 frames each (60
    frames), as a player page."""
    from scenes.cli import main

    rec = ParticlesScene.example(frames=30).save(tmp_path / "p.rec")
    out = tmp_path / "player.html"
    main(
        "particles",
        [str(rec), "--out", str(out), "--quality", "draft", "--quiet", "--workers", "1",
         "--chapter", "100:Halfway", "--chapter", "250:Nearly there", "--chapter-hold", "0.5"],
    )  # fmt: skip
    return out


def test_the_player_page_plays_steps_and_jumps_in_a_real_browser(tmp_path):
    api = browser()
    page_path = player_page(tmp_path)
    text = page_path.read_text()
    assert "<video" in text and "data:video/mp4;base64," in text
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # self-contained: no fetches
    with api.sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chrome.new_page(viewport={"width": 900, "height": 700})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_function("document.querySelector('video').readyState >= 2")
            root, slider = page.locator(".nnd-player"), page.locator("input[type=range]")
            readout = page.locator(".nnd-readout")
            assert root.get_attribute("data-frame") == "0"
            assert readout.inner_text().split() == ["frame", "1/60", "step", "0"]
            before = page.locator("video").screenshot()
            page.click("[data-act=play]")
            page.wait_for_function(
                "document.querySelector('.nnd-player').dataset.frame >= 10", timeout=10_000
            )
            page.click("[data-act=play]")  # pause
            page.wait_for_function("document.querySelector('video').paused")
            after = page.locator("video").screenshot()
            moved = int(slider.input_value())
            assert moved >= 10 and root.get_attribute("data-frame") == str(moved)
            assert before != after  # the picture changed, not only the slider
            # one frame forward and back, exactly
            page.click("[data-act=next]")
            page.wait_for_function(
                f"document.querySelector('.nnd-player').dataset.frame == {moved + 1}"
            )
            page.click("[data-act=prev]")
            page.click("[data-act=prev]")
            page.wait_for_function(
                f"document.querySelector('.nnd-player').dataset.frame == {moved - 1}"
            )
            # chapter buttons: "Start" (the movie begins before the first chapter), then ours
            buttons = page.locator(".nnd-chapters button")
            assert buttons.all_inner_texts() == ["Start", "Halfway", "Nearly there"]
            buttons.nth(2).click()
            page.wait_for_timeout(200)
            frame = int(root.get_attribute("data-frame"))
            # 30 snapshots at steps 0, 10, ...: 250 is snapshot 25, after the first hold of 15
            assert frame == 25 + 15
            assert readout.inner_text().split()[-1] == "250"
            assert "nnd-here" in (buttons.nth(2).get_attribute("class") or "")
            # the slider seeks: the last frame shows the last step
            slider.fill("59")
            page.wait_for_timeout(200)
            assert readout.inner_text().split() == ["frame", "60/60", "step", "290"]
            assert errors == []
        finally:
            chrome.close()


def test_a_notebook_shows_the_player_at_the_draft_size_fitting_the_cell():
    scene = ParticlesScene(
        ParticlesScene.example(), options=RenderOptions(progress=False, workers=1)
    )
    html = scene._repr_html_()
    assert 'class="nnd-player"' in html and "max-width:640px" in html  # draft preset
    assert 'width="640" height="360"' in html
    mp4 = scene.to_html("mp4", quality="final")
    assert mp4.startswith("<video") and "max-width:1280px" in mp4 and "width:100%" in mp4
    with pytest.raises(ValueError, match="fmt must be player, mp4 or gif"):
        scene.to_html("webm")
    # two players in one notebook do not share element ids
    ids = {re.search(r'id="(nnd-[0-9a-f]+)"', scene._repr_html_()).group(1) for _ in range(2)}
    assert len(ids) == 2


def test_progress_bars_are_drawn_only_where_they_do_not_flood(monkeypatch, capsys):
    monkeypatch.delenv("NNDYNAMICS_PROGRESS", raising=False)
    assert bar_kind() == "none"  # pytest captures stderr: not a terminal
    for _ in progress_bar(range(50), desc="quiet"):
        pass
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("NNDYNAMICS_PROGRESS", "1")
    for _ in progress_bar(range(50), desc="forced"):
        pass
    assert "forced" in capsys.readouterr().err
    monkeypatch.setenv("NNDYNAMICS_PROGRESS", "0")
    assert bar_kind() == "none"


def test_the_command_line_in_a_terminal_still_shows_its_bars(tmp_path, monkeypatch):
    """Under a pseudo-terminal of 120 columns (as in a user's shell) the render bar is drawn."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    rec = ParticlesScene.example().save(tmp_path / "p.rec")
    out = tmp_path / "p.mp4"
    monkeypatch.delenv("NNDYNAMICS_PROGRESS", raising=False)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    command = [sys.executable, "-m", "scenes.particles", str(rec), "--out", str(out)]
    command += ["--quality", "draft", "--workers", "1"]
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path)
    os.close(slave)
    output = bytearray()
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output.extend(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0, output.decode(errors="replace")[-2000:]
    assert b"rendering p.mp4" in output and b"12/12" in output


def test_the_readme_notebook_runs_with_nbclient_and_stays_small(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    text = README.read_text(encoding="utf-8")
    code = re.search(r"<!-- snippet: notebook.*?-->\s*```python\n(.*?)```", text, re.S).group(1)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    path = tmp_path / "readme.ipynb"
    nbformat.write(nb, path)
    size = path.stat().st_size
    assert size < 2_000_000, size
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "stream"], outputs  # no bars, no warnings
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) == 1 and 'class="nnd-player"' in html[0]["data"]["text/html"]
    markup = html[0]["data"]["text/html"]
    steps = re.search(r'"steps": \[([^\]]*)\]', markup).group(1).split(",")
    chapters = markup.count('<button type="button" title="frame') - 1  # and "Start"
    assert chapters >= 1  # the experiment's own: the error falls 1000x by step 720
    assert len(steps) == 201 + chapters * 60  # 201 snapshots, a 2-second hold per chapter
