"""The code blocks of the README and the documentation pages, found by their markers.

Every ``python`` block in ``README.md`` and ``docs/**/*.md`` carries a marker on the line
before it (``tests/test_docs.py`` checks that each one does):

* ``<!-- snippet: NAME (which test runs it) -->``: a named block that a test reads with
  :func:`snippet` and runs, checking what it makes;
* ``<!-- runnable -->``: ``tests/test_docs.py`` runs it, after the page's runnable blocks
  before it, in a temporary folder;
* ``<!-- not-run: why -->``: a fragment that cannot run on its own (the names it uses are
  the reader's), with where the same code runs in full.

A snippet may appear on several pages (the README's own-loop block is also in Getting
started): every copy must be the same code, so testing one tests them all.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)\n(?P<code>.*?)^(?P=indent)```", re.M | re.S
)
MARKER = re.compile(
    r"<!--\s*(?P<kind>snippet|runnable|not-run)(?::?\s*(?P<rest>.*?))?\s*-->\s*$", re.S
)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str  # dedented
    kind: str | None  # snippet, runnable, not-run; None: no marker
    name: str | None  # a snippet's name; for not-run, the reason

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """README.md and the documentation's own Markdown pages (not the build's output)."""
    docs = ROOT / "docs"
    found = [
        p
        for p in sorted(docs.rglob("*.md"))
        if not {"_build", "auto_examples", "generated"} & set(p.relative_to(docs).parts)
    ]
    return [ROOT / "README.md", *found]


def blocks(lang: str | None = "python") -> list[Block]:
    """Every fenced block of ``lang`` (None: of any language) on every page, in order."""
    out = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if lang is not None and m.group("lang") != lang:
                continue
            before = text[: m.start()].rstrip().splitlines()
            last = before[-1].strip() if before else ""
            mk = MARKER.match(last)
            kind = mk.group("kind") if mk else None
            name = None
            if mk and mk.group("rest"):
                rest = mk.group("rest").strip()
                name = rest.split()[0] if kind == "snippet" else rest
            out.append(
                Block(
                    page,
                    text.count("\n", 0, m.start()) + 1,
                    m.group("lang"),
                    textwrap.dedent(m.group("code")),
                    kind,
                    name,
                )
            )
    return out


def snippet_block(name: str, lang: str = "python") -> Block:
    """The block marked ``<!-- snippet: NAME ... -->``; every copy of it must be the same."""
    found = [b for b in blocks(lang) if b.kind == "snippet" and b.name == name]
    assert found, f"no page has a {lang} snippet {name!r}"
    codes = {b.code for b in found}
    assert len(codes) == 1, f"the copies of snippet {name!r} differ: {', '.join(map(str, found))}"
    return found[0]


def snippet(name: str, lang: str = "python") -> str:
    """The code of snippet ``name`` (dedented), wherever it lives."""
    return snippet_block(name, lang).code


def after_snippet(name: str, lang: str = "bash") -> str:
    """The first ``lang`` block after the snippet ``name`` on its page (a command that goes
    with it)."""
    first = snippet_block(name)
    later = [b for b in blocks(lang) if b.page == first.page and b.line > first.line]
    assert later, f"no {lang} block follows snippet {name!r} in {first.page.name}"
    return later[0].code
