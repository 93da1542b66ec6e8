"""Periodic chores every render worker runs on a background thread:

- a queue-depth sample every minute (one per minute for the whole farm),
  samples older than a day removed;
- retention (``jobs.retention``) every hour;
- disk space of the Dropbox and temp volumes every 5 minutes, an admin alert
  when one is above DISK_ALERT_PERCENT (at most every 6 hours per volume);
- render nodes that stopped heartbeating, an admin alert once per node start.

Every chore is guarded: a failure is logged and the worker carries on.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from jobs import retention
from jobs.models import RenderNode
from systemadmin import events, health
from systemadmin.models import QueueSample

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 60
DISK_CHECK_SECONDS = 300
DISK_ALERT_REPEAT_HOURS = 6
NODE_CHECK_SECONDS = 15
TICK_SECONDS = 1.0


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


def check_nodes(now=None) -> list[str]:
    """Alert about nodes that stopped heartbeating without shutting down."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.NODE_TIMEOUT_SECONDS)
    dead = RenderNode.objects.filter(stopped_at__isnull=True, last_heartbeat__lt=cutoff)
    alerted = []
    for node in dead:
        silent = (now - node.last_heartbeat).total_seconds()
        if events.node_down(node.name, f"No heartbeat for {silent:.0f} s."):
            alerted.append(node.name)
    return alerted


CHORES = [
    # (name, every N seconds, function)
    ("queue sample", SAMPLE_SECONDS, record_queue_sample),
    ("node check", NODE_CHECK_SECONDS, check_nodes),
    ("disk check", DISK_CHECK_SECONDS, check_disks),
    ("retention", retention.PURGE_EVERY_SECONDS, retention.purge),
]


class Housekeeper:
    def __init__(self, stop: threading.Event, chores=None):
        self.stop = stop
        self.chores = list(CHORES if chores is None else chores)
        self.last: dict[str, float] = {}

    def run_due(self) -> list[str]:
        ran = []
        now = time.monotonic()
        for name, every, chore in self.chores:
            last = self.last.get(name)
            if last is not None and now - last < every:
                continue
            self.last[name] = now
            try:
                chore()
                ran.append(name)
            except Exception:
                log.exception("housekeeping: %s failed", name)
                connection.close()  # a broken connection is reopened next time
        return ran

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.run_due()
                self.stop.wait(TICK_SECONDS)
        finally:
            connection.close()


def start(stop: threading.Event) -> threading.Thread:
    """Run the chores on a daemon thread until ``stop`` is set."""
    thread = threading.Thread(target=Housekeeper(stop).run, name="housekeeping", daemon=True)
    thread.start()
    return thread
