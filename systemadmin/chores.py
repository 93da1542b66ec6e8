"""The admin side's chores, run by every render node's housekeeping thread
(jobs.node.housekeeping): queue-depth samples for the chart, and admin alerts
for full disks and render nodes that stopped heartbeating.

Registered in SystemadminConfig.ready(), so the render node never imports
the admin app.
"""

from __future__ import annotations

import socket
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from jobs.models import RenderNode
from jobs.node import housekeeping
from systemadmin import events, health
from systemadmin.models import QueueSample

SAMPLE_SECONDS = 60
DISK_CHECK_SECONDS = 300
DISK_ALERT_REPEAT_HOURS = 6
NODE_CHECK_SECONDS = 15


def record_queue_sample(now=None) -> QueueSample | None:
    """A sample, unless another node took one less than a minute ago."""
    now = now or timezone.now()
    recent = QueueSample.objects.filter(
        created_at__gt=now - timedelta(seconds=SAMPLE_SECONDS * 0.9)).exists()
    if recent:
        return None
    sample = health.record_sample()
    health.prune_samples()
    return sample


def check_disks(now=None) -> list[str]:
    """Alert about full volumes; returns the paths alerted about now."""
    now = now or timezone.now()
    window = int(now.timestamp() // (DISK_ALERT_REPEAT_HOURS * 3600))
    host = socket.gethostname()
    alerted = []
    for entry in health.full_disks():
        key = f"disk-full:{host}:{entry['name']}:{window}"
        text = (f"Disk nearly full on {host}: the {entry['name']} volume ({entry['path']}) is "
                f"{entry['percent']:.0f}% used, {entry['free'] / 1e9:.1f} GB free "
                f"(alert at {settings.DISK_ALERT_PERCENT:g}%).")
        if events.alert("disk_full", text, key=key, level="warning"):
            alerted.append(entry["path"])
    return alerted


def check_nodes() -> list[str]:
    """Alert about nodes that stopped heartbeating without shutting down (the
    liveness rule of jobs.models, on the database's clock)."""
    dead = RenderNode.objects.with_liveness().filter(stopped_at__isnull=True, alive=False)
    alerted = []
    for node in dead:
        silent = node.heartbeat_age.total_seconds()
        if events.node_down(node.name, f"No heartbeat for {silent:.0f} s."):
            alerted.append(node.name)
    return alerted


def register() -> None:
    housekeeping.register("queue sample", SAMPLE_SECONDS, record_queue_sample)
    housekeeping.register("node check", NODE_CHECK_SECONDS, check_nodes)
    housekeeping.register("disk check", DISK_CHECK_SECONDS, check_disks)
