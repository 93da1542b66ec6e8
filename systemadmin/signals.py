"""Receivers of lifecycle.job_transitioned for the admin side: /metrics counters
and admin-channel alerts (render failed for good, render node down); and of
accounts.claims.claim_waits (a macOS username claim for an admin to decide)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.urls import reverse

from jobs import lifecycle
from jobs.models import Job, JobEvent, Status
from jobs.node import overruns
from jobs.notify import slack
from systemadmin import events, usage
from systemadmin.models import SystemEvent

log = logging.getLogger(__name__)

FINISHED_COUNTERS = {
    Status.COMPLETED: "jobs_completed",
    Status.FAILED: "jobs_failed",
    Status.CANCELLED: "jobs_cancelled",
    Status.REJECTED: "jobs_rejected",
}


def on_transition(sender, job_id, from_status, to_status, kind, actor, message, **_):
    try:
        _count(job_id, from_status, to_status, kind)
        _alert(job_id, from_status, to_status, kind, message)
    except Exception:  # never let bookkeeping reach the worker
        log.exception("admin bookkeeping for job %s failed", job_id)
    try:
        usage.record(job_id, from_status, to_status)
    except Exception:
        log.exception("usage report: could not count the render of job %s", job_id)


def on_warning(sender, job_id, code, message, **_):
    """A render that runs past twice its estimate: one admin-channel message."""
    if code != overruns.CODE:
        return
    try:
        job = Job.objects.filter(pk=job_id).select_related("node").first()
        if job is None:
            return
        where = f" on {job.node.name}" if job.node_id else ""
        events.alert("render_overrun",
                     f"Render {job.display_name} ({job_id}){where}: {message} "
                     f"{slack.job_link(job)}".strip(),
                     key=f"render-overrun:{job_id}:{job.attempts}", level="warning")
    except Exception:
        log.exception("admin alert for the warning on job %s failed", job_id)


def _count(job_id, from_status, to_status, kind) -> None:
    if to_status == Status.RENDERING:
        events.increment("renders_started")
    # A retry, also when the node died (lifecycle.requeue_dead_nodes: "node_lost").
    if from_status == Status.RENDERING and to_status == Status.QUEUED \
            and kind in ("retry", lifecycle.NODE_LOST):
        events.increment("render_attempts_failed")
    name = FINISHED_COUNTERS.get(to_status)
    if name is None:
        return
    events.increment(name)
    if to_status == Status.COMPLETED:
        seconds = Job.objects.filter(pk=job_id).values_list("render_seconds", flat=True).first()
        if seconds:
            events.increment("render_seconds_sum", seconds)
            events.increment("render_seconds_count")
    elif to_status == Status.FAILED and from_status == Status.RENDERING:
        events.increment("renders_failed")


def _alert(job_id, from_status, to_status, kind, message) -> None:
    # Keyed on the event's kind, written by lifecycle.requeue_dead_nodes: never on
    # message text, which holds client file names ("Render node x stopped responding.png").
    lost = kind == lifecycle.NODE_LOST
    if not lost and not (to_status == Status.FAILED and from_status == Status.RENDERING):
        return
    job = Job.objects.filter(pk=job_id).first()
    name = job.display_name if job is not None else str(job_id)
    if lost:
        outcome = ("put back in the queue" if to_status == Status.QUEUED
                   else "failed (no attempts left)")
        events.node_down(lost_node(job_id), f"Its render {name} ({job_id}) was {outcome}.")
        if to_status != Status.FAILED:
            return
    error = (job.error if job is not None else "") or message
    slack.alert_admins(f"Render {name} ({job_id}) failed for good: {error}. "
                               f"{slack.job_link(job) if job is not None else ''}".strip())


def lost_node(job_id) -> str:
    """The render node that was rendering ``job_id``: the one that claimed it last (the
    claim's event names it as its actor, ``node:<name>``)."""
    actor = (JobEvent.objects.filter(job_id=job_id, from_status=Status.QUEUED,
                                     to_status=Status.RENDERING, actor__startswith="node:")
             .order_by("-id").values_list("actor", flat=True).first())
    return actor.removeprefix("node:") if actor else "(unknown)"


def on_claim(sender, claim, **_):
    """A claim waits for an admin: record it and tell the admin channel."""
    try:
        user = claim.user
        events.alert("mac_username_claim",
                     f"{user.display_name()} ({user.email}) claims the macOS username "
                     f"“{claim.name}” ({claim.reason}). Approve or refuse it on the admin "
                     f"panel: {settings.PUBLIC_URL}{reverse('systemadmin:panel')}#claims",
                     level=SystemEvent.Level.WARNING, key=f"claim:{claim.pk}:{claim.claimed_at}")
    except Exception:  # never let bookkeeping fail the profile page
        log.exception("could not announce the claim of %s", claim.name)
