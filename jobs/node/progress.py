"""ffmpeg's progress, and a size-capped render log.

After Effects' output (aerender's and nexrender's lines) is read by
jobs.node.engines.ae_output; ffmpeg's ``-progress`` blocks here.
"""

from __future__ import annotations

import re
import time
from collections import deque

from jobs.models import Phase

MAX_ERRORS = 5
MAX_ERROR_CHARS = 2000


_KEY_VALUE = re.compile(r"^([a-z0-9_]+)=(.*)$")


class FfmpegProgress:
    """Follows an ffmpeg run through its ``-progress pipe:1 -nostats`` output.

    ffmpeg prints blocks of ``key=value`` lines (``frame``, ``out_time_us``, ...,
    ``progress=continue|end``) twice a second; the position ``out_time_us`` is
    measured against ``duration``, the length of what is being written, which
    the caller resolved beforehand. Other lines are ffmpeg's own messages
    (it runs with ``-loglevel error``) and are kept as errors. Same interface
    as jobs.node.engines.ae_output.AeOutput; ``phase`` is ``active_phase`` once output flows.

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
