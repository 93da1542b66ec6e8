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
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.dispatch import Signal
from django.utils import timezone

from jobs.models import (
    FINAL,
    UNFINISHED,
    Batch,
    BatchRow,
    ClaimPause,
    Job,
    JobEvent,
    JobFollowUp,
    Phase,
    RenderNode,
    Status,
    alive_q,
    heartbeat_cutoff,
    supersede_key,
)

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "rm_events"
SUPERSEDE_RETRIES = 20

# Sent after the transaction that moved a job commits, with job_id,
# from_status, to_status, kind, actor, message and ``at`` (when it moved).
# Receivers (Slack, webhooks) must not block: the render worker sends it.
job_transitioned = Signal()
# Sent after a warning was added to a job (``warn``), with job_id, code and
# message: the admin side alerts on some codes. Same rules as above.
job_warned = Signal()

# Where the receivers of the two signals run (counters, usage rows, alerts,
# notifications): at once, after the commit, unless a process hands them to a
# thread of its own (a render node: jobs.node.bookkeeping), so that its render
# loop never waits for them.
_run_receivers = None


def run_receivers_with(runner) -> None:
    """``runner(fn)`` runs the signals' receivers from now on; None: run them at once."""
    global _run_receivers
    _run_receivers = runner


def _send_after_commit(signal: Signal, **kwargs) -> None:
    def send() -> None:
        signal.send(sender=Job, **kwargs)
    runner = _run_receivers
    transaction.on_commit(send if runner is None else lambda: runner(send))

# Claim order: the queue is taken highest priority first, previews first within a
# priority (a reviewer is waiting for them), then oldest. The one definition, used
# by claim_next and by the queue forecast (jobs.forecast).
QUEUE_ORDER = ("-priority", "-needs_preview", "created_at", "id")


class Conflict(Exception):
    """The action does not fit the job's current state."""


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@cache
def _insert_and_notify() -> tuple[str, tuple]:
    """On PostgreSQL an event and its NOTIFY are one statement (every transition, and
    every progress write of a render, records one: a round trip less each): the SQL,
    built once, and the fields whose values it takes, from the model."""
    fields = tuple(field for field in JobEvent._meta.concrete_fields if not field.primary_key)
    quote = connection.ops.quote_name
    sql = (f"WITH event AS (INSERT INTO {quote(JobEvent._meta.db_table)} "
           f"({', '.join(quote(field.column) for field in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id) "
           "SELECT id, pg_notify(%s, id || ':' || %s) FROM event")
    return sql, fields


def record(job_id, kind: str, *, actor: str = "system", message: str = "",
           from_status: str = "", to_status: str = "") -> JobEvent:
    event = JobEvent(job_id=job_id, kind=kind, actor=actor[:200], message=message,
                     from_status=from_status, to_status=to_status)
    if not is_postgres():
        event.save(force_insert=True)
        return event
    # The NOTIFY is a wake-up hint only: listeners read the JobEvent table for the
    # facts, so a lost notification costs latency, never correctness.
    # Payload: "<event id>:<job id>:<status or kind>".
    sql, fields = _insert_and_notify()
    values = [field.get_db_prep_save(getattr(event, field.attname), connection)
              for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, NOTIFY_CHANNEL, f"{event.job_id}:{to_status or kind}"])
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    event._state.db = connection.alias
    return event


def transition(job_id, to: str, *, allowed_from, actor: str = "system", message: str = "",
               kind: str = "status", expect_lease=None, savepoint: bool = True,
               **fields) -> bool:
    """Move a job to ``to`` if its status is one of ``allowed_from``. True if it moved.

    ``savepoint=False``: inside a caller's transaction that goes on only if this
    succeeds (no savepoint to roll back to: two round trips less)."""
    allowed_from = [allowed_from] if isinstance(allowed_from, str) else list(allowed_from)
    with transaction.atomic(savepoint=savepoint):
        current = Job.objects.filter(pk=job_id, status__in=allowed_from)
        if expect_lease is not None:
            current = current.filter(lease=expect_lease)
        if len(allowed_from) == 1:
            # Only one status it can come from: the update below is the whole
            # compare-and-set (one round trip less for claims and completions).
            before = allowed_from[0]
        else:
            before = current.values_list("status", flat=True).first()
            if before is None:
                return False
        fields["status"] = to
        moment = timezone.now()
        if to in FINAL:
            fields.setdefault("finished_at", moment)
        moved = current.filter(status=before).update(**fields)
        if not moved:
            return False
        record(job_id, kind, actor=actor, message=message, from_status=before, to_status=to)
        _send_after_commit(job_transitioned, job_id=job_id, from_status=before,
                           to_status=to, kind=kind, actor=actor, message=message, at=moment)
    return True


def warn(job_id, code: str, message: str, *, actor: str = "system",
         status: str | None = None) -> bool:
    """Add a warning ({"code", "message"}) to a job, once per code; True if added.

    A compare-and-set on the warnings as read, so two nodes noticing the same
    thing add it once. ``status``: only while the job is in that status.
    """
    for _ in range(5):
        with transaction.atomic():
            rows = Job.objects.filter(pk=job_id)
            if status is not None:
                rows = rows.filter(status=status)
            current = rows.values_list("warnings", flat=True).first()
            if current is None:
                return False
            current = current if isinstance(current, list) else []
            if any(isinstance(w, dict) and w.get("code") == code for w in current):
                return False
            if not rows.filter(warnings=current).update(
                    warnings=[*current, {"code": code, "message": message}]):
                continue  # changed in between: read again
            record(job_id, code, actor=actor, message=message)
            _send_after_commit(job_warned, job_id=job_id, code=code, message=message)
        return True
    return False


# --- Submission ---------------------------------------------------------------


@dataclass
class Submitted:
    job: Job
    superseded: list


SUPERSEDED = "Superseded by a newer submission"


def _supersede(key: str, actor: str) -> list:
    """Cancel the unfinished jobs that ``key`` names (the same project and
    composition, or the same output of a batch template)."""
    superseded = []
    if not key:
        return superseded
    earlier = Job.objects.filter(supersede_key=key, status__in=UNFINISHED)
    for job_id in earlier.values_list("pk", flat=True):
        if transition(job_id, Status.CANCELLED, allowed_from=UNFINISHED, actor=actor,
                      kind="superseded", message=SUPERSEDED, error=SUPERSEDED,
                      phase=Phase.NONE, validation_next_at=None):
            superseded.append(job_id)
    return superseded


def _superseded_by(job_ids: list, newer: Job) -> None:
    """Point the jobs ``newer`` cancelled at it (the dashboard links to it)."""
    if job_ids:
        Job.objects.filter(pk__in=job_ids).update(superseded_by=newer.pk)


def new_job(**fields) -> Job:
    """The job a submission creates, not saved yet (POST /api/estimates estimates it)."""
    fields.setdefault("needs_preview", bool(fields.get("review")))
    return Job(status=Status.PENDING, **fields)


def _create(actor: str, fields: dict) -> Job:
    job = new_job(**fields)
    job.save(force_insert=True)
    record(job.pk, "submitted", actor=actor, to_status=Status.PENDING,
           message=f"Submitted by {actor}")
    _send_after_commit(job_transitioned, job_id=job.pk, from_status="",
                       to_status=Status.PENDING, kind="submitted", actor=actor, message="")
    return job


def submit(*, actor: str, **fields) -> Submitted:
    """Create a PENDING job, cancelling the earlier unfinished jobs it supersedes:
    those of the same project and composition (jobs.models.supersede_key).

    A partial unique index allows one unfinished job per key, so when two
    submissions race the loser's insert fails; it then cancels the winner and
    tries again. The last submission survives, as the user expects.
    """
    key = supersede_key(fields.get("path_key", ""), fields.get("config"),
                        fields.get("output_name", ""))
    for _ in range(SUPERSEDE_RETRIES):
        try:
            with transaction.atomic():
                superseded = _supersede(key, actor)
                job = _create(actor, {**fields, "supersede_key": key})
                _superseded_by(superseded, job)
            return Submitted(job, superseded)
        except IntegrityError:
            continue
    raise Conflict("Too many simultaneous submissions for this project; try again.")


@dataclass
class BatchRowPlan:
    """One row of a checked table: its job's fields, or the errors that skip it."""

    number: int
    values: dict
    output_name: str
    errors: dict
    job: dict | None  # Job fields (config, name, output_name); None: skipped


@dataclass
class SubmittedBatch:
    batch: Batch
    rows: list  # BatchRow, in table order
    superseded: list


def submit_batch(*, actor: str, batch: dict, rows: list[BatchRowPlan],
                 job_fields: dict) -> SubmittedBatch:
    """Create a batch, its rows and a PENDING job per valid row, all or nothing.

    Rows of one batch have distinct output names, so they never supersede each
    other; each supersedes the unfinished job of an earlier batch (or single
    job) with its key: the same project, composition and output name. Races
    end like ``submit``'s: the later batch survives whole.
    """
    for _ in range(SUPERSEDE_RETRIES):
        try:
            with transaction.atomic():
                created = Batch.objects.create(**batch)
                superseded, made = [], []
                for plan in rows:
                    job = None
                    if plan.job is not None:
                        fields = {**job_fields, **plan.job}
                        key = supersede_key(fields["path_key"], fields["config"],
                                            fields["output_name"])
                        cancelled = _supersede(key, actor)
                        job = _create(actor, {**fields, "supersede_key": key})
                        _superseded_by(cancelled, job)
                        superseded += cancelled
                    made.append(BatchRow.objects.create(
                        batch=created, number=plan.number, values=plan.values,
                        output_name=plan.output_name, errors=plan.errors, job=job))
            return SubmittedBatch(created, made, superseded)
        except IntegrityError:
            continue
    raise Conflict("Too many simultaneous submissions for this template; try again.")


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


def claims_paused() -> bool:
    return ClaimPause.objects.filter(until__gt=Now()).exists()


def pause_claims(reason: str, seconds: float, actor: str = "system") -> int:
    """No node claims a job until ``seconds`` from now (database clock) or until
    resume_claims(); renders already running carry on. Returns the pause's id."""
    pause = ClaimPause.objects.create(reason=reason[:200], actor=actor[:200],
                                      until=Now() + timedelta(seconds=seconds))
    return pause.pk


def extend_pause(pause_id, seconds: float) -> bool:
    """Keep a pause for ``seconds`` more from now; False if it is gone."""
    return bool(ClaimPause.objects.filter(pk=pause_id).update(
        until=Now() + timedelta(seconds=seconds)))


def resume_claims(pause_id) -> None:
    ClaimPause.objects.filter(pk=pause_id).delete()


def claim_next(node: RenderNode, ahead: bool = False) -> Job | None:
    """Take the highest-priority, oldest queued job for ``node``, or None (also
    while claims are paused farm-wide).

    ``frames_total`` is kept: validation read it from the project (jobs.node.preflight).
    ``ahead``: claimed while the node's current render ends (jobs.node.worker,
    claim_ahead); the timeline says so.
    """
    message = (f"Next on {node.name}: preparing while the render before it ends" if ahead
               else f"Rendering on {node.name}")
    # Paused claims are looked for inside the claim's transaction (below) only: a
    # look before it would be one more round trip on every claim.
    for _ in range(10):
        with transaction.atomic():
            candidates = Job.objects.filter(status=Status.QUEUED).order_by(*QUEUE_ORDER)
            if is_postgres():
                candidates = candidates.select_for_update(skip_locked=True)
            job_id = candidates.values_list("pk", flat=True).first()
            if job_id is None:
                return None
            lease = uuid.uuid4()
            if transition(job_id, Status.RENDERING, allowed_from=Status.QUEUED,
                          actor=f"node:{node.name}", message=message,
                          node=node, lease=lease, attempts=F("attempts") + 1,
                          # The database's clock: other nodes compare it (overruns).
                          started_at=Now(), last_output_at=Now(),
                          phase=Phase.SETTING_UP,
                          progress=0, frames_done=0, eta_seconds=None,
                          render_pid=None, render_spawned_at=None, error="", error_code="",
                          node_lost_at=None, savepoint=False):
                # A pause (an update draining the farm) wins: the claim is
                # undone, its event with it. A pause that commits after this look
                # finds the claim committed within moments (systemadmin.updates
                # waits CLAIM_SETTLE_SECONDS before it trusts "nothing renders").
                if claims_paused():
                    transaction.set_rollback(True)
                    return None
                # Read inside the transaction: only a lost answer to the commit
                # itself can leave a claim the node does not know of (it then
                # releases it, see release_orphans). With what the render reads
                # later (publish.output_folder).
                return Job.objects.select_related("user", "node", "batch_row__batch") \
                    .get(pk=job_id)
    return None


def still_mine(job_id, lease) -> bool:
    return Job.objects.filter(pk=job_id, status=Status.RENDERING, lease=lease).exists()


def complete(job_id, lease, *, output_path: str, output_size: int | None,
             follow_ups=()) -> bool:
    """The render is published. Its times join the render history after the
    commit (jobs.history.on_transition), for the estimates of the jobs after it.
    ``follow_ups``: kinds of work to do for the job now that it is complete
    (jobs.node.followups), recorded with the completion so that any render node
    picks them up, whatever happens to this one."""
    with transaction.atomic():
        moved = transition(job_id, Status.COMPLETED, allowed_from=Status.RENDERING,
                           expect_lease=lease,
                           message="Render completed", output_path=output_path,
                           output_size=output_size, progress=100, phase=Phase.NONE,
                           eta_seconds=0, render_pid=None,
                           # Its poster frame is a follow-up (thumbnail_ready).
                           has_thumbnail=False, savepoint=False)
        if moved and follow_ups:
            JobFollowUp.objects.bulk_create(
                [JobFollowUp(job_id=job_id, kind=kind) for kind in follow_ups],
                ignore_conflicts=True)
    return moved


def thumbnail_ready(job_id) -> bool:
    """A completed job's poster frame is stored (made after completion, see
    jobs.node.engines.thumbnails): show it, and tell open pages (a ``thumbnail``
    event). False if the job is no longer completed (retried meanwhile)."""
    with transaction.atomic():
        if not Job.objects.filter(pk=job_id, status=Status.COMPLETED).update(
                has_thumbnail=True):
            return False
        record(job_id, "thumbnail", message="Poster frame ready")
    return True


def preview_ready(job_id, lease) -> bool:
    """The preview is rendered and published (JobPreview): wait for a person.
    Its times join the history of previews after the commit (jobs.history)."""
    return transition(job_id, Status.AWAITING_REVIEW, allowed_from=Status.RENDERING,
                      expect_lease=lease, kind="preview",
                      message="Preview ready for review", progress=100,
                      phase=Phase.NONE, eta_seconds=0, render_pid=None)


def render_crashed(job_id, lease, reason: str, actor: str = "system",
                   permanent: bool = False, code: str = "", kind: str = "") -> str | None:
    """A failed attempt: back to QUEUED while attempts remain, else FAILED.

    ``permanent``: another attempt cannot help (the job itself is wrong): FAILED now.
    ``code``: the cause as an ``error_code``. ``kind``: the JobEvent kind of the
    transition when the cause is structured (``node_lost``); by default "retry"
    for a retry and "status" for a failure.
    """
    job = Job.objects.filter(pk=job_id, status=Status.RENDERING, lease=lease).first()
    if job is None:
        return None
    limit = settings.MAX_RENDER_ATTEMPTS
    if job.attempts >= limit or permanent:
        message = f"Failed after {job.attempts} attempt(s): {reason}"
        moved = transition(job_id, Status.FAILED, allowed_from=Status.RENDERING,
                           expect_lease=lease, kind=kind or "status",
                           actor=actor, message=message, error=message, error_code=code,
                           phase=Phase.NONE, render_pid=None)
        return Status.FAILED if moved else None
    message = f"Attempt {job.attempts} of {limit} failed: {reason}"
    moved = transition(job_id, Status.QUEUED, allowed_from=Status.RENDERING,
                       expect_lease=lease,
                       actor=actor, kind=kind or "retry", message=message, error=message,
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


NODE_LOST = "node_lost"


def requeue_dead_nodes(actor: str = "system") -> list:
    """Jobs whose render node died count as crashed attempts (JobEvent kind ``node_lost``).

    A node is dead by the one liveness rule (models.heartbeat_cutoff: the
    database's clock). A job whose node row was deleted belongs to no node:
    it is marked when first seen so, and requeued once it stayed so for the
    node timeout; a live worker re-registers and takes it back before that.
    """
    moved = []
    dead = (Job.objects.filter(status=Status.RENDERING, node__isnull=False)
            .exclude(alive_q("node__")).values_list("pk", "lease", "node__name"))
    for job_id, lease, node_name in dead:
        reason = f"Render node {node_name} stopped responding"
        if render_crashed(job_id, lease, reason, actor=actor, kind=NODE_LOST, code=NODE_LOST):
            moved.append(job_id)
    nodeless = Job.objects.filter(status=Status.RENDERING, node__isnull=True)
    if not nodeless.exists():  # the usual case: read, never write (SQLite's write lock)
        return moved
    nodeless.filter(node_lost_at__isnull=True).update(node_lost_at=Now())
    lost = nodeless.filter(node_lost_at__lt=heartbeat_cutoff()).values_list("pk", "lease")
    for job_id, lease in lost:
        reason = "Its render node was removed from the database and did not come back"
        if render_crashed(job_id, lease, reason, actor=actor, kind=NODE_LOST, code=NODE_LOST):
            moved.append(job_id)
    return moved


def release_orphans(node: RenderNode, reason: str, actor: str = "system", keep=()) -> list:
    """Jobs RENDERING under ``node`` that it is not rendering count as crashed
    attempts, their node lost (call only from the thread that claims, between renders).
    ``keep``: ids of jobs the node holds (one claimed ahead)."""
    released = []
    orphans = Job.objects.filter(status=Status.RENDERING, node=node).exclude(pk__in=keep)
    for job_id, lease in orphans.values_list("pk", "lease"):
        if render_crashed(job_id, lease, reason, actor=actor, code=NODE_LOST) is not None:
            released.append(job_id)
    return released


# --- User actions -------------------------------------------------------------------


def cancel(job_id, *, actor: str, reason: str = "Cancelled") -> bool:
    return transition(job_id, Status.CANCELLED, allowed_from=UNFINISHED, actor=actor,
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
        raise Conflict("A newer job for this project is still in progress (the same "
                       "composition, or the same output of its batch).") from None


def approve(job_id, *, actor: str, comment: str = "") -> bool:
    """The reviewer likes the preview: the final render joins the queue at once
    (full settings, the job's preset), with fresh attempts."""
    return transition(job_id, Status.QUEUED, allowed_from=Status.AWAITING_REVIEW,
                      actor=actor, kind="approved", message=comment,
                      needs_preview=False, queued_at=timezone.now(), attempts=0,
                      progress=0, frames_done=0, eta_seconds=None,
                      phase=Phase.NONE, node=None, lease=None, error="", error_code="")


def reject(job_id, *, actor: str, comment: str) -> bool:
    """The reviewer turns the preview down: the job ends REJECTED, with the reason."""
    return transition(job_id, Status.REJECTED, allowed_from=Status.AWAITING_REVIEW,
                      actor=actor, kind="rejected", message=comment,
                      error=f"Rejected by {actor}: {comment}", phase=Phase.NONE,
                      node=None, lease=None)


def cancel_batch(batch_id, *, actor: str) -> list:
    """Cancel every unfinished job of a batch; returns the ids that moved."""
    jobs = Job.objects.filter(batch_row__batch_id=batch_id, status__in=UNFINISHED)
    reason = f"Batch cancelled by {actor}"
    return [job_id for job_id in jobs.values_list("pk", flat=True)
            if cancel(job_id, actor=actor, reason=reason)]


def retry_failed_rows(batch_id, *, actor: str) -> tuple[list, dict]:
    """Retry a batch's FAILED rows: (ids retried, {id: why not} for the others)."""
    retried, refused = [], {}
    jobs = Job.objects.filter(batch_row__batch_id=batch_id, status=Status.FAILED)
    for job_id in jobs.values_list("pk", flat=True):
        try:
            if retry(job_id, actor=actor):
                retried.append(job_id)
            else:
                refused[job_id] = "its status changed in the meantime"
        except Conflict as exc:
            refused[job_id] = str(exc)
    return retried, refused


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
