"""Output presets, shared by every engine (seeds 001 and 003).

A job's ``preset`` decides the codec, the bitrate or quality and the size of
the published file:

=============  =========================================================
web            H.264, 8 Mbps, 1080p (the short side is 1080 pixels)
social         H.264, 12 Mbps, 1080p
high_quality   Apple ProRes 422, 4K (3840x2160 for a 16:9 picture), .mov
custom         ``codec`` (h264, h265, prores), ``bitrate`` or ``crf`` or
               ``quality``, ``width``/``height`` (one keeps the aspect ratio)
=============  =========================================================

Quality levels ultra/high/medium/low are CRF 18/23/28/32 with the x264
presets slow/medium/fast/veryfast. On ``web`` and ``social`` a quality picks
only the encoder speed (the bitrate stays); on ``custom`` it sets the CRF
too. Without a preset a timeline job is H.264 at quality "high" at its canvas
size, and an After Effects job keeps whatever AE wrote; with one, the AE
output is transcoded after the render (phase "encoding").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobs.submission.errors import InvalidInput, is_int

QUALITY = {"ultra": (18, "slow"), "high": (23, "medium"), "medium": (28, "fast"),
           "low": (32, "veryfast")}
DEFAULT_QUALITY = "high"
CODECS = ("h264", "h265", "prores")
NAMED = {
    "web": {"codec": "h264", "bitrate": 8_000_000, "short_side": 1080},
    "social": {"codec": "h264", "bitrate": 12_000_000, "short_side": 1080},
    "high_quality": {"codec": "prores", "short_side": 2160},
}
NAMES = (*NAMED, "custom")
KEYS = {"web": {"name", "quality"}, "social": {"name", "quality"},
        "high_quality": {"name"},
        "custom": {"name", "codec", "bitrate", "crf", "quality", "width", "height"}}
# The small H.264 a reviewer watches (jobs.node.render): a quick encode of the
# draft render, never larger than 540 lines. Internal: clients cannot ask for
# "max_short_side" (clean_preset refuses it).
PREVIEW = {"name": "custom", "codec": "h264", "quality": "medium", "max_short_side": 540}
MIN_BITRATE, MAX_BITRATE = 100_000, 200_000_000
MIN_SIDE, MAX_SIDE = 16, 4096
MAX_PIXELS = 3840 * 2160
AUDIO_BITRATE = "192k"
# At most 12 digits before the point and 6 after: a longer number is no bitrate, and
# 400 digits would make an infinite float.
_BITRATE = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,6})?)\s*([kKmM]?)\s*(?:bps|b/s)?\s*$", re.ASCII)


def parse_bitrate(value) -> int | None:
    """Bits per second from 8000000, "8M", "800k" or "8 Mbps"; None if unreadable."""
    if is_int(value):
        return value
    if isinstance(value, str) and (match := _BITRATE.match(value)):
        factor = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
        return int(float(match.group(1)) * factor)
    return None


def clean_preset(value) -> dict:
    """The preset of a submission, checked: ``{}`` for none; InvalidInput if wrong.

    Accepts a name (``"web"``) or an object with ``name`` and that preset's fields;
    errors are keyed by field.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise InvalidInput([f"Must be one of {', '.join(NAMES)}, or an object with 'name'."])
    errors: dict[str, list[str]] = {}

    def add(where: str, message: str) -> None:
        errors.setdefault(where, []).append(message)

    name = value.get("name")
    if name not in NAMES:
        raise InvalidInput({"name": [f"Must be one of: {', '.join(NAMES)}."]})
    cleaned: dict = {"name": name}
    for key in value:
        if key not in KEYS[name]:
            allowed = ", ".join(sorted(KEYS[name]))
            add(str(key), f"Not a field of the {name} preset; allowed: {allowed}.")
    if "quality" in value and "quality" in KEYS[name]:
        if not isinstance(value["quality"], str) or value["quality"] not in QUALITY:
            add("quality", f"Must be one of: {', '.join(QUALITY)}.")
        else:
            cleaned["quality"] = value["quality"]
    if name == "custom":
        _clean_custom(value, cleaned, add)
    if errors:
        raise InvalidInput(errors)
    return cleaned


def _clean_custom(value: dict, cleaned: dict, add) -> None:
    codec = value.get("codec", "h264")
    if codec not in CODECS:
        add("codec", f"Must be one of: {', '.join(CODECS)}.")
        return
    cleaned["codec"] = codec
    if "bitrate" in value and "crf" in value:
        add("crf", "Give either a bitrate or a crf, not both.")
    if codec == "prores":
        for key in ("bitrate", "crf", "quality"):
            if key in value:
                add(key, "ProRes has a fixed quality: leave this out.")
    if "bitrate" in value:
        bitrate = parse_bitrate(value["bitrate"])
        if bitrate is None or not MIN_BITRATE <= bitrate <= MAX_BITRATE:
            add("bitrate", f"Must be bits per second from {MIN_BITRATE} to {MAX_BITRATE}, "
                           "or a text like '8M' or '800k'.")
        else:
            cleaned["bitrate"] = bitrate
    if "crf" in value:
        crf = value["crf"]
        if not is_int(crf) or not 0 <= crf <= 51:
            add("crf", "Must be a whole number from 0 (lossless) to 51.")
        else:
            cleaned["crf"] = crf
    for key in ("width", "height"):
        if key in value:
            side = value[key]
            if not is_int(side) or not MIN_SIDE <= side <= MAX_SIDE or side % 2:
                add(key, f"Must be an even whole number from {MIN_SIDE} to {MAX_SIDE}.")
            else:
                cleaned[key] = side
    if cleaned.get("width", 0) * cleaned.get("height", 0) > MAX_PIXELS:
        add("width", "width x height may be at most 3840 x 2160 pixels.")


# --- Encoding ---------------------------------------------------------------------


@dataclass
class Encoding:
    """How to write the output: ffmpeg output arguments, container and picture size."""

    video_args: list[str]
    audio_args: list[str]
    container_args: list[str]
    ext: str
    size: tuple[int, int]
    codec: str

    def args(self, has_audio: bool) -> list[str]:
        audio = self.audio_args if has_audio else ["-an"]
        return [*self.video_args, *audio, *self.container_args]


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def output_size(preset: dict, source: tuple[int, int]) -> tuple[int, int]:
    """The picture size ``preset`` asks for, given the source's (or canvas's) size."""
    width, height = source
    name = preset.get("name")
    if name in NAMED:
        short = NAMED[name]["short_side"]
        if width >= height:
            return _even(short * width / height), short
        return short, _even(short * height / width)
    wanted_w, wanted_h = preset.get("width"), preset.get("height")
    if wanted_w and wanted_h:
        return wanted_w, wanted_h
    if wanted_w:
        return wanted_w, _even(wanted_w * height / width)
    if wanted_h:
        return _even(wanted_h * width / height), wanted_h
    cap = preset.get("max_short_side")
    if cap and min(width, height) > cap:
        scale = cap / min(width, height)
        return _even(width * scale), _even(height * scale)
    return _even(width), _even(height)


def encoding(preset: dict | None, source: tuple[int, int]) -> Encoding:
    """The output encoding for ``preset`` (``{}``/None: H.264 at quality "high")."""
    preset = preset or {}
    name = preset.get("name")
    spec = dict(NAMED.get(name, {}))
    if name == "custom":
        spec["codec"] = preset.get("codec", "h264")
        spec["bitrate"] = preset.get("bitrate")
    codec = spec.get("codec", "h264")
    crf, speed = QUALITY[preset.get("quality", DEFAULT_QUALITY)]
    if preset.get("crf") is not None:
        crf = preset["crf"]
    size = output_size(preset, source)

    if codec == "prores":
        return Encoding(
            video_args=["-c:v", "prores_ks", "-profile:v", "2", "-vendor", "apl0",
                        "-pix_fmt", "yuv422p10le"],
            audio_args=["-c:a", "pcm_s16le"], container_args=[], ext="mov", size=size,
            codec="prores")
    bitrate = spec.get("bitrate")
    if codec == "h265":
        video = ["-c:v", "libx265", "-preset", speed, "-x265-params", "log-level=error",
                 "-tag:v", "hvc1"]
    else:
        video = ["-c:v", "libx264", "-preset", speed, "-profile:v", "high"]
    if bitrate:
        video += ["-b:v", str(bitrate), "-maxrate", str(bitrate), "-bufsize", str(2 * bitrate)]
    else:
        video += ["-crf", str(crf)]
    video += ["-pix_fmt", "yuv420p"]
    return Encoding(video_args=video, audio_args=["-c:a", "aac", "-b:a", AUDIO_BITRATE],
                    container_args=["-movflags", "+faststart"], ext="mp4", size=size,
                    codec=codec)


def describe(preset: dict | None) -> str:
    """A short human description: "web (H.264 8 Mbps, 1080p)"."""
    if not preset:
        return ""
    name = preset["name"]
    if name == "high_quality":
        return "high_quality (ProRes 422, 4K)"
    parts = []
    if name in ("web", "social"):
        parts.append(f"H.264 {NAMED[name]['bitrate'] // 1_000_000} Mbps, 1080p")
    else:
        parts.append({"h264": "H.264", "h265": "H.265", "prores": "ProRes 422"}[
            preset.get("codec", "h264")])
        if preset.get("bitrate"):
            parts.append(f"{preset['bitrate'] / 1_000_000:g} Mbps")
        elif preset.get("crf") is not None:
            parts.append(f"CRF {preset['crf']}")
        if preset.get("width") or preset.get("height"):
            parts.append(f"{preset.get('width', 'auto')}x{preset.get('height', 'auto')}")
    if preset.get("quality"):
        parts.append(f"quality {preset['quality']}")
    return f"{name} ({', '.join(parts)})"
