"""The outbox bridge: JobEvent rows become htmx fragments on open websockets.

Render workers are other processes, so their changes cannot reach this
process's in-memory channel layer directly. Instead every change writes a
JobEvent (jobs.lifecycle), and one task in each daphne process follows that
table and fans the news out to channel groups:

- ``user-<id>``: the job list pages of the job's owner,
- ``admins``: every admin's job list page,
- ``job-<id>``: the job's detail pages,
- ``batch-<id>``: the pages of the batch the job is a row of;
- ``notify-<id>``: every open page of the job's owner, for browser notifications
  (JSON: which of their renders started, completed, failed or has a preview).

On PostgreSQL the task LISTENs on a dedicated connection for the NOTIFY that
lifecycle sends with every event, so it wakes at once; on SQLite it polls.
Either way the table is the truth, and a reconnect simply catches up.

Sequence values are handed out at insert, not at commit, so on PostgreSQL
event 101 can become visible before event 100. The bridge remembers the ids
it has jumped over ("gaps") and asks for them again for a while, so a slow
transaction's events are still delivered, once.

daphne has no ASGI lifespan events, so the first websocket connection starts
the task (``await bridge.start()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from types import SimpleNamespace

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.db.models import Max, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from jobs import estimates, forecast
from jobs.lifecycle import NOTIFY_CHANNEL
from jobs.models import Batch, BatchRow, Job, JobEvent, Status
from jobs.web.common import media_context, output_on_mac

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # SQLite, and PostgreSQL while LISTEN is unavailable
SAFETY_POLL_SECONDS = 5.0  # PostgreSQL: look at the table now and then even without NOTIFY
RETRY_SECONDS = 10.0  # PostgreSQL: poll this long after LISTEN failed, then retry it
GAP_SECONDS = 30.0  # how long an uncommitted (or rolled back) event id is asked for again
MAX_GAPS = 5000
BATCH = 500
ADMINS = "admins"
# A status a person may be notified of (accounts.models.NOTIFY_EVENTS), by the status.
NOTIFY_STATUSES = {"RENDERING": "started", "COMPLETED": "completed", "FAILED": "failed",
                   "AWAITING_REVIEW": "preview"}


def user_group(user_id) -> str:
    return f"user-{user_id}"


def job_group(job_id) -> str:
    return f"job-{job_id}"


def batch_group(batch_id) -> str:
    return f"batch-{batch_id}"


def notify_group(user_id) -> str:
    return f"notify-{user_id}"


def transitions(job_events: list[JobEvent]) -> list[str]:
    """The statuses ``job_events`` moved the job to, in order."""
    return [e.to_status for e in job_events
            if e.kind != "progress" and e.to_status and e.to_status != e.from_status]


def _has_listeners(layer, group: str) -> bool:
    """Skip rendering for nobody. Only the in-memory layer can tell; others always render."""
    groups = getattr(layer, "groups", None)
    if groups is None:
        return True
    return bool(groups.get(group))


class Outbox:
    """Reads events after ``last_seen`` plus the gaps it has skipped, each exactly once."""

    def __init__(self, last_seen: int = 0):
        self.last_seen = last_seen
        self.gaps: dict[int, float] = {}

    def read(self) -> list[JobEvent]:
        now = time.monotonic()
        self.gaps = {i: t for i, t in self.gaps.items() if now - t < GAP_SECONDS}
        wanted = Q(id__gt=self.last_seen)
        if self.gaps:
            wanted |= Q(id__in=list(self.gaps))
        events = list(JobEvent.objects.filter(wanted).order_by("id")[:BATCH])
        previous = self.last_seen
        for event in events:
            if event.id in self.gaps:
                del self.gaps[event.id]
                continue
            if event.id > previous + 1 and len(self.gaps) < MAX_GAPS:
                for missing in range(previous + 1, min(event.id, previous + 1 + MAX_GAPS)):
                    self.gaps.setdefault(missing, now)
            previous = max(previous, event.id)
        self.last_seen = previous
        return events


def render_messages(events: list[JobEvent], layer) -> list[tuple[str, dict]]:
    """(group, message) pairs for a batch of events: one update per job, its latest state."""
    by_job: OrderedDict = OrderedDict()
    for event in events:
        by_job.setdefault(event.job_id, []).append(event)
    jobs = (Job.objects.select_related("user", "node", "batch_row__batch", "preview")
            .defer("config", "preview__jpeg").in_bulk(list(by_job)))
    out: list[tuple[str, dict]] = []
    batch_rows: OrderedDict = OrderedDict()
    # One queue forecast for the whole batch (jobs.forecast caches it).
    queue = forecast.current() if any(not j.is_final for j in jobs.values()) else None
    for job_id, job_events in by_job.items():
        job = jobs.get(job_id)
        if job is None:
            continue  # deleted since (retention)
        new = any(e.kind == "submitted" for e in job_events)
        moved = transitions(job_events)
        base = {"type": "job.row", "job_id": str(job.pk), "owner_id": job.user_id, "new": new,
                "moved": moved}
        if job.user_id and _has_listeners(layer, user_group(job.user_id)):
            html = render_to_string("jobs/_row.html", {"job": job, "is_admin": False,
                                                       "forecast": queue})
            out.append((user_group(job.user_id), {**base, "html": html}))
        if _has_listeners(layer, ADMINS):
            html = render_to_string("jobs/_row.html", {"job": job, "is_admin": True,
                                                       "forecast": queue})
            out.append((ADMINS, {**base, "html": html}))
        notify = [NOTIFY_STATUSES[status] for status in moved if status in NOTIFY_STATUSES]
        if notify and job.user_id and _has_listeners(layer, notify_group(job.user_id)):
            out.append((notify_group(job.user_id), {
                "type": "job.notify", "job_id": str(job.pk), "owner_id": job.user_id,
                "events": notify, "name": job.display_name, "error": job.error,
                "url": reverse("jobs:detail", args=[job.pk])}))
        if _has_listeners(layer, job_group(job.pk)):
            history = [e for e in job_events if e.kind != "progress"]
            html = render_to_string("jobs/_live_detail.html", {
                "job": job, "events": history, "forecast": queue,
                "download_url": reverse("api-job-download", args=[job.pk]),
                **media_context(job), "mac_output": output_on_mac(job) if history else None,
            })
            out.append((job_group(job.pk), {"type": "job.detail", "job_id": str(job.pk),
                                            "html": html}))
        row = getattr(job, "batch_row", None)
        if row is not None and _has_listeners(layer, batch_group(row.batch_id)):
            row.job = job
            batch_rows.setdefault(row.batch_id, []).append(row)
    for batch_id, rows in batch_rows.items():
        counts = Batch.counts(BatchRow.objects.filter(batch_id=batch_id).select_related("job")
                              .only("number", "errors", "job_id", "job__status"))
        html = render_to_string("jobs/_batch_live.html", {"rows": rows, "counts": counts})
        out.append((batch_group(batch_id), {"type": "batch.rows", "batch_id": str(batch_id),
                                            "html": html}))
    return out


class EstimatePush:
    """Queue ETAs on open pages. When the queue moves (a job is submitted,
    claimed, finished, reprioritized) every waiting job's place and times
    change, though only some of those jobs have events: after such a batch,
    and every REFRESH_SECONDS as renders run long or short, the ETAs whose
    words changed since the last push go out (rendering jobs update with
    their own progress). A forecast that was behind the queue when the queue
    moved (a slow build goes on in the background, jobs.forecast) is pushed
    as soon as its rebuild is there, not with the next periodic push."""

    REFRESH_SECONDS = 15.0

    def __init__(self):
        self.sent: dict[str, str] = {}
        self.last = 0.0
        self.pushed: object = None  # the forecast the last push came from

    def due(self, events) -> bool:
        moved = any(event.kind != "progress" for event in events)
        rebuilt = self.pushed is not None and forecast.latest() is not self.pushed
        return moved or rebuilt or time.monotonic() - self.last >= self.REFRESH_SECONDS

    def messages(self, layer) -> list[tuple[str, dict]]:
        self.last = time.monotonic()
        groups = getattr(layer, "groups", None)
        if groups is not None and not any(groups.values()):
            self.sent.clear()
            self.pushed = None
            return []  # nobody is watching: not even the forecast is needed
        queue = self.pushed = forecast.current()
        now = timezone.now()
        out: list[tuple[str, dict]] = []
        rows, owners, seen = {}, {}, set()
        for job_id, estimate in queue.estimates.items():
            row = queue.rows.get(job_id)
            if row is None or row.status == Status.RENDERING:
                continue
            key = str(job_id)
            seen.add(key)
            context = {"job": SimpleNamespace(pk=job_id, status=row.status), "oob": True,
                       "estimate": estimates.with_times_from(estimate, now)}
            html = render_to_string("jobs/_estimate.html", context)
            if self.sent.get(key) == html:
                continue
            self.sent[key] = html
            rows[key], owners[key] = html, row.owner
            if _has_listeners(layer, job_group(job_id)):
                detail = render_to_string("jobs/_estimate.html", {**context, "large": True})
                out.append((job_group(job_id), {"type": "job.estimates", "job_id": key,
                                                "html": detail}))
        for gone in set(self.sent) - seen:
            del self.sent[gone]
        if rows and _has_listeners(layer, ADMINS):
            out.append((ADMINS, {"type": "job.estimates", "rows": rows, "owners": owners}))
        by_owner: dict = {}
        for key, owner in owners.items():
            if owner is not None:
                by_owner.setdefault(owner, {})[key] = rows[key]
        for owner, mine in by_owner.items():
            if _has_listeners(layer, user_group(owner)):
                out.append((user_group(owner), {"type": "job.estimates", "rows": mine,
                                                "owners": {k: owner for k in mine}}))
        return out


def _latest_event_id() -> int:
    return JobEvent.objects.aggregate(top=Max("id"))["top"] or 0


def _postgres_conninfo() -> str | None:
    from psycopg.conninfo import make_conninfo

    db = connections["default"].settings_dict
    if not db["ENGINE"].endswith("postgresql"):
        return None
    params = {"dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD"),
              "host": db.get("HOST"), "port": db.get("PORT")}
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "keepalives",
                "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"):
        if key in (db.get("OPTIONS") or {}):
            params[key] = db["OPTIONS"][key]
    params["application_name"] = "rm-live-bridge"
    return make_conninfo(**{k: str(v) for k, v in params.items() if v})


class Bridge:
    """One per process and event loop; see the module docstring."""

    def __init__(self):
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready: asyncio.Event | None = None
        self.outbox: Outbox | None = None
        self.listening = False
        self.delivered = 0
        self.estimates = EstimatePush()
        self._lock = threading.Lock()

    async def start(self) -> None:
        """Start following the outbox (once); returns when it is following."""
        loop = asyncio.get_running_loop()
        with self._lock:
            # A new event loop (tests start one per test) needs its own task.
            if self.task is None or self.task.done() or self.loop is not loop:
                self.loop = loop
                self.ready = asyncio.Event()
                self.task = loop.create_task(self._run(self.ready), name="rm-live-bridge")
            ready = self.ready
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=10)

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, ready: asyncio.Event) -> None:
        self.outbox = Outbox(await database_sync_to_async(_latest_event_id)())
        conninfo = await database_sync_to_async(_postgres_conninfo)()
        while True:
            try:
                if conninfo:
                    await self._follow_postgres(conninfo, ready)
                else:
                    ready.set()
                    await self._follow_polling()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live updates: lost the outbox; polling, then trying again")
                self.listening = False
                ready.set()
                # Pages stay live by polling until LISTEN can be tried again.
                try:
                    await asyncio.wait_for(self._follow_polling(), timeout=RETRY_SECONDS)
                except TimeoutError:
                    pass
                except Exception:
                    log.exception("live updates: cannot read the outbox")
                    await asyncio.sleep(1)

    async def _follow_polling(self) -> None:
        while True:
            await self.deliver()
            await asyncio.sleep(POLL_SECONDS)

    async def _follow_postgres(self, conninfo: str, ready: asyncio.Event) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.listening = True
            ready.set()
            await self.deliver()  # whatever happened while we were not listening
            while True:
                # Wake at the first notification (or after the safety interval),
                # then read the table: one read covers any number of notifications.
                # While a forecast is rebuilt, look again soon: its ETAs go out when it is in.
                wait = POLL_SECONDS if forecast.rebuilding() else SAFETY_POLL_SECONDS
                async for _ in conn.notifies(timeout=wait, stop_after=1):
                    pass
                await self.deliver()

    async def deliver(self) -> int:
        layer = get_channel_layer()
        sent = 0
        more = True
        while more:  # a burst larger than one batch is read to the end now
            messages, more = await database_sync_to_async(self._read_and_render)(layer)
            for group, message in messages:
                await layer.group_send(group, message)
            sent += len(messages)
        self.delivered += sent
        return sent

    def _read_and_render(self, layer) -> tuple[list[tuple[str, dict]], bool]:
        events = self.outbox.read()
        messages = render_messages(events, layer) if events else []
        if self.estimates.due(events):
            messages += self.estimates.messages(layer)
        return messages, len(events) >= BATCH


bridge = Bridge()
