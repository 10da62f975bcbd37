"""Chapters: --chapter STEP:TITLE and the experiments' own, a held title card on the frame,
chapter metadata in the MP4 (listed by the bundled ffmpeg) and a WebVTT file beside it."""

import re
import subprocess

import numpy as np
import pytest

from dynamics.experiments.common import milestone_chapters
from dynamics.recording import Recording, Series
from scenes.base import RenderOptions
from scenes.clock import insert_chapters, parse_chapter
from scenes.weights import WeightsScene

SMALL = {"width": 320, "height": 180, "dpi": 30, "progress": False, "workers": 1}


def drifting(snapshots: int = 11, chapters=None) -> Recording:
    """A 3x4 weight matrix drifting over steps 0, 10, ..., and a falling loss."""
    rng = np.random.default_rng(0)
    steps = np.arange(snapshots, dtype=np.int64) * 10
    t = np.linspace(0, 1, snapshots)[:, None, None]
    w = rng.normal(0, 0.3, (3, 4)) + t * rng.normal(0, 0.6, (3, 4))
    series = {
        "w": Series(steps, w.astype(np.float32), kind="parameter", source="w"),
        "loss": Series(steps, np.geomspace(1, 1e-3, snapshots), kind="scalar"),
    }
    metadata = {"caption": "a drifting matrix"}
    if chapters is not None:
        metadata["chapters"] = chapters
    return Recording(series, metadata)


def ffmpeg_info(path) -> str:
    import imageio_ffmpeg

    return subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
    ).stderr


@pytest.mark.parametrize(
    "spec, parsed",
    [("500:Loss falls", (500, "Loss falls")), ("1e4: a: b ", (10000, "a: b")),
     ("10,000:x", (10000, "x")), ((3, "pair"), (3, "pair"))],
)  # fmt: skip
def test_chapter_specs_parse(spec, parsed):
    assert parse_chapter(spec) == parsed


@pytest.mark.parametrize(
    "spec, message",
    [("500", "STEP:TITLE"), ("-1:x", "whole number"), ("1.5:x", "whole number"),
     ("nan:x", "whole number"), ("5:", "one-line title"), ("5:" + "x" * 61, "at most 60")],
)  # fmt: skip
def test_bad_chapter_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_chapter(spec)


def test_a_chapter_holds_its_first_frame_and_shows_its_card_there():
    steps = np.array([0, 10, 20, 30, 40], float)
    order, card, starts = insert_chapters(steps, [(15, "a"), (40, "b")], hold=2, show=3)
    # step 15 is first reached by the frame of step 20 (index 2); step 40 by the last
    np.testing.assert_array_equal(order, [0, 1, 2, 2, 2, 3, 4, 4, 4])
    np.testing.assert_array_equal(card, [-1, -1, 0, 0, 0, -1, 1, 1, 1])
    assert starts == [2, 6]
    # no pause: the card stays on the next frames while the movie plays on
    order, card, starts = insert_chapters(steps, [(10, "a")], hold=0, show=2)
    np.testing.assert_array_equal(order, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(card, [-1, 0, 0, -1, -1])


def test_scene_frames_hold_at_chapters_and_the_held_frames_are_identical():
    rec = drifting()
    plain = WeightsScene(rec, None, RenderOptions(**SMALL))
    options = RenderOptions(**SMALL, fps=10, chapters=("45:Halfway",), chapter_hold=0.5)
    scene = WeightsScene(rec, None, options)
    assert len(scene) == len(plain) + 5  # 0.5 s at 10 fps
    start = scene.chapter_frames_[0]
    assert scene.frame_steps_[start] == 50  # the first frame at or after step 45
    assert scene.frame_steps_[start - 1] == 40
    frames = [scene.frame(i) for i in range(start - 1, start + 7)]
    for held in frames[2:7]:  # the chapter's frame and 5 more (0.5 s at 10 fps)
        np.testing.assert_array_equal(held, frames[1])
    # the card covers part of the frame that the same step shows without it
    without = plain.frame(5)
    changed = np.any(frames[1] != without, axis=2)
    rows, cols = np.nonzero(changed)
    assert 0.01 < changed.mean() < 0.4
    assert rows.max() < 180 * 0.2  # a band at the top, over the heading, above the panels
    # the card is pale inside (its box), with dark ink (the title)
    box = frames[1][rows.min() + 3 : rows.max() - 3, cols.min() + 3 : cols.max() - 3]
    assert np.median(box) > 230 and box.min() < 80
    # after the hold the movie plays on without the card
    np.testing.assert_array_equal(frames[7], plain.frame(6))


def test_the_mp4_lists_the_chapters_and_a_webvtt_file_lies_beside_it(tmp_path):
    from scenes.cli import main

    rec = drifting().save(tmp_path / "w.rec")
    out = tmp_path / "lecture.mp4"
    main(
        "weights",
        [str(rec), "--out", str(out), "--quality", "draft", "--size", "320x180", "--dpi", "30",
         "--fps", "10", "--chapter-hold", "1", "--chapter", "30:Early = fast",
         "--chapter", "80:Late; slow", "--quiet", "--workers", "1"],
    )  # fmt: skip
    info = ffmpeg_info(out)
    titles = re.findall(r"title\s*: (.*)", info)
    # the first chapter begins after frame 0: a "Start" chapter comes before it
    assert titles == ["Start", "Early = fast", "Late; slow"]
    starts = [float(s) for s in re.findall(r"Chapter #0:\d+: start ([\d.]+)", info)]
    ends = [float(s) for s in re.findall(r"Chapter #0:\d+: start [\d.]+, end ([\d.]+)", info)]
    # 11 snapshots + 2 x 10 held frames at 10 fps: chapters at frames 3 and 8 + 10 = 18
    assert starts == pytest.approx([0, 0.3, 1.8], abs=0.01)
    assert ends == pytest.approx([0.3, 1.8, 3.1], abs=0.01)
    assert "bt709" in info and "yuv420p(tv, bt709" in info  # colour tags survive the remux
    vtt = (tmp_path / "lecture.vtt").read_text()
    assert vtt.startswith("WEBVTT\n")
    cues = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(.*)\n", vtt)
    assert cues == [
        ("00:00:00.000", "00:00:00.300", "Start"),
        ("00:00:00.300", "00:00:01.800", "Early = fast"),
        ("00:00:01.800", "00:00:03.100", "Late; slow"),
    ]
    # the decoded movie holds: ten frames after each chapter's first frame are the same
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    w, h = meta["size"]
    decoded = np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])
    assert len(decoded) == 31
    held = decoded[3:14].astype(int)
    assert np.abs(held - held[0]).mean(axis=(1, 2, 3)).max() < 1  # one picture (x264 noise)
    assert np.abs(decoded[14].astype(int) - decoded[13]).mean() > 2  # then it moves on


def test_the_recordings_chapters_are_the_default_and_flags_replace_or_drop_them(tmp_path):
    rec = drifting(chapters=[[20, "From the experiment"], [999, "after the end: left out"]])
    scene = WeightsScene(rec, None, RenderOptions(**SMALL))
    assert scene.chapters_ == [(20, "From the experiment")]
    given = WeightsScene(rec, None, RenderOptions(**SMALL, chapters=((70, "Mine"),)))
    assert given.chapters_ == [(70, "Mine")]
    assert WeightsScene(rec, None, RenderOptions(**SMALL, chapters=())).chapters_ == []
    with pytest.raises(ValueError, match="outside the recorded steps 0 to 100"):
        WeightsScene(rec, None, RenderOptions(**SMALL, chapters=((500, "late"),)))


@pytest.mark.parametrize(
    "flags, message",
    [(["--chapter", "x:y"], "whole number"), (["--chapter", "500:late"], "outside the recorded"),
     (["--chapter", "5:a", "--no-chapters"], "not both"), (["--chapter-hold", "-1"], "between")],
)  # fmt: skip
def test_bad_chapter_flags_are_one_line(tmp_path, capsys, flags, message):
    from scenes.cli import main

    rec = drifting().save(tmp_path / "w.rec")
    with pytest.raises(SystemExit) as exc:
        main("weights", [str(rec), "--out", str(tmp_path / "x.mp4"), "--quiet", *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob("*.vtt"))


def test_milestones_are_the_first_snapshots_that_reach_them():
    steps = np.array([0, 5, 10, 20, 40])
    rec = Recording(
        {
            "loss": Series(steps, np.array([2.0, 1.5, 0.19, 0.3, 0.01]), kind="scalar"),
            "accuracy": Series(steps, np.array([0.1, 0.5, 0.8, 0.95, 0.97]), kind="scalar"),
        },
        {},
    )
    chapters = milestone_chapters(
        rec,
        [("loss", "fraction", 0.1, "10x"), ("accuracy", "above", 0.9, "90%"),
         ("loss", "fraction", 1e-9, "never"), ("missing", "above", 0, "absent")],
    )  # fmt: skip
    assert chapters == [[10, "10x"], [20, "90%"]]


def test_the_particle_experiment_chooses_its_chapters_from_its_error():
    from dynamics.experiments.relu_particles import CHAPTERS, ReluParticlesConfig, run

    rec = run(ReluParticlesConfig(frames=80, eval_samples=500))
    err = rec["rel_error"]
    expected = []
    for _, _, level, title in CHAPTERS:
        below = np.flatnonzero(np.asarray(err.values[1:]) <= level * err.values[0])
        if len(below):
            expected.append([int(err.steps[below[0] + 1]), title])
    assert expected, "the short run should reach at least the first milestone"
    assert rec.metadata["chapters"] == expected
