"""Renders that run past twice their estimate: a warning on the job.

Often the first sign of a render that hangs while it keeps printing (the
stall watchdog only catches silence). A housekeeping chore on every render
node (jobs.node.housekeeping); the warning is added once per job, however
many nodes notice (lifecycle.warn is a compare-and-set), and the admin side
turns it into one admin-channel message (systemadmin listens to
lifecycle.job_warned).

Only estimates that stand on history count: a default rate is a guess, and a
guess proves nothing about a render.
"""

from __future__ import annotations

from django.conf import settings

from jobs import estimates, history, lifecycle
from jobs.models import Job, Status, database_now

CODE = "render_overrun"
CHECK_SECONDS = 15
FACTOR = 2.0
# Short renders vary by their startup alone: past twice the estimate and by
# at least this much.
MIN_EXCESS_SECONDS = 60.0


def check(now=None) -> list:
    """Warn about every render past twice its estimate; returns the job ids warned now."""
    # started_at is on the database's clock (lifecycle.claim_next): so is "now".
    now = now or database_now()
    rows = history.rows(Job.objects.filter(status=Status.RENDERING, started_at__isnull=False))
    if not rows:
        return []
    keys = [key for row in rows for key in history.keys_of(row, row.node)]
    stats = history.load_stats(keys)
    warned = []
    for row in rows:
        expected = estimates.expected(row, stats, row.node,
                                      settings.ESTIMATE_DEFAULT_SECONDS_PER_FRAME)
        elapsed = (now - row.started_at).total_seconds()
        if not expected.from_history or elapsed < FACTOR * expected.render_seconds \
                or elapsed - expected.render_seconds < MIN_EXCESS_SECONDS:
            continue
        took = estimates.duration_text
        message = (f"Rendering for {took(elapsed)}, more than twice its estimate of "
                   f"{took(expected.render_seconds)} ({expected.basis}); it may be stuck.")
        if lifecycle.warn(row.id, CODE, message, status=Status.RENDERING):
            warned.append(row.id)
    return warned
