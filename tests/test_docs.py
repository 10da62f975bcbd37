"""The documentation: every code block of the README and the docs pages is tested, the
gallery has an example for every registered scene, and the built site (``python -m sphinx
-W --keep-going -b html docs docs/_build/html``) works in a real browser: its index, a
gallery page whose movie plays, the API page of ``Recorder``, no broken internal link.

The site tests need the built site; they skip without it, but fail under ``.ci/run``
(``NNDYNAMICS_REQUIRE_BROWSER=1``), which builds it first."""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from snippets import ROOT, blocks

SITE = ROOT / "docs" / "_build" / "html"
EXAMPLES = ROOT / "examples"
TESTS = ROOT / "tests"
REQUIRE_BROWSER = os.environ.get("NNDYNAMICS_REQUIRE_BROWSER") == "1"


# -- every block is tested ---------------------------------------------------------------


def test_every_python_block_is_marked_and_every_snippet_has_its_test():
    found = blocks("python")
    assert len(found) >= 10  # the README's and the guide's blocks were found at all
    unmarked = [str(b) for b in found if b.kind is None]
    assert not unmarked, f"python blocks with no snippet/runnable/not-run marker: {unmarked}"
    tests = "\n".join(
        p.read_text(encoding="utf-8")
        for p in TESTS.glob("test_*.py")
        if p.name != Path(__file__).name
    )
    untested = [
        f"{b} ({b.name})"
        for b in found
        if b.kind == "snippet"
        and not re.search(rf"""snippet\(\s*["']{re.escape(b.name)}["']""", tests)
    ]
    assert not untested, f"snippets no test reads: {untested}"
    reasons = [str(b) for b in found if b.kind == "not-run" and not (b.name or "").strip()]
    assert not reasons, f"not-run blocks must say why: {reasons}"


RUNNABLE = [b for b in blocks("python") if b.kind == "runnable"]


@pytest.mark.parametrize("block", RUNNABLE, ids=[str(b) for b in RUNNABLE])
def test_runnable_blocks_run(block, tmp_path, monkeypatch):
    """A runnable block runs after the runnable blocks before it on its page, as a reader
    would type them, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "__docs__"}
    for earlier in [b for b in RUNNABLE if b.page == block.page and b.line < block.line]:
        exec(compile(earlier.code, str(earlier), "exec"), scope)
    exec(compile(block.code, str(block), "exec"), scope)


# -- the gallery -------------------------------------------------------------------------


def gallery_sources() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("plot_*.py"))}


def test_the_gallery_has_an_example_for_every_registered_scene():
    from scenes.registry import REGISTRY, discover

    discover()
    sources = gallery_sources()
    missing = []
    for name, entry in sorted(REGISTRY.items()):
        cls = entry.scene
        wanted = re.compile(rf"from {re.escape(cls.__module__)} import [^\n]*\b{cls.__name__}\b")
        used = re.compile(rf"\b{cls.__name__}\(")
        if not any(wanted.search(s) and used.search(s) for s in sources.values()):
            missing.append(f"{name} ({cls.__module__}.{cls.__name__})")
    assert not missing, (
        f"no examples/plot_*.py makes these registered scenes: {missing}; add a short gallery "
        "example for each (see examples/README.rst)"
    )


def test_every_gallery_example_has_a_title_and_shows_a_movie():
    for name, source in gallery_sources().items():
        m = re.match(r'"""\n(.+)\n(=+)\n', source)
        assert m and len(m.group(2)) >= len(m.group(1)), f"{name}: no title in its docstring"
        assert re.search(r"^scene\.show\(", source, re.M), f"{name}: shows no movie"


# -- the built site ----------------------------------------------------------------------


def built_site() -> Path:
    if not (SITE / "index.html").is_file():
        why = (
            "the docs are not built (python -m sphinx -W --keep-going -b html docs "
            "docs/_build/html)"
        )
        if REQUIRE_BROWSER:
            pytest.fail(f"NNDYNAMICS_REQUIRE_BROWSER=1, but {why}")
        pytest.skip(why)
    return SITE


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key) and tag in ("a", "img", "link", "script", "source", "video"):
                self.links.append(a[key])


@functools.cache
def parsed(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


@pytest.mark.slow
def test_no_broken_internal_link_in_the_built_site():
    site = built_site()
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 30
    broken = []
    checked = 0
    for page in pages:
        for link in parsed(page).links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue
            target_path, fragment = parts.path, parts.fragment  # "?v=..." is a cache key
            target = (page.parent / unquote(target_path)).resolve() if target_path else page
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
            elif (
                fragment
                and target.suffix == ".html"
                and unquote(fragment) not in parsed(target).ids
            ):
                broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert checked > 1000
    assert not broken, f"{len(broken)} broken internal links: {broken[:20]}"


@pytest.fixture(scope="module")
def served():
    """The built site over HTTP on 127.0.0.1, as a reader's browser gets it."""
    site = built_site()
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def open_page(chromium, url):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    failed: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors, failed


@pytest.mark.slow
def test_the_index_shows_its_picture_and_leads_everywhere(served, chromium):
    page, errors, failed = open_page(chromium, f"{served}/index.html")
    try:
        assert "nndynamics" in page.title()
        img = page.locator("article img").first
        assert img.evaluate("i => i.complete && i.naturalWidth > 0")  # the still loaded
        text = page.locator("article").inner_text()
        for part in ("Getting started", "Gallery", "User guide", "API reference"):
            assert part in text
        nav = page.locator(".sidebar-tree").inner_text()
        assert "Gallery" in nav and "API reference" in nav
        assert errors == [] and failed == []
    finally:
        page.close()


def gallery_pages() -> list[str]:
    return sorted(p.name for p in (SITE / "auto_examples").glob("plot_*.html"))


@pytest.mark.slow
def test_every_gallery_page_has_a_thumbnail_and_a_movie_that_plays(served, chromium):
    names = gallery_pages()
    assert len(names) >= len(gallery_sources()), "a gallery example has no page"
    page, errors, failed = open_page(chromium, f"{served}/auto_examples/index.html")
    try:
        thumbs = page.locator(".sphx-glr-thumbcontainer img")
        assert thumbs.count() == len(names)
        sizes = thumbs.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
        assert all(sizes), sizes
        assert errors == [] and failed == []
    finally:
        page.close()
    for name in names:
        page, errors, failed = open_page(chromium, f"{served}/auto_examples/{name}")
        try:
            assert page.locator("div.highlight-Python").count() >= 1, name  # the code
            player = page.locator(".nnd-player").first
            assert player.count() == 1, f"{name}: no player"
            player.scroll_into_view_if_needed()
            page.wait_for_function(
                "document.querySelector('.nnd-player video').readyState >= 2", timeout=20_000
            )
            before = page.locator(".nnd-player video").first.screenshot()
            player.locator("[data-act=play]").click()
            page.wait_for_function(
                "document.querySelector('.nnd-player').dataset.frame >= 5", timeout=20_000
            )
            player.locator("[data-act=play]").click()  # pause
            after = page.locator(".nnd-player video").first.screenshot()
            assert before != after, f"{name}: the picture did not change"
            assert errors == [] and failed == [], (name, errors, failed)
        finally:
            page.close()


@pytest.mark.slow
def test_the_api_page_of_recorder_documents_it(served, chromium):
    page, errors, failed = open_page(chromium, f"{served}/generated/dynamics.Recorder.html")
    try:
        sig = page.locator("dl.py.class > dt").first.inner_text()
        assert "dynamics.Recorder" in sig.replace("\n", "") or "Recorder(" in sig
        body = page.locator("article").text_content()  # as written (CSS may change case)
        for part in ("Parameters", "schedule", "close", "state_dict"):
            assert part in body, part
        assert errors == [] and failed == []
    finally:
        page.close()
