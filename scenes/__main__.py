"""``python -m scenes`` lists the scenes; ``python -m scenes NAME [flags]`` runs one, exactly
as ``python -m scenes.NAME [flags]`` does."""

from __future__ import annotations

import sys

from .registry import discover


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    scenes = discover()
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, scenes))
        print(
            "usage: python -m scenes NAME [flags]   (python -m scenes NAME --help lists the "
            "flags)\n"
        )
        for name, entry in scenes.items():
            source = (
                "trains its experiment or draws a recording"
                if entry.experiment
                else "draws a recording"
            ) + (", or compares several" if entry.scene.compare_scene else "")
            print(f"  {name:<{width}}  {entry.summary} ({source})")
        return
    if argv[0] not in scenes:
        print(
            f"python -m scenes: error: no scene named {argv[0]!r}; the scenes are: "
            f"{', '.join(scenes)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    from .cli import main as run

    sys.argv[0] = f"python -m scenes {argv[0]}"
    run(argv[0], argv[1:])


if __name__ == "__main__":
    main()
