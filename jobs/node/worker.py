"""The render node daemon: a thin loop over small units of work.

``Worker.step()`` does one round (heartbeat, requeue jobs of dead nodes,
claim and render one job) and tests call it directly. Signals only set a
flag; the loop notices it within a fraction of a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status
from jobs.node import followups, housekeeping, validation
from jobs.node.procs import kill_marked
from jobs.node.render import Render, RenderOutcome
from jobs.node.wakeup import Waker, wants_queue

log = logging.getLogger(__name__)


def default_node_name() -> str:
    return socket.gethostname() or "render-node"


class Worker:
    def __init__(self, node_name: str | None = None, validate: bool = True):
        self.node_name = node_name or default_node_name()
        self.validate = validate
        self.stop_requested = threading.Event()
        self.restart_requested = False
        self.signalled = False
        self.node: RenderNode | None = None
        self.waker = Waker()
        self.last_heartbeat = 0.0
        self.last_db_ok = time.monotonic()
        self.validator: threading.Thread | None = None

    # --- start and stop ---------------------------------------------------------

    def register(self) -> RenderNode:
        now = timezone.now()
        node, _ = RenderNode.objects.update_or_create(
            name=self.node_name,
            defaults={"hostname": socket.gethostname(), "pid": os.getpid(), "started_at": now,
                      "last_heartbeat": now, "stopped_at": None, "command": ""},
        )
        self.node = node
        self.last_heartbeat = time.monotonic()
        self.recover()
        return node

    def recover(self) -> None:
        """Clean up after a predecessor of this node that died mid-render."""
        killed = kill_marked(f"{self.node_name}/")
        if killed:
            log.warning("killed %d process(es) left running by a previous worker", len(killed))
        leftovers = Job.objects.filter(status=Status.RENDERING, node=self.node)
        for job_id, lease in leftovers.values_list("pk", "lease"):
            lifecycle.render_crashed(job_id, lease, "The render node restarted mid-render",
                                     actor=f"node:{self.node_name}", code=lifecycle.NODE_LOST)

    def request_stop(self, *_args) -> None:
        self.signalled = True
        self.stop_requested.set()

    def shutdown(self) -> None:
        self.stop_requested.set()
        if self.validator is not None:
            self.validator.join(timeout=5)
        self.waker.close()
        if self.node is not None:
            with contextlib.suppress(DatabaseError):
                RenderNode.objects.filter(pk=self.node.pk).update(stopped_at=timezone.now())

    # --- the loop ------------------------------------------------------------------

    def run(self) -> None:
        self.register()
        if self.validate:
            self.validator = threading.Thread(target=self._validate_forever,
                                              name="validator", daemon=True)
            self.validator.start()
        # Operations chores on their own thread (hourly retention, and what other
        # apps registered: queue samples, disk and node alerts); it stops with
        # stop_requested.
        housekeeping.start(self.stop_requested)
        # Work after completion (preview videos) at low priority, beside the renders.
        followups.start(self.node, self.stop_requested)
        log.info("render node %s ready (pid %s)", self.node_name, os.getpid())
        try:
            while not self.stop_requested.is_set():
                try:
                    did_work = self.step()
                except DatabaseError:
                    log.exception("database error; retrying")
                    connection.close()
                    did_work = False
                if self.restart_requested:
                    break
                if not did_work and not self.stop_requested.is_set():
                    self.waker.wait(settings.WORKER_POLL_SECONDS, wanted=wants_queue)
        finally:
            self.shutdown()
        log.info("render node %s stopped", self.node_name)

    def step(self) -> bool:
        """Heartbeat, requeue dead nodes' jobs, render one job. True if it rendered."""
        self.heartbeat(force=False)
        lifecycle.requeue_dead_nodes(actor=f"node:{self.node_name}")
        if self.stop_requested.is_set():
            return False
        job = lifecycle.claim_next(self.node)
        if job is None:
            return False
        self.render(job)
        return True

    def heartbeat(self, force: bool = True) -> None:
        """Write the heartbeat when due; read admin commands every time.

        Called at least every WORKER_POLL_SECONDS, idle or rendering, so a
        restart command takes effect within that, not a heartbeat interval.
        """
        now = time.monotonic()
        if force or now - self.last_heartbeat >= settings.HEARTBEAT_SECONDS:
            RenderNode.objects.filter(pk=self.node.pk).update(last_heartbeat=timezone.now(),
                                                               stopped_at=None)
            self.last_heartbeat = now
        if RenderNode.objects.filter(pk=self.node.pk, command="restart").update(command=""):
            self.restart_requested = True
        self.last_db_ok = now

    def _validate_forever(self) -> None:
        while not self.stop_requested.is_set():
            try:
                validation.tick()
                wait = validation.next_due_in()
            except DatabaseError:
                log.exception("validation tick failed; retrying")
                close_old_connections()
                wait = 1.0
            pause = settings.WORKER_POLL_SECONDS if wait is None else min(
                max(wait, 0.05), settings.WORKER_POLL_SECONDS)
            self.stop_requested.wait(pause)
        connection.close()

    # --- one render -------------------------------------------------------------------

    def render(self, job: Job) -> RenderOutcome:
        return Render(self, job).run()
