"""Work a render node does for a job after it completed: its preview video, and
whatever else is registered (``register``).

A render never waits for this. ``after_completion`` names the kinds a
completed job needs; jobs.lifecycle.complete records them (JobFollowUp) in
the transaction that completes the job, so the work is not lost whatever
happens to the node next. Every render worker follows the table on a thread
of its own (``start``): it claims the oldest due row with a compare-and-set
that names the node and a fresh lease, runs it at low priority, and records
the outcome under that lease.

Restartable: a row claimed by a node that stopped heartbeating (for
NODE_TIMEOUT_SECONDS) is claimable again by any node, and a node that
starts takes back what its dead predecessor had claimed. A run that fails is
tried again a little later, FOLLOW_UP_ATTEMPTS times in all; one a shutdown
interrupts goes back to the table without using up an attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.utils import timezone

from jobs.models import FollowUp, Job, JobFollowUp, RenderNode, alive_q
from jobs.submission.paths import PathError, checked_output_file

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
LOWEST_NICE = 19
AFTER_POKE_SECONDS = 0.3
# Set to wake the thread at once (a completion on this node, a shutdown).
_wake = threading.Event()
RETRY_SECONDS = 30.0  # after a failed attempt, times the attempt number


class Interrupted(Exception):
    """The node is stopping: the run goes back to the table, attempt not counted."""


class Retry(Exception):
    """Not possible yet (the output has not synced to this node, say): try again later."""


class Nothing(Exception):
    """Nothing to make for this job (its message says why): done, without a result."""


def published_output(job: Job, nothing: str) -> Path:
    """The job's published output on this node. Raises Nothing (``nothing``: what is
    not made, e.g. "No poster frame") when it is not served, Retry while Dropbox has
    not brought it here yet."""
    try:
        source = checked_output_file(job.output_path)
    except PathError as exc:
        raise Nothing(f"{nothing}: the output is not served ({exc.message})") from None
    if not source.is_file():
        # Published on another node: Dropbox may not have brought it here yet.
        raise Retry(f"The output is not on this node yet: {source}")
    return source


@dataclass
class Run:
    """One claimed follow-up: its job, and how the work learns that it must stop."""

    row: JobFollowUp
    job: Job
    stop: threading.Event

    def check(self) -> None:
        """Raise Interrupted when the node is stopping (long steps call it often)."""
        if self.stop.is_set():
            raise Interrupted()


# kind -> (wanted(job, output file) -> bool, run(Run) -> message)
KINDS: dict[str, tuple[Callable[[Job, Path], bool], Callable[[Run], str]]] = {}


def register(kind: str, wanted: Callable[[Job, Path], bool], run: Callable[[Run], str]) -> None:
    """Kinds registered first are taken first (a poster frame before a preview video)."""
    KINDS[kind] = (wanted, run)


def poke() -> None:
    """Look at the table now (this node just completed a job, or is stopping)."""
    _wake.set()


def after_completion(job: Job, output: Path) -> list[str]:
    """The follow-up kinds ``job`` needs, its render published as ``output``."""
    kinds = []
    for kind, (wanted, _) in KINDS.items():
        try:
            if wanted(job, output):
                kinds.append(kind)
        except Exception:  # deciding must never stop a completion
            log.exception("follow-ups: cannot tell whether job %s needs %s", job.pk, kind)
    return kinds


# --- Claims ---------------------------------------------------------------------


def claimable():
    """Rows due now: waiting ones, and running ones whose node is gone."""
    abandoned = Q(status=FollowUp.RUNNING) & (
        Q(node__isnull=True) | ~alive_q("node__"))
    return JobFollowUp.objects.filter(
        Q(status=FollowUp.PENDING) | abandoned, run_after__lte=timezone.now(),
        kind__in=list(KINDS))


def claim_next(node: RenderNode) -> JobFollowUp | None:
    """The oldest due follow-up, now this node's; None if there is none."""
    rank = Case(*[When(kind=kind, then=Value(n)) for n, kind in enumerate(KINDS)],
                default=Value(len(KINDS)), output_field=IntegerField())
    due = claimable().order_by(rank, "run_after", "id")
    for candidate in due.values("pk", "status", "lease")[:5]:
        lease = uuid.uuid4()
        taken = JobFollowUp.objects.filter(
            pk=candidate["pk"], status=candidate["status"], lease=candidate["lease"]
        ).update(status=FollowUp.RUNNING, node=node, lease=lease, claimed_at=timezone.now(),
                 attempts=F("attempts") + 1)
        if taken:
            return JobFollowUp.objects.select_related("job").get(pk=candidate["pk"])
    return None


def release_abandoned(node: RenderNode) -> int:
    """What this node's dead predecessor had claimed is claimable again."""
    return JobFollowUp.objects.filter(status=FollowUp.RUNNING, node=node).update(
        status=FollowUp.PENDING, node=None, lease=None)


def _finish(row: JobFollowUp, **fields) -> bool:
    """Record an outcome, if the claim is still ours."""
    return bool(JobFollowUp.objects.filter(pk=row.pk, lease=row.lease,
                                           status=FollowUp.RUNNING).update(**fields))


def run_one(node: RenderNode, stop: threading.Event | None = None) -> JobFollowUp | None:
    """Claim and run one due follow-up; the row as it ended, or None if none was due."""
    row = claim_next(node)
    if row is None:
        return None
    _, work = KINDS[row.kind]
    run = Run(row=row, job=row.job, stop=stop or threading.Event())
    now = timezone.now
    try:
        run.check()
        message = work(run)
    except Interrupted:
        _finish(row, status=FollowUp.PENDING, node=None, lease=None,
                attempts=F("attempts") - 1, message="Interrupted by a shutdown; to be done")
    except Nothing as nothing:
        _finish(row, status=FollowUp.DONE, finished_at=now(), message=str(nothing)[:2000])
    except Exception as exc:  # Retry, or anything the work did not expect
        if not Job.objects.filter(pk=row.job_id).exists():
            # Deleted while its follow-up ran (what the work stored went with it, or
            # failed on the missing job): nothing is left to retry or to report.
            log.info("follow-up %s of job %s: the job was deleted meanwhile",
                     row.kind, row.job_id)
            return row
        if not isinstance(exc, Retry):
            log.exception("follow-up %s of job %s failed", row.kind, row.job_id)
        why = str(exc) or type(exc).__name__
        if row.attempts >= settings.FOLLOW_UP_ATTEMPTS:
            _finish(row, status=FollowUp.FAILED, finished_at=now(), message=why[:2000])
        else:
            _finish(row, status=FollowUp.PENDING, node=None, lease=None, message=why[:2000],
                    run_after=now() + timedelta(seconds=RETRY_SECONDS * row.attempts))
    else:
        _finish(row, status=FollowUp.DONE, finished_at=now(), message=message[:2000])
    # An admin may have deleted the job meanwhile, and its follow-ups with it: the round
    # did its work all the same.
    return JobFollowUp.objects.filter(pk=row.pk).first() or row


# --- The thread ------------------------------------------------------------------


def lower_thread_priority() -> None:
    """Follow-ups must not slow down the renders beside them (a short render's
    end and the next one's start most of all): on Linux a thread has a nice value
    of its own, which the programs it starts (ffmpeg, ffprobe) inherit. Elsewhere
    the proxy's encoder, the longest of them, is lowered as it starts
    (proxy._lower_priority)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_NICE)


class Runner:
    """``node()``: the node's current row. It changes when the node registers
    again after an admin deleted its row (Worker.register_again): a claim under
    the old one would name a row that is gone."""

    def __init__(self, node: Callable[[], RenderNode], stop: threading.Event):
        self.node = node
        self.stop = stop

    def run(self) -> None:
        lower_thread_priority()
        released = None  # the node row whose predecessor's claims were released
        try:
            while not self.stop.is_set():
                # Nothing may end this thread but the stop: a database away, a job
                # deleted mid-run, a bug in one kind's work. Logged, then on.
                try:
                    node = self.node()
                    if released != node.pk:
                        release_abandoned(node)
                        released = node.pk
                    did = run_one(node, self.stop) is not None
                except Exception:
                    log.exception("follow-ups: round failed; going on")
                    close_old_connections()
                    connection.close()
                    did = False
                if not did and not self.stop.is_set() and _wake.wait(POLL_SECONDS):
                    _wake.clear()
                    # A completion on this node: let its next claim and render start
                    # first (the database's write lock, the CPU), then follow.
                    self.stop.wait(AFTER_POKE_SECONDS)
        finally:
            connection.close()


def start(node: Callable[[], RenderNode], stop: threading.Event) -> threading.Thread:
    """Follow the table on a daemon thread until ``stop`` is set; ``node()`` gives
    the node's current row."""
    thread = threading.Thread(target=Runner(node, stop).run, name="follow-ups", daemon=True)
    thread.start()
    return thread
