"""What a media file holds, read from ``ffmpeg -i`` alone (no ffprobe needed).

imageio-ffmpeg ships one static ffmpeg binary and no ffprobe, so probing
parses the stream summary ffmpeg prints for its input (``ffmpeg -hide_banner
-i FILE`` with no output), and exact counts come from a ``-f null`` pass
with ``-progress``. The binary is ``settings.FFMPEG_PATH``.

Sources come from users: ffmpeg reads them through the ``file`` protocol only
(so a playlist cannot make it fetch URLs) and a source's container must be
one of the plain media formats in ALLOWED_FORMATS (no HLS, concat or other
formats that open further files).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

PROBE_TIMEOUT_SECONDS = 60
MEASURE_TIMEOUT_SECONDS = 600

# Demuxers a source may be read with (ffmpeg's names, first of each list).
VIDEO_FORMATS = {"mov", "matroska", "avi", "mpegts", "mpeg", "flv", "mxf", "ivf", "h264",
                 "hevc", "gif"}
AUDIO_FORMATS = {"wav", "mp3", "flac", "ogg", "aac", "aiff", "caf", "w64", "mov", "matroska",
                 "mpegts"}
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe",
                 "targa", "exr_pipe", "dpx_pipe", "jpegxl_pipe"}
ALLOWED_FORMATS = {"video": VIDEO_FORMATS, "audio": AUDIO_FORMATS, "image": IMAGE_FORMATS}

_INPUT = re.compile(r"^Input #0, (.+), from '", re.MULTILINE)
_DURATION = re.compile(r"^\s*Duration: (N/A|(\d+):(\d{2}):(\d{2}(?:\.\d+)?))"
                       r"(?:, start: (-?[\d.]+))?(?:, bitrate: (N/A|\d+) kb/s)?", re.MULTILINE)
_STREAM = re.compile(r"^\s*Stream #0:(\d+)[^:]*: (Video|Audio|Subtitle|Data|Attachment): (.*)$",
                     re.MULTILINE)
_SIZE = re.compile(r"(?<![\w.])(\d{1,5})x(\d{1,5})(?![\w])")
_RATE = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_HZ = re.compile(r"(\d+) Hz")
_KBS = re.compile(r"(\d+) kb/s")


class MediaError(Exception):
    """ffmpeg cannot read the file, or it is not what it should be; the message says why."""


@dataclass
class Stream:
    index: int
    kind: str  # "video", "audio", "subtitle", ...
    codec: str
    profile: str = ""
    pix_fmt: str = ""
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: str = ""
    bitrate: int | None = None  # bits per second, when the container says


@dataclass
class MediaInfo:
    format: str  # ffmpeg's demuxer names, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration: float | None  # seconds; None for stills and unknown lengths
    start: float = 0.0
    bitrate: int | None = None
    streams: list[Stream] = field(default_factory=list)
    duration_estimated: bool = False  # from the bitrate (mp3 without a header), inexact

    @property
    def demuxer(self) -> str:
        """The first demuxer name: what ``-f`` takes to read the file the same way again."""
        return self.format.split(",")[0]

    @property
    def video(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "video"), None)

    @property
    def audio(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "audio"), None)

    @property
    def is_image(self) -> bool:
        return self.demuxer in IMAGE_FORMATS


def ffmpeg() -> str:
    return str(settings.FFMPEG_PATH)


def file_input(path) -> str:
    """An ffmpeg input/output name that is always read as a local file.

    ``file:`` stops a name such as ``a:b.mp4`` from being read as protocol "a".
    """
    return f"file:{Path(path)}"


def _number(text: str, kilo: str = "") -> float:
    return float(text) * (1000 if kilo else 1)


def _split_top(text: str) -> list[str]:
    """Split at ", " outside parentheses: "yuv420p(tv, bt709), 320x240" -> 2 parts."""
    parts, depth, current = [], 0, []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if depth == 0 and text.startswith(", ", i):
            parts.append("".join(current))
            current = []
            i += 2
            continue
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _stream(index: int, kind: str, rest: str) -> Stream:
    parts = _split_top(rest)
    head = parts[0] if parts else ""
    codec = head.split(" ", 1)[0]
    profile = ""
    match = re.match(r"\S+ \(([^)]*)\)", head)
    if match and "/" not in match.group(1):
        profile = match.group(1)
    stream = Stream(index=index, kind=kind.lower(), codec=codec, profile=profile)
    if stream.kind == "video":
        if len(parts) > 1 and not _SIZE.search(parts[1]):
            stream.pix_fmt = parts[1].split("(", 1)[0]
        for part in parts[1:]:
            if stream.width is None and (size := _SIZE.search(part)):
                stream.width, stream.height = int(size.group(1)), int(size.group(2))
        rates = {unit: _number(value, kilo) for value, kilo, unit in _RATE.findall(rest)}
        stream.fps = rates.get("fps") or rates.get("tbr")
    elif stream.kind == "audio":
        if hz := _HZ.search(rest):
            stream.sample_rate = int(hz.group(1))
        for i, part in enumerate(parts):
            if part.endswith(" Hz") and i + 1 < len(parts):
                stream.channels = parts[i + 1]
    if kbs := _KBS.search(rest):
        stream.bitrate = int(kbs.group(1)) * 1000
    return stream


def parse_probe(text: str) -> MediaInfo:
    """The MediaInfo of ffmpeg's summary of input #0; MediaError if there is none."""
    match = _INPUT.search(text)
    if not match:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        useful = [line for line in lines if "output file must be specified" not in line]
        raise MediaError(useful[-1] if useful else "ffmpeg cannot read the file")
    info = MediaInfo(format=match.group(1), duration=None)
    if (duration := _DURATION.search(text, match.end())) and duration.group(1) != "N/A":
        hh, mm, ss = duration.group(2, 3, 4)
        info.duration = int(hh) * 3600 + int(mm) * 60 + float(ss)
    if duration and duration.group(5):
        info.start = float(duration.group(5))
    if duration and duration.group(6) and duration.group(6) != "N/A":
        info.bitrate = int(duration.group(6)) * 1000
    info.duration_estimated = "Estimating duration from bitrate" in text
    for index, kind, rest in _STREAM.findall(text):
        info.streams.append(_stream(int(index), kind, rest))
    return info


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(f"ffmpeg took more than {timeout:g} s to read the file") from None
    except OSError as exc:
        raise MediaError(f"cannot run ffmpeg ({settings.FFMPEG_PATH}): {exc}") from None


def probe(path, timeout: float = PROBE_TIMEOUT_SECONDS, demuxer: str | None = None) -> MediaInfo:
    """What ``path`` holds. MediaError when ffmpeg cannot read it."""
    argv = [ffmpeg(), "-hide_banner", "-nostdin", "-protocol_whitelist", "file"]
    if demuxer:
        argv += ["-f", demuxer]
    argv += ["-i", file_input(path)]
    done = _run(argv, timeout)
    return parse_probe(done.stderr.decode("utf-8", "replace"))


def check_source(info: MediaInfo, kind: str) -> None:
    """MediaError unless ``info`` is a plain ``kind`` file ("video", "image", "audio")."""
    allowed = ALLOWED_FORMATS[kind]
    if info.demuxer not in allowed:
        raise MediaError(f"a {info.demuxer} file is not accepted as {kind}; use a common "
                         f"{kind} format")
    if kind in ("video", "image") and (info.video is None or not info.video.width):
        raise MediaError(f"it has no picture to use as {kind}")
    if kind == "audio" and info.audio is None:
        raise MediaError("it has no audio stream")
    if kind == "video" and not info.duration:
        raise MediaError("its length is unknown")


@dataclass
class Measured:
    frames: int
    seconds: float


def measure(path, stream: str = "v:0", timeout: float = MEASURE_TIMEOUT_SECONDS,
            demuxer: str | None = None) -> Measured:
    """Exact packet count and end time of one stream, by reading it through (no decoding)."""
    argv = [ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-protocol_whitelist", "file"]
    if demuxer:
        argv += ["-f", demuxer]
    argv += ["-i", file_input(path), "-map", f"0:{stream}", "-c", "copy", "-f", "null",
             "-progress", "pipe:1", "-nostats", "-"]
    done = _run(argv, timeout)
    values: dict[str, str] = {}
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    if done.returncode != 0 or "progress" not in values:
        error = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MediaError(error[-1] if error else f"ffmpeg exited with {done.returncode}")
    micros = values.get("out_time_us", "0")
    seconds = int(micros) / 1e6 if micros.lstrip("-").isdigit() else 0.0
    frames = values.get("frame", "0")
    return Measured(frames=int(frames) if frames.isdigit() else 0, seconds=max(0.0, seconds))
