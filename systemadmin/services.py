"""Admin actions on the whole farm. Each is recorded as a SystemEvent naming the
admin, and every job it touches gets a JobEvent with the admin as actor."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass, field

import psutil

from jobs import lifecycle
from jobs.models import UNFINISHED, Job, NodeCommand, RenderNode, Status
from jobs.node.procs import SPARE_MARK, find_marked, spares_of
from systemadmin import events, health

log = logging.getLogger(__name__)

WAITING = (Status.PENDING, Status.VALIDATING, Status.QUEUED)
RESTART = "restart"


class UnknownNode(Exception):
    pass


@dataclass
class ActionResult:
    action: str
    actor: str
    job_ids: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict:
        return {"action": self.action, "actor": self.actor, "message": self.message,
                "count": len(self.job_ids), "job_ids": [str(i) for i in self.job_ids],
                "nodes": self.nodes}


def who(admin) -> tuple[str, str]:
    """(actor stored on events, name shown in messages)."""
    email = getattr(admin, "email", "") or str(admin)
    name = admin.display_name() if hasattr(admin, "display_name") else email
    return email, name


def _cancel_all(statuses, admin, reason: str) -> list:
    actor, _ = who(admin)
    cancelled = []
    for job_id in Job.objects.filter(status__in=statuses).values_list("pk", flat=True):
        if lifecycle.cancel(job_id, actor=actor, reason=reason):
            cancelled.append(job_id)
    return cancelled


def kill_local_renders(job_ids) -> list[int]:
    """Kill render trees of ``job_ids`` running on this machine (by their marker).

    The render worker kills its own render within a poll interval once it sees
    the cancel; this is the belt to those braces when worker and web server
    share the machine.
    """
    wanted = {str(job_id) for job_id in job_ids}
    if not wanted:
        return []
    from jobs.node.guard import MARKER_ENV, kill_all

    doomed, spares = [], []
    for proc in find_marked(""):
        try:
            marker = proc.environ().get(MARKER_ENV, "")
        except (psutil.Error, OSError):
            continue
        parts = marker.split("/")
        if SPARE_MARK in marker:
            spares.append(proc)
        elif len(parts) >= 2 and parts[-2] in wanted:
            doomed.append(proc)
    if not doomed:
        return []
    # The spare that started a render (the guard, nexrender) keeps a marker of its own.
    doomed += spares_of(doomed, spares)
    with contextlib.suppress(psutil.Error, OSError):
        return kill_all(doomed, timeout=2.0)
    return []


def emergency_stop(admin) -> ActionResult:
    """Cancel every unfinished job (renders, and previews awaiting review), and kill
    the renders."""
    actor, name = who(admin)
    rendering = list(Job.objects.filter(status=Status.RENDERING)
                     .values_list("pk", "node__hostname"))
    cancelled = _cancel_all(UNFINISHED, admin, f"Emergency stop by {name}")
    here = socket.gethostname()
    local = [job_id for job_id, host in rendering if host == here and job_id in cancelled]
    killed = kill_local_renders(local)
    message = (f"Emergency stop by {name}: {len(cancelled)} job(s) cancelled"
               + (f", {len(local)} render(s) killed on {here}" if killed else ""))
    events.record("emergency_stop", message, actor=actor, level="warning")
    log.warning(message)
    return ActionResult("emergency_stop", actor, cancelled, message=message)


def clear_queue(admin) -> ActionResult:
    """Cancel every job that has not started rendering."""
    actor, name = who(admin)
    cancelled = _cancel_all(WAITING, admin, f"Queue cleared by {name}")
    message = f"Queue cleared by {name}: {len(cancelled)} waiting job(s) cancelled"
    events.record("clear_queue", message, actor=actor, level="warning")
    log.warning(message)
    return ActionResult("clear_queue", actor, cancelled, message=message)


def restart_engine(admin, node: str | None = None) -> ActionResult:
    """Ask render nodes (all live ones, or ``node``) to restart.

    The worker reads the command with its next heartbeat, kills its render,
    puts that job back in the queue without using an attempt, and restarts.
    """
    actor, name = who(admin)
    nodes = RenderNode.objects.filter(stopped_at__isnull=True).order_by("name")
    if node:
        nodes = nodes.filter(name=node)
        if not nodes.exists():
            raise UnknownNode(f"No running render node is called {node!r}.")
    else:
        nodes = list(nodes.alive())
    names = []
    job_ids = []
    for each in nodes:
        RenderNode.objects.filter(pk=each.pk).update(command=RESTART)
        names.append(each.name)
        for job_id in Job.objects.filter(status=Status.RENDERING, node=each).values_list(
                "pk", flat=True):
            lifecycle.record(job_id, "restart_requested", actor=actor,
                             message=f"Render engine restart on {each.name} requested by {name}; "
                             "the job goes back to the queue")
            job_ids.append(job_id)
    if names:
        message = f"Render engine restart requested by {name} on {', '.join(names)}"
    else:
        message = f"Render engine restart requested by {name}, but no render node is running"
    events.record("restart_engine", message, actor=actor, level="warning")
    log.warning(message)
    return ActionResult("restart_engine", actor, job_ids, nodes=names, message=message)


# --- Drain, stop, resume (before PM2 kills a node) ------------------------------------

NODE_ACTIONS = {
    "drain": "finishes its render, then claims nothing",
    "stop": "puts its render back in the queue (no attempt used), then claims nothing",
    "resume": "claims jobs again",
}
# Where a node is safe to kill: it renders nothing and will not claim.
SETTLED = {"parked", "stopped", "down"}


def command_nodes(actor, action: str, names: list[str] | None = None) -> ActionResult:
    """Send ``drain``, ``stop`` or ``resume`` to the named nodes, or to every live one.

    The node acts through its heartbeat thread within WORKER_POLL_SECONDS and
    writes ``parked`` once it renders nothing (NodeCommand); wait_settled()
    waits for that. A restarted node works normally again.
    """
    if action not in NODE_ACTIONS:
        raise ValueError(f"unknown node action {action!r}")
    who_, name = who(actor)
    nodes = RenderNode.objects.filter(stopped_at__isnull=True)
    if names:
        found = set(nodes.filter(name__in=names).values_list("name", flat=True))
        missing = [n for n in names if n not in found]
        if missing:
            raise UnknownNode(f"No running render node is called {missing[0]!r}.")
        nodes = nodes.filter(name__in=names)
    else:
        nodes = nodes.alive()
    targets = list(nodes.order_by("name"))
    job_ids = []
    for node in targets:
        if action == "resume":
            RenderNode.objects.filter(pk=node.pk, command__in=[*NodeCommand.PARKING,
                                                               NodeCommand.PARKED]) \
                .update(command="")
            continue
        # A parked node renders nothing: drain or stop leaves it parked.
        RenderNode.objects.filter(pk=node.pk).exclude(command=NodeCommand.PARKED) \
            .update(command=action)
        for job_id in Job.objects.filter(status=Status.RENDERING, node=node) \
                .values_list("pk", flat=True):
            lifecycle.record(job_id, f"{action}_requested", actor=who_,
                             message=f"{action.capitalize()} of {node.name} requested by "
                             f"{name}: the node {NODE_ACTIONS[action]}")
            job_ids.append(job_id)
    names_done = [node.name for node in targets]
    message = (f"Node {action} requested by {name} on {', '.join(names_done)}" if names_done
               else f"Node {action} requested by {name}, but no render node is running")
    events.record(f"node_{action}", message, actor=who_, level="warning")
    log.warning(message)
    return ActionResult(f"node_{action}", who_, job_ids, nodes=names_done, message=message)


def node_states(names: list[str]) -> dict[str, str]:
    rendering = set(Job.objects.filter(status=Status.RENDERING, node__name__in=names)
                    .values_list("node__name", flat=True))
    return {node.name: health.node_state(node, node.is_alive(), node.name in rendering)
            for node in RenderNode.objects.with_liveness().filter(name__in=names)}


def wait_settled(names: list[str], timeout: float, poll: float = 0.5,
                 on_change=None) -> dict[str, str]:
    """Wait until every named node is parked (or stopped, or down); returns the
    last states seen. ``on_change(states)`` is called whenever they change."""
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        states = node_states(names)
        for name in names:
            states.setdefault(name, "stopped")  # its row is gone
        if states != seen and on_change is not None:
            on_change(states)
        seen = states
        if all(state in SETTLED for state in states.values()) or \
                time.monotonic() >= deadline:
            return states
        time.sleep(poll)
