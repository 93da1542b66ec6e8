"""The ``timeline`` of an ffmpeg job (seed 002), checked key by key.

    {"width": 1920, "height": 1080, "fps": 30, "duration": null,
     "backgrounds": [{"src": PATH, "type": "image"|"video", "crossfade": 1.0}],
     "audio": [{"src": PATH, "fade": 2.0, "decides_duration": true}]}

Backgrounds (at most 4) play one after another, each scaled to fit the canvas
(``fit``: "contain" pads, "cover" crops), each fading in over its
``crossfade`` seconds from the one before. A still (``type`` "image") shows
for its ``duration``, or shares the time the videos leave; the last
background is looped or held to the end. Audio tracks play one after
another, never overlapping, each faded in and out over its ``fade`` seconds;
together at most 3 hours.

The render lasts ``duration`` if given; else until the end of the longest
track marked ``decides_duration``; else until the end of the longest track.
A track ends where it ends on the timeline: an audio track after the tracks
before it, a background after the backgrounds before it (minus crossfades).

Sources are files inside the Dropbox folder (the same rules as project
paths; stored relative to it, like a job's project), or http(s) URLs on a
host listed in TIMELINE_ALLOWED_HOSTS, fetched by the render node. What can
be checked without reading files is checked at submission; once the sources
are synced, the file checks (jobs.node.validation) read them with
``source_problems()`` (kind, lengths, the resulting duration), and the
render checks the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from django.conf import settings

from jobs import media
from jobs.submission.errors import FieldErrors, InvalidInput, is_number
from jobs.submission.paths import PathError, resolve_source_file

MAX_BACKGROUNDS = 4
MAX_AUDIO_SECONDS = 3 * 3600
MAX_FPS = 60
MAX_CROSSFADE = 10.0
MAX_FADE = 30.0
MAX_URL_CHARS = 2000
MIN_SIDE = 16
PROBE_THREADS = 8
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".tga"}
TIMELINE_KEYS = {"width", "height", "fps", "duration", "backgrounds", "audio"}
BACKGROUND_KEYS = {"src", "type", "crossfade", "duration", "fit", "decides_duration"}
AUDIO_KEYS = {"src", "fade", "decides_duration"}
FITS = ("contain", "cover")


def _number(errors, where, value, *, low: float, high: float, low_open: bool = False):
    if not is_number(value) or value > high or value < low or (low_open and value == low):
        bound = f"more than {low:g}" if low_open else f"from {low:g}"
        errors.add(where, f"Must be a number {bound} up to {high:g}.")
        return None
    return value


def _side(errors, where, value, limit: int, setting: str):
    if not isinstance(value, int) or isinstance(value, bool):
        errors.add(where, "Must be a whole number of pixels.")
        return None
    if value > limit:
        errors.add(where, f"At most {limit} pixels ({setting}).")
        return None
    if value < MIN_SIDE or value % 2:
        errors.add(where, f"Must be an even number of at least {MIN_SIDE} pixels.")
        return None
    return value


def _bool(errors, where, value):
    if not isinstance(value, bool):
        errors.add(where, "Must be true or false.")
        return False
    return value


def is_url(src: str) -> bool:
    return src.lower().startswith(("http://", "https://"))


def check_url(src: str) -> str:
    """The URL if its host is allowed (TIMELINE_ALLOWED_HOSTS), else PathError."""
    if len(src) > MAX_URL_CHARS:
        raise PathError(f"URLs may be at most {MAX_URL_CHARS} characters.")
    try:
        parts = urlsplit(src)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        raise PathError("The URL is malformed.") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise PathError("Only http(s) URLs with a host name are accepted.")
    if parts.username is not None or parts.password is not None:
        raise PathError("URLs may not carry a user name or password.")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in src):
        raise PathError("URLs may not contain spaces or control characters.")
    allowed = settings.TIMELINE_ALLOWED_HOSTS
    if host not in allowed:
        hint = (f"allowed: {', '.join(allowed)}" if allowed
                else "no hosts are allowed (TIMELINE_ALLOWED_HOSTS is empty)")
        raise PathError(f"Downloads from {host} are not allowed; {hint}. Put the file in the "
                        "Dropbox folder instead.")
    return src


def source_suffix(src: str) -> str:
    path = urlsplit(src).path if is_url(src) else src.replace("\\", "/")
    return PurePosixPath(path).suffix.lower()


def _source(errors: FieldErrors, where: str, value, kind: str | None) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.add(where, "Must be the path (or file:// URI) of a file inside the Dropbox "
                          "folder, or an http(s) URL on an allowed host.")
        return None
    try:
        src = check_url(value.strip()) if is_url(value.strip()) \
            else resolve_source_file(value).relative
    except PathError as exc:
        errors.add(where, exc.message)
        return None
    if kind == "image" and source_suffix(src) not in IMAGE_EXTS:
        errors.add(where, f"A still must be one of: {', '.join(sorted(IMAGE_EXTS))}.")
        return None
    return src


def _background(errors: FieldErrors, where: str, item) -> dict:
    if not isinstance(item, dict):
        errors.add(where, "Must be an object with 'src' and 'type'.")
        return {}
    errors.unknown_keys(where, item, BACKGROUND_KEYS)
    kind = item.get("type")
    if kind not in ("image", "video"):
        errors.add(f"{where}.type", "Must be 'image' or 'video'.")
        kind = None
    cleaned = {"src": _source(errors, f"{where}.src", item.get("src"), kind), "type": kind,
               "crossfade": 0.0, "duration": None, "fit": "contain", "decides_duration": False}
    if "crossfade" in item:
        cleaned["crossfade"] = _number(errors, f"{where}.crossfade", item["crossfade"],
                                       low=0, high=MAX_CROSSFADE)
    if item.get("duration") is not None:
        cleaned["duration"] = _number(errors, f"{where}.duration", item["duration"],
                                      low=0, high=settings.TIMELINE_MAX_SECONDS, low_open=True)
    if "fit" in item and item["fit"] not in FITS:
        errors.add(f"{where}.fit", f"Must be one of: {', '.join(FITS)}.")
    elif "fit" in item:
        cleaned["fit"] = item["fit"]
    if "decides_duration" in item:
        cleaned["decides_duration"] = _bool(errors, f"{where}.decides_duration",
                                            item["decides_duration"])
        if cleaned["decides_duration"] and kind == "image" and cleaned["duration"] is None:
            errors.add(f"{where}.decides_duration", "A still has no length of its own: give "
                                                    "it a duration, or the timeline one.")
    return cleaned


def _audio(errors: FieldErrors, where: str, item) -> dict:
    if not isinstance(item, dict):
        errors.add(where, "Must be an object with 'src'.")
        return {}
    errors.unknown_keys(where, item, AUDIO_KEYS)
    cleaned = {"src": _source(errors, f"{where}.src", item.get("src"), None), "fade": 0.0,
               "decides_duration": False}
    if "fade" in item:
        cleaned["fade"] = _number(errors, f"{where}.fade", item["fade"], low=0, high=MAX_FADE)
    if "decides_duration" in item:
        cleaned["decides_duration"] = _bool(errors, f"{where}.decides_duration",
                                            item["decides_duration"])
    return cleaned


def clean_timeline(data) -> dict:
    """The client's timeline, checked; InvalidInput with dotted field paths if not.

    Nothing is read from disk here (a submission must answer at once): the
    sources are measured by the file checks, see ``source_problems()``.
    """
    errors = FieldErrors()
    if not isinstance(data, dict):
        raise InvalidInput(["Must be an object with width, height, fps and tracks."])
    errors.unknown_keys("", data, TIMELINE_KEYS)
    cleaned: dict = {}
    for key, limit, setting in (("width", settings.TIMELINE_MAX_WIDTH, "TIMELINE_MAX_WIDTH"),
                                ("height", settings.TIMELINE_MAX_HEIGHT,
                                 "TIMELINE_MAX_HEIGHT")):
        if key not in data:
            errors.add(key, "This field is required.")
        else:
            cleaned[key] = _side(errors, key, data[key], limit, setting)
    cleaned["fps"] = 30
    if "fps" in data:
        cleaned["fps"] = _number(errors, "fps", data["fps"], low=1, high=MAX_FPS)
    cleaned["duration"] = None
    value = data.get("duration")
    if is_number(value) and value > settings.TIMELINE_MAX_SECONDS:
        errors.add("duration", f"The longest render is {settings.TIMELINE_MAX_SECONDS:g} "
                               "seconds (TIMELINE_MAX_SECONDS).")
    elif value is not None:
        cleaned["duration"] = _number(errors, "duration", value, low=0,
                                      high=settings.TIMELINE_MAX_SECONDS, low_open=True)
    tracks = 0
    for key, limit, clean in (("backgrounds", MAX_BACKGROUNDS, _background),
                              ("audio", None, _audio)):
        items = data.get(key, [])
        cleaned[key] = []
        if not isinstance(items, list):
            errors.add(key, "Must be a list.")
            continue
        if limit is not None and len(items) > limit:
            errors.add(key, f"At most {limit} {key}.")
            continue
        tracks += len(items)
        if tracks > settings.TIMELINE_MAX_TRACKS:
            errors.add(key, f"At most {settings.TIMELINE_MAX_TRACKS} tracks in all "
                            "(TIMELINE_MAX_TRACKS).")
            continue
        cleaned[key] = [clean(errors, f"{key}.{i}", item) for i, item in enumerate(items)]
    if not errors.found and cleaned["duration"] is None and not has_length(cleaned):
        errors.add("duration", "Required: no track has a length of its own (stills without "
                               "a duration only).")
    errors.raise_if_any()
    return cleaned


def has_length(timeline: dict) -> bool:
    """Whether some track has a length of its own (so the duration can be resolved)."""
    return bool(timeline["audio"]) or any(
        bg["type"] == "video" or bg["duration"] is not None for bg in timeline["backgrounds"])


# --- Lengths and the resolved duration ----------------------------------------------


def local_sources(timeline: dict) -> list[tuple[str, str]]:
    """(dotted field, path) of every source that is a file inside Dropbox."""
    found = []
    for key in ("backgrounds", "audio"):
        for i, track in enumerate(timeline.get(key) or []):
            src = track.get("src")
            if isinstance(src, str) and not is_url(src):
                found.append((f"{key}.{i}.src", src))
    return found


def track_kind(key: str, track: dict) -> str:
    return "audio" if key == "audio" else track["type"]


def resolve_duration(timeline: dict, lengths: dict) -> float | None:
    """The render's length in seconds (see the module doc), or None while unknown.

    ``lengths`` maps ("backgrounds"|"audio", index) to a source's own length in
    seconds (absent or None: not known yet; stills have none).
    """
    if timeline.get("duration"):
        return float(timeline["duration"])
    ends: list[tuple[float | None, bool]] = []  # (end, decides)
    end = 0.0
    for i, bg in enumerate(timeline["backgrounds"]):
        own = bg["duration"] if bg["duration"] is not None else (
            lengths.get(("backgrounds", i)) if bg["type"] == "video" else 0.0)
        if own is None:
            ends.append((None, bg["decides_duration"]))
            end = math.nan
            continue
        if own > 0:
            fade = bg["crossfade"] if end > 0 else 0.0
            end = end + own - min(fade, own, end)
            ends.append((end, bg["decides_duration"]))
    end = 0.0
    for i, track in enumerate(timeline["audio"]):
        own = lengths.get(("audio", i))
        end = math.nan if own is None else end + own
        ends.append((None if math.isnan(end) else end, track["decides_duration"]))
    deciding = [e for e, decides in ends if decides] or [e for e, _ in ends]
    if not deciding or any(e is None or math.isnan(e) for e in deciding):
        return None
    return max(deciding) or None


def audio_total(timeline: dict, lengths: dict) -> float | None:
    total = 0.0
    for i in range(len(timeline["audio"])):
        own = lengths.get(("audio", i))
        if own is None:
            return None
        total += own
    return total


def check_limits(timeline: dict, lengths: dict) -> dict[str, str]:
    """Problems with the lengths: {field: message}. Unknown lengths pass."""
    problems = {}
    total = audio_total(timeline, lengths)
    if total is not None and total > MAX_AUDIO_SECONDS:
        problems["audio"] = (f"The audio tracks last {total / 3600:.2f} hours together; "
                             f"at most {MAX_AUDIO_SECONDS / 3600:g} hours.")
    duration = resolve_duration(timeline, lengths)
    if duration is not None and duration > settings.TIMELINE_MAX_SECONDS:
        problems["duration"] = (f"The tracks make a {duration:.0f} s render; the longest "
                                f"allowed is {settings.TIMELINE_MAX_SECONDS:g} s "
                                "(TIMELINE_MAX_SECONDS): give a shorter duration.")
    return problems


def _probe_one(path: Path | None, kind: str) -> tuple[media.MediaInfo | None, str]:
    """(info, "") for a usable file, (None, problem) for an unusable one, (None, "")
    when it cannot be judged yet (missing, or still arriving)."""
    if path is None or not path.is_file():
        return None, ""
    try:
        info = media.probe(path, timeout=20)
    except media.MediaError:
        return None, ""  # maybe still syncing: the render decides
    try:
        media.check_source(info, kind)
    except media.MediaError as exc:
        return None, f"This file cannot be used: {exc}."
    return info, ""


def source_problems(timeline: dict, locate: Callable[[str], Path]) -> dict[str, str]:
    """What is wrong with the sources on this machine: {dotted field: message}.

    Each local source is read (``locate`` turns its stored path into the real
    file, raising PathError when it may not be read); a source of the wrong
    kind, or lengths over the limits, are problems; a file that cannot be
    judged yet (missing, unreadable while syncing) is left to the render.
    """
    problems: dict[str, str] = {}
    todo = []
    for key in ("backgrounds", "audio"):
        for i, track in enumerate(timeline.get(key) or []):
            if is_url(track["src"]):
                continue
            try:
                path = locate(track["src"])
            except PathError as exc:
                problems[f"{key}.{i}.src"] = exc.message
                continue
            todo.append((key, i, path, track_kind(key, track)))
    if not todo:
        return problems
    with ThreadPoolExecutor(max_workers=min(PROBE_THREADS, len(todo))) as pool:
        results = list(pool.map(lambda job: _probe_one(job[2], job[3]), todo))
    lengths = {}
    for (key, i, _path, kind), (info, problem) in zip(todo, results, strict=True):
        if problem:
            problems[f"{key}.{i}.src"] = problem
        elif info is not None and kind != "image":
            lengths[(key, i)] = info.duration
    problems.update(check_limits(timeline, lengths))
    return problems
