"""The interactive player: a movie, its controls and its chapters in one self-contained HTML
page (no server, no network, no files beside it).

The MP4 is embedded as a ``data:`` URL in a ``<video>``; a few lines of JavaScript add play
and pause, one-frame steps back and forward, a slider over the frames, a readout of the
frame's training step, and one button per chapter. The same markup is the page written by
``--out movie.html`` and what a notebook shows inline (:meth:`scenes.base.Scene.show`). The
element ids are unique per player, so several players can share a notebook.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
from typing import Sequence

__all__ = ["player_html", "player_page"]

_STYLE = """
.nnd-player{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;width:100%}
.nnd-player video{width:100%;height:auto;display:block;background:#fff;border:1px solid #ddd}
.nnd-player .nnd-bar{display:flex;align-items:center;gap:6px;margin:6px 0}
.nnd-player .nnd-bar input{flex:1;min-width:80px}
.nnd-player button{font:inherit;padding:2px 9px;border:1px solid #aaa;border-radius:4px;
 background:#f6f6f6;cursor:pointer}
.nnd-player button:hover{background:#e8e8e8}
.nnd-player .nnd-readout{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre;
 min-width:19ch;text-align:right}
.nnd-player .nnd-chapters{display:flex;flex-wrap:wrap;gap:6px}
.nnd-player .nnd-chapters button.nnd-here{background:#dde8f6;border-color:#6b8fc4}
"""

_SCRIPT = """
(function () {
  var root = document.getElementById(%(id)s), cfg = %(config)s;
  var video = root.querySelector("video"), slider = root.querySelector("input");
  var play = root.querySelector("[data-act=play]"), readout = root.querySelector(".nnd-readout");
  var chapters = root.querySelectorAll(".nnd-chapters button"), n = cfg.steps.length;
  function frame() {
    return Math.max(0, Math.min(n - 1, Math.floor(video.currentTime * cfg.fps + 1e-3)));
  }
  function show() {
    var i = frame();
    slider.value = i;
    readout.textContent = "frame " + (i + 1) + "/" + n + "  step " +
      cfg.steps[i].toLocaleString("en-US");
    play.textContent = video.paused ? "\\u25B6 play" : "\\u275A\\u275A pause";
    for (var k = 0; k < chapters.length; k++) {
      var start = cfg.chapters[k][0], end = k + 1 < chapters.length ? cfg.chapters[k + 1][0] : n;
      chapters[k].classList.toggle("nnd-here", i >= start && i < end);
    }
    root.dataset.frame = i;
  }
  function seek(i) {
    video.pause();
    i = Math.max(0, Math.min(n - 1, i));
    video.currentTime = (i + 0.5) / cfg.fps;
    show();
  }
  function tick() { show(); if (!video.paused) requestAnimationFrame(tick); }
  play.onclick = function () {
    if (video.paused) {
      if (frame() >= n - 1) video.currentTime = 0;
      video.play();
    } else video.pause();
  };
  root.querySelector("[data-act=prev]").onclick = function () { seek(frame() - 1); };
  root.querySelector("[data-act=next]").onclick = function () { seek(frame() + 1); };
  slider.oninput = function () { seek(parseInt(slider.value, 10)); };
  chapters.forEach(function (b, k) { b.onclick = function () { seek(cfg.chapters[k][0]); }; });
  video.addEventListener("play", tick);
  ["pause", "seeked", "ended", "loadeddata"].forEach(function (e) {
    video.addEventListener(e, show);
  });
  show();
})();
"""


def player_html(
    mp4: bytes,
    *,
    fps: float,
    steps: Sequence[int],
    chapters: Sequence[tuple[int, str]] = (),
    width: int,
    height: int,
) -> str:
    """The player as an HTML fragment (a ``<div>``, its style and script): for a notebook
    cell, or the body of :func:`player_page`.

    Parameters
    ----------
    mp4 : bytes
        The encoded movie.
    fps : float
        Its frame rate (a frame is ``1 / fps`` seconds).
    steps : sequence of int
        The training step of every frame, shown under the slider.
    chapters : sequence of (int, str)
        ``(first frame, title)``: one button each, which jumps to that frame.
    width, height : int
        The movie's size in pixels: the player is at most that wide and fits narrower cells.
    """
    uid = "nnd-" + secrets.token_hex(6)
    config = {
        "fps": float(fps),
        "steps": [int(s) for s in steps],
        "chapters": [[int(f), str(t)] for f, t in chapters],
    }
    buttons = "".join(
        f'<button type="button" title="frame {f + 1}">{html.escape(t)}</button>'
        for f, t in chapters
    )
    data = base64.b64encode(mp4).decode("ascii")
    last = len(config["steps"]) - 1
    script = _SCRIPT % {
        "id": json.dumps(uid),
        "config": json.dumps(config).replace("</", "<\\/"),  # a title cannot end the script
    }
    return (
        f"<style>{_STYLE}</style>"
        f'<div class="nnd-player" id="{uid}" style="max-width:{int(width)}px">'
        f'<video muted playsinline preload="auto" width="{int(width)}" height="{int(height)}" '
        f'src="data:video/mp4;base64,{data}"></video>'
        '<div class="nnd-bar">'
        '<button type="button" data-act="play">&#9654; play</button>'
        '<button type="button" data-act="prev" title="one frame back">&#9664;</button>'
        '<button type="button" data-act="next" title="one frame forward">&#9654;&#124;</button>'
        f'<input type="range" min="0" max="{last}" value="0" step="1" aria-label="frame">'
        '<span class="nnd-readout"></span></div>'
        f'<div class="nnd-chapters">{buttons}</div>'
        f"</div><script>{script}</script>"
    )


def player_page(fragment: str, title: str = "nndynamics") -> str:
    """A whole HTML page around a :func:`player_html` fragment."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>body{margin:24px auto;max-width:1300px;padding:0 16px}</style></head>"
        f"<body>{fragment}</body></html>\n"
    )
