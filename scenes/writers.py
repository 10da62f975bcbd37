"""Writers: uint8 RGB frames in, MP4 / GIF / PNG / an HTML player out. They know nothing
about plots.

Every writer encodes into a temporary file beside the target and moves it into place
only when ``close()`` finishes, so an interrupted render never leaves a partial file at
the target path. The output format is decided here and nowhere else: by the output's
extension through :data:`WRITERS` (:func:`output_path` picks the path, :func:`open_writer`
the writer). Encoder settings belong to the writer that uses them (:class:`Mp4Options`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

__all__ = [
    "Writer",
    "Mp4Writer",
    "Mp4Options",
    "GifWriter",
    "GIF_MAX_FPS",
    "gif_delays",
    "PngWriter",
    "HtmlWriter",
    "WRITERS",
    "open_writer",
    "check_output_path",
    "check_writable",
    "refuses_files",
    "output_path",
    "webvtt",
    "ffmetadata",
]


def _timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"{h:02d}:{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def webvtt(chapters: Sequence[tuple[float, float, str]]) -> str:
    """A WebVTT chapter track (``<track kind="chapters">``) of ``(start, end, title)``
    in seconds."""
    cues = [
        f"{k}\n{_timestamp(a)} --> {_timestamp(b)}\n{' '.join(t.split())}\n"
        for k, (a, b, t) in enumerate(chapters, 1)
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def ffmetadata(chapters: Sequence[tuple[float, float, str]]) -> str:
    """ffmpeg's metadata file (``;FFMETADATA1``) with one ``[CHAPTER]`` per ``(start, end,
    title)`` in seconds, in milliseconds."""

    def escape(text: str) -> str:
        for ch in "\\=;#":
            text = text.replace(ch, "\\" + ch)
        return " ".join(text.split())

    lines = [";FFMETADATA1"]
    for a, b, t in chapters:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(a * 1000)}",
                  f"END={round(b * 1000)}", f"title={escape(t)}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Writer:
    """Base writer: a context manager that finishes the file on success and removes it on error.

    Parameters
    ----------
    path : path-like
        Final output path.
    fps : float
        Frames per second (ignored by still formats).
    """

    #: The file extension of this format: :data:`WRITERS` maps each to its writer.
    extension: ClassVar[str] = ""
    #: False for a still format: a render hands it its last frame only.
    animated: ClassVar[bool] = True
    #: Dataclass of this format's encoder settings (None: it has none).
    Options: ClassVar[type | None] = None
    #: Encoder settings of the named quality presets (``draft``, ``final``, ``notebook``) of
    #: this format.
    QUALITY: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, path: str | os.PathLike, fps: float = 30, **options):
        if options:
            raise TypeError(f"{type(self).__name__}: unknown options {sorted(options)}")
        self.path = Path(path)
        self.fps = float(fps)
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.tmp_path = self.path.with_name(
            f".{self.path.stem}.{os.getpid()}.tmp{self.path.suffix}"
        )
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (height, width)
        self.channels = 3
        self.chapters: list[tuple[int, str]] = []
        self.steps: list[int] | None = None
        self.vtt_path: Path | None = None
        self._done = False

    #: An animated format that lists chapters writes a WebVTT file of them beside the movie.
    chapter_track: ClassVar[bool] = False

    def annotate(
        self, *, chapters: Sequence[tuple[int, str]] = (), steps: Sequence[int] | None = None
    ) -> None:
        """Say what the frames hold before they are written: ``chapters`` as ``(first frame,
        title)`` pairs by frame (an MP4 lists them as chapters, and a WebVTT file of them is
        written beside it, ``<name>.vtt``; the HTML player shows them as buttons), and the
        training step of every frame (the player's readout). Other formats ignore them."""
        self.chapters = sorted(((int(f), str(t)) for f, t in chapters), key=lambda c: c[0])
        self.steps = None if steps is None else [int(s) for s in steps]

    def chapter_times(self) -> list[tuple[float, float, str]]:
        """``(start, end, title)`` of every chapter in seconds: a chapter lasts until the
        next one begins, the last until the end of the movie."""
        total = self.frames_written / self.fps
        starts = [min(f, self.frames_written) / self.fps for f, _ in self.chapters]
        ends = starts[1:] + [total]
        return [(a, b, t) for a, b, (_, t) in zip(starts, ends, self.chapters)]

    def write(self, frame: np.ndarray) -> None:
        """Append one frame, ``(height, width, 3)`` RGB or ``(height, width, 4)`` RGBA uint8
        (alpha is ignored: RGBA straight from a canvas saves a strided copy per frame).
        Every frame has the first one's size and channels."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise ValueError(
                f"frames must be (height, width, 3 or 4) uint8, got {frame.shape} {frame.dtype}"
            )
        if self.size is not None and (
            frame.shape[:2] != self.size or frame.shape[2] != self.channels
        ):
            raise ValueError(
                f"frame {self.frames_written} is {frame.shape}, earlier frames were "
                f"{(*self.size, self.channels)}"
            )
        try:
            if self.size is None:
                self.size, self.channels = frame.shape[:2], frame.shape[2]
                self._open(*self.size)
            self._write(np.ascontiguousarray(frame))
        except OSError as exc:
            raise self._disk_failed(exc) from None
        self.frames_written += 1

    def close(self) -> Path:
        """Finish encoding, check the file, and move it into place. Returns the final path.

        If encoding or the check fails (a full disk, an encoder that died), the temporary
        file is removed, an older file at the target stays as it was, and the error is
        raised (OSError for what the disk or the encoder did)."""
        if self._done:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise ValueError(f"{self.path}: no frames were written")
        try:
            try:
                self._finish()
                self._verify()
                if self.chapters and self.chapter_track:
                    self.vtt_path = self.path.with_suffix(".vtt")
                    _write_atomic(self.vtt_path, webvtt(self.chapter_times()))
                os.replace(self.tmp_path, self.path)
            except OSError as exc:
                raise self._disk_failed(exc) from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.path

    def abort(self) -> None:
        """Stop and delete the temporary file; the target path is left untouched."""
        self._done = True
        try:
            self._cancel()
        finally:
            self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _disk_failed(self, exc: OSError) -> OSError:
        """``exc`` as one line naming the target, where the system named a file: the
        temporary one beside it means nothing to the user (``[Errno 2] No such file or
        directory: '/proc/.x.123.tmp.png'``). The writers' own errors pass as they are."""
        if exc.filename is None:
            return exc
        return OSError(
            f"cannot write {self.path}: {exc.strerror or type(exc).__name__}; nothing was "
            "written at the target"
        )

    # subclass hooks
    def _open(self, height: int, width: int) -> None: ...
    def _write(self, frame: np.ndarray) -> None: ...
    def _finish(self) -> None: ...
    def _cancel(self) -> None: ...

    def _verify(self) -> None:
        """Check the finished temporary file before it replaces the target (default: it
        exists and is not empty)."""
        if not self.tmp_path.is_file() or self.tmp_path.stat().st_size == 0:
            raise OSError(f"{self.path}: the encoder wrote nothing (disk full?)")


X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


@dataclass(frozen=True)
class Mp4Options:
    """MP4 encoder settings (H.264 through libx264).

    Attributes
    ----------
    preset : str
        x264 preset, ultrafast ... veryslow: slower presets give smaller files at the same
        quality (MP4 only). The default, veryfast at crf 19, encodes the particle movie in
        65% of medium's time at crf 20 with the same file size and decoded error (mean
        0.28 against 0.22 levels on 1280x720 frames of flat plots).
    crf : int
        x264 quality, 0-51: lower is better, 18 is visually lossless (MP4 only).
    """

    preset: str = "veryfast"
    crf: int = 19

    def __post_init__(self):
        if self.preset not in X264_PRESETS:
            raise ValueError(
                f"preset must be one of {', '.join(X264_PRESETS)}, got {self.preset!r}"
            )
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be between 0 and 51, got {self.crf}")


#: How every MP4 turns RGB into YUV, and says so: BT.709 matrix, primaries and transfer,
#: limited ("tv") range, at every frame size. Browsers guess the matrix of untagged video
#: from its size (BT.709 for HD, BT.601 below), and swscale converts with BT.601 unless told
#: otherwise, so untagged 720p red (230, 0, 0) showed as (250, 22, 1) in Chromium. The
#: ``scale`` filter does the conversion with the stated matrix; ``setparams`` and the
#: ``-color_*`` flags write the same tags into the stream (all three are needed: without
#: ``setparams`` ffmpeg 9 leaves primaries and transfer "unknown").
MP4_COLOUR_FILTER = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
)
MP4_COLOUR_TAGS = (
    "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
    "-color_range", "tv",
)  # fmt: skip


class Mp4Writer(Writer):
    """H.264 (libx264, yuv420p, BT.709 tagged: :data:`MP4_COLOUR_FILTER`) through
    imageio-ffmpeg's bundled ffmpeg.

    Parameters
    ----------
    preset, crf
        Encoder settings, see :class:`Mp4Options`.
    """

    extension = ".mp4"
    chapter_track = True
    Options = Mp4Options
    QUALITY = {
        "draft": {"preset": "ultrafast", "crf": 26},
        "final": {"preset": "veryfast", "crf": 19},
        # embedded in a notebook: x264's default quality keeps a 1080p movie small (a
        # 500-frame decision field: 1.1 MB, 1.6 MB at crf 19), its text crisp
        "notebook": {"preset": "veryfast", "crf": 23},
    }

    #: Chapters go into the MP4's own chapter list.
    mp4_chapters: ClassVar[bool] = True

    def __init__(self, path, fps=30, *, preset: str = "veryfast", crf: int = 19, **options):
        super().__init__(path, fps, **options)
        settings = Mp4Options(preset, int(crf))
        self.preset, self.crf = settings.preset, settings.crf
        self._gen = None
        self.encode_path = self.tmp_path  # where the encoder writes the MP4

    def _open(self, height, width):
        import imageio_ffmpeg

        if height % 2 or width % 2:
            raise ValueError(f"H.264 with yuv420p needs even frame sizes, got {width}x{height}")
        self._gen = imageio_ffmpeg.write_frames(
            str(self.encode_path),
            (width, height),
            fps=self.fps,
            codec="libx264",
            pix_fmt_in="rgba" if self.channels == 4 else "rgb24",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=1,
            # quiet: an interrupted or failed encode is reported in one line by the writer;
            # ffmpeg would add its own ("Invalid buffer size" for a frame cut short)
            ffmpeg_log_level="quiet",
            output_params=[
                "-vf",
                MP4_COLOUR_FILTER,
                *MP4_COLOUR_TAGS,
                "-preset",
                self.preset,
                "-crf",
                str(self.crf),
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
            ],
        )
        self._gen.send(None)

    def _write(self, frame):
        try:
            self._gen.send(frame)
        except OSError as exc:
            raise self._encoder_failed(exc) from None

    def _finish(self):
        gen, self._gen = self._gen, None
        try:
            gen.close()
        except OSError as exc:
            raise self._encoder_failed(exc) from None
        if self.chapters and self.mp4_chapters:
            self._add_chapters()

    def _add_chapters(self) -> None:
        """Copy the encoded stream into a new MP4 that carries the chapters (no re-encoding:
        ffmpeg's ``-map_chapters`` from an ``;FFMETADATA1`` file)."""
        import subprocess

        import imageio_ffmpeg

        meta = self.encode_path.with_name(self.encode_path.name + ".chapters.txt")
        out = self.encode_path.with_name(self.encode_path.name + ".chapters.mp4")
        try:
            meta.write_text(ffmetadata(self.chapter_times()), encoding="utf-8")
            cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-v", "error"]
            cmd += ["-i", str(self.encode_path), "-f", "ffmetadata", "-i", str(meta)]
            cmd += ["-map", "0", "-map_metadata", "1", "-map_chapters", "1", "-c", "copy"]
            cmd += ["-movflags", "+faststart", "-f", "mp4", str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
            if done.returncode != 0:
                first = (done.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
                raise OSError(f"{self.path}: could not add the chapters ({first}; disk full?)")
            os.replace(out, self.encode_path)
        finally:
            meta.unlink(missing_ok=True)
            out.unlink(missing_ok=True)

    def _encoder_failed(self, exc: OSError) -> OSError:
        """One line for an encoder that stopped (imageio-ffmpeg's message carries the whole
        ffmpeg command and its log over many lines)."""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return OSError(
            f"{self.path}: the encoder stopped after {self.frames_written} frames ({first}; "
            "disk full?); nothing was written at the target"
        )

    def _verify(self):
        """The MP4 holds every frame written: its packets are counted by the bundled ffmpeg
        (stream copy, no decoding: 0.16 s for 500 frames at 720p). A truncated file, as a
        full disk leaves, counts fewer."""
        import subprocess

        import imageio_ffmpeg

        if not self.encode_path.is_file() or self.encode_path.stat().st_size == 0:
            raise OSError(f"{self.path}: the encoder wrote nothing (disk full?)")
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-i", str(self.encode_path)]
        cmd += ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
        out = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        counts = [
            line.split("frame=")[1].split()[0]
            for line in out.stderr.splitlines()
            if "frame=" in line
        ]
        found = int(counts[-1]) if counts and counts[-1].isdigit() else 0
        if out.returncode != 0 or found != self.frames_written:
            raise OSError(
                f"{self.path}: the encoded file holds {found} of {self.frames_written} frames "
                "(disk full, or the encoder failed); nothing was written at the target"
            )

    def _cancel(self):
        if self._gen is not None:
            gen, self._gen = self._gen, None
            try:
                gen.close()
            except Exception:
                pass


class HtmlWriter(Mp4Writer):
    """The interactive player (:mod:`scenes.player`): an H.264 movie, as :class:`Mp4Writer`
    encodes it, inside one self-contained HTML page with play, pause, frame steps, a slider
    over the frames, the training step of each frame and a button per chapter."""

    extension = ".html"
    mp4_chapters = False  # the player's buttons show them
    chapter_track = False

    def __init__(self, path, fps=30, **options):
        super().__init__(path, fps, **options)
        self.encode_path = self.tmp_path.with_suffix(".mp4")
        self.html: str | None = None

    def _verify(self):
        from .player import player_html, player_page

        super()._verify()  # every frame is in the MP4
        try:
            height, width = self.size
            steps = self.steps if self.steps and len(self.steps) == self.frames_written else None
            fragment = player_html(
                self.encode_path.read_bytes(),
                fps=self.fps,
                steps=steps or list(range(self.frames_written)),
                chapters=self.chapters,
                width=width,
                height=height,
            )
            self.html = fragment
            self.tmp_path.write_text(player_page(fragment, self.path.stem), encoding="utf-8")
        finally:
            self.encode_path.unlink(missing_ok=True)

    def _cancel(self):
        super()._cancel()
        self.encode_path.unlink(missing_ok=True)


#: The highest frame rate a GIF can show: its delays are whole centiseconds, and players show a
#: delay under 2 cs as 10 cs, so above 50 fps a GIF would play slower, not faster.
GIF_MAX_FPS = 50


def gif_delays(n: int, fps: float) -> list[int]:
    """Centisecond delays of ``n`` GIF frames at ``fps`` whose total is the movie's length.

    GIF delays are whole centiseconds, so 30 fps cannot be stored as one delay (30 ms made
    GIFs 11% fast). Frame ``k`` ends at ``round(100 * (k + 1) / fps)`` cs and its delay is
    the difference from the previous end: 3, 4, 3, 3, 4, 3, ... at 30 fps. Every frame
    then starts within half a centisecond of its ideal time, and the total is
    ``round(100 * n / fps)`` cs. ``fps`` must be at most :data:`GIF_MAX_FPS`.
    """
    if not 0 < fps <= GIF_MAX_FPS:
        raise ValueError(
            f"a GIF plays at most {GIF_MAX_FPS} fps (its delays are centiseconds, and players "
            f"slow delays under 2 cs to 10 cs), got --fps {fps:g}; use a lower fps or an MP4"
        )
    ends = np.rint(np.arange(1, n + 1) * (100 / fps)).astype(np.int64)
    return np.diff(ends, prepend=0).tolist()


class GifWriter(Writer):
    """Looping GIF through Pillow; each frame is quantised to a 256-colour palette as it arrives
    (one byte per pixel held until the file is written).

    The GIF lasts as long as the MP4 of the same frames (within half a centisecond): frame
    delays alternate so that their running total follows the movie clock
    (:func:`gif_delays`). A GIF cannot play faster than :data:`GIF_MAX_FPS` fps; a higher
    ``fps`` is refused with a ValueError when the writer is made, before any work.
    """

    extension = ".gif"

    def __init__(self, path, fps=30, *, loop: int = 0, **options):
        super().__init__(path, fps, **options)
        gif_delays(1, self.fps)  # refuse an fps a GIF cannot play, now
        self.loop = loop
        self._frames: list = []

    def _write(self, frame):
        from PIL import Image

        image = Image.frombuffer(
            "RGBA" if self.channels == 4 else "RGB", frame.shape[1::-1], frame, "raw"
        )
        if self.channels == 4:
            image = image.convert("RGB")
        self._frames.append(
            image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        )

    def _finish(self):
        first, *rest = self._frames
        # Pillow takes milliseconds and stores them as centiseconds (exact for multiples of 10);
        # identical consecutive frames (a held last frame) are merged into one longer delay
        delays = [10 * d for d in gif_delays(len(self._frames), self.fps)]
        first.save(
            self.tmp_path,
            format="GIF",
            save_all=True,
            append_images=rest,
            duration=delays if rest else delays[0],
            loop=self.loop,
            disposal=1,
            optimize=False,
        )
        self._frames.clear()

    def _cancel(self):
        self._frames.clear()


class PngWriter(Writer):
    """A single PNG still."""

    extension = ".png"
    animated = False

    def _write(self, frame):
        if self.frames_written:
            raise ValueError(
                f"{self.path}: a PNG holds one frame; render a still, not an animation"
            )
        import imageio.v3 as iio

        iio.imwrite(self.tmp_path, np.ascontiguousarray(frame[:, :, :3]), extension=".png")


WRITERS: dict[str, Callable[..., Writer]] = {
    w.extension: w for w in (Mp4Writer, GifWriter, PngWriter, HtmlWriter)
}


def check_output_path(path: str | os.PathLike) -> Path:
    """Validate an output path before any work: known extension, creatable writable folder."""
    path = Path(path)
    if path.suffix.lower() not in WRITERS:
        raise ValueError(
            f"unknown output extension {path.suffix or '(none)'!r} in {path}; use one of "
            f"{', '.join(WRITERS)}"
        )
    return check_writable(path, "output")


def check_writable(path: Path, what: str) -> Path:
    """``path``'s folder exists (created if need be) and takes a new file, and ``path`` is
    not a directory (:func:`refuses_files`); else ValueError naming the ``what`` path
    ("output", "handout") as given."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create {what} folder {folder}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ValueError(f"{what} path {path} is a directory")
    refused = refuses_files(folder)
    if refused:
        raise ValueError(f"cannot write {what} {path}: its folder {folder} {refused}")
    return path


def refuses_files(folder: Path) -> str:
    """Why the existing folder ``folder`` takes no new file ("" where it does), asked by
    creating and removing an empty file in it, as a writer will: permission bits do not
    tell (root may write anywhere they say, yet ``/proc`` takes no file, nor does a
    read-only mount)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=folder)
    except OSError as exc:
        return f"takes no new file ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return ""


def output_path(
    out: str | os.PathLike | None, fmt: str | None, stem: str, folder: str = "outputs"
) -> Path:
    """The output file: ``out`` if given (its extension is the format), else
    ``<folder>/<stem>.<fmt>`` (``fmt`` default mp4). :func:`open_writer` validates it."""
    if out is not None:
        path = Path(out)
        if fmt is not None and path.suffix.lower() != f".{fmt}":
            raise ValueError(
                f"--format {fmt} disagrees with the extension of {path}; give one of them"
            )
    else:
        path = Path(folder) / f"{stem}.{fmt or 'mp4'}"
    return path


def open_writer(
    path: str | os.PathLike, fps: float = 30, *, quality: str | None = None, **options
) -> Writer:
    """The writer registered for ``path``'s extension (``.mp4``, ``.gif``, ``.png``).

    ``quality`` names a preset of that writer's encoder settings (``draft``, ``final``,
    ``notebook``); ``options`` override them. Settings a format does not have (``crf`` for
    a GIF) are ignored, so one command line serves every format.
    """
    path = check_output_path(path)
    cls = WRITERS[path.suffix.lower()]
    anywhere = {f.name for w in WRITERS.values() if w.Options for f in fields(w.Options)}
    unknown = set(options) - anywhere
    if unknown:
        raise TypeError(
            f"unknown writer options {sorted(unknown)}; writers take {sorted(anywhere)}"
        )
    settings = {**cls.QUALITY.get(quality or "", {}), **options}
    known = {f.name for f in fields(cls.Options)} if cls.Options else set()
    return cls(path, fps, **{k: v for k, v in settings.items() if k in known})
