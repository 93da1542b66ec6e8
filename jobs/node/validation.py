"""Background file checks: is the project file fully synced and safe to render?

A check never sleeps. Each job carries its last observation of the file
(size, modification time, when it was seen), so one thread can watch many
files at once and any node can continue a job another node started. A due
check is claimed with a compare-and-set on ``validation_next_at``.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from django.conf import settings
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Engine, Job, Status
from jobs.submission.timeline import local_sources

log = logging.getLogger(__name__)
BATCH = 200


@dataclass
class Verdict:
    ready: bool = False
    problem: str = ""  # a failed check: counts as one of the limited attempts
    wait_until: datetime | None = None  # not a failure, just too early to say


def landed_at(stat: os.stat_result) -> float:
    """When the file arrived on this machine.

    Dropbox copies the modification time from the machine that saved the
    file, so the age must count from the local creation time: st_ctime is the
    creation time on Windows and the inode change time on Linux; macOS has a
    real birth time.
    """
    if sys.platform == "darwin" and hasattr(stat, "st_birthtime"):
        return stat.st_birthtime
    return stat.st_ctime


def sources_stat(job: Job) -> SimpleNamespace:
    """One observation of all the local sources of a timeline (ffmpeg) job: total
    size, newest modification, latest arrival; so the same checks apply."""
    size, mtime, landed = 0, 0.0, 0.0
    for _field, path in local_sources(job.config or {}):
        try:
            stat = Path(path).stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"source not found in Dropbox: {path}") from None
        size += stat.st_size
        mtime = max(mtime, stat.st_mtime)
        landed = max(landed, landed_at(stat))
    return SimpleNamespace(st_size=size, st_mtime=mtime, st_ctime=landed, st_birthtime=landed)


def inspect(job: Job, now: datetime) -> tuple[Verdict, os.stat_result | None]:
    try:
        ffmpeg = job.engine == Engine.FFMPEG
        stat = sources_stat(job) if ffmpeg else Path(job.project_path).stat()
    except FileNotFoundError as exc:
        return Verdict(problem=exc.args[0] if ffmpeg else "file not found in Dropbox"), None
    except OSError as exc:
        return Verdict(problem=f"file cannot be read ({exc.strerror or exc})"), None

    age = now.timestamp() - landed_at(stat)
    if age < settings.MIN_FILE_AGE_SECONDS:
        wait = settings.MIN_FILE_AGE_SECONDS - age
        return Verdict(wait_until=now + timedelta(seconds=wait)), stat

    if job.saved_at is not None:
        slack = settings.SAVED_AT_TOLERANCE_SECONDS
        if stat.st_mtime < job.saved_at.timestamp() - slack:
            modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
            return Verdict(problem=(
                f"file is older than the saved version (modified {modified:%Y-%m-%d %H:%M:%S} "
                f"UTC, saved_at {job.saved_at:%Y-%m-%d %H:%M:%S} UTC): Dropbox has not "
                "delivered it yet")), None

    seen_before = (job.validation_size, job.validation_mtime, job.validation_seen_at)
    if None in seen_before:
        # First look: come back after the stability window and compare.
        return Verdict(wait_until=now + _stability()), stat
    if stat.st_size != job.validation_size or stat.st_mtime != job.validation_mtime:
        return Verdict(problem="file is still changing (size or modification time moved)"), stat
    if now - job.validation_seen_at < _stability():
        return Verdict(wait_until=job.validation_seen_at + _stability()), None
    return Verdict(ready=True), stat


def _what(job: Job) -> str:
    return "Timeline sources" if job.engine == Engine.FFMPEG else "Project file"


def _stability() -> timedelta:
    return timedelta(seconds=settings.STABILITY_CHECK_SECONDS)


def check(job: Job, now: datetime | None = None) -> str:
    """Run one check of ``job``; returns what happened (for logs and tests)."""
    now = now or timezone.now()
    verdict, stat = inspect(job, now)
    observed = {}
    if stat is not None:
        observed = {"validation_size": stat.st_size, "validation_mtime": stat.st_mtime,
                    "validation_seen_at": now}
    elif verdict.problem:
        observed = {"validation_size": None, "validation_mtime": None,
                    "validation_seen_at": None}

    if verdict.ready:
        lifecycle.mark_validated(job.pk, "Timeline sources are synced and stable"
                                 if job.engine == Engine.FFMPEG
                                 else "Project file is synced and stable")
        return "ready"

    interval = timedelta(seconds=settings.VALIDATION_INTERVAL_SECONDS)
    if not verdict.problem:
        Job.objects.filter(pk=job.pk, status=Status.VALIDATING).update(
            validation_next_at=verdict.wait_until or now + interval, **observed)
        return "waiting"

    attempts = job.validation_attempts + 1
    if attempts >= settings.VALIDATION_ATTEMPTS:
        lifecycle.fail_validation(
            job.pk, f"{_what(job)} check failed after {attempts} tries: {verdict.problem}")
        return "failed"
    changed = Job.objects.filter(pk=job.pk, status=Status.VALIDATING).update(
        validation_attempts=attempts, validation_message=verdict.problem,
        validation_next_at=now + interval, **observed)
    if changed and verdict.problem != job.validation_message:
        lifecycle.record(job.pk, "validation", message=f"Waiting: {verdict.problem}")
    return "retry"


def tick(now: datetime | None = None) -> int:
    """Start pending jobs and run every check that is due. Returns checks run."""
    now = now or timezone.now()
    for job_id in Job.objects.filter(status=Status.PENDING).order_by("created_at") \
            .values_list("pk", flat=True)[:BATCH]:
        lifecycle.begin_validation(job_id)

    due = Job.objects.filter(status=Status.VALIDATING, validation_next_at__lte=now) \
        .order_by("validation_next_at")[:BATCH]
    done = 0
    for job in due:
        # Claim this check so that another node's validator skips it.
        lease_until = now + timedelta(seconds=max(settings.VALIDATION_INTERVAL_SECONDS, 5))
        claimed = Job.objects.filter(pk=job.pk, status=Status.VALIDATING,
                                     validation_next_at=job.validation_next_at) \
            .update(validation_next_at=lease_until)
        if not claimed:
            continue
        try:
            outcome = check(job, now)
        except Exception:
            log.exception("validation of job %s failed unexpectedly", job.pk)
            continue
        log.debug("validated job %s: %s", job.pk, outcome)
        done += 1
    return done


def next_due_in(now: datetime | None = None) -> float | None:
    """Seconds until the next check is due (None when nothing waits)."""
    now = now or timezone.now()
    if Job.objects.filter(status=Status.PENDING).exists():
        return 0.0
    nxt = Job.objects.filter(status=Status.VALIDATING).order_by("validation_next_at") \
        .values_list("validation_next_at", flat=True).first()
    if nxt is None:
        return None
    return max(0.0, (nxt - now).total_seconds())
