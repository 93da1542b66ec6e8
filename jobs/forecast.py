"""The queue forecast: an estimate for every unfinished job, computed once per change.

``current()`` walks the queue (jobs.estimates) over the render nodes that are
up and keeps the result in this process until the queue changes: a JobEvent
other than a progress tick (a submission, a transition, a priority change)
or, because renders run longer or shorter than expected and nodes come and
go without events, after MAX_AGE_SECONDS. A page of 50 rows or the API list
then costs one small query (the latest event id) and dictionary look-ups.
When it is only old (no event since), only what moves without events is read
again: the renders in progress and the nodes that are up; the queue and its
history come from the last forecast, and are read anew after REREAD_SECONDS.

A job that is rendering is estimated afresh from its own row each time it is
asked for, so its live rate shows at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from jobs import estimates, history
from jobs.lifecycle import QUEUE_ORDER
from jobs.models import FINAL, Job, JobEvent, RenderNode, Status

MAX_AGE_SECONDS = 10.0
# A forecast that is only old takes the queued and waiting jobs from the last one
# (at 100 000 jobs with 3 000 queued, about 90 ms instead of 450 ms of the web
# process's CPU, which the requests beside it wait for: bench/job_list.py). The whole queue
# is read again this often all the same, for what changes without an event (an
# edit in Django's admin).
REREAD_SECONDS = 60.0
# A forecast that took longer than this to build is rebuilt on a background
# thread while requests go on with the previous one (a long queue on a busy
# farm), and not more often than every twice its build time; a quicker one is
# rebuilt at once, so small farms always see it fresh.
SYNC_BUILD_SECONDS = 0.05
# The walk covers this much of the queue; jobs beyond get a duration, no times.
QUEUE_LIMIT = 5000
# Not in the queue yet (file checks, a person's review): placed as if they joined it now.
WAITING = (Status.PENDING, Status.VALIDATING, Status.AWAITING_REVIEW)

log = logging.getLogger(__name__)
_lock = threading.Lock()
# took: how long the last whole build took; read: when the queue was last read.
_cached: dict = {"version": None, "built": 0.0, "forecast": None, "took": 0.0,
                 "read": 0.0, "building": None}  # the background build's thread while one runs


def live_nodes() -> list[str]:
    """Names of the render nodes that are up (RenderNode.is_alive: the one rule)."""
    nodes = RenderNode.objects.filter(stopped_at__isnull=True)
    return sorted(node.name for node in nodes if node.is_alive())


def build(now=None, since: estimates.Forecast | None = None) -> estimates.Forecast:
    """The forecast now. ``since``: the last one, when no event moved the queue after
    it was built: its queued and waiting jobs and their history are taken as they
    are, and only the renders in progress and the nodes that are up are read."""
    now = now or timezone.now()
    rendering = history.rows(Job.objects.filter(status=Status.RENDERING), QUEUE_ORDER)
    nodes = live_nodes()
    if since is None:
        queued = history.rows(Job.objects.filter(status=Status.QUEUED)
                              .order_by(*QUEUE_ORDER)[:QUEUE_LIMIT + 1], QUEUE_ORDER)
        truncated = len(queued) > QUEUE_LIMIT
        queued = queued[:QUEUE_LIMIT]
        waiting = history.rows(Job.objects.filter(status__in=WAITING)
                               .order_by(*QUEUE_ORDER)[:QUEUE_LIMIT], QUEUE_ORDER)
    else:
        # In the order they were read in (estimates.forecast keeps it).
        queued = [row for row in since.rows.values() if row.status == Status.QUEUED]
        waiting = [row for row in since.rows.values() if row.status in WAITING]
        truncated = since.truncated
    keys = [estimates.node_key(name) for name in nodes]
    for row in (*queued, *rendering, *waiting):
        keys += history.keys_of(row, row.node)
    if since is None:
        stats, looked_up = _history.stats(keys), frozenset(keys)
    else:
        # A render that completed wrote an event: the history read then still holds.
        known = _with_history(since, keys)
        stats, looked_up = known.stats, known.looked_up
    result = estimates.forecast(queued=queued, rendering=rendering, waiting=waiting,
                                nodes=nodes, stats=stats, now=now,
                                default_spf=settings.ESTIMATE_DEFAULT_SECONDS_PER_FRAME,
                                truncated=truncated)
    result.looked_up = looked_up
    return result


class HistoryCache:
    """The render history of the keys looked up so far, kept between builds: a
    key is read again only when its render count moved (one small query)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples: dict[str, list] = {}
        self.renders: dict[str, int] = {}  # key → count when read (0: no history)

    def stats(self, keys) -> dict[str, list]:
        wanted = {key for key in keys if key}
        with self.lock:
            counts = history.render_counts(wanted)
            stale = {key for key in wanted
                     if key not in self.renders or self.renders[key] != counts.get(key, 0)}
            loaded = history.load_stats(stale) if stale else {}
            for key in stale:
                self.renders[key] = counts.get(key, 0)
                self.samples.pop(key, None)
                if key in loaded:
                    self.samples[key] = loaded[key]
            # Forget keys no job asks for any more.
            for key in set(self.renders) - wanted:
                del self.renders[key]
                self.samples.pop(key, None)
            return {key: self.samples[key] for key in wanted if key in self.samples}

    def clear(self) -> None:
        with self.lock:
            self.samples.clear()
            self.renders.clear()


_history = HistoryCache()


def _version():
    # Progress ticks do not move the queue; everything else that does writes an event.
    return (JobEvent.objects.exclude(kind="progress").order_by("-id")
            .values_list("id", flat=True).first())


def current() -> estimates.Forecast:
    """The forecast, rebuilt when the queue changed or it is MAX_AGE_SECONDS old."""
    version = _version()
    with _lock:
        cached = _cached["forecast"]
        fresh = time.monotonic() - _cached["built"] < MAX_AGE_SECONDS
        if cached is not None and _cached["version"] == version and fresh:
            return cached
        if cached is not None and _cached["took"] > SYNC_BUILD_SECONDS:
            # At most a third of the time on forecasts, however fast the queue moves:
            # the build starts once the last one has rested twice its time. It is
            # always started, not left to a later call, so a forecast that is behind
            # catches up on its own (and latest() tells who waits for it).
            if _cached["building"] is None:
                rest = 2 * _cached["took"] - (time.monotonic() - _cached["built"])
                _cached["building"] = threading.Thread(
                    target=_build_in_background, args=(max(0.0, rest),),
                    name="queue-forecast", daemon=True)
                _cached["building"].start()
            return cached
        return _build(version)


def latest() -> estimates.Forecast | None:
    """The forecast last built, without looking at the queue (None before the first)."""
    return _cached["forecast"]


def rebuilding() -> bool:
    """A forecast that is behind the queue is being rebuilt in the background."""
    return _cached["building"] is not None


def _reusable(version) -> estimates.Forecast | None:
    """The last forecast, if no event moved the queue since and it read the queue
    less than REREAD_SECONDS ago (build's ``since``)."""
    if _cached["version"] != version or time.monotonic() - _cached["read"] >= REREAD_SECONDS:
        return None
    return _cached["forecast"]


def _built(version, since, began: float, forecast: estimates.Forecast) -> None:
    """Keep ``forecast``; a whole build's time decides where the next one runs."""
    ended = time.monotonic()
    _cached.update(version=version, built=ended, forecast=forecast)
    if since is None:
        _cached.update(took=ended - began, read=began)


def _build(version) -> estimates.Forecast:
    began = time.monotonic()
    since = _reusable(version)
    forecast = build(since=since)
    _built(version, since, began, forecast)
    return forecast


def _build_in_background(rest: float) -> None:
    try:
        time.sleep(rest)
        began = time.monotonic()
        version = _version()  # read now: the build sees at least this much of the queue
        since = _reusable(version)
        forecast = build(since=since)
        with _lock:
            _built(version, since, began, forecast)
    except Exception:
        log.exception("could not build the queue forecast")
    finally:
        connection.close()
        _cached["building"] = None


def forget() -> None:
    """Drop the cached forecast, once a background build is over (tests)."""
    building = _cached["building"]
    if building is not None:
        building.join(timeout=30)
    with _lock:
        _cached.update(version=None, built=0.0, forecast=None, took=0.0, read=0.0)
    _history.clear()


# --- One job -------------------------------------------------------------------------------


def _with_history(forecast: estimates.Forecast, keys) -> estimates.Forecast:
    """``forecast``, with the history of the ``keys`` it did not look up loaded."""
    missing = {key for key in keys if key and key not in forecast.looked_up}
    if not missing:
        return forecast
    return replace(forecast, stats={**forecast.stats, **history.load_stats(missing)},
                   looked_up=forecast.looked_up | missing)


def _knowing(forecast: estimates.Forecast, row: estimates.Row) -> estimates.Forecast:
    """``forecast``, with the history of ``row`` loaded if it was not looked up."""
    return _with_history(forecast, history.keys_of(row, row.node))


def _placed(job: Job, forecast: estimates.Forecast) -> bool:
    """Whether the forecast's estimate of ``job`` still holds as it is."""
    if job.status == Status.RENDERING:
        return False
    found = forecast.get(job.pk)
    return found is not None and (found.position is not None) == (job.status == Status.QUEUED)


def _known(job: Job, forecast: estimates.Forecast) -> bool:
    """Whether ``estimate_for`` can estimate ``job`` from the forecast alone (no JSON
    of the job's own, no history the forecast did not read)."""
    if job.status in FINAL or _placed(job, forecast):
        return True
    known = forecast.rows.get(job.pk)
    return known is not None and known.status == job.status


def for_page(jobs, forecast: estimates.Forecast | None = None) -> estimates.Forecast | None:
    """The forecast to estimate a page of ``jobs`` with: None when all are final.

    Jobs it does not know (submitted or moved since it was built, or while a slow
    build runs in the background) are estimated from their own rows: they get the
    JSON columns a list defers in one query and their history in one more, and
    the forecast returned knows that history, instead of a query or three per row.
    """
    jobs = [job for job in jobs if job.status not in FINAL]
    if not jobs:
        return forecast
    forecast = forecast or current()
    unknown = [job for job in jobs if not _known(job, forecast)]
    if not unknown:
        return forecast
    deferred = {"config", "project"} & set().union(*(job.get_deferred_fields()
                                                     for job in unknown))
    if deferred:
        found = {row["pk"]: row for row in Job.objects.filter(
            pk__in=[job.pk for job in unknown]).values("pk", *sorted(deferred))}
        for job in unknown:
            for name in deferred:
                if job.pk in found:
                    setattr(job, name, found[job.pk][name])
    keys = set()
    for job in unknown:
        row = history.make_row(history.values_of(job), QUEUE_ORDER)
        keys.update(history.keys_of(row, row.node))
    return _with_history(forecast, keys)


def estimate_for(job: Job, forecast: estimates.Forecast | None = None,
                 now=None) -> estimates.Estimate | None:
    """The estimate of ``job`` (None once it is final)."""
    if job.status in FINAL:
        return None
    forecast = forecast or current()
    now = now or timezone.now()
    if _placed(job, forecast):
        return estimates.with_times_from(forecast.get(job.pk), now)
    # Rendering (its live rate changes with every progress report), or its
    # status changed since the forecast was built.
    known = forecast.rows.get(job.pk)
    if known is not None and known.status == job.status:
        # Its keys from the forecast (a list row defers the JSON they come from),
        # its progress from the row in hand.
        row = replace(known, frames=job.frames_total or known.frames,
                      frames_done=job.frames_done, eta_seconds=job.eta_seconds,
                      progress_at=job.last_output_at, phase=job.phase,
                      started_at=job.started_at)
    else:
        row = history.make_row(history.values_of(job), QUEUE_ORDER)
    forecast = _knowing(forecast, row)
    if job.status == Status.RENDERING:
        return estimates.running(row, forecast.stats, now, forecast.default_spf)
    return forecast.place(row, now)


def estimate_new(jobs: list[Job], forecast: estimates.Forecast | None = None,
                 now=None) -> list[estimates.Estimate]:
    """Estimates of jobs not submitted yet (unsaved, lifecycle.new_job), submitted
    together in this order: a job, or a batch's rows."""
    forecast = forecast or current()
    now = now or timezone.now()
    rows = []
    for number, job in enumerate(jobs):
        values = history.values_of(job)
        # After every job already there with its priority and age, in their order.
        values.update(id=f"~{number:09d}", created_at=now, status=Status.PENDING)
        rows.append(history.make_row(values, QUEUE_ORDER))
    for row in rows:
        forecast = _knowing(forecast, row)
    return forecast.place_all(rows, now)


# --- As the API and pages show it ---------------------------------------------------------


def cost(seconds: float) -> dict | None:
    """Render time in money at RENDER_COST_PER_MINUTE, or None when not set."""
    rate = settings.RENDER_COST_PER_MINUTE
    if rate is None:
        return None
    amount = (Decimal(str(round(seconds, 3))) / 60 * rate).quantize(Decimal("0.01"))
    return {"amount": float(amount), "currency": settings.RENDER_COST_CURRENCY}


def as_dict(estimate: estimates.Estimate | None) -> dict | None:
    if estimate is None:
        return None
    return {"render_seconds": round(estimate.render_seconds, 1),
            "starts_at": estimate.starts_at, "finishes_at": estimate.finishes_at,
            "basis": estimate.basis, "cost": cost(estimate.render_seconds),
            "queue_position": estimate.position, "frames": estimate.frames}
