"""The interactive player: a movie, its controls and its chapters in one self-contained HTML
page (no server, no network, no files beside it).

The MP4 is embedded as a ``data:`` URL in a ``<video>``; a few lines of JavaScript add play
and pause, one-frame steps back and forward, a slider over the frames, a readout of the
frame's training step, one button per chapter, a full-screen button (the whole player goes
full screen, controls included) and keys: Space, B or ``.`` play and pause (B is a presenter
remote's blank-screen key), the left and right arrows step one frame, PageUp and PageDown
(a remote's back and forward) go to this chapter's start or the one before and to the next
chapter, Home and End to the first and last frame, F to full screen. Without its script (a
viewer that strips scripts) the ``<video>`` keeps the browser's own controls and the player's
stay hidden.

The same markup is the page written by ``--out movie.html`` and what a notebook shows inline
(:meth:`scenes.base.Scene.show`). As a page, it fits the window, controls included, and the
movie grows beyond its pixel size; it listens to keys anywhere. In a notebook it is at most
the movie's width, fits the cell, and takes keys once clicked. The element ids are unique
per player, so several players can share a notebook.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
from typing import Sequence

__all__ = ["player_html", "player_page"]

# The movie is as wide as its box allows and, where the page gives a height (--nnd-room: the
# page's viewport, or the screen in full screen), no taller than that height less the controls
# (--nnd-chrome, measured by the script): the controls are always on screen. A notebook gives
# no height (an output frame that sizes itself to its content would shrink the movie without
# end), so there the player keeps its width cap and fits the cell, as before.
_STYLE = """
.nnd-player{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;
 font-size:var(--nnd-font,14px);color:#222;width:100%;
 --nnd-w:min(100%,calc((var(--nnd-room,100000px) - var(--nnd-chrome,5.6em)) * var(--nnd-ar)))}
.nnd-player:has(>.nnd-controls[hidden]){--nnd-chrome:4px}
.nnd-player:focus:not(:focus-visible){outline:none}
.nnd-player:fullscreen{--nnd-room:calc(100vh - 24px);--nnd-font:clamp(14px,1.25vmin,28px);
 padding:12px 16px;background:#fff;display:flex;flex-direction:column;justify-content:center}
.nnd-player [hidden]{display:none!important}
.nnd-player video{display:block;box-sizing:border-box;width:var(--nnd-w);height:auto;
 margin:0 auto;background:#fff;border:1px solid #ddd}
.nnd-player .nnd-controls{box-sizing:border-box;width:max(var(--nnd-w),min(100%,24em));
 margin:0 auto;padding-top:6px;display:flex;flex-direction:column;gap:6px}
.nnd-player .nnd-bar{display:flex;flex-wrap:wrap;align-items:center;gap:6px}
.nnd-player .nnd-bar input{flex:1 1 0;min-width:80px;margin:0}
.nnd-player button{font:inherit;color:inherit;padding:2px 9px;border:1px solid #aaa;
 border-radius:4px;background:#f6f6f6;cursor:pointer}
.nnd-player button:hover{background:#e8e8e8}
.nnd-player .nnd-two{display:inline-grid;justify-items:center}
.nnd-player .nnd-two>span{grid-area:1/1}
.nnd-player .nnd-two>span+span,.nnd-player .nnd-two.nnd-on>span{visibility:hidden}
.nnd-player .nnd-two.nnd-on>span+span{visibility:visible}
.nnd-player .nnd-readout{font-family:ui-monospace,Menlo,Consolas,monospace;
 font-variant-numeric:tabular-nums;white-space:pre;text-align:right;flex:none;margin-left:auto}
.nnd-player .nnd-row{display:flex;align-items:flex-start;gap:6px}
.nnd-player .nnd-chapters{display:flex;flex-wrap:wrap;gap:6px;flex:1}
.nnd-player .nnd-chapters button.nnd-here{background:#dde8f6;border-color:#6b8fc4}
"""

_SCRIPT = """
(function () {
  var root = document.getElementById(%(id)s), cfg = %(config)s;
  var video = root.querySelector("video"), slider = root.querySelector("input");
  var controls = root.querySelector(".nnd-controls"), readout = root.querySelector(".nnd-readout");
  var play = root.querySelector("[data-act=play]"), full = root.querySelector("[data-act=full]");
  var chapters = root.querySelectorAll(".nnd-chapters button"), n = cfg.steps.length;
  var starts = cfg.chapters.map(function (c) { return c[0]; });
  video.removeAttribute("controls");  // ours replace the browser's (kept for stripped scripts)
  controls.hidden = false;
  function frame() {
    return Math.max(0, Math.min(n - 1, Math.floor(video.currentTime * cfg.fps + 1e-3)));
  }
  function show() {
    var i = frame();
    slider.value = i;
    readout.textContent = "frame " + (i + 1) + "/" + n + "  step " +
      cfg.steps[i].toLocaleString("en-US");
    play.classList.toggle("nnd-on", !video.paused);
    full.classList.toggle("nnd-on", document.fullscreenElement === root);
    for (var k = 0; k < chapters.length; k++) {
      var start = starts[k], end = k + 1 < chapters.length ? starts[k + 1] : n;
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
  function quietly(promise) {  // a play() cut short by a pause, a refused full screen
    if (promise && promise.catch) promise.catch(function () {});
  }
  function toggle() {
    if (video.paused) {
      if (frame() >= n - 1) video.currentTime = 0;
      quietly(video.play());
    } else video.pause();
  }
  function chapter(i, forward) {  // the next chapter's start, or this one's (or the one before)
    var to = forward ? n - 1 : 0;
    starts.forEach(function (s) { if (forward ? s > i && s < to : s < i && s > to) to = s; });
    seek(to);
  }
  function fullscreen() {  // the whole player, so that its controls stay
    if (document.fullscreenElement === root) document.exitFullscreen();
    else quietly(root.requestFullscreen());
  }
  function fit() {  // the movie leaves the controls' height free (see --nnd-chrome)
    root.style.setProperty("--nnd-chrome", controls.offsetHeight + 4 + "px");
  }
  function tick() { show(); if (!video.paused) requestAnimationFrame(tick); }
  var keys = {
    " ": toggle, "b": toggle, ".": toggle, "f": fullscreen,
    ArrowLeft: function (i) { seek(i - 1); }, ArrowRight: function (i) { seek(i + 1); },
    Home: function () { seek(0); }, End: function () { seek(n - 1); },
    PageUp: function (i) { chapter(i, false); }, PageDown: function (i) { chapter(i, true); }
  };
  document.addEventListener("keydown", function (e) {
    var t = e.target, act = keys[e.key.length === 1 ? e.key.toLowerCase() : e.key];
    if (!act || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (!root.contains(t)) {  // a page of its own listens everywhere, a notebook's player in it
      if (!document.body.classList.contains("nnd-page") || t.isContentEditable ||
          /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) return;
      if (document.fullscreenElement && document.fullscreenElement !== root) return;
    } else if (t.tagName === "BUTTON" && e.key === " ") return;  // a focused button presses
    e.preventDefault();
    e.stopPropagation();  // not a notebook's shortcut too
    act(frame());
  });
  root.addEventListener("click", function (e) {  // a clicked button leaves the keys to us
    if (e.detail && e.target.closest("button")) root.focus({ preventScroll: true });
  });
  play.onclick = toggle;
  root.querySelector("[data-act=prev]").onclick = function () { seek(frame() - 1); };
  root.querySelector("[data-act=next]").onclick = function () { seek(frame() + 1); };
  slider.oninput = function () { seek(parseInt(slider.value, 10)); };
  chapters.forEach(function (b, k) { b.onclick = function () { seek(starts[k]); }; });
  if (document.fullscreenEnabled && root.requestFullscreen) full.onclick = fullscreen;
  else full.hidden = true;  // e.g. in a frame that may not go full screen
  document.addEventListener("fullscreenchange", show);
  video.addEventListener("play", tick);
  ["pause", "seeked", "ended", "loadeddata"].forEach(function (e) {
    video.addEventListener(e, show);
  });
  if (window.ResizeObserver) {
    new ResizeObserver(function () { requestAnimationFrame(fit); }).observe(controls);
  }
  fit();
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
        The movie's size in pixels: in a notebook the player is at most that wide and fits
        narrower cells (:func:`player_page` and full screen lift that cap).
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
    steps_width = max(len(f"{s:,}") for s in config["steps"])
    readout = len(f"frame {last + 1}/{last + 1}  step ") + steps_width  # its widest text
    return (
        f"<style>{_STYLE}</style>"
        f'<div class="nnd-player" id="{uid}" tabindex="-1" data-lm-suppress-shortcuts="true" '
        f'style="max-width:{int(width)}px;--nnd-ar:{width / height:.6f}">'
        f'<video controls muted playsinline preload="auto" width="{int(width)}" '
        f'height="{int(height)}" src="data:video/mp4;base64,{data}"></video>'
        '<div class="nnd-controls" hidden><div class="nnd-bar">'
        '<button type="button" data-act="play" class="nnd-two" title="play / pause (Space, B)">'
        "<span>&#9654; play</span><span>&#10074;&#10074; pause</span></button>"
        '<button type="button" data-act="prev" title="one frame back (&#8592;)">&#9664;</button>'
        '<button type="button" data-act="next" title="one frame forward (&#8594;)">'
        "&#9654;&#124;</button>"
        f'<input type="range" min="0" max="{last}" value="0" step="1" aria-label="frame">'
        f'<span class="nnd-readout" style="width:{readout}ch"></span></div>'
        f'<div class="nnd-row"><div class="nnd-chapters">{buttons}</div>'
        '<button type="button" data-act="full" class="nnd-two" title="full screen (F)">'
        "<span>full screen</span><span>exit full screen</span></button></div></div>"
        f"</div><script>{script}</script>"
    )


# A page of its own: the movie fills the window (beyond its pixel size: the width cap is for
# notebook cells, hence the !important over the fragment's inline style), controls included,
# and the controls' text grows on large screens.
_PAGE_STYLE = """
body.nnd-page{margin:0;padding:12px 16px;--nnd-room:calc(100vh - 24px);
 --nnd-font:clamp(14px,1.25vmin,28px)}
body.nnd-page .nnd-player{max-width:none!important;margin:0 auto}
"""


def player_page(fragment: str, title: str = "nndynamics") -> str:
    """A whole HTML page around a :func:`player_html` fragment: the player fills the window,
    controls included, and takes the keys wherever the focus is (bar a text field)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_PAGE_STYLE}</style></head>"
        f'<body class="nnd-page">{fragment}</body></html>\n'
    )
