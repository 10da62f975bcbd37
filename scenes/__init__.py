"""scenes: turn Recordings into animations (scene classes, panels, writers, CLI)."""

import sys as _sys

if _sys.argv[:1] == ["-m"]:
    # ``python -m scenes[.NAME]`` is starting (argv[0] is "-m" only while Python locates the
    # module): a Ctrl-C during the seconds of imports before the command line's own handler
    # is in place (scenes.cli.main) ends with one line and exit 130, not a traceback.
    import os as _os
    import signal as _signal

    def _interrupted_while_starting(signum, frame):  # pragma: no cover - timing dependent
        prog = " ".join(["python", *_sys.orig_argv[1:3]]) if len(_sys.orig_argv) > 2 else "scenes"
        _os.write(2, f"{prog}: interrupted while starting; nothing was written\n".encode())
        _os._exit(130)

    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
