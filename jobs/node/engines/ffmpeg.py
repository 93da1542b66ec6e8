"""Timeline renders with ffmpeg (seed 002), and the preset transcode of AE renders.

``command()`` fetches remote sources into the render's work folder, measures
every source, resolves the duration (jobs.submission.timeline) and builds one ffmpeg
command: backgrounds scaled to the canvas, stills looped, crossfaded with
``xfade``; audio tracks padded or cut to their measured length, faded and
concatenated, then padded or cut to the duration. Everything is planned in
whole frames so that the output has exactly ``duration x fps`` frames.

ffmpeg runs like any render (jobs.node.worker): under the guard, watched for
stalls, cancelled by killing its tree; ``-progress pipe:1`` feeds
jobs.node.progress.FfmpegProgress. A background's own sound is not used.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.error import URLError

from django.conf import settings

from jobs import media
from jobs.models import Phase
from jobs.node.engines.base import Engine, RenderCommand, RenderError, base_env, source_file
from jobs.node.interrupt import Interrupted, checkpoint
from jobs.node.progress import FfmpegProgress
from jobs.submission import presets
from jobs.submission.paths import PathError
from jobs.submission.timeline import (
    check_limits,
    check_url,
    is_url,
    resolve_duration,
    source_suffix,
    track_kind,
)

SAMPLE_RATE = 48000
DOWNLOAD_CHUNK = 1024 * 1024
# Common NTSC rates, written exactly.
NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001),
        59.94: Fraction(60000, 1001)}


def ffmpeg_argv(*args: str) -> list[str]:
    """ffmpeg with the options every run here shares: quiet, machine-readable progress."""
    return [media.ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-progress", "pipe:1", "-nostats", *args]


def exact_fps(fps: float) -> Fraction:
    rounded = round(fps, 3)
    if rounded in NTSC:
        return NTSC[rounded]
    return Fraction(fps).limit_denominator(1001)


def seconds(value: float | Fraction) -> str:
    return f"{float(value):.6f}"


# --- Sources ----------------------------------------------------------------------


@dataclass
class Source:
    key: str  # "backgrounds" or "audio"
    index: int
    track: dict
    path: Path
    info: media.MediaInfo
    length: float | None  # seconds; None for stills

    @property
    def where(self) -> str:
        return f"timeline.{self.key}.{self.index}.src"


def download(url: str, target: Path) -> Path:
    """Fetch ``url`` into ``target`` (size cap, overall timeout, allowed hosts only,
    redirects included). RenderError when it cannot; stops at the render's
    checkpoints (jobs.node.interrupt) while it downloads."""
    limit = settings.TIMELINE_DOWNLOAD_MAX_BYTES
    timeout = settings.TIMELINE_DOWNLOAD_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout

    class AllowedRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            try:
                check_url(newurl)
            except PathError as exc:
                raise RenderError(f"{url} redirects elsewhere: {exc.message}",
                                  permanent=True) from None
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(AllowedRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "ae-render-manager"})
    try:
        with opener.open(request, timeout=min(timeout, 30)) as response, \
                open(target, "wb") as out:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise RenderError(f"{url} is {int(declared)} bytes; the limit is {limit} "
                                  "(TIMELINE_DOWNLOAD_MAX_BYTES)", permanent=True)
            received = 0
            while chunk := response.read(DOWNLOAD_CHUNK):
                received += len(chunk)
                if received > limit:
                    raise RenderError(f"{url} is larger than {limit} bytes "
                                      "(TIMELINE_DOWNLOAD_MAX_BYTES)", permanent=True)
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise RenderError(f"Downloading {url} took longer than {timeout:g} s "
                                      "(TIMELINE_DOWNLOAD_TIMEOUT_SECONDS)")
                checkpoint()
    except (RenderError, Interrupted):
        target.unlink(missing_ok=True)
        raise
    except (URLError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise RenderError(f"Cannot download {url}: {reason}") from None
    return target


def gather_sources(job, workdir: Path) -> list[Source]:
    """Every track's file (downloaded if remote), measured and checked."""
    timeline = job.config or {}
    sources = []
    for key in ("backgrounds", "audio"):
        for index, track in enumerate(timeline.get(key) or []):
            src, kind = track["src"], track_kind(key, track)
            where = f"timeline.{key}.{index}.src"
            if is_url(src):
                try:
                    check_url(src)  # the allowed hosts may have changed since submission
                except PathError as exc:
                    raise RenderError(f"{where}: {exc.message}", permanent=True) from None
                suffix = source_suffix(src)
                suffix = suffix if suffix.isascii() and len(suffix) <= 6 else ""
                path = download(src, workdir / f"source-{key}-{index}{suffix}")
            else:
                # The real file on this machine, checked right before ffmpeg reads it.
                path = source_file(src, where)
                if not path.is_file():
                    raise RenderError(f"{where}: the file is not in Dropbox (yet): {src}")
            try:
                info = media.probe(path)
                media.check_source(info, kind)
            except media.MediaError as exc:
                raise RenderError(f"{where}: {src}: {exc}") from None
            length = None
            if kind == "audio":
                length = info.duration
                if info.duration_estimated or not length:
                    try:
                        length = media.measure(path, "a:0", demuxer=info.demuxer).seconds
                    except media.MediaError as exc:
                        raise RenderError(f"{where}: {src}: {exc}") from None
                if not length:
                    raise RenderError(f"{where}: {src}: the audio is empty", permanent=True)
            elif kind == "video":
                length = info.duration
            sources.append(Source(key, index, track, path, info, length))
    return sources


# --- The plan ---------------------------------------------------------------------


@dataclass
class Segment:
    source: Source
    frames: int
    crossfade: int  # frames of fade from the segment before
    start: int = 0  # first frame on the timeline


@dataclass
class AudioPart:
    source: Source
    start: float
    length: float
    fade: float


@dataclass
class Plan:
    width: int
    height: int
    fps: Fraction
    frames: int
    segments: list[Segment] = field(default_factory=list)
    audio: list[AudioPart] = field(default_factory=list)
    encoding: presets.Encoding | None = None

    @property
    def duration(self) -> float:
        return float(self.frames / self.fps)


def plan_backgrounds(sources: list[Source], total: int, fps: Fraction) -> list[Segment]:
    """Frames of each background so that, with the crossfades, they cover ``total``."""
    if not sources:
        return []
    fixed: list[int | None] = []
    for source in sources:
        own = source.track.get("duration")
        if own is None and source.track["type"] == "video":
            own = source.length
        fixed.append(None if own is None else max(1, round(own * fps)))
    fades = [0] + [round(s.track.get("crossfade", 0) * fps) for s in sources[1:]]
    flexible = [i for i, length in enumerate(fixed) if length is None]
    lengths = list(fixed)
    if flexible:
        # Stills without a duration share what the other backgrounds leave.
        left = total + sum(fades) - sum(length for length in fixed if length is not None)
        share, extra = divmod(max(left, len(flexible)), len(flexible))
        for n, i in enumerate(flexible):
            lengths[i] = max(1, share + (1 if n < extra else 0))
    for i in range(1, len(lengths)):
        fades[i] = max(0, min(fades[i], lengths[i - 1] - 1, lengths[i] - 1))
    segments, start = [], 0
    for i, source in enumerate(sources):
        if i:
            start += lengths[i - 1] - fades[i]
        if i and start + fades[i] >= total:
            break  # it would start after the end (or only fade in)
        segments.append(Segment(source, lengths[i], fades[i], start))
    last = segments[-1]
    last.frames = total - last.start  # held, looped or cut to reach the end exactly
    return segments


def plan_audio(sources: list[Source], duration: float) -> list[AudioPart]:
    parts, start = [], 0.0
    for source in sources:
        if start >= duration - 1e-6:
            break
        length = min(source.length, duration - start)
        fade = min(source.track.get("fade", 0.0), length / 2)
        parts.append(AudioPart(source, start, length, fade))
        start += source.length
    return parts


def make_plan(job, sources: list[Source]) -> Plan:
    timeline = job.config or {}
    lengths = {(s.key, s.index): s.length for s in sources if s.length is not None}
    problems = check_limits(timeline, lengths)
    if problems:
        raise RenderError("; ".join(f"timeline.{k}: {v}" for k, v in problems.items()),
                          permanent=True)
    duration = resolve_duration(timeline, lengths)
    if not duration:
        raise RenderError("timeline.duration: cannot be resolved from the tracks",
                          permanent=True)
    fps = exact_fps(timeline.get("fps") or 30)
    frames = max(1, round(duration * fps))
    plan = Plan(width=timeline["width"], height=timeline["height"], fps=fps, frames=frames)
    plan.segments = plan_backgrounds([s for s in sources if s.key == "backgrounds"], frames,
                                     fps)
    plan.audio = plan_audio([s for s in sources if s.key == "audio"], plan.duration)
    plan.encoding = presets.encoding(job.preset or {}, (plan.width, plan.height))
    return plan


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def build_argv(plan: Plan, output: Path) -> list[str]:
    """The ffmpeg command that renders ``plan`` into ``output``."""
    width, height, rate = plan.width, plan.height, _fps_text(plan.fps)
    pix_fmt = "yuv422p10le" if plan.encoding.codec == "prores" else "yuv420p"
    inputs: list[str] = []
    graph: list[str] = []
    n = 0
    for i, segment in enumerate(plan.segments):
        source = segment.source
        span = seconds(Fraction(segment.frames) / plan.fps)
        inputs += ["-protocol_whitelist", "file"]
        if source.info.is_image:
            inputs += ["-f", "image2", "-pattern_type", "none", "-loop", "1",
                       "-framerate", rate, "-t", span]
        else:
            inputs += ["-f", source.info.demuxer]
            if source.length is None or segment.frames / plan.fps > source.length:
                inputs += ["-stream_loop", "-1"]
            # A little more than needed: trim below cuts at the exact frame.
            inputs += ["-t", seconds(Fraction(segment.frames) / plan.fps + 1)]
        inputs += ["-i", media.file_input(source.path)]
        if source.track.get("fit") == "cover":
            fit = (f"scale={width}:{height}:force_original_aspect_ratio=increase,"
                   f"crop={width}:{height}")
        else:
            fit = (f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
                   f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black")
        graph.append(f"[{n}:v:0]{fit},setsar=1,fps={rate},format={pix_fmt},"
                     f"trim=end_frame={segment.frames},setpts=PTS-STARTPTS[b{i}]")
        n += 1
    if not plan.segments:
        inputs += ["-f", "lavfi", "-i",
                   f"color=c=black:s={width}x{height}:r={rate}:d={seconds(plan.duration)}"]
        graph.append(f"[{n}:v:0]format={pix_fmt},setsar=1[b0]")
        n += 1
        video = "b0"
    else:
        video = "b0"
        for i, segment in enumerate(plan.segments[1:], start=1):
            joined = f"x{i}"
            if segment.crossfade:
                graph.append(f"[{video}][b{i}]xfade=transition=fade:"
                             f"duration={seconds(Fraction(segment.crossfade) / plan.fps)}:"
                             f"offset={seconds(Fraction(segment.start) / plan.fps)}[{joined}]")
            else:
                graph.append(f"[{video}][b{i}]concat=n=2:v=1:a=0[{joined}]")
            video = joined
    out_w, out_h = plan.encoding.size
    if (out_w, out_h) != (width, height):
        graph.append(f"[{video}]scale={out_w}:{out_h}:flags=bicubic,setsar=1,"
                     f"format={pix_fmt}[vscaled]")
        video = "vscaled"

    audio_labels = []
    for j, part in enumerate(plan.audio):
        source = part.source
        inputs += ["-protocol_whitelist", "file", "-f", source.info.demuxer,
                   "-t", seconds(part.length + 0.5), "-i", media.file_input(source.path)]
        chain = (f"[{n}:a:0]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:"
                 f"channel_layouts=stereo,apad=whole_dur={seconds(part.length)},"
                 f"atrim=duration={seconds(part.length)},asetpts=PTS-STARTPTS")
        if part.fade > 0:
            fade = seconds(part.fade)
            chain += (f",afade=t=in:st=0:d={fade},"
                      f"afade=t=out:st={seconds(part.length - part.fade)}:d={fade}")
        graph.append(f"{chain}[a{j}]")
        audio_labels.append(f"[a{j}]")
        n += 1
    if audio_labels:
        joined = "".join(audio_labels)
        concat = f"concat=n={len(audio_labels)}:v=0:a=1," if len(audio_labels) > 1 else \
            "anull,"
        graph.append(f"{joined}{concat}apad=whole_dur={seconds(plan.duration)},"
                     f"atrim=duration={seconds(plan.duration)}[aout]")

    argv = ffmpeg_argv(*inputs, "-filter_complex", ";".join(graph), "-map", f"[{video}]")
    if audio_labels:
        argv += ["-map", "[aout]"]
    argv += plan.encoding.args(has_audio=bool(audio_labels))
    argv += ["-r", rate, "-frames:v", str(plan.frames), "-t", seconds(plan.duration),
             media.file_input(output)]
    return argv


# --- The engine ---------------------------------------------------------------------


def output_path(job, workdir: Path) -> Path:
    timeline = job.config or {}
    size = (timeline.get("width") or 16, timeline.get("height") or 16)
    return Path(workdir) / f"output.{presets.encoding(job.preset or {}, size).ext}"


class FfmpegEngine(Engine):
    name = "ffmpeg"

    def command(self, job, workdir: Path) -> RenderCommand:
        workdir = Path(workdir)
        plan = make_plan(job, gather_sources(job, workdir))
        job.ffmpeg_plan = plan  # for progress(): the resolved duration
        argv = build_argv(plan, output_path(job, workdir))
        return RenderCommand(argv=argv, env=base_env(), cwd=workdir)

    def progress(self, job) -> FfmpegProgress:
        plan = getattr(job, "ffmpeg_plan", None)
        if plan is None:
            return FfmpegProgress(duration=None)
        return FfmpegProgress(duration=plan.duration, fps=float(plan.fps))

    def find_output(self, job, workdir: Path) -> Path:
        result = output_path(job, workdir)
        if not result.is_file() or result.stat().st_size == 0:
            raise RenderError(f"ffmpeg wrote no output: {result}")
        return result


# --- Presets for other engines' output ---------------------------------------------------


@dataclass
class Transcode:
    command: RenderCommand
    progress: FfmpegProgress
    output: Path


def transcode(source: Path, workdir: Path, preset: dict) -> Transcode:
    """The command that re-encodes a finished render ``source`` with ``preset``."""
    try:
        info = media.probe(source)
    except media.MediaError as exc:
        raise RenderError(f"Cannot read the render for encoding: {exc}") from None
    video = info.video
    if video is None or not video.width:
        raise RenderError(f"The render has no video to encode: {source.name}", permanent=True)
    encoding = presets.encoding(preset, (video.width, video.height))
    output = Path(workdir) / f"encoded.{encoding.ext}"
    pix_fmt = "yuv422p10le" if encoding.codec == "prores" else "yuv420p"
    width, height = encoding.size
    argv = ffmpeg_argv("-protocol_whitelist", "file", "-i", media.file_input(source),
                       "-map", "0:v:0")
    if info.audio is not None:
        argv += ["-map", "0:a:0"]
    argv += ["-vf", f"scale={width}:{height}:flags=bicubic,setsar=1,format={pix_fmt}",
             *encoding.args(has_audio=info.audio is not None), media.file_input(output)]
    progress = FfmpegProgress(duration=info.duration, fps=video.fps,
                              active_phase=Phase.ENCODING, waiting_phase=Phase.ENCODING)
    return Transcode(RenderCommand(argv=argv, env=base_env(), cwd=Path(workdir)), progress,
                     output)


def needs_transcode(job) -> bool:
    """AE jobs with a preset are encoded after the render; ffmpeg jobs encode directly."""
    return bool(job.preset) and job.engine != FfmpegEngine.name
