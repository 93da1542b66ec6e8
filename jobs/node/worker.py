"""The render node daemon: a thin loop over small units of work.

``Worker.step()`` does one round (release jobs this node holds but does not
render, claim and render one job) and tests call it directly. Signals only set
a flag; the loop notices it within a fraction of a second. Liveness (the
heartbeat) and admin commands live on their own thread (jobs.node.heartbeat),
file validation, chores and taking back dead nodes' jobs on theirs.

A database outage costs a pause, not a job: the loop retries, a render
carries on without the database (jobs.node.outage), and a node that lost
contact for most of NODE_TIMEOUT_SECONDS stops its render before any other
node may take the job over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import psutil
from django.conf import settings
from django.db import Error, close_old_connections, connection
from django.db.models.functions import Now

from jobs import lifecycle
from jobs.models import Job, NodeCommand, RenderNode, Status
from jobs.node import bookkeeping, contact, followups, housekeeping, outage, validation
from jobs.node.engines import RenderError, get_engine
from jobs.node.heartbeat import Heartbeat
from jobs.node.procs import RenderProcess, kill_marked
from jobs.node.render import FINISH_SECONDS, Render, RenderOutcome
from jobs.node.retention import discard_temp_dir
from jobs.node.spares import Spares
from jobs.node.wakeup import Waker, wants_queue, wants_submission

log = logging.getLogger(__name__)

SUBMISSION_POLL_SECONDS = 0.1


def ahead_give_back_seconds() -> float:
    """How long a job claimed ahead may wait for the render before it."""
    return max(10.0, 4 * settings.CLAIM_AHEAD_SECONDS)


def default_node_name() -> str:
    return socket.gethostname() or "render-node"


class Worker:
    def __init__(self, node_name: str | None = None, validate: bool = True):
        self.node_name = node_name or default_node_name()
        self.validate = validate
        self.stop_requested = threading.Event()
        self.restart_requested = False
        self.signalled = False
        # "drain" or "stop" while an admin command holds this node (NodeCommand);
        # the node renders nothing new, and tells it once it renders nothing.
        self.parking = ""
        self.park_ack_due = False
        self.node: RenderNode | None = None
        # The render in progress, for the contact watch (jobs.node.contact).
        self.rendering: Render | None = None
        # The next job, claimed ahead while the current render ends (claim_ahead).
        self.ahead: Render | None = None
        self.ahead_tried_at = 0.0
        self.ahead_given_back = False  # during the current render
        self.waker = Waker()
        # The validator's own: a submission (NOTIFY on PostgreSQL) starts its check.
        self.submissions = Waker()
        # The next render's process, started ahead of its job (jobs.node.spares).
        self.spares = Spares(self.node_name)
        # Renders that reported success while their process was still ending (with
        # their work folders): let end beside the publishing, and waited for before
        # the next render's process is handed its job (settle).
        self.finishing: list[tuple[RenderProcess, Path, str]] = []
        self.heartbeat = Heartbeat(self)
        self.validator: threading.Thread | None = None
        # The last step's render ended with its job confirmed out of RENDERING.
        self.no_orphans = False
        self.dead_check_failing = False
        self._register_lock = threading.Lock()

    @property
    def current(self) -> tuple | None:
        """(job id, lease) of the render in progress, or None."""
        render = self.rendering
        return None if render is None else (render.job.pk, render.job.lease)

    @property
    def held(self) -> list[tuple]:
        """(job id, lease) of every job this node holds: the render in progress and
        the one claimed ahead."""
        return [(r.job.pk, r.job.lease) for r in (self.rendering, self.ahead) if r is not None]

    @property
    def actor(self) -> str:
        return f"node:{self.node_name}"

    # --- start and stop ---------------------------------------------------------

    def register(self) -> RenderNode:
        self.node = self._upsert_node(command="")
        self.heartbeat.last_ok = time.monotonic()
        self.recover()
        return self.node

    def _upsert_node(self, command: str) -> RenderNode:
        with self._register_lock:
            node, _ = RenderNode.objects.update_or_create(
                name=self.node_name,
                defaults={"hostname": socket.gethostname(), "pid": os.getpid(),
                          "started_at": Now(), "last_heartbeat": Now(), "stopped_at": None,
                          "command": command},
            )
            node.refresh_from_db()
            return node

    def register_again(self) -> None:
        """The node's row was deleted while it runs: register anew (keeping a
        drain or stop in force) and take back the job being rendered."""
        command = NodeCommand.PARKED if self.parking and self.current is None else self.parking
        self.node = self._upsert_node(command=command)
        for job_id, lease in self.held:
            Job.objects.filter(pk=job_id, lease=lease, status=Status.RENDERING,
                               node__isnull=True).update(node=self.node, node_lost_at=None)
        log.warning("render node %s was removed from the database; registered again",
                    self.node_name)

    def recover(self) -> None:
        """Clean up after a predecessor of this node that died mid-render."""
        killed = kill_marked(f"{self.node_name}/")
        if killed:
            log.warning("killed %d process(es) left running by a previous worker", len(killed))
        lifecycle.release_orphans(self.node, "The render node restarted mid-render",
                                  actor=self.actor)

    def request_stop(self, *_args) -> None:
        self.signalled = True
        self.stop_requested.set()

    def shutdown(self) -> None:
        self.stop_requested.set()
        followups.poke()
        self.submissions.poke()
        self.heartbeat.join()
        if self.validator is not None:
            self.validator.join(timeout=5)
        self.waker.close()
        self.give_back_ahead("The render node stopped before starting it; back in the queue")
        self.settle()
        self.spares.close()
        bookkeeping.stop()
        if self.node is not None:
            outage.best_effort("recording the node's stop",
                               RenderNode.objects.filter(pk=self.node.pk).update,
                               stopped_at=Now())

    # --- admin commands (read by the heartbeat thread) ------------------------------

    def apply_command(self, command: str | None) -> None:
        if command == NodeCommand.RESTART:
            if RenderNode.objects.filter(pk=self.node.pk, command=NodeCommand.RESTART) \
                    .update(command=""):
                self.restart_requested = True
        elif command in NodeCommand.PARKING:
            if self.parking != command:
                log.info("render node %s: %s requested", self.node_name, command)
            self.parking = command
            self.park_ack_due = True
        elif command == NodeCommand.PARKED:
            self.parking = self.parking or NodeCommand.DRAIN
        elif command == "" and self.parking:
            log.info("render node %s: resumed", self.node_name)
            self.parking = ""
            self.park_ack_due = False

    def _park(self) -> None:
        """Renders nothing now: say so, so that the process can be killed at no cost."""
        if self.park_ack_due:
            RenderNode.objects.filter(pk=self.node.pk, command__in=NodeCommand.PARKING) \
                .update(command=NodeCommand.PARKED)
            self.park_ack_due = False
            log.info("render node %s parked (%s): not claiming jobs", self.node_name,
                     self.parking)

    # --- the loop ------------------------------------------------------------------

    def run(self) -> None:
        outage.persist("registering the node", self.register,
                       give_up=lambda: "stopping" if self.stop_requested.is_set() else "")
        self.heartbeat.start()
        contact.start(self)
        if self.validate:
            self.validator = threading.Thread(target=self._validate_forever,
                                              name="validator", daemon=True)
            self.validator.start()
        # Operations chores on their own thread (hourly retention, and what other
        # apps registered: queue samples, disk and node alerts); it stops with
        # stop_requested.
        housekeeping.start(self.stop_requested)
        # Taking back dead nodes' jobs, every tick, on a thread of its own: not behind
        # a slow chore (retention's deletes, a disk check on a network mount), and not
        # in the render loop, which then has no read of its own between one render's
        # end and the next claim (a node is dead only after NODE_TIMEOUT_SECONDS anyway).
        housekeeping.start(self.stop_requested, name="dead-nodes",
                           chores=[("dead nodes' jobs", 0.0, self.take_back_dead_nodes_jobs)])
        # Work after completion (preview videos) at low priority, beside the renders.
        followups.start(lambda: self.node, self.stop_requested)
        # Counters, usage rows, alerts and notifications of transitions, beside them too.
        bookkeeping.start()
        log.info("render node %s ready (pid %s)", self.node_name, os.getpid())
        try:
            while not self.stop_requested.is_set():
                try:
                    did_work = self.step()
                except Error as exc:
                    log.warning("database unavailable; retrying: %s", exc)
                    outage.reset()
                    did_work = False
                if self.restart_requested:
                    break
                if not did_work and not self.stop_requested.is_set():
                    bookkeeping.go()  # idle: nothing to hold the receivers for
                    self.waker.wait(settings.WORKER_POLL_SECONDS, wanted=wants_queue)
        except outage.GaveUp as exc:
            log.warning("stopping without recording: %s", exc)
        finally:
            self.shutdown()
        log.info("render node %s stopped", self.node_name)

    def take_back_dead_nodes_jobs(self) -> None:
        """A housekeeping chore: requeue the jobs of nodes that stopped heartbeating,
        and claim at once if any came back. A database away is said once, not
        every second with a traceback."""
        try:
            if lifecycle.requeue_dead_nodes(actor=self.actor):
                self.waker.poke()
        except Error as exc:
            if not self.dead_check_failing:
                log.warning("looking for dead nodes' jobs: database unavailable: %s",
                            outage.short(exc))
            self.dead_check_failing = True
            outage.reset()
            return
        self.dead_check_failing = False

    def step(self) -> bool:
        """Release this node's orphans, render one job. True if it rendered."""
        # Nothing renders here between two renders: a job RENDERING under this
        # node's name now (its claim's answer was lost, say) is not rendering. Not
        # looked for right after a render whose job is known to have left RENDERING:
        # claims are made by this loop alone, so there can be none then.
        if not self.no_orphans:
            lifecycle.release_orphans(self.node, "The render node lost track of this render",
                                      actor=self.actor,
                                      keep=[self.ahead.job.pk] if self.ahead else ())
        self.no_orphans = False
        if self.parking or self.stop_requested.is_set() or self.restart_requested \
                or self.over_memory():
            # A job claimed ahead has not started: another node may render it.
            why = f"{self.parking} requested" if self.parking else "stopping"
            self.give_back_ahead(f"The render node is not taking new renders ({why}); "
                                 f"back in the queue")
            if self.parking:
                self._park()
            return False
        ahead, self.ahead = self.ahead, None
        self.ahead_given_back = False
        if ahead is not None:
            outcome = self._render(ahead)
        else:
            job = lifecycle.claim_next(self.node)
            if job is None:
                self.settle()
                self.prepare_spare()
                return False
            outcome = self.render(job)
        self.no_orphans = outcome.status in (Status.COMPLETED, Status.AWAITING_REVIEW) \
            and self.ahead is None
        return True

    # --- the next job, claimed ahead ------------------------------------------------

    def claim_ahead(self, progress, now: float) -> None:
        """Called by the render loop while a render's last process runs: once it is
        due to end within CLAIM_AHEAD_SECONDS (its own estimate), claim the next job
        and have its process do everything before aerender (nexrender's set-up,
        copying the project and assets, scripts), waiting at its gate until this
        render has ended (open_ahead). A job claimed ahead that waited longer than
        ``ahead_give_back_seconds()`` (the estimate was wrong) goes back to the
        queue, where another node may take it."""
        limit = settings.CLAIM_AHEAD_SECONDS
        if limit <= 0:
            return
        if self.ahead is not None:
            if now - self.ahead.claimed_at > ahead_give_back_seconds():
                self.give_back_ahead("The render before it took longer than expected; "
                                     "back in the queue")
                self.ahead_given_back = True
            return
        if self.ahead_given_back or self.parking or self.stopping() \
                or self.dead_check_failing:
            return
        eta = progress.eta_seconds(now)
        if eta is None or eta > limit:
            return
        # The claim asks the database: an empty queue once per poll, not at every line
        # of output. (Only the claim: a render shorter than a poll is claimed ahead
        # of as soon as it has an estimate.)
        if now - self.ahead_tried_at < settings.WORKER_POLL_SECONDS:
            return
        self.ahead_tried_at = now
        try:
            job = lifecycle.claim_next(self.node, ahead=True)
        except Error as exc:
            log.warning("claiming the next job ahead: %s", outage.short(exc))
            outage.reset()
            return
        if job is None:
            return
        render = Render(self, job)
        render.prepare()
        self.ahead = render
        self.spares.refill()  # for the job after it, while this render still runs

    def open_ahead(self) -> None:
        """The render in progress has ended (its processes too): the job claimed
        ahead may start aerender. Returns once that aerender printed its first line
        (or UNDER_WAY_SECONDS passed): the render that ended publishes then, as its
        writes beside aerender's start-up would slow it; the node's other work waits
        longer (bookkeeping.go)."""
        if self.ahead is not None:
            self.settle()
            self.ahead.open_gate()
            self.ahead.wait_under_way()

    def give_back_ahead(self, reason: str) -> None:
        """Put the job claimed ahead back in the queue (attempt not counted), its
        process killed before it started aerender."""
        render = self.forget_ahead()
        if render is not None:
            outage.best_effort("giving back a job claimed ahead",
                               lifecycle.requeue_interrupted, render.job.pk, render.job.lease,
                               reason, actor=self.actor)

    def forget_ahead(self) -> Render | None:
        """Let go of the job claimed ahead (no longer this node's: cancelled, deleted;
        or given back), its process killed. Returns its render, if there was one."""
        render, self.ahead = self.ahead, None
        if render is not None:
            render.drop_process()
        return render

    def let_finish(self, proc: RenderProcess, workdir: Path, job_id) -> None:
        """A render reported success while its process is still there: let it end,
        at once, or once the render after it is under way if that one is starting
        now (a job claimed ahead): node.js ending takes the CPU for several
        milliseconds. ``settle`` waits for it either way."""
        self.finishing.append((proc, Path(workdir), str(job_id)))
        if self.ahead is None:
            proc.let_go()
        else:
            bookkeeping.later(proc.let_go)

    def settle(self) -> None:
        """Wait until the processes of earlier renders have ended (their guards have
        swept what they left behind) and remove their work folders. Called before the
        next render's process is handed its job: renders never overlap."""
        while self.finishing:
            proc, workdir, job_id = self.finishing.pop(0)
            late = [line for line in proc.finish(FINISH_SECONDS) if line.strip()]
            if late:
                # The job's log was stored with its completion; what came after (its
                # guard killing leftovers, say) is the node's to say.
                log.warning("job %s, after its render: %s", job_id, " | ".join(late[-5:]))
            discard_temp_dir(workdir)

    def prepare_spare(self) -> None:
        """Idle: have the next render's process waiting (for the engine of the last
        render, or the default one)."""
        try:
            spec = self.spares.spec or get_engine(settings.RENDER_ENGINE).spare()
            self.spares.prepare(spec)
        except (RenderError, OSError) as exc:
            log.warning("cannot start a spare render process: %s", exc)

    def over_memory(self) -> bool:
        """Past WORKER_MEMORY_LIMIT_MB, stop between two renders (PM2 or systemd
        start a fresh process) rather than be killed mid-render by PM2's limit."""
        limit = settings.WORKER_MEMORY_LIMIT_MB
        if not limit:
            return False
        used = psutil.Process().memory_info().rss / 2**20
        if used <= limit:
            return False
        log.warning("render node %s uses %.0f MB (WORKER_MEMORY_LIMIT_MB=%d): exiting between "
                    "renders to be started afresh", self.node_name, used, limit)
        self.stop_requested.set()
        return True

    def _validate_forever(self) -> None:
        try:
            while not self.stop_requested.is_set():
                try:
                    if validation.tick():
                        self.waker.poke()  # a job may be queued: claim it now
                    wait = validation.next_due_in()
                except Error:
                    log.exception("validation tick failed; retrying")
                    outage.reset()
                    close_old_connections()
                    wait = 1.0
                idle = settings.WORKER_POLL_SECONDS
                if not self.submissions.listening():
                    # SQLite: no NOTIFY; a submission is looked for more often than the
                    # queue (one cheap query), as it starts the way to a render.
                    idle = min(idle, SUBMISSION_POLL_SECONDS)
                pause = idle if wait is None else min(max(wait, 0.05), idle)
                self.submissions.wait(pause, wanted=wants_submission)
        finally:
            self.submissions.close()
            connection.close()

    # --- one render -------------------------------------------------------------------

    def render(self, job: Job) -> RenderOutcome:
        return self._render(Render(self, job))

    def _render(self, render: Render) -> RenderOutcome:
        self.rendering = render
        try:
            return render.run()
        finally:
            self.rendering = None

    def stopping(self) -> str:
        """Why this node must stop its render now and requeue it, or ""."""
        if self.stop_requested.is_set():
            return "shutdown"
        if self.restart_requested:
            return "restart"
        if self.parking == NodeCommand.STOP:
            return "stop command"
        return ""

