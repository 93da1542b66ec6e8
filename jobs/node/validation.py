"""Background file checks: is the project file fully synced and safe to render?

Every check resolves the job's files on this machine from their stored
Dropbox-relative paths and refuses, at once, one whose real path leads out
of the Dropbox folder: a symlink or junction may arrive through Dropbox
after the submission was checked. A timeline (ffmpeg) job's sources are
read once they are stable: the wrong kind of file, or lengths over the
limits, fail the job here with the reason (the submission answers without
reading any file).

A check never sleeps. Each job carries its last observation of the file
(size, modification time, when it was seen), so one thread can watch many
files at once and any node can continue a job another node started. A due
check is claimed with a compare-and-set on ``validation_next_at``.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from types import SimpleNamespace

from django.conf import settings
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Engine, Job, Status
from jobs.node import preflight
from jobs.node.filesync import Verdict, judge, landed_at
from jobs.submission.nexrender_spec import asset_sources
from jobs.submission.paths import PathError, checked_dropbox_file, checked_source_file
from jobs.submission.timeline import local_sources, source_problems

log = logging.getLogger(__name__)
BATCH = 200
MESSAGE_CHARS = Job._meta.get_field("validation_message").max_length


def sources_stat(job: Job) -> SimpleNamespace:
    """One observation of all the local sources of a timeline (ffmpeg) job: total
    size, newest modification, latest arrival; so the same checks apply."""
    size, mtime, landed = 0, 0.0, 0.0
    for _field, src in local_sources(job.config or {}):
        path = checked_source_file(src)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"source not found in Dropbox: {path}") from None
        size += stat.st_size
        mtime = max(mtime, stat.st_mtime)
        landed = max(landed, landed_at(stat))
    return SimpleNamespace(st_size=size, st_mtime=mtime, st_ctime=landed, st_birthtime=landed)


def project_stat(job: Job) -> os.stat_result:
    """The project file's observation; its media assets must stay inside Dropbox too."""
    for _field, src in asset_sources(job.config):
        checked_source_file(src)
    return checked_dropbox_file(job.project_path).stat()


def inspect(job: Job, now: datetime) -> tuple[Verdict, os.stat_result | None]:
    ffmpeg = job.engine == Engine.FFMPEG
    try:
        stat = sources_stat(job) if ffmpeg else project_stat(job)
    except PathError as exc:
        # No later check can make it safe: the job fails at once.
        return Verdict(problem=f"{_what(job)} refused: {exc.message}", final=True,
                       code="outside_dropbox"), None
    except FileNotFoundError as exc:
        return Verdict(problem=exc.args[0] if ffmpeg else "file not found in Dropbox"), None
    except OSError as exc:
        return Verdict(problem=f"file cannot be read ({exc.strerror or exc})"), None
    return judge(stat, now, (job.validation_size, job.validation_mtime, job.validation_seen_at),
                 saved_at=job.saved_at)


def _what(job: Job) -> str:
    return "Timeline sources" if job.engine == Engine.FFMPEG else "Project file"


def check(job: Job, now: datetime | None = None) -> str:
    """Run one check of ``job``; returns what happened (for logs and tests)."""
    now = now or timezone.now()
    verdict, stat = inspect(job, now)
    preflighted = verdict.ready and job.engine != Engine.FFMPEG
    if preflighted:
        # The project file is synced: read it, and wait for the footage it links
        # to. The project's own observation stays as it is meanwhile.
        verdict, stat = preflight.check(job, now), None
    observed = {}
    if stat is not None:
        observed = {"validation_size": stat.st_size, "validation_mtime": stat.st_mtime,
                    "validation_seen_at": now}
    elif verdict.problem and not preflighted:
        observed = {"validation_size": None, "validation_mtime": None,
                    "validation_seen_at": None}

    if verdict.ready and job.engine == Engine.FFMPEG:
        problems = source_problems(job.config or {}, checked_source_file)
        if problems:
            reasons = "; ".join(f"timeline.{where}: {why}" for where, why in problems.items())
            lifecycle.fail_validation(job.pk, f"Timeline sources cannot be rendered: {reasons}",
                                      code="invalid_source")
            return "failed"

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
    if verdict.final:
        lifecycle.fail_validation(job.pk, verdict.problem, code=verdict.code)
        return "failed"
    if attempts >= settings.VALIDATION_ATTEMPTS:
        lifecycle.fail_validation(
            job.pk, f"{_what(job)} check failed after {attempts} tries: {verdict.problem}")
        return "failed"
    changed = Job.objects.filter(pk=job.pk, status=Status.VALIDATING).update(
        validation_attempts=attempts, validation_message=verdict.problem[:MESSAGE_CHARS],
        validation_next_at=now + interval, **observed)
    if changed and verdict.problem[:MESSAGE_CHARS] != job.validation_message:
        lifecycle.record(job.pk, "validation", message=f"Waiting: {verdict.problem}")
    return "retry"


def tick(now: datetime | None = None) -> int:
    """Start pending jobs and run every check that is due. Returns checks run."""
    given = now
    now = now or timezone.now()
    started = 0
    for job_id in Job.objects.filter(status=Status.PENDING).order_by("created_at") \
            .values_list("pk", flat=True)[:BATCH]:
        started += lifecycle.begin_validation(job_id)
    if started and given is None:
        now = timezone.now()  # what just began is due now, in this same tick

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
