"""Poster frames of completed videos: one JPEG per job, kept in the database.

A poster frame is nothing the user needs before the job is COMPLETED, so no
render waits for it: it is a follow-up (jobs.node.followups, kind
``thumbnail``, done before the slower preview video), made by a render node
from the published output (a frame 10 % into the video, at most 10 s in).
Once it is stored, ``has_thumbnail`` is set and a ``thumbnail`` event updates
open pages (jobs.lifecycle.thumbnail_ready). The JPEG lives in
JobThumbnail, so the web server can show it whichever machine rendered, and
nothing but renders lands in Dropbox; retention deletes it with the job.
API clients get a signed ``thumbnail_url`` (valid an hour, like downloads);
the dashboard uses the session.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from django.utils import timezone

from jobs import lifecycle, media
from jobs.models import JobThumbnail
from jobs.node import interrupt
from jobs.node.followups import Run, published_output

log = logging.getLogger(__name__)

MAX_WIDTH = 480
TIMEOUT_SECONDS = 30
NOT_VIDEO = {".zip"}  # zipped image sequences


def poster_time(duration: float | None) -> float:
    return 0.0 if not duration else min(duration * 0.1, 10.0)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def _size(video) -> tuple[int, int]:
    width = _even(min(MAX_WIDTH, video.width))
    return width, _even(width * video.height / video.width)


def _jpeg(path: Path, width: int, height: int, at: float | None = None) -> bytes | None:
    """One frame of ``path`` (at ``at`` seconds of a video) as a JPEG of that size."""
    seek = ["-ss", f"{at:.3f}"] if at is not None else []
    argv = [media.ffmpeg(), "-hide_banner", "-nostdin", "-v", "error",
            "-protocol_whitelist", "file", *seek, "-i", media.file_input(path),
            "-map", "0:v:0", "-frames:v", "1", "-vf", f"scale={width}:{height},setsar=1",
            "-c:v", "mjpeg", "-q:v", "4", "-f", "image2pipe", "pipe:1"]
    done = interrupt.run(argv, timeout=TIMEOUT_SECONDS)
    if done.returncode == 0 and done.stdout.startswith(b"\xff\xd8"):
        return done.stdout
    return None


def poster_frame(path: Path) -> tuple[bytes, int, int] | None:
    """(JPEG bytes, width, height) of a frame of the video ``path``; None if it has none."""
    info = media.probe(path, timeout=TIMEOUT_SECONDS)
    video = info.video
    if video is None or not video.width or not video.height or info.is_image:
        return None
    width, height = _size(video)
    for at in (poster_time(info.duration), 0.0):
        if jpeg := _jpeg(path, width, height, at):
            return jpeg, width, height
    return None


def still(path: Path) -> tuple[bytes, int, int] | None:
    """(JPEG bytes, width, height) of the image ``path`` (a frame of a sequence), small."""
    info = media.probe(path, timeout=TIMEOUT_SECONDS)
    video = info.video
    if video is None or not video.width or not video.height:
        return None
    width, height = _size(video)
    jpeg = _jpeg(path, width, height)
    return (jpeg, width, height) if jpeg else None


def grab(job, path: Path) -> tuple[bytes, int, int] | None:
    """A poster frame of ``job``'s video ``path``, or None; never raises (a video
    without a usable frame just has no poster)."""
    if Path(path).suffix.lower() in NOT_VIDEO:
        return None
    try:
        return poster_frame(Path(path))
    except (media.MediaError, OSError, subprocess.TimeoutExpired) as exc:
        log.warning("no thumbnail for job %s: %s", job.pk, exc)
        return None


def capture(job, path: Path) -> bool:
    """Store a poster frame of ``job``'s output ``path``; True if there is one now."""
    made = grab(job, path)
    if made is None:
        return False
    jpeg, width, height = made
    JobThumbnail.objects.update_or_create(job_id=job.pk, defaults={
        "jpeg": jpeg, "width": width, "height": height, "created_at": timezone.now()})
    return True


def wanted(job, output: Path) -> bool:
    """A completed video gets a poster frame (zipped image sequences do not)."""
    return Path(output).suffix.lower() not in NOT_VIDEO


def make(run: Run) -> str:
    """The follow-up: store the poster frame of ``run.job``'s published output."""
    job = run.job
    source = published_output(job, "No poster frame")
    run.check()
    if not capture(job, source):
        return "No poster frame: the output has no usable picture"
    if not lifecycle.thumbnail_ready(job.pk):
        return "Poster frame stored, but the job is no longer completed"
    return "Poster frame ready"
