"""The queue-depth chart of the admin panel: stored QueueSample rows turned
into the geometry of an inline SVG (no chart library, nothing from a CDN).

Samples are taken about once a minute by the render workers. The chart groups
them into buckets (five minutes over 24 hours) and draws each bucket's
highest value as a step, so a short peak is never averaged away. A bucket
without samples (no worker was running) leaves a gap rather than a line
pretending the queue was flat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

WIDTH = 1000
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 34, 10, 12, 24
BUCKETS = 288  # five minutes each over 24 hours
TICK_HOURS = 6


@dataclass
class Series:
    key: str
    label: str
    line: str = ""  # SVG path data
    area: str = ""
    peak: int = 0
    peak_at: datetime | None = None
    last: int | None = None


@dataclass
class Chart:
    start: datetime
    end: datetime
    hours: int
    samples: int
    width: int = WIDTH
    height: int = HEIGHT
    top: int = TOP
    bottom: float = HEIGHT - BOTTOM
    left: int = LEFT
    right: float = WIDTH - RIGHT
    y_max: int = 4
    series: list[Series] = field(default_factory=list)
    y_ticks: list[tuple[float, int]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.samples == 0

    def summary(self) -> str:
        """The chart in words (the SVG's accessible description)."""
        if self.empty:
            return f"No queue samples in the last {self.hours} hours."
        parts = []
        for s in self.series:
            when = f" at {timezone.localtime(s.peak_at):%H:%M}" if s.peak_at else ""
            parts.append(f"{s.label}: peak {s.peak}{when}, latest {s.last}")
        return f"Queue depth over the last {self.hours} hours. " + "; ".join(parts) + "."


def nice_ceiling(value: int) -> int:
    """The smallest of 4, 8, 10, 20, 40, 50, 100, 200, ... at or above ``value``."""
    if value <= 4:
        return 4
    scale = 1
    while True:
        for step in (1, 2, 4, 5, 8, 10):
            if step * scale >= value:
                return step * scale
        scale *= 10


def build(samples, now: datetime | None = None, hours: int = 24,
          buckets: int = BUCKETS) -> Chart:
    """``samples``: objects with ``created_at``, ``waiting`` and ``rendering``."""
    end = now or timezone.now()
    start = end - timedelta(hours=hours)
    span = (end - start).total_seconds()
    chart = Chart(start=start, end=end, hours=hours, samples=0)
    waiting: list[int | None] = [None] * buckets
    rendering: list[int | None] = [None] * buckets
    peaks = {"waiting": (0, None), "rendering": (0, None)}
    last = {"waiting": None, "rendering": None}
    for sample in samples:
        offset = (sample.created_at - start).total_seconds()
        if offset < 0 or offset > span:
            continue
        chart.samples += 1
        index = min(buckets - 1, int(offset / span * buckets))
        for key, values in (("waiting", waiting), ("rendering", rendering)):
            value = max(0, int(getattr(sample, key)))
            values[index] = value if values[index] is None else max(values[index], value)
            if value > peaks[key][0]:
                peaks[key] = (value, sample.created_at)
            last[key] = value
    top_value = max(peaks["waiting"][0], peaks["rendering"][0])
    chart.y_max = nice_ceiling(top_value)
    plot_w = chart.right - chart.left
    plot_h = chart.bottom - chart.top

    def x(index: int) -> float:
        return round(chart.left + index * plot_w / buckets, 1)

    def y(value: int) -> float:
        return round(chart.bottom - value * plot_h / chart.y_max, 1)

    for key, label, values in (("waiting", "Waiting", waiting),
                               ("rendering", "Rendering", rendering)):
        line, area = _steps(values, x, y, chart.bottom)
        chart.series.append(Series(key, label, line, area, peaks[key][0], peaks[key][1],
                                   last[key]))
    chart.y_ticks = [(y(v), v) for v in (0, chart.y_max // 2, chart.y_max)]
    chart.x_ticks = _hour_ticks(start, end, chart.left, plot_w)
    return chart


def _steps(values, x, y, baseline: float) -> tuple[str, str]:
    """Step-line and filled-area path data; a None bucket breaks the line."""
    line, area = [], []
    run: list[tuple[int, int]] = []

    def flush():
        if not run:
            return
        points = []
        for index, value in run:
            points += [(x(index), y(value)), (x(index + 1), y(value))]
        line.append("M" + " L".join(f"{px:g} {py:g}" for px, py in points))
        area.append(f"M{points[0][0]:g} {baseline:g} L"
                    + " L".join(f"{px:g} {py:g}" for px, py in points)
                    + f" L{points[-1][0]:g} {baseline:g} Z")
        run.clear()

    for index, value in enumerate(values):
        if value is None:
            flush()
        else:
            run.append((index, value))
    flush()
    return " ".join(line), " ".join(area)


def _hour_ticks(start: datetime, end: datetime, left: float, width: float):
    """Labels at local whole hours divisible by TICK_HOURS."""
    span = (end - start).total_seconds()
    local = timezone.localtime(start)
    tick = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    ticks = []
    while tick < end:
        if tick.hour % TICK_HOURS == 0:
            offset = (tick - start).total_seconds() / span
            ticks.append((round(left + offset * width, 1), f"{tick:%H:%M}"))
        tick += timedelta(hours=1)
    return ticks
