"""Test media made with the real ffmpeg (test patterns, sine tones, stills) and
measurements of what a render wrote: frame colours, tone loudness, x264 settings.
"""

from __future__ import annotations

import array
import math
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import imageio_ffmpeg

from jobs.models import Job
from jobs.node.engines import get_engine
from jobs.node.procs import RenderProcess
from jobs.submission.timeline import clean_timeline

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str, timeout: float = 120) -> bytes:
    done = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                          capture_output=True, timeout=timeout)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def _aged(path: Path) -> Path:
    stamp = time.time() - 3600
    os.utime(path, (stamp, stamp))
    return path


def still(path: Path, color: str = "red", size: str = "320x180") -> Path:
    """A one-colour PNG (``color`` is an ffmpeg colour name or 0xRRGGBB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"color=c={color}:s={size}", "-frames:v", "1", str(path))
    return _aged(path)


def pattern(path: Path, seconds: float = 1.0, size: str = "320x180", fps: int = 25) -> Path:
    """A moving test pattern (testsrc2), H.264 in MP4, no sound."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}:d={seconds}", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return _aged(path)


def noise(path: Path, seconds: float = 1.0, size: str = "640x360", fps: int = 10) -> Path:
    """Random noise, losslessly coded: nothing compresses it, so encoders hit their rate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"nullsrc=s={size}:r={fps}:d={seconds}", "-vf",
           "geq=lum='random(1)*255':cb='random(2)*255':cr='random(3)*255'",
           "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv444p",
           str(path))
    return _aged(path)


def tone(path: Path, freq: int, seconds: float) -> Path:
    """A sine tone (WAV, MP3 or whatever the extension says)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}:sample_rate=48000",
           str(path))
    return _aged(path)


def frame_colours(path: Path, size: int = 4) -> list[tuple[float, float, float]]:
    """The mean RGB of every frame (each scaled down to ``size`` x ``size``)."""
    raw = ffmpeg("-i", str(path), "-map", "0:v:0", "-vf", f"scale={size}:{size}",
                 "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
    per_frame = size * size * 3
    colours = []
    for start in range(0, len(raw), per_frame):
        frame = raw[start:start + per_frame]
        colours.append(tuple(sum(frame[c::3]) / (size * size) for c in range(3)))
    return colours


def samples(path: Path, rate: int = 8000) -> array.array:
    """The audio as mono signed 16-bit samples at ``rate``."""
    raw = ffmpeg("-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
                 "-f", "s16le", "-")
    data = array.array("h")
    data.frombytes(raw)
    return data


def tone_level(data: array.array, freq: float, start: float, end: float,
               rate: int = 8000) -> float:
    """Amplitude (0..1) of ``freq`` between ``start`` and ``end`` seconds (Goertzel)."""
    chunk = data[int(start * rate):int(end * rate)]
    if not chunk:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for value in chunk:
        s1, s2 = value / 32768 + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / len(chunk)


def x264_settings(path: Path) -> dict[str, str]:
    """The encoder settings x264 writes into its stream (crf, subme, ref, ...)."""
    text = Path(path).read_bytes()[:2_000_000].decode("latin-1")
    match = re.search(r"x264 - core .*? options: ([^\x00]*)", text)
    assert match, "no x264 settings in the file"
    return dict(part.split("=", 1) for part in match.group(1).split() if "=" in part)


def timeline_job(timeline: dict, preset: dict | None = None) -> Job:
    return Job(id=uuid.uuid4(), engine="ffmpeg", name="t", config=clean_timeline(timeline),
               preset=preset or {})


def render(job: Job, workdir: Path):
    """Render like the worker does; returns (output, progress parser, phases seen)."""
    engine = get_engine("ffmpeg")
    command = engine.command(job, workdir)
    progress = engine.progress(job)
    phases = [progress.phase]
    with RenderProcess(command.argv, command.env, command.cwd) as proc:
        while (code := proc.poll()) is None:
            for line in proc.read(0.1):
                progress.feed(line)
                if progress.phase != phases[-1]:
                    phases.append(progress.phase)
    assert code == 0, progress.errors
    return engine.find_output(job, workdir), progress, phases
