"""Retention: finished jobs older than JOB_RETENTION_DAYS go, with their logs,
events and review previews (the manager's own files); batches go once none of
their jobs is left; temp folders that no running render owns go too. Outputs
in Dropbox are left alone.

Run by ``python manage.py purge_jobs`` and, at most hourly, by every render
worker (``maybe_purge``). Deleting is idempotent, so several nodes doing it
at once is harmless.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import FINAL, Batch, Job, JobEvent, JobLog, RenderStat, Status
from jobs.node import bookkeeping, preview

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600
BATCH = 500
# Temp folders are named "<job uuid hex>-<attempt>" by the worker.
TEMP_NAME = re.compile(r"^([0-9a-f]{32})-\d+$")
# A folder younger than this is never touched: its render may be starting up.
TEMP_GRACE_SECONDS = 600

# The render history behind estimates (RenderStat) outlives the jobs; a key no
# render has added to for this long (a composition nobody renders any more) goes.
HISTORY_DAYS = 365

_lock = threading.Lock()
_last_purge: float | None = None


@dataclass
class PurgeResult:
    jobs: int = 0
    logs: int = 0
    events: int = 0
    previews: int = 0
    batches: int = 0
    history: int = 0
    temp_dirs: list[str] = field(default_factory=list)


def expired_jobs(days: int | None = None, now=None):
    """Final jobs that finished (or, lacking that, were created) before the cutoff."""
    cutoff = _cutoff(days, now)
    return Job.objects.filter(status__in=FINAL).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff))


def _cutoff(days: int | None, now):
    days = settings.JOB_RETENTION_DAYS if days is None else days
    return (now or timezone.now()) - timedelta(days=days)


def expired_batches(days: int | None = None, now=None):
    """Batches older than the cutoff none of whose rows has a job any more."""
    return Batch.objects.filter(created_at__lt=_cutoff(days, now)).exclude(
        rows__job__isnull=False)


def purge_jobs(days: int | None = None, now=None, dry_run: bool = False) -> PurgeResult:
    result = PurgeResult()
    candidates = expired_jobs(days, now)
    if dry_run:
        ids = list(candidates.values_list("pk", flat=True))
        result.jobs = len(ids)
        result.logs = JobLog.objects.filter(job_id__in=ids).count()
        result.events = JobEvent.objects.filter(job_id__in=ids).count()
        return result
    while True:
        ids = list(candidates.values_list("pk", flat=True)[:BATCH])
        if not ids:
            break
        with transaction.atomic():
            # Re-check the status inside the transaction: a job retried a moment
            # ago is not final any more and must stay.
            ids = list(Job.objects.filter(pk__in=ids, status__in=FINAL)
                       .values_list("pk", flat=True))
            result.previews += preview.remove_files(ids)
            result.logs += JobLog.objects.filter(job_id__in=ids).delete()[0]
            result.events += JobEvent.objects.filter(job_id__in=ids).delete()[0]
            deleted = Job.objects.filter(pk__in=ids, status__in=FINAL).delete()[1]
            result.jobs += deleted.get("jobs.Job", 0)
    result.batches = expired_batches(days, now).delete()[1].get("jobs.Batch", 0)
    return result


def stale_temp_dirs(root: Path | None = None, now: float | None = None) -> list[Path]:
    """Temp folders of renders that are over: their job is final, gone, or
    (for an earlier attempt) no longer renders that attempt."""
    root = Path(settings.RENDER_TEMP_DIR) if root is None else root
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    folders: dict[str, list[tuple[Path, int]]] = {}
    for entry in root.iterdir():
        match = TEMP_NAME.match(entry.name)
        if not match or not entry.is_dir():
            continue
        try:
            if now - entry.stat().st_mtime < TEMP_GRACE_SECONDS:
                continue
        except OSError:
            continue
        attempt = int(entry.name.rsplit("-", 1)[1])
        folders.setdefault(match.group(1), []).append((entry, attempt))
    if not folders:
        return []
    ids = [uuid.UUID(hex_id) for hex_id in folders]
    live = dict(Job.objects.filter(pk__in=ids).values_list("pk", "status"))
    attempts = dict(Job.objects.filter(pk__in=ids).values_list("pk", "attempts"))
    stale = []
    for hex_id, entries in folders.items():
        job_id = uuid.UUID(hex_id)
        for path, attempt in entries:
            # Only the folder of the attempt rendering right now is in use.
            in_use = (live.get(job_id) == Status.RENDERING
                      and attempt == attempts.get(job_id))
            if not in_use:
                stale.append(path)
    return stale


# Where a render's temp folder goes when it is over (discard_temp_dir), to be deleted
# beside the next render.
DISCARDED = ".discarded"


def discard_temp_dir(path: Path) -> None:
    """Take a render's temp folder out of the way now (one rename: it may hold the
    copies of the project and its footage) and delete it beside the next render
    (jobs.node.bookkeeping). Under its own name it could be deleted after another
    attempt of the same job made it again. Where it cannot be moved (a process
    still works in it, on Windows), it is deleted now as far as it can be; what is
    left is for the worker's settle or for retention."""
    path = Path(path)
    target = path.parent / DISCARDED / uuid.uuid4().hex
    try:
        target.parent.mkdir(exist_ok=True)
        path.rename(target)
    except FileNotFoundError:
        return
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
        return
    bookkeeping.later(shutil.rmtree, target, True)


def remove_temp_dirs(root: Path | None = None) -> list[str]:
    removed = []
    root = Path(settings.RENDER_TEMP_DIR) if root is None else root
    discarded = root / DISCARDED
    if discarded.is_dir():
        # Left by a worker that stopped before it deleted them.
        cutoff = time.time() - TEMP_GRACE_SECONDS
        for entry in discarded.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue
    for path in stale_temp_dirs(root):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(str(path))
    return removed


def purge_history(now=None) -> int:
    """Delete render history keys untouched for HISTORY_DAYS (or the job retention, if
    longer); returns how many went."""
    days = max(HISTORY_DAYS, settings.JOB_RETENTION_DAYS)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    return RenderStat.objects.filter(updated_at__lt=cutoff).delete()[0]


def purge(days: int | None = None, now=None) -> PurgeResult:
    result = purge_jobs(days, now)
    result.history = purge_history(now)
    result.temp_dirs = remove_temp_dirs()
    if result.jobs or result.temp_dirs:
        log.info("retention: deleted %d job(s), %d log(s), %d event(s), %d temp folder(s)",
                 result.jobs, result.logs, result.events, len(result.temp_dirs))
    return result


def maybe_purge(every: float = PURGE_EVERY_SECONDS) -> PurgeResult | None:
    """``purge()`` if this process has not done so in the last ``every`` seconds."""
    global _last_purge
    with _lock:
        now = time.monotonic()
        if _last_purge is not None and now - _last_purge < every:
            return None
        _last_purge = now
    return purge()
