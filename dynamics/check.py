"""Check recordings for damage: ``python -m dynamics.check RUN.rec [MORE.rec ...]``.

Reads every byte of each recording and compares every block with the checksum its
writer stored beside it (CRC-32, computed on the writer thread as the block was written),
and the manifest with the checksum in the commit file. Prints one line per damaged block,
naming the series and its step range, or one ``ok`` line per recording. Memory stays
bounded whatever a recording claims: its checksum table is read a batch at a time, and a
recording whose files claim far more than they hold on disk (sparse files) is unreadable.

Exit status: 0 every recording is intact, 1 some block is damaged, 2 some recording
cannot be read at all (not a recording, malformed, or written before checksums).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .recording import RecordingError, verified


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m dynamics.check",
        description="Check recordings for damage: every block against the checksum stored with it.",
        epilog="Exit status: 0 intact, 1 damaged, 2 unreadable.",
    )
    p.add_argument(
        "recordings", nargs="+", metavar="RUN.rec", help="recording directories to check"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    args = p.parse_args(argv)
    status = 0
    for path in args.recordings:
        try:
            problems, rec = verified(Path(path))
        except RecordingError as exc:
            print(f"{path}: unreadable: {exc}")
            status = 2
            continue
        for line in problems:
            print(f"{path}: {line}")
        if problems:
            status = max(status, 1)
        elif not args.quiet:
            state = (
                "complete"
                if rec.complete
                else f"incomplete, committed up to step {rec.committed_step}"
            )
            snaps = sum(len(s) for _, s in rec.items())
            print(f"{path}: ok ({len(rec)} series, {snaps} snapshots, {state})")
    return status


if __name__ == "__main__":
    sys.exit(main())
