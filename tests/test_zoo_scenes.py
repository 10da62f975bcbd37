"""Every registered scene on every zoo recording (tests/zoo/, recorded by tests/test_zoo.py's
fixture): it renders, or exits with one line naming what it needs. A traceback fails."""

import pytest
from zoo import BUILDERS

from scenes.cli import main
from scenes.registry import discover

ZOO = sorted(BUILDERS)
SCENES = discover()


@pytest.mark.parametrize("scene", sorted(SCENES))
@pytest.mark.parametrize("name", ZOO)
def test_every_scene_renders_every_zoo_recording_or_says_what_it_needs(
    scene, name, zoo_recording, tmp_path, capsys
):
    rec, _, _ = zoo_recording(name)
    out = tmp_path / "still.png"
    try:
        main(scene, [str(rec.path), "--out", str(out), "--quality", "draft", "--quiet"])
    except SystemExit as exc:
        err = capsys.readouterr().err.strip()
        # one line, naming what is missing without listing a real model's hundreds of series
        assert exc.code == 2 and err.count("\n") == 0 and "error:" in err, err
        assert len(err) < 400, err
        assert not out.exists()
        return
    assert out.stat().st_size > 1000
