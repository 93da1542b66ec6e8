"""Render progress from aerender's own output, and a size-capped render log.

nexrender's "rendering progress N%" lines are not used: they move once per
second of comp time, skip chunks and never reach 100%. aerender's lines are
the truth: ``Duration`` x ``Frame Rate`` frames, one ``PROGRESS:`` line per
frame. They are found anywhere in a line because nexrender --debug echoes
them, sometimes after a prefix of its own.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque

from jobs.models import Phase

# Timecode H:MM:SS:FF, or H;MM;SS;FF / H:MM:SS;FF for drop frame.
_TC = r"(\d{1,2})[:;](\d{2})[:;](\d{2})([:;])(\d{2,3})"
DURATION = re.compile(r"Duration:\s+(?:" + _TC + r"|(\d+)\s*$)", re.IGNORECASE)
FRAME_RATE = re.compile(r"Frame Rate:\s+(\d+(?:[.,]\d+)?)", re.IGNORECASE)
FRAME = re.compile(_TC + r"\s+\((\d+)[UL]?\)", re.IGNORECASE)
FINISHED = re.compile(r"PROGRESS:\s+Render Finished", re.IGNORECASE)
# aerender's own errors, and those of nexrender's script running inside AE.
ERROR = re.compile(r"aerender Error:\s*(.*)|\bError:\s+(nexrender:.*)", re.IGNORECASE)
MAX_ERRORS = 5
MAX_ERROR_CHARS = 2000


def timecode_frames(hh: int, mm: int, ss: int, ff: int, fps: float, drop: bool) -> int:
    """Frames counted by a timecode. AE timecode runs at the nominal (rounded)
    rate; drop-frame skips 2 (4 at 60 fps) numbers a minute, except every tenth."""
    nominal = max(1, round(fps))
    frames = (hh * 3600 + mm * 60 + ss) * nominal + ff
    if drop and nominal in (30, 60):
        dropped = 2 if nominal == 30 else 4
        minutes = hh * 60 + mm
        frames -= dropped * (minutes - minutes // 10)
    return frames


class AerenderProgress:
    """Follows one render through aerender's output lines.

    ``frame_start``/``frame_end``/``frame_increment`` are the -s/-e/-i values
    when the job sets them; a known range beats the printed Duration, and so
    does ``frames_total`` when the project was read before the render.
    Times are ``time.monotonic()`` seconds unless the caller passes its own.
    """

    def __init__(self, frame_start: int | None = None, frame_end: int | None = None,
                 frame_increment: int | None = None, frames_total: int | None = None):
        self.known_total = frames_total if frames_total and frames_total > 0 else None
        self.frame_start = frame_start
        self.frame_end = frame_end
        self.frame_increment = max(1, int(frame_increment or 1))
        self.fps: float | None = None
        self.duration: tuple[int, int, int, int, bool] | int | None = None
        self.frames_done = 0
        self.finished = False
        self.errors: list[str] = []
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self._seen: set[int] = set()

    # --- input ----------------------------------------------------------------

    def feed(self, line: str, now: float | None = None) -> bool:
        """Take one output line; True when the progress changed."""
        maybe_error = "rror" in line or "RROR" in line
        if not maybe_error and "PROGRESS" not in line:
            return False  # the cheap test first: floods are mostly other lines
        if maybe_error and (match := ERROR.search(line)):
            message = (match.group(1) or match.group(2)).strip()[:MAX_ERROR_CHARS]
            if message in self.errors:
                return False  # nexrender repeats aerender's output when a render fails
            self.errors = (self.errors + [message])[-MAX_ERRORS:]
            return True
        if (match := FRAME.search(line)) and not self.finished:
            frame = timecode_frames(*map(int, match.group(1, 2, 3, 5)), fps=self.fps or 25,
                                    drop=";" in match.group(0))
            if frame in self._seen:
                return False
            self._seen.add(frame)
            self.frames_done = len(self._seen)
            now = time.monotonic() if now is None else now
            if self.first_frame_at is None:
                self.first_frame_at = now
            self.last_frame_at = now
            return True
        if self.duration is None and (match := DURATION.search(line)):
            if match.group(6) is not None:
                self.duration = int(match.group(6))
            else:
                hh, mm, ss, sep, ff = match.group(1, 2, 3, 4, 5)
                drop = ";" in match.group(0)
                self.duration = (int(hh), int(mm), int(ss), int(ff), drop)
            return True
        if self.fps is None and (match := FRAME_RATE.search(line)):
            fps = float(match.group(1).replace(",", "."))
            if fps > 0:
                self.fps = fps
                return True
            return False
        if not self.finished and FINISHED.search(line):
            self.finished = True
            return True
        return False

    # --- results --------------------------------------------------------------

    @property
    def frames_total(self) -> int | None:
        if self.frame_start is not None and self.frame_end is not None \
                and self.frame_end >= self.frame_start:
            return (self.frame_end - self.frame_start) // self.frame_increment + 1
        if self.known_total is not None:
            return self.known_total
        if self.duration is None:
            return None
        if isinstance(self.duration, int):
            total = self.duration
        else:
            if self.fps is None:
                return None
            hh, mm, ss, ff, drop = self.duration
            total = timecode_frames(hh, mm, ss, ff, self.fps, drop)
        if self.frame_increment > 1:
            total = math.ceil(total / self.frame_increment)
        return total or None

    @property
    def phase(self) -> str:
        return Phase.RENDERING if self.frames_done or self.finished else Phase.SETTING_UP

    @property
    def percent(self) -> float:
        if self.finished:
            return 100.0
        total = self.frames_total
        if not total:
            return 0.0
        return min(100.0, 100.0 * self.frames_done / total)

    def eta_seconds(self, now: float | None = None) -> int | None:
        """Seconds left at the rate seen since the first frame; None before it is known."""
        if self.finished:
            return 0
        total = self.frames_total
        if not total or self.first_frame_at is None or self.frames_done < 2:
            return None
        now = time.monotonic() if now is None else now
        elapsed = now - self.first_frame_at
        if elapsed <= 0:
            return None
        rate = (self.frames_done - 1) / elapsed
        left = max(0, total - self.frames_done)
        return int(round(left / rate))

    @property
    def error(self) -> str:
        return "\n".join(self.errors)


_KEY_VALUE = re.compile(r"^([a-z0-9_]+)=(.*)$")


class FfmpegProgress:
    """Follows an ffmpeg run through its ``-progress pipe:1 -nostats`` output.

    ffmpeg prints blocks of ``key=value`` lines (``frame``, ``out_time_us``, ...,
    ``progress=continue|end``) twice a second; the position ``out_time_us`` is
    measured against ``duration``, the length of what is being written, which
    the caller resolved beforehand. Other lines are ffmpeg's own messages
    (it runs with ``-loglevel error``) and are kept as errors. Same interface
    as AerenderProgress; ``phase`` is ``active_phase`` once output flows.

    ffmpeg prints its blocks even while stuck, so ``feed`` is True only when
    something moved, and ``heartbeats`` tells the worker's stall watchdog to
    count only that as life.
    """

    heartbeats = True

    def __init__(self, duration: float | None, fps: float | None = None,
                 active_phase: str = Phase.RENDERING, waiting_phase: str = Phase.SETTING_UP):
        self.duration = duration if duration and duration > 0 else None
        self.fps = fps if fps and fps > 0 else None
        self.active_phase = active_phase
        self.waiting_phase = waiting_phase
        self.position = 0.0  # seconds written
        self.frames_done = 0
        self.started = False
        self.finished = False
        self.errors: list[str] = []
        self.first_at: float | None = None
        self.first_position = 0.0
        self._block: dict[str, str] = {}
        self._logged_percent = -100.0

    def feed(self, line: str, now: float | None = None) -> bool:
        """Take one output line; True when the progress (or the errors) changed."""
        match = _KEY_VALUE.match(line.strip())
        if not match:
            message = line.strip()[:MAX_ERROR_CHARS]
            if not message or message in self.errors:
                return False
            self.errors = (self.errors + [message])[-MAX_ERRORS:]
            return True
        key, value = match.groups()
        if key != "progress":
            self._block[key] = value.strip()
            return False
        block, self._block = self._block, {}
        now = time.monotonic() if now is None else now
        before = (self.position, self.frames_done, self.started, self.finished)
        frame = block.get("frame", "")
        if frame.isdigit():
            self.frames_done = int(frame)
        micros = block.get("out_time_us", "")
        if micros.lstrip("-").isdigit():
            self.position = max(self.position, int(micros) / 1e6)
        if self.first_at is None and self.position > 0:
            self.first_at, self.first_position = now, self.position
        self.started = True
        if value.strip() == "end":
            self.finished = True
        return (self.position, self.frames_done, self.started, self.finished) != before

    def keep_in_log(self, line: str) -> bool:
        """Whether the render log keeps ``line``: ffmpeg's messages, and the position
        every 5 % (not the twice-a-second blocks)."""
        match = _KEY_VALUE.match(line.strip())
        if not match:
            return True
        key, value = match.groups()
        if key == "progress":
            return value.strip() == "end"
        if key == "out_time" and value != "N/A" and (
                self.percent - self._logged_percent >= 5 or self.finished):
            self._logged_percent = self.percent
            return True
        return False

    @property
    def frames_total(self) -> int | None:
        if self.duration is None or self.fps is None:
            return None
        return max(1, round(self.duration * self.fps))

    @property
    def phase(self) -> str:
        return self.active_phase if self.started else self.waiting_phase

    @property
    def percent(self) -> float:
        if self.finished:
            return 100.0
        if not self.duration:
            return 0.0
        return min(100.0, 100.0 * self.position / self.duration)

    def eta_seconds(self, now: float | None = None) -> int | None:
        """Seconds left at the speed seen since output began; None before that."""
        if self.finished:
            return 0
        if not self.duration or self.first_at is None:
            return None
        now = time.monotonic() if now is None else now
        elapsed = now - self.first_at
        done = self.position - self.first_position
        if elapsed <= 0 or done <= 0:
            return None
        return int(round(max(0.0, self.duration - self.position) * elapsed / done))

    @property
    def error(self) -> str:
        return "\n".join(self.errors)


class LogBuffer:
    """Keeps the first and the last ``max_bytes / 2`` of a stream of lines.

    The middle of a chatty render's log is dropped and counted, so memory and
    the JobLog row stay bounded (fields match JobLog: head, tail, omitted_bytes).
    """

    def __init__(self, max_bytes: int):
        self.head_limit = max_bytes // 2
        self.tail_limit = max_bytes - self.head_limit
        self._head: list[str] = []
        self.head_bytes = 0
        self.head_full = False
        self._tail: deque[str] = deque()
        self.tail_bytes = 0
        self.omitted_bytes = 0
        self.total_bytes = 0

    def append(self, line: str) -> None:
        """Add one line (a line end is added if missing)."""
        if not line.endswith("\n"):
            line += "\n"
        size = len(line) if line.isascii() else len(line.encode("utf-8"))
        self.total_bytes += size
        if not self.head_full:
            if self.head_bytes + size <= self.head_limit:
                self._head.append(line)
                self.head_bytes += size
                return
            self.head_full = True
        if size > self.tail_limit:
            # One line bigger than the whole tail: keep its end only.
            cut = line.encode("utf-8")[-self.tail_limit:].decode("utf-8", "ignore")
            kept = len(cut.encode("utf-8"))
            self.omitted_bytes += self.tail_bytes + size - kept
            self._tail.clear()
            self._tail.append(cut)
            self.tail_bytes = kept
            return
        self._tail.append(line)
        self.tail_bytes += size
        while self.tail_bytes > self.tail_limit:
            dropped = self._tail.popleft()
            gone = len(dropped) if dropped.isascii() else len(dropped.encode("utf-8"))
            self.tail_bytes -= gone
            self.omitted_bytes += gone

    def add(self, text: str) -> None:
        """Add a line, or a block of several lines (an earlier attempt's log, say)."""
        if text.find("\n", 0, len(text) - 1) >= 0:
            for line in text.splitlines():
                self.append(line)
        else:
            self.append(text)

    def extend(self, lines) -> None:
        for line in lines:
            self.append(line)

    @property
    def head(self) -> str:
        return "".join(self._head)

    @property
    def tail(self) -> str:
        return "".join(self._tail)

    def text(self) -> str:
        if not self.omitted_bytes:
            return self.head + self.tail
        return (self.head + f"\n[... {self.omitted_bytes} bytes of log omitted ...]\n"
                + self.tail)
