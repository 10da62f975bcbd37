"""The interactive player and notebooks: the HTML page driven in headless Chromium (Debian's
``chromium`` through Playwright), the inline preset, quiet progress bars, and the README's
notebook example executed with nbclient."""

import os
import re
import shutil
import sys
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pytest

from dynamics.progress import bar_kind, progress_bar
from scenes.base import RenderOptions
from scenes.particles import ParticlesScene

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


def test_the_player_page_plays_steps_and_jumps_in_a_real_browser(tmp_path, chromium):
    page_path = player_page(tmp_path)
    text = page_path.read_text()
    assert "<video" in text and "data:video/mp4;base64," in text
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # self-contained: no fetches
    page = chromium.new_page(viewport={"width": 900, "height": 700})
    try:
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
        page.close()


# -- the lecture hall: the player fits the screen, keys, full screen, no scripts --------------

FPS, FRAMES = 30, 90
CHAPTER_STARTS = [0, 30, 60]
# 100 % zoom, then 150 %: a browser zoomed to 150 % lays the page out in a viewport of the
# screen's size / 1.5 CSS pixels and draws it at 1.5 device pixels each
SCREENS = [(640, 360, 1), (1280, 720, 1), (1366, 768, 1), (1366, 650, 1), (1920, 1080, 1),
           (3840, 2160, 1), (427, 240, 1.5), (853, 480, 1.5), (911, 433, 1.5),
           (2560, 1440, 1.5)]  # fmt: skip
# the boxes of every control the player shows (no scripts: the video's own controls only)
BOXES = """() => [...document.querySelectorAll(
    ".nnd-player video, .nnd-player button, .nnd-player input, .nnd-player .nnd-readout")]
  .filter(e => e.getClientRects().length)
  .map(e => { const r = e.getBoundingClientRect();
    return [e.dataset.act || e.className || e.tagName, r.left, r.top, r.right, r.bottom]; })"""


@pytest.fixture(scope="module")
def lecture_page(tmp_path_factory) -> Path:
    """A 1280x720 movie (the final preset's size) of 90 frames at 30 fps, a bar sweeping
    across white, steps up to 1,234,567 and chapters at frames 0, 30 and 60: a lecture page."""
    from scenes.writers import open_writer

    path = tmp_path_factory.mktemp("lecture") / "lecture.html"
    steps = [round(1_234_567 * (i / (FRAMES - 1)) ** 2) for i in range(FRAMES)]
    titles = ["Start", "Halfway", "Nearly there"]
    with open_writer(path, FPS) as writer:
        writer.annotate(chapters=list(zip(CHAPTER_STARTS, titles)), steps=steps)
        for i in range(FRAMES):
            frame = np.full((720, 1280, 3), 255, np.uint8)
            frame[:, i * 14 : i * 14 + 14] = (40, 90, 200)
            writer.write(frame)
    return path


def open_player(chromium, path, width, height, scale=1, **options):
    """A new page of that viewport with the player loaded and laid out."""
    context = chromium.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=scale, **options
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(Path(path).as_uri())
    if options.get("java_script_enabled", True):
        page.wait_for_function("document.querySelector('video').readyState >= 2")
        settle(page)
    return page


def settle(page):
    """A few animation frames: the player measures its controls after a layout."""
    page.evaluate("new Promise(r => { let n = 4; (function f() { --n ? "
                  "requestAnimationFrame(f) : r(); })(); })")  # fmt: skip


def outside(page, boxes):
    """The boxes not wholly inside the viewport (half a pixel of rounding allowed)."""
    w, h = page.evaluate("[innerWidth, innerHeight]")
    return [b for b in boxes if b[1] < -0.5 or b[2] < -0.5 or b[3] > w + 0.5 or b[4] > h + 0.5]


def test_every_control_is_on_screen_from_a_small_window_to_4k_at_100_and_150_percent(
    lecture_page, chromium
):
    grown = {}
    for width, height, scale in SCREENS:
        page = open_player(chromium, lecture_page, width, height, scale)
        try:
            boxes = page.evaluate(BOXES)
            names = [b[0] for b in boxes]
            # the movie, play, steps, slider, readout, full screen and three chapters
            assert len(names) == 10 and "nnd-readout" in names, names
            assert {"play", "prev", "next", "full", "INPUT"} <= set(names), names
            assert outside(page, boxes) == [], (width, height, scale, outside(page, boxes))
            # nothing to scroll: the page is the screen
            assert page.evaluate(
                "document.documentElement.scrollHeight <= innerHeight && "
                "document.documentElement.scrollWidth <= innerWidth"
            ), (width, height, scale)
            grown[width, height, scale] = page.evaluate(
                "document.querySelector('video').getBoundingClientRect().width / "
                "document.querySelector('video').videoWidth"
            )
        finally:
            page.context.close()
    # on large screens the movie grows beyond its 1280 pixels
    assert grown[1920, 1080, 1] > 1.3 and grown[3840, 2160, 1] > 2.6, grown
    assert grown[2560, 1440, 1.5] > 1.3, grown  # a 1440p screen at 150 %: 1707x960 CSS


def test_full_screen_shows_the_player_with_its_controls(lecture_page, chromium):
    page = open_player(chromium, lecture_page, 1366, 650)
    try:
        root = page.locator(".nnd-player")
        page.click("[data-act=full]")
        page.wait_for_function(
            "document.fullscreenElement === document.querySelector('.nnd-player')"
        )
        settle(page)
        assert "nnd-on" in page.get_attribute("[data-act=full]", "class")  # "exit full screen"
        boxes = page.evaluate(BOXES)
        assert len(boxes) == 10 and outside(page, boxes) == [], boxes
        page.keyboard.press("f")  # F leaves full screen again
        page.wait_for_function("document.fullscreenElement === null")
        page.keyboard.press("f")  # and enters it
        page.wait_for_function("document.fullscreenElement !== null")
        page.evaluate("document.exitFullscreen()")
        page.wait_for_function("document.fullscreenElement === null")
        assert root.get_attribute("data-frame") == "0"
    finally:
        page.context.close()


def test_keys_a_keyboard_and_a_presenter_remote_send(lecture_page, chromium):
    page = open_player(chromium, lecture_page, 1280, 720)
    try:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        state = "[document.querySelector('video').paused, "
        state += "+document.querySelector('.nnd-player').dataset.frame, "
        state += "document.querySelector('video').currentTime]"
        frame = lambda: page.evaluate(state)[1]
        slider_width = lambda: page.locator("input[type=range]").bounding_box()["width"]
        # nothing clicked: the page listens. Space plays and pauses
        assert page.evaluate(state)[:2] == [True, 0]
        widths = {"first frame": slider_width()}
        page.keyboard.press("Space")
        page.wait_for_function("!document.querySelector('video').paused")
        widths["playing"] = slider_width()
        page.keyboard.press("Space")
        page.wait_for_function("document.querySelector('video').paused")
        # Home, then one frame forward and back: exactly 1 / fps seconds each
        page.keyboard.press("Home")
        page.wait_for_function("document.querySelector('.nnd-player').dataset.frame == 0")
        t0 = page.evaluate(state)[2]
        page.keyboard.press("ArrowRight")
        paused, i, t1 = page.evaluate(state)
        assert paused and i == 1 and t1 - t0 == pytest.approx(1 / FPS, abs=1e-6)
        page.keyboard.press("ArrowLeft")
        assert frame() == 0
        # PageDown / PageUp (what a presenter remote sends): next / previous chapter
        seen = []
        for _ in range(3):
            page.keyboard.press("PageDown")
            seen.append(frame())
        assert seen == [30, 60, FRAMES - 1]  # past the last chapter: the end
        page.keyboard.press("PageUp")
        assert frame() == 60
        page.keyboard.press("ArrowRight")
        page.keyboard.press("PageUp")  # inside a chapter: back to its start
        assert frame() == 60
        page.keyboard.press("PageUp")
        assert frame() == 30
        # the slider has the focus after a drag: the player's keys still rule
        page.locator("input[type=range]").focus()
        page.keyboard.press("PageDown")
        assert frame() == 60
        # B (a remote's blank-screen key) plays and pauses: PageDown stops at a chapter
        page.keyboard.press("b")
        page.wait_for_function("!document.querySelector('video').paused")
        page.keyboard.press("b")
        page.wait_for_function("document.querySelector('video').paused")
        # End: the last frame; the slider keeps its width whatever the readout says
        page.keyboard.press("End")
        assert frame() == FRAMES - 1
        assert page.locator(".nnd-readout").inner_text().split() == [
            "frame", "90/90", "step", "1,234,567"
        ]  # fmt: skip
        widths["last frame"] = slider_width()
        assert len(set(widths.values())) == 1, widths
        assert errors == []
    finally:
        page.context.close()


def test_in_a_notebook_the_keys_wait_until_the_player_has_the_focus(lecture_page, chromium):
    page = open_player(chromium, lecture_page, 1280, 720)
    try:
        page.evaluate("document.body.classList.remove('nnd-page')")  # a notebook's page
        page.keyboard.press("End")
        assert page.get_attribute(".nnd-player", "data-frame") == "0"
        page.click("video")  # a click in the player gives it the focus
        page.keyboard.press("End")
        assert page.get_attribute(".nnd-player", "data-frame") == str(FRAMES - 1)
        # after a click on a button, Space plays: it does not press that button again
        page.click("[data-act=prev]")
        page.keyboard.press("Space")
        page.wait_for_function("!document.querySelector('video').paused")
    finally:
        page.context.close()


def test_with_scripts_stripped_the_video_keeps_its_own_controls(lecture_page, chromium):
    page = open_player(chromium, lecture_page, 1366, 650, java_script_enabled=False)
    try:
        assert page.locator("video").get_attribute("controls") is not None
        assert page.evaluate(BOXES)[0][0] == "VIDEO" and len(page.evaluate(BOXES)) == 1
        assert outside(page, page.evaluate(BOXES)) == []  # no dead buttons, the movie fits
    finally:
        page.context.close()
    page = open_player(chromium, lecture_page, 1366, 650)
    try:  # the script takes the native controls away
        assert page.locator("video").get_attribute("controls") is None
    finally:
        page.context.close()


def test_a_notebook_shows_the_player_at_the_notebook_size_fitting_the_cell():
    scene = ParticlesScene(
        ParticlesScene.example(), options=RenderOptions(progress=False, workers=1)
    )
    html = scene._repr_html_()
    assert 'class="nnd-player"' in html and "max-width:1920px" in html  # notebook preset
    assert 'width="1920" height="1080"' in html
    mp4 = scene.to_html("mp4", quality="final")
    assert mp4.startswith("<video") and "max-width:1280px" in mp4 and "width:100%" in mp4
    with pytest.raises(ValueError, match="fmt must be player, mp4 or gif"):
        scene.to_html("webm")
    # a GIF or video says what it shows where the picture is not seen (alt text)
    gif = scene.to_html("gif", quality="draft")
    steps = scene.frame_steps_
    said = f"an animation of {len(steps)} frames, training steps 0 to {int(steps[-1]):,d}"
    assert re.search(rf'<img [^>]*alt="{re.escape(html_escape(scene.heading()))}[^"]*{said}"', gif)
    assert f'aria-label="{html_escape(scene.heading())}' in mp4
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
    from snippets import snippet

    code = snippet("notebook")
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
