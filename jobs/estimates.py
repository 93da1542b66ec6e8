"""Render-time estimates: how long a job will take, and when it starts and ends.

Pure functions over plain rows, no database: jobs.forecast reads the rows,
caches the result and serves it; tests and bench/estimates.py call these
directly.

How long (``render_seconds``: from the claim until the job is done, setup
and publishing included): seconds per frame times the job's frames, plus the
time a job spends outside the render process. The rate comes from the latest
completed renders, most specific first: this composition of this project;
the same composition name at the same frame size; the render node's recent
renders; a configured default. Medians, so one slow or broken render does not
move it; failed renders never enter the history at all. A render node that
runs at another pace than usual (its recent renders against their
compositions' usual pace) scales the rate.

For a job that is rendering, the history rate is blended with the live rate
the render node reports, weighted by how much has been rendered, so the
estimate converges on the truth as the render goes.

When: the queue is walked in claim order over the render nodes that are up,
each starting from what it renders now and its expected remaining time.
Jobs not in the queue yet (pending, validating) and jobs not submitted yet
are placed where claim order would put them, as if they joined the queue now.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

KEEP_SAMPLES = 20  # latest completed renders kept per history key
NODE_MIN_RATIOS = 3  # renders a node needs before its pace counts
NODE_PACE_LIMITS = (0.5, 4.0)
NODE_PACE_IGNORED = 0.05  # a pace within 5 % of usual is left alone
ASSUMED_FRAMES = 250  # 10 s at 25 fps, when nothing tells the length
RENDERING_PHASE = "rendering"

LEVEL_PROJECT = "project"
LEVEL_COMPOSITION = "composition"
LEVEL_NODE = "node"
LEVEL_DEFAULT = "default"


# --- History ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One completed render: its render process's seconds per frame, the rest of
    its time (setup, encoding, publishing), its frames, and the seconds it
    spent after its last progress report (publishing). Node samples also carry
    ``ratio``: that render's pace against its composition's usual pace."""

    spf: float
    overhead: float
    frames: int
    after: float = 0.0
    ratio: float | None = None

    def as_dict(self) -> dict:
        data = {"spf": round(self.spf, 6), "overhead": round(self.overhead, 3),
                "frames": self.frames, "after": round(self.after, 3)}
        if self.ratio is not None:
            data["ratio"] = round(self.ratio, 4)
        return data

    @classmethod
    def from_dict(cls, data) -> Sample | None:
        """A stored sample, or None if it is not one (a hand-edited row)."""
        try:
            spf, overhead, frames = (float(data["spf"]), float(data["overhead"]),
                                     int(data["frames"]))
            after = float(data.get("after") or 0)
            ratio = data.get("ratio")
            ratio = None if ratio is None else float(ratio)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if not (spf >= 0 and overhead >= 0 and frames > 0 and after >= 0):
            return None
        return cls(spf, overhead, frames, after, ratio)


def add_sample(stored: list, sample: Sample, keep: int = KEEP_SAMPLES) -> list[dict]:
    """The stored list (oldest first) with ``sample`` appended, the oldest dropped."""
    return [*(stored or [])[-(keep - 1):], sample.as_dict()] if keep > 1 else [sample.as_dict()]


def completed(row: Row, node: str, stats: dict, *, render: float, total: float, frames: int,
              after: float) -> list[tuple[str, Sample]]:
    """The samples a completed render adds, by history key: ``render`` seconds of
    render process and ``total`` seconds in all for ``frames`` frames, ``after``
    seconds of them after its last progress report. The node's sample carries
    the render's pace against its composition's usual pace (when that is known
    from at least NODE_MIN_RATIOS renders before this one)."""
    render = total if render <= 0 else min(render, total)
    overhead = total - render
    sample = Sample(spf=render / frames, overhead=overhead, frames=frames,
                    after=min(max(0.0, after), overhead))
    usual = None
    for key in (row.project_key, row.comp_key):
        if key and len(stats.get(key, ())) >= NODE_MIN_RATIOS:
            usual = usual_spf(stats[key])
            break
    found = [(key, sample) for key in (row.project_key, row.comp_key) if key]
    if node:
        found.append((node_key(node), replace(sample, ratio=sample.spf / usual if usual
                                              else None)))
    return found


def samples_of(stored) -> list[Sample]:
    found = (Sample.from_dict(item) for item in (stored or []))
    return [s for s in found if s is not None]


def duration_text(seconds: float) -> str:
    """12 s, 3 min 05 s, 2 h 10 min."""
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def median(values) -> float:
    return float(statistics.median(values))


def usual_spf(samples: list[Sample]) -> float | None:
    return median([s.spf for s in samples]) if samples else None


# --- The rate of one job ------------------------------------------------------------


@dataclass
class Row:
    """What the estimator needs of a job (built by jobs.forecast from the database)."""

    id: object
    status: str
    order: tuple = ()
    project_key: str = ""
    comp_key: str = ""
    composition: str = ""
    size: tuple[int, int] | None = None
    frames: int | None = None
    node: str = ""  # the node rendering it
    started_at: datetime | None = None
    frames_done: int = 0
    eta_seconds: float | None = None
    progress_at: datetime | None = None
    phase: str = ""
    owner: object = None
    preview: bool = False  # its next render is a review preview


@dataclass
class Rate:
    spf: float
    overhead: float
    after: float
    level: str
    words: str
    pace: float = 1.0  # the node's pace against usual (1: usual or unknown)


def node_key(name: str) -> str:
    return f"node:{name}" if name else ""


def node_pace(stats: dict, node: str) -> float:
    """How much slower (>1) or faster (<1) than usual ``node`` renders lately."""
    ratios = [s.ratio for s in stats.get(node_key(node), ()) if s.ratio]
    if len(ratios) < NODE_MIN_RATIOS:
        return 1.0
    low, high = NODE_PACE_LIMITS
    pace = min(high, max(low, median(ratios)))
    return 1.0 if abs(pace - 1) < NODE_PACE_IGNORED else pace


def _renders(count: int, adjective: str = "") -> str:
    return " ".join(filter(None, [str(count), adjective, "render" if count == 1 else "renders"]))


def choose_rate(row: Row, stats: dict, node: str, default_spf: float) -> Rate:
    """The most specific history that knows something about ``row`` on ``node``."""
    size = f" ({row.size[0]}×{row.size[1]})" if row.size else ""
    name = f"“{row.composition}”{size}" if row.composition else "this composition"
    levels = (
        (LEVEL_PROJECT, row.project_key, "this composition"),
        (LEVEL_COMPOSITION, row.comp_key, f"{name} in other projects"),
        (LEVEL_NODE, node_key(node), f"on {node}"),
    )
    for level, key, what in levels:
        samples = stats.get(key) if key else None
        if not samples:
            continue
        if level == LEVEL_NODE:
            words = f"median of {_renders(len(samples), 'recent')} {what}"
        else:
            words = f"median of {_renders(len(samples))} of {what}"
        rate = Rate(spf=usual_spf(samples), overhead=median([s.overhead for s in samples]),
                    after=median([s.after for s in samples]), level=level, words=words)
        if level != LEVEL_NODE and node:
            rate.pace = node_pace(stats, node)
            if rate.pace != 1.0:
                rate.words += f", at {node}'s recent pace (×{rate.pace:.2f})"
        return rate
    return Rate(spf=default_spf, overhead=0.0, after=0.0, level=LEVEL_DEFAULT,
                words=f"no history: default rate of {default_spf:g} s per frame")


def frames_of(row: Row, stats: dict) -> tuple[int, str]:
    """The job's frames, and words when they are not the job's own."""
    if row.frames and row.frames > 0:
        return row.frames, ""
    for key in (row.project_key, row.comp_key):
        samples = stats.get(key) if key else None
        if samples:
            return max(1, round(median([s.frames for s in samples]))), \
                "frames as in its earlier renders"
    return ASSUMED_FRAMES, f"frame count unknown, {ASSUMED_FRAMES} assumed"


# --- Estimates ----------------------------------------------------------------------------


@dataclass
class Estimate:
    render_seconds: float
    starts_at: datetime | None
    finishes_at: datetime | None
    basis: str
    level: str
    frames: int
    seconds_per_frame: float
    position: int | None = None  # 1-based place in the queue (queued jobs)
    node: str = ""  # where it renders, or is expected to

    @property
    def from_history(self) -> bool:
        return self.level != LEVEL_DEFAULT


def _basis(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _preview(row: Row) -> str:
    return "the review preview (the final render follows approval)" if row.preview else ""


def expected(row: Row, stats: dict, node: str, default_spf: float) -> Estimate:
    """How long ``row`` takes on ``node`` by history alone (no times yet)."""
    rate = choose_rate(row, stats, node, default_spf)
    frames, frame_words = frames_of(row, stats)
    spf = rate.spf * rate.pace
    return Estimate(render_seconds=rate.overhead + spf * frames, starts_at=None,
                    finishes_at=None, basis=_basis(rate.words, frame_words, _preview(row)),
                    level=rate.level, frames=frames, seconds_per_frame=spf, node=node)


def running(row: Row, stats: dict, now: datetime, default_spf: float) -> Estimate:
    """A job that is rendering: history blended with the live rate."""
    rate = choose_rate(row, stats, row.node, default_spf)
    frames, frame_words = frames_of(row, stats)
    hist_spf = rate.spf * rate.pace
    started = row.started_at or now
    elapsed = max(0.0, (now - started).total_seconds())
    total = rate.overhead + hist_spf * frames
    remaining = total - elapsed
    spf = hist_spf
    live = ""
    left = frames - row.frames_done
    if (row.phase == RENDERING_PHASE and row.frames_done > 0 and left > 0
            and row.eta_seconds is not None and row.eta_seconds > 0):
        done = row.frames_done / frames
        # A default rate is a guess: the live rate replaces it at once.
        weight = 1.0 if rate.level == LEVEL_DEFAULT else done
        live_spf = row.eta_seconds / left
        spf = weight * live_spf + (1 - weight) * hist_spf
        since = 0.0
        if row.progress_at is not None:
            since = max(0.0, (now - row.progress_at).total_seconds())
        remaining = spf * left - since + rate.after
        live = f"blended with the live rate ({done:.0%} rendered)"
    remaining = max(0.0, remaining)
    return Estimate(render_seconds=elapsed + remaining,
                    starts_at=started, finishes_at=now + timedelta(seconds=remaining),
                    basis=_basis(rate.words, live, frame_words, _preview(row)),
                    level=rate.level, frames=frames, seconds_per_frame=spf, node=row.node)


@dataclass
class Forecast:
    """Estimates for every unfinished job, and what is needed to place new ones."""

    now: datetime
    nodes: list[str]
    stats: dict
    default_spf: float
    estimates: dict = field(default_factory=dict)
    rows: dict = field(default_factory=dict)  # job id → the Row it was made from
    # Claim-order keys of the queued jobs walked, and the nodes' free times
    # before each of them (and after the last): where a newcomer would land.
    keys: list = field(default_factory=list)
    free_before: list = field(default_factory=list)
    queued: int = 0
    truncated: bool = False
    # The history keys whose samples were looked for (``stats`` has those found).
    looked_up: frozenset = frozenset()

    def get(self, job_id) -> Estimate | None:
        return self.estimates.get(job_id)

    def place(self, row: Row, now: datetime | None = None) -> Estimate:
        """A job not in the queue yet, as if it joined the queue now."""
        return self.place_all([row], now)[0]

    def place_all(self, rows: list[Row], now: datetime | None = None) -> list[Estimate]:
        """Jobs joining the queue together (a batch's rows, in claim order among
        themselves), one after another where the first of them lands."""
        if not rows:
            return []
        first = rows[0].order
        index = bisect.bisect_right(self.keys, first) if first else len(self.keys)
        free = dict(self.free_before[index]) if self.free_before else {}
        now = max(now or self.now, self.now)
        beyond = self.truncated and index >= len(self.keys)
        return [_place(row, free, self.stats, now, self.default_spf, None, beyond)
                for row in rows]


def _place(row: Row, free: dict, stats: dict, now: datetime, default_spf: float,
           position: int | None, beyond: bool = False) -> Estimate:
    """``row`` on the node that is free first (updating ``free``)."""
    if not free or beyond:
        estimate = expected(row, stats, "", default_spf)
        why = ("no render node is up" if not free
               else "too far down the queue to say when it starts")
        estimate.basis = _basis(estimate.basis, why)
        estimate.position = position
        return estimate
    node = min(free, key=lambda name: (free[name], name))
    estimate = expected(row, stats, node, default_spf)
    start = max(free[node], now)
    estimate.starts_at = start
    estimate.finishes_at = start + timedelta(seconds=estimate.render_seconds)
    estimate.position = position
    free[node] = estimate.finishes_at
    return estimate


def forecast(*, queued: list[Row], rendering: list[Row], waiting: list[Row], nodes: list[str],
             stats: dict, now: datetime, default_spf: float, truncated: bool = False) -> Forecast:
    """Estimates for the jobs rendering, queued (``queued`` in claim order) and
    waiting to join the queue, over the render nodes ``nodes`` that are up.

    ``stats``: history key → list of Sample. ``truncated``: ``queued`` is only
    the head of the queue; jobs that would land after it get no times.
    """
    result = Forecast(now=now, nodes=list(nodes), stats=stats, default_spf=default_spf,
                      truncated=truncated)
    free = {name: now for name in nodes}
    result.rows = {row.id: row for row in (*rendering, *queued, *waiting)}
    for row in rendering:
        estimate = running(row, stats, now, default_spf)
        result.estimates[row.id] = estimate
        if row.node in free:
            free[row.node] = max(free[row.node], estimate.finishes_at)
    for position, row in enumerate(queued, start=1):
        result.keys.append(row.order)
        result.free_before.append(dict(free))
        result.estimates[row.id] = _place(row, free, stats, now, default_spf, position)
    result.free_before.append(dict(free))
    result.queued = len(queued)
    for row in waiting:
        result.estimates[row.id] = result.place(row)
    return result


def with_times_from(estimate: Estimate, now: datetime) -> Estimate:
    """A job that has not started, with times not in the past: a forecast a few
    seconds old says "now" for what it expected to have started by now."""
    if estimate.starts_at is None or estimate.starts_at >= now:
        return estimate
    shift = now - estimate.starts_at
    return replace(estimate, starts_at=now, finishes_at=estimate.finishes_at + shift)
