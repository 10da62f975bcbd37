"""Chapter cards never hide data, and count chapters as the MP4, the WebVTT file and the
player's buttons do.

A card's footprint is found from pixels alone: the chapter's frame against the frame of the
same step in the movie without chapters. It must overlap no data artist of that frame (each
plotting area, every line, collection, image, patch, text and legend in it, its ticks, tick
labels and axis labels; a figure's legend and the readout); the scene's heading and subtitle
are the only things it may cover. Every registered scene is checked on its example recording
with chapters given, at two frame shapes, and on the seeded experiments that choose their own
chapters.
"""

import json
import re

import numpy as np
import pytest
from matplotlib.transforms import Bbox

from scenes.base import RenderOptions
from scenes.registry import discover

SCENES = discover()
DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)
SQUARE = RenderOptions(width=480, height=480, dpi=50, progress=False, workers=1)
LONG = "A title of sixty characters: the longest a chapter may take!"


def data_boxes(scene, renderer) -> list[tuple[str, Bbox]]:
    """``(what, pixel box)`` of every artist of the scene's figure that shows data (the heading
    and subtitle are not data: a chapter's title takes their place)."""
    fig = scene._fig
    header = {scene.heading(), scene.subtitle()}
    boxes = []
    for k, ax in enumerate(fig.axes):
        where = f"axes {k} ({ax.get_title() or ax.get_ylabel() or 'untitled'})"
        boxes.append((f"{where}: plotting area", ax.bbox))
        for child in ax.get_children():  # lines, collections, images, patches, texts, legend,
            if child.get_visible():  # spines, and each axis with its ticks and labels
                boxes.append((f"{where}: {type(child).__name__}", child.get_tightbbox(renderer)))
    for artist in fig.get_children()[1:]:  # a figure's legend, the readout
        if artist in fig.axes or not artist.get_visible():
            continue
        if getattr(artist, "get_text", lambda: None)() in header:
            continue
        boxes.append((f"figure {type(artist).__name__}", artist.get_tightbbox(renderer)))
    return [(w, b) for w, b in boxes if b is not None and b.width > 0 and b.height > 0]


def footprint(with_card: np.ndarray, without: np.ndarray) -> Bbox:
    """The pixel box (display coordinates, origin at the bottom) of what the card changed."""
    rows, cols = np.nonzero(np.any(with_card != without, axis=2))
    assert len(rows), "the chapter's frame shows no card"
    h = with_card.shape[0]
    return Bbox.from_extents(cols.min(), h - rows.max() - 1, cols.max() + 1, h - rows.min())


def overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def assert_cards_hide_no_data(cls, recording, options, chapters=None) -> int:
    """Every chapter's frame of ``cls`` drawing ``recording`` (``chapters``: given, or the
    recording's own) against the same step without chapters. Returns the chapters checked."""
    scene = cls(recording, None, options if chapters is None else
                RenderOptions(**{**vars(options), "chapters": chapters}))  # fmt: skip
    plain = cls(recording, None, RenderOptions(**{**vars(options), "chapters": ()}))
    assert scene.chapters_, "nothing to check"
    try:
        for k, start in enumerate(scene.chapter_frames_):
            assert scene.card_[start] == k  # the chapter's first frame shows its card
            with_card = scene.frame(start)
            j = int(scene.frames_[start])  # one frame per snapshot: the plain movie's frame
            assert plain.frame_steps_[j] == scene.frame_steps_[start]
            without = plain.frame(j)
            card = footprint(with_card, without)
            assert card.width * card.height < 0.25 * with_card.shape[0] * with_card.shape[1]
            renderer = plain._fig.canvas.get_renderer()
            hidden = [w for w, b in data_boxes(plain, renderer) if overlap(card, b)]
            assert not hidden, (
                f"{cls.__name__}: the card of chapter {k + 1} ({scene.chapters_[k][1]!r}) at "
                f"{card.extents.round().tolist()} hides {hidden}"
            )
    finally:
        scene.close()
        plain.close()
    return len(scene.chapters_)


@pytest.mark.parametrize("options", [DRAFT, SQUARE], ids=["640x360", "480x480"])
@pytest.mark.parametrize("name", sorted(SCENES))
def test_a_chapter_card_hides_no_data(name, options):
    cls = SCENES[name].scene
    recording = cls.example()
    steps = cls(recording, None, options).steps_
    chapters = ((int(steps[len(steps) // 2]), "The error falls a million-fold"),
                (int(steps[-1]), LONG))  # fmt: skip
    assert assert_cards_hide_no_data(cls, recording, options, chapters) == 2


def test_the_particle_experiments_own_chapters_hide_no_data():
    """The run ``python -m scenes.relu_particles`` trains: its chapter "The error falls a
    million-fold" once hid the loss axis at 1e-8, a particle and a teacher's ray."""
    pytest.importorskip("torch")
    from dynamics.experiments.relu_particles import ReluParticlesConfig, run

    recording = run(ReluParticlesConfig())
    titles = [t for _, t in recording.metadata["chapters"]]
    assert "The error falls a million-fold" in titles
    cls = SCENES["relu_particles"].scene
    assert assert_cards_hide_no_data(cls, recording, DRAFT) == len(titles)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, changes",
    [("classifiers", {}), ("distributions", {}), ("mass_shuffle", {}),
     ("spiral", {"steps": 800, "grid": 60})],  # both its chapters by step 720
)  # fmt: skip
def test_the_other_experiments_own_chapters_hide_no_data(name, changes):
    """The seeded experiments that choose chapters, at their default configs (the spiral's
    shortened): 5 to 25 seconds of training each."""
    pytest.importorskip("torch")
    entry = SCENES[name]
    recording = entry.run(entry.experiment_config(**changes), progress=False)
    assert recording.metadata.get("chapters"), f"{name} reached none of its milestones"
    assert assert_cards_hide_no_data(entry.scene, recording, DRAFT) >= 1


# -- counting ------------------------------------------------------------------------------
def drifting():
    """A small weight matrix over steps 0, 10, ..., 100 (the weights scene's example)."""
    return SCENES["weights"].scene.example(frames=11)


@pytest.mark.parametrize(
    "chapters, numbers",
    [(((30, "a"), (80, "b")), ["2 OF 3", "3 OF 3"]),  # "Start" is the first
     (((0, "a"), (80, "b")), ["1 OF 2", "2 OF 2"])],  # a chapter at frame 0: no "Start"
)  # fmt: skip
def test_cards_count_chapters_as_the_writers_list_them(chapters, numbers):
    cls = SCENES["weights"].scene
    recording = drifting()
    steps = cls(recording, None, DRAFT).steps_
    chapters = tuple((int(steps[np.searchsorted(steps, s)]), t) for s, t in chapters)
    scene = cls(recording, None, RenderOptions(**{**vars(DRAFT), "chapters": chapters}))
    marks = scene.chapter_marks()
    labels = scene.chapter_labels()
    assert [re.search(r"CHAPTER (\d+ OF \d+)", s)[1] for s in labels] == numbers
    for k, (start, title) in enumerate(zip(scene.chapter_frames_, (t for _, t in chapters))):
        number = int(labels[k].split()[1])
        assert marks[number - 1] == (start, title)  # the writers' entry of that number
        assert labels[k].endswith(f"STEP {scene.chapters_[k][0]:,d}")


def test_the_player_and_the_webvtt_file_count_what_the_cards_count(tmp_path):
    """The player's buttons, the MP4's chapters and the WebVTT cues are chapter_marks(); a
    button seeks to its chapter's first frame, which shows that chapter's card."""
    from scenes.writers import open_writer

    cls = SCENES["weights"].scene
    options = RenderOptions(
        width=320, height=180, dpi=30, fps=10, progress=False, workers=1,
        chapters=((40, "Halfway"), (90, "Late")), chapter_hold=0.5,
    )  # fmt: skip
    scene = cls(drifting(), None, options)
    marks = scene.chapter_marks()
    assert [t for _, t in marks] == ["Start", "Halfway", "Late"]
    total = {int(s.split()[3]) for s in scene.chapter_labels()}
    assert total == {len(marks)}
    # the player: one button per mark, each seeking to (frame + 0.5) / fps
    markup = scene.to_html("player")
    config = json.loads(re.search(r"cfg = (\{.*?\});", markup, re.S)[1])
    assert [tuple(c) for c in config["chapters"]] == marks
    assert markup.count('<button type="button" title="frame') == len(marks)
    fps = config["fps"]
    for number, (start, title) in enumerate(marks, 1):
        shown = int(np.floor((start + 0.5) / fps * fps + 1e-3))  # the player's frame()
        assert shown == start
        k = int(scene.card_[shown])
        if title == "Start":
            assert k == -1  # the movie's opening: no card
        else:
            assert scene.chapters_[k][1] == title
            assert scene.chapter_labels()[k].startswith(f"CHAPTER {number} OF {len(marks)}")
    # the MP4's WebVTT file: one cue per mark
    out = scene.render(open_writer(tmp_path / "movie.mp4", options.fps))
    cues = re.findall(r"-->.*\n(.*)\n", out.with_suffix(".vtt").read_text())
    assert cues == [t for _, t in marks]
