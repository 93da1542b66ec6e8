"""The job lifecycle: every status change goes through this module.

Each transition is a compare-and-set on the current status (and, while a job
renders, on the claim's lease), so two actors can never both move a job. A
successful transition writes a JobEvent, which is the job's timeline and the
outbox that live updates and worker wake-ups are read from.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from jobs.models import ACTIVE, FINAL, Job, JobEvent, Phase, RenderNode, Status

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "rm_events"
SUPERSEDE_RETRIES = 20

# Sent after the transaction that moved a job commits, with job_id,
# from_status, to_status, kind, actor and message. Receivers (Slack, webhooks)
# must not block: the render worker sends it.
job_transitioned = Signal()


class Conflict(Exception):
    """The action does not fit the job's current state."""


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _notify(event: JobEvent) -> None:
    # A wake-up hint only: listeners read the JobEvent table for the facts,
    # so a lost notification costs latency, never correctness.
    if is_postgres():
        payload = f"{event.pk}:{event.job_id}:{event.to_status or event.kind}"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, payload])


def record(job_id, kind: str, *, actor: str = "system", message: str = "",
           from_status: str = "", to_status: str = "") -> JobEvent:
    event = JobEvent.objects.create(job_id=job_id, kind=kind, actor=actor[:200],
                                    message=message, from_status=from_status,
                                    to_status=to_status)
    _notify(event)
    return event


def transition(job_id, to: str, *, allowed_from, actor: str = "system", message: str = "",
               kind: str = "status", expect_lease=None, **fields) -> bool:
    """Move a job to ``to`` if its status is one of ``allowed_from``. True if it moved."""
    allowed_from = [allowed_from] if isinstance(allowed_from, str) else list(allowed_from)
    with transaction.atomic():
        current = Job.objects.filter(pk=job_id, status__in=allowed_from)
        if expect_lease is not None:
            current = current.filter(lease=expect_lease)
        before = current.values_list("status", flat=True).first()
        if before is None:
            return False
        fields["status"] = to
        if to in FINAL:
            fields.setdefault("finished_at", timezone.now())
        moved = current.filter(status=before).update(**fields)
        if not moved:
            return False
        record(job_id, kind, actor=actor, message=message, from_status=before, to_status=to)
        transaction.on_commit(lambda: job_transitioned.send(
            sender=Job, job_id=job_id, from_status=before, to_status=to, kind=kind,
            actor=actor, message=message))
    return True


# --- Submission ---------------------------------------------------------------


@dataclass
class Submitted:
    job: Job
    superseded: list


def submit(*, actor: str, **fields) -> Submitted:
    """Create a PENDING job, cancelling every earlier unfinished job of its project.

    A partial unique index allows one unfinished job per project, so when two
    submissions race the loser's insert fails; it then cancels the winner and
    tries again. The last submission survives, as the user expects.
    """
    path_key = fields.get("path_key", "")
    for _ in range(SUPERSEDE_RETRIES):
        try:
            with transaction.atomic():
                superseded = []
                if path_key:
                    earlier = Job.objects.filter(path_key=path_key, status__in=ACTIVE)
                    for job_id in earlier.values_list("pk", flat=True):
                        if transition(job_id, Status.CANCELLED, allowed_from=ACTIVE,
                                      actor=actor, kind="superseded",
                                      message="Superseded by a newer submission",
                                      error="Superseded by a newer submission"):
                            superseded.append(job_id)
                job = Job.objects.create(status=Status.PENDING, **fields)
                record(job.pk, "submitted", actor=actor, to_status=Status.PENDING,
                       message=f"Submitted by {actor}")
                transaction.on_commit(lambda job=job: job_transitioned.send(
                    sender=Job, job_id=job.pk, from_status="", to_status=Status.PENDING,
                    kind="submitted", actor=actor, message=""))
            return Submitted(job, superseded)
        except IntegrityError:
            continue
    raise Conflict("Too many simultaneous submissions for this project; try again.")


# --- Validation ---------------------------------------------------------------


def begin_validation(job_id) -> bool:
    return transition(job_id, Status.VALIDATING, allowed_from=Status.PENDING,
                      validation_attempts=0, validation_size=None,
                      validation_next_at=timezone.now(), phase=Phase.WAITING)


def mark_validated(job_id, message: str = "") -> bool:
    return transition(job_id, Status.QUEUED, allowed_from=Status.VALIDATING,
                      message=message or "Project file is ready", queued_at=timezone.now(),
                      validation_next_at=None, phase=Phase.NONE)


def fail_validation(job_id, reason: str, code: str = "") -> bool:
    return transition(job_id, Status.FAILED, allowed_from=Status.VALIDATING, message=reason,
                      error=reason, error_code=code, validation_next_at=None, phase=Phase.NONE)


# --- Rendering ------------------------------------------------------------------


def claim_next(node: RenderNode) -> Job | None:
    """Take the highest-priority, oldest queued job for ``node``, or None.

    ``frames_total`` is kept: validation read it from the project (jobs.node.preflight).
    """
    for _ in range(10):
        with transaction.atomic():
            candidates = Job.objects.filter(status=Status.QUEUED).order_by(
                "-priority", "created_at", "id")
            if is_postgres():
                candidates = candidates.select_for_update(skip_locked=True)
            job_id = candidates.values_list("pk", flat=True).first()
            if job_id is None:
                return None
            lease = uuid.uuid4()
            now = timezone.now()
            if transition(job_id, Status.RENDERING, allowed_from=Status.QUEUED,
                          actor=f"node:{node.name}", message=f"Rendering on {node.name}",
                          node=node, lease=lease, attempts=F("attempts") + 1,
                          started_at=now, last_output_at=now, phase=Phase.SETTING_UP,
                          progress=0, frames_done=0, eta_seconds=None,
                          render_pid=None, render_spawned_at=None, error="", error_code=""):
                return Job.objects.select_related("user", "node").get(pk=job_id)
    return None


def still_mine(job_id, lease) -> bool:
    return Job.objects.filter(pk=job_id, status=Status.RENDERING, lease=lease).exists()


def complete(job_id, lease, *, output_path: str, output_size: int | None,
             has_thumbnail: bool = False) -> bool:
    return transition(job_id, Status.COMPLETED, allowed_from=Status.RENDERING,
                      expect_lease=lease,
                      message="Render completed", output_path=output_path,
                      output_size=output_size, progress=100, phase=Phase.NONE,
                      eta_seconds=0, render_pid=None, has_thumbnail=has_thumbnail)


def render_crashed(job_id, lease, reason: str, actor: str = "system",
                   permanent: bool = False, code: str = "") -> str | None:
    """A failed attempt: back to QUEUED while attempts remain, else FAILED.

    ``permanent``: another attempt cannot help (the job itself is wrong): FAILED now.
    ``code``: the cause as an ``error_code``.
    """
    job = Job.objects.filter(pk=job_id, status=Status.RENDERING, lease=lease).first()
    if job is None:
        return None
    limit = settings.MAX_RENDER_ATTEMPTS
    if job.attempts >= limit or permanent:
        message = f"Failed after {job.attempts} attempt(s): {reason}"
        moved = transition(job_id, Status.FAILED, allowed_from=Status.RENDERING,
                           expect_lease=lease,
                           actor=actor, message=message, error=message, error_code=code,
                           phase=Phase.NONE, render_pid=None)
        return Status.FAILED if moved else None
    message = f"Attempt {job.attempts} of {limit} failed: {reason}"
    moved = transition(job_id, Status.QUEUED, allowed_from=Status.RENDERING,
                       expect_lease=lease,
                       actor=actor, kind="retry", message=message, error=message,
                       error_code=code, queued_at=timezone.now(), phase=Phase.NONE,
                       render_pid=None, node=None)
    return Status.QUEUED if moved else None


def requeue_interrupted(job_id, lease, reason: str, actor: str = "system") -> bool:
    """Put a render that we stopped on purpose back in the queue, attempt not counted."""
    return transition(job_id, Status.QUEUED, allowed_from=Status.RENDERING,
                      expect_lease=lease,
                      actor=actor, kind="requeued", message=reason,
                      attempts=F("attempts") - 1, queued_at=timezone.now(),
                      phase=Phase.NONE, render_pid=None, node=None, progress=0,
                      frames_done=0, eta_seconds=None)


def requeue_dead_nodes(actor: str = "system") -> list:
    """Jobs held by nodes that stopped heartbeating count as crashed attempts."""
    cutoff = timezone.now() - timezone.timedelta(seconds=settings.NODE_TIMEOUT_SECONDS)
    stale = Job.objects.filter(status=Status.RENDERING, node__last_heartbeat__lt=cutoff)
    stale = stale.values_list("pk", "lease", "node__name")
    moved = []
    for job_id, lease, node_name in stale:
        reason = f"Render node {node_name} stopped responding"
        if render_crashed(job_id, lease, reason, actor=actor):
            moved.append(job_id)
    return moved


# --- User actions -------------------------------------------------------------------


def cancel(job_id, *, actor: str, reason: str = "Cancelled") -> bool:
    return transition(job_id, Status.CANCELLED, allowed_from=ACTIVE, actor=actor,
                      kind="cancelled", message=reason, error=reason,
                      phase=Phase.NONE, validation_next_at=None)


def retry(job_id, *, actor: str) -> bool:
    """Send a finished job through validation and rendering again."""
    try:
        return transition(job_id, Status.PENDING, allowed_from=[Status.FAILED, Status.CANCELLED],
                          actor=actor, kind="retried", message=f"Retried by {actor}",
                          attempts=0, error="", error_code="", warnings=[], project={},
                          finished_at=None, started_at=None,
                          progress=0, frames_done=0, frames_total=None, eta_seconds=None,
                          phase=Phase.NONE, output_path="", output_size=None, node=None,
                          has_thumbnail=False,
                          lease=None, validation_attempts=0, validation_message="")
    except IntegrityError:
        raise Conflict("A newer job for this project is still in progress.") from None


def set_priority(job_id, priority: int, *, actor: str) -> bool:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return False
        if job.priority == priority:
            return True
        Job.objects.filter(pk=job_id).update(priority=priority)
        record(job_id, "priority", actor=actor,
               message=f"Priority {job.priority} → {priority}")
    return True
