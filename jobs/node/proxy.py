"""A small H.264 of a completed video, so that the job page can play any output.

After Effects often writes lossless files (AVI, ProRes) that browsers cannot
play, and a 4K master is no file to stream to a phone. After a video job
completes, a render node (jobs.node.followups, never the render itself)
encodes its published output to a small H.264 MP4 (540 lines, ``faststart``)
at low priority, and stores it in JobProxy.

The bytes go to the database, like poster frames, not to Dropbox (which
should sync renders only) nor to a folder of the node (the web server may be
another machine). PROXY_MAX_BYTES caps one proxy: the bitrate is chosen so
that the whole video fits; a video too long to fit at a watchable bitrate
gets a proxy of its beginning (``partial``). 0 turns proxies off.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from django.conf import settings
from django.utils import timezone

from jobs import lifecycle, media
from jobs.models import Job, JobProxy
from jobs.node.engines.thumbnails import NOT_VIDEO
from jobs.node.followups import Run, published_output
from jobs.node.procs import kill_tree
from jobs.submission.nexrender_spec import is_image_sequence

log = logging.getLogger(__name__)

SHORT_SIDE = 540
SMALL_SHORT_SIDE = 360  # for low bitrates: fewer pixels, fewer blocks
SMALL_BELOW_BPS = 500_000
MAX_VIDEO_BPS = 1_500_000
MIN_VIDEO_BPS = 160_000
AUDIO_BPS = 96_000
# Container overhead and the encoder overshooting its target now and then.
HEADROOM = 0.85
ENCODE_TIMEOUT_SECONDS = 1800
POLL_SECONDS = 0.2


def wanted(job: Job, output: Path) -> bool:
    """Video outputs get a proxy (not zipped image sequences or stills)."""
    if settings.PROXY_MAX_BYTES <= 0 or Path(output).suffix.lower() in NOT_VIDEO:
        return False
    template = (job.config or {}).get("template") if isinstance(job.config, dict) else None
    return not (isinstance(template, dict) and is_image_sequence(template))


def plan(duration: float | None, has_audio: bool, cap: int) -> tuple[int, int, float | None]:
    """(video bits per second, short side, seconds to keep or None for all) for a
    proxy of a ``duration``-second video within ``cap`` bytes."""
    audio = AUDIO_BPS if has_audio else 0
    if not duration or duration <= 0:
        return MAX_VIDEO_BPS, SHORT_SIDE, None
    budget = cap * 8 * HEADROOM / duration - audio
    if budget >= MIN_VIDEO_BPS:
        video = int(min(MAX_VIDEO_BPS, budget))
        return video, (SHORT_SIDE if video >= SMALL_BELOW_BPS else SMALL_SHORT_SIDE), None
    # Too long for the cap at a bitrate worth watching: its beginning.
    keep = cap * 8 * HEADROOM / (MIN_VIDEO_BPS + audio)
    return MIN_VIDEO_BPS, SMALL_SHORT_SIDE, math.floor(keep)


def _size(width: int, height: int, short: int) -> tuple[int, int]:
    def even(value: float) -> int:
        return max(2, 2 * round(value / 2))

    if min(width, height) <= short:
        return even(width), even(height)
    scale = short / min(width, height)
    return even(width * scale), even(height * scale)


def _lower_priority(pid: int) -> None:
    """The proxy must not slow down the next render on this node."""
    with contextlib.suppress(psutil.Error, OSError, AttributeError):
        process = psutil.Process(pid)
        process.nice(psutil.IDLE_PRIORITY_CLASS if sys.platform == "win32" else 19)


def encode(run: Run, source: Path, target: Path, info: media.MediaInfo, video_bps: int,
           short: int, keep: float | None) -> None:
    """Encode ``source`` into ``target``; stops (Interrupted) when the node does."""
    video = info.video
    width, height = _size(video.width, video.height, short)
    argv = [media.ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-protocol_whitelist", "file", "-i", media.file_input(source), "-map", "0:v:0"]
    if info.audio is not None:
        argv += ["-map", "0:a:0", "-c:a", "aac", "-b:a", str(AUDIO_BPS), "-ac", "2"]
    if keep is not None:
        argv += ["-t", str(keep)]
    argv += ["-vf", f"scale={width}:{height}:flags=bicubic,setsar=1,format=yuv420p",
             "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main",
             "-b:v", str(video_bps), "-maxrate", str(int(video_bps * 1.2)),
             "-bufsize", str(video_bps * 2), "-movflags", "+faststart",
             media.file_input(target)]
    extra = {"creationflags": subprocess.CREATE_NO_WINDOW} if sys.platform == "win32" else {}
    # Errors go to a file, not a pipe read after the exit: a few KB of them (the
    # pipe holds 4 KB on Windows) would block ffmpeg until the timeout.
    with tempfile.TemporaryFile() as errors_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errors_file, **extra)
        _lower_priority(proc.pid)
        deadline = time.monotonic() + ENCODE_TIMEOUT_SECONDS
        while proc.poll() is None:
            if run.stop.is_set() or time.monotonic() > deadline:
                kill_tree(proc.pid)
                proc.wait(timeout=10)
                run.check()
                raise RuntimeError(f"encoding the preview took longer than "
                                   f"{ENCODE_TIMEOUT_SECONDS} s")
            time.sleep(POLL_SECONDS)
        errors = _last_lines(errors_file)
    if proc.returncode != 0 or not target.is_file():
        last = errors or f"exit code {proc.returncode}"
        raise RuntimeError(f"ffmpeg could not encode the preview: {last}")


def _last_lines(file, count: int = 3, window: int = 8192) -> str:
    """The last ``count`` lines of what ffmpeg wrote to ``file`` (its end only is read)."""
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - window))
    lines = [line.strip() for line in file.read().decode("utf-8", "replace").splitlines()]
    return " | ".join([line for line in lines if line][-count:])


def make(run: Run) -> str:
    """The follow-up: encode and store ``run.job``'s preview video; what was done, in words."""
    job = run.job
    cap = settings.PROXY_MAX_BYTES
    source = published_output(job, "No preview video")
    try:
        info = media.probe(source)
    except media.MediaError as exc:
        return f"No preview video: ffmpeg cannot read the output ({exc})"
    if info.video is None or not info.video.width or info.is_image:
        return "No preview video: the output has no moving picture"
    workdir = Path(settings.RENDER_TEMP_DIR) / f"proxy-{job.pk.hex}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        video_bps, short, keep = plan(info.duration, info.audio is not None, cap)
        target = workdir / "preview.mp4"
        for _ in range(3):  # the encoder may overshoot: lower the bitrate and go again
            encode(run, source, target, info, video_bps, short, keep)
            size = target.stat().st_size
            if size <= cap:
                break
            video_bps = max(MIN_VIDEO_BPS // 2, int(video_bps * cap / size * 0.8))
        else:
            raise RuntimeError(f"the preview video stays larger than PROXY_MAX_BYTES ({cap})")
        made = media.probe(target)
        data = target.read_bytes()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    duration = made.duration if made.duration is not None else info.duration
    JobProxy.objects.update_or_create(job_id=job.pk, defaults={
        "mp4": data, "size": len(data), "width": made.video.width, "height": made.video.height,
        "duration": duration, "partial": keep is not None, "created_at": timezone.now()})
    lines = min(made.video.width, made.video.height)
    what = (f"Preview video ready ({lines}p, {len(data) / 1e6:.1f} MB"
            + (f", the first {keep:.0f} s" if keep is not None else "") + ")")
    lifecycle.record(job.pk, "proxy", message=what)
    return what
