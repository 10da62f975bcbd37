"""The scene contract, for every scene :func:`scenes.registry.discover` finds.

Each registered scene provides an example recording (``Scene.example()``) and must pass
every test here: the frame count, one even frame size, determinism, blitting equal to a
full redraw, rendering without torch, ``--help`` and one-line errors for bad flags. A
new scene module dropped into ``scenes/`` is found and tested with no other edit (the
last test proves it with a temporary scene module).
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from scenes.base import PanelScene, RenderOptions
from scenes.registry import discover
from scenes.writers import Writer

SCENES = discover()
DRAFT = RenderOptions.preset_for("draft", progress=False, workers=1)
ROOT = Path(__file__).resolve().parents[1]


class CountingWriter(Writer):
    """A null encoder that counts what reaches it."""

    def __init__(self):
        super().__init__("/dev/null/never.mp4")
        self.seen = []

    def _write(self, frame):
        self.seen.append(frame.shape)

    def close(self):
        return self.path


def scene_of(name, options=DRAFT):
    cls = SCENES[name].scene
    return cls(cls.example(), None, options)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each scene's example recording, saved once."""
    root = tmp_path_factory.mktemp("examples")
    return {name: SCENES[name].scene.example().save(root / f"{name}.rec") for name in SCENES}


@pytest.mark.parametrize("name", sorted(SCENES))
def test_declares_the_contract(name):
    cls = SCENES[name].scene
    assert issubclass(cls, PanelScene)
    assert "__init__" not in vars(cls), "a scene declares, it does not override __init__"
    assert cls.title and SCENES[name].summary
    if cls.small_multiples:
        # a scene that declares small multiples draws them itself
        assert cls.small_panel.__func__ is not PanelScene.small_panel.__func__


@pytest.mark.parametrize("name", sorted(SCENES))
def test_every_frame_reaches_the_writer_with_one_even_size(name):
    scene = scene_of(name)
    writer = CountingWriter()
    scene.render(writer, workers=1)
    assert len(writer.seen) == len(scene) == len(scene.steps_) > 1
    assert len(set(writer.seen)) == 1 and writer.seen[0][:2] == (360, 640)


@pytest.mark.parametrize("name", sorted(SCENES))
def test_frames_are_deterministic_and_blitting_equals_full_redraw(name):
    scene = scene_of(name)
    blitted = [scene.frame(i) for i in range(len(scene))]
    middle = len(scene) // 2
    np.testing.assert_array_equal(blitted[middle], scene_of(name).frame(middle))
    assert not np.array_equal(blitted[0], blitted[-1]), "the picture moves"
    for i in (0, middle, len(scene) - 1):
        np.testing.assert_array_equal(blitted[i], scene.frame(i, blit=False))


@pytest.mark.parametrize("name", sorted(SCENES))
def test_renders_a_saved_recording_without_torch(name, saved, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules['torch'] = None
        from dynamics import load
        from scenes.base import RenderOptions
        from scenes.registry import get
        opts = RenderOptions.preset_for('draft', progress=False, workers=1)
        scene = get({name!r}).scene(load({str(saved[name])!r}), options=opts)
        print(scene.render({str(tmp_path / "r.gif")!r}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    import imageio.v3 as iio

    assert len(iio.imread(tmp_path / "r.gif", index=None)) == len(scene_of(name))


@pytest.mark.parametrize("name", sorted(SCENES))
def test_help_explains_the_flags(name):
    """Every flag has a help text (the experiment scenes' --help also runs in a subprocess in
    test_cli)."""
    from scenes.cli import build_parser

    parser = build_parser(SCENES[name])
    text = parser.format_help()
    for flag in ("--out", "--recording", "--fps", "--size", "--quality", "--crf", "--figures"):
        assert flag in text
    for action in parser._actions:
        assert action.help, f"{action.dest} has no help"


@pytest.mark.parametrize("name", sorted(SCENES))
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--fps", "0"], "fps must be positive"),
        (["--size", "641x360"], "frame size must be even"),
        (["--out", "movie.avi"], "unknown output extension"),
        (["--crf", "99"], "crf must be between 0 and 51"),
        (["--fps", "inf"], "fps must be between 0.1 and 240"),
        (["--dpi", "1e308"], "dpi must be between 10 and 1000"),
        (["--size", "30000x30000"], "larger than 7680x4320"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(name, flags, message, saved, capsys):
    from scenes.cli import main

    with pytest.raises(SystemExit) as exc:
        main(name, [str(saved[name]), *flags, "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


@pytest.mark.slow
def test_a_scene_module_dropped_into_the_package_is_found_and_tested(tmp_path):
    """The README's example scene, copied into scenes/, passes this suite with no other edit."""

    from snippets import snippet

    code = snippet("example-scene")
    assert len(code.strip().splitlines()) <= 40
    target = ROOT / "scenes" / "weight_norms_example.py"
    assert not target.exists()
    target.write_text(code)
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                __file__,
                "-k",
                "weight_norms_example",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    finally:
        target.unlink()
    assert out.returncode == 0, out.stdout[-3000:]
    passed = int(out.stdout.split(" passed")[0].split()[-1])
    assert passed >= 5 + 4, out.stdout[-500:]  # every parametrised test ran for the new scene
