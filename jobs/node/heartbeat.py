"""A render node's liveness, on its own thread and its own database connection.

Liveness must not depend on what the render loop is doing: a publish, a zip,
a thumbnail or a download may take longer than NODE_TIMEOUT_SECONDS, and a
database error in the render loop must not silence the node either. This
thread writes the heartbeat every HEARTBEAT_SECONDS with the database's own
clock (``Now()``), and reads the node's admin command every
WORKER_POLL_SECONDS, so a command acts within that whatever the node does.

When the node's row is gone (deleted by an admin), the worker registers
again and takes back the job it is rendering.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import Error, connection
from django.db.models.functions import Now

from jobs.models import RenderNode
from jobs.node import outage

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, worker):
        self.worker = worker
        # Local (monotonic) send time of the last heartbeat the database took.
        # The database stamps it with its own clock no earlier than that, so a
        # node that stops its render before this + NODE_TIMEOUT_SECONDS has
        # passed stops before any other node can think it dead.
        self.last_ok = time.monotonic()
        self.failing_since: float | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> threading.Thread:
        self.thread = threading.Thread(target=self.run, name="heartbeat", daemon=True)
        self.thread.start()
        return self.thread

    def join(self, timeout: float = 5.0) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def silent_for(self) -> float:
        """Seconds since the last heartbeat the database took (local clock)."""
        return time.monotonic() - self.last_ok

    def run(self) -> None:
        stop = self.worker.stop_requested
        next_beat = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                try:
                    if now >= next_beat:
                        self.beat(now)
                        next_beat = now + settings.HEARTBEAT_SECONDS
                    self.worker.apply_command(self.read_command())
                    if self.failing_since is not None:
                        log.warning("heartbeat: database back after %.1f s",
                                    time.monotonic() - self.failing_since)
                        self.failing_since = None
                except Error as exc:
                    if self.failing_since is None:
                        self.failing_since = now
                        log.warning("heartbeat: database unavailable: %s",
                                    outage.short(exc))
                    outage.reset()
                except Exception:  # a bug here must not end the node's liveness
                    log.exception("heartbeat failed")
                stop.wait(min(settings.WORKER_POLL_SECONDS, settings.HEARTBEAT_SECONDS))
        finally:
            connection.close()

    def beat(self, sent: float) -> None:
        node = self.worker.node
        alive = RenderNode.objects.filter(pk=node.pk).update(last_heartbeat=Now(),
                                                             stopped_at=None)
        if not alive:
            self.worker.register_again()
        self.last_ok = sent

    def read_command(self) -> str | None:
        return RenderNode.objects.filter(pk=self.worker.node.pk) \
            .values_list("command", flat=True).first()
