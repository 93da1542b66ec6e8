"""Admin actions on the whole farm. Each is recorded as a SystemEvent naming the
admin, and every job it touches gets a JobEvent with the admin as actor."""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass, field

import psutil

from jobs import lifecycle
from jobs.models import UNFINISHED, Job, RenderNode, Status
from jobs.node.procs import find_marked
from systemadmin import events

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

    doomed = []
    for proc in find_marked(""):
        try:
            parts = proc.environ().get(MARKER_ENV, "").split("/")
        except (psutil.Error, OSError):
            continue
        if len(parts) >= 2 and parts[-2] in wanted:
            doomed.append(proc)
    if not doomed:
        return []
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
    nodes = RenderNode.objects.filter(stopped_at__isnull=True)
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
