"""Live health for the admin panel: this machine's CPU, memory and disks
(psutil), the render nodes with their current job and, for nodes on this
machine, the render process tree; queue depth history and recent errors."""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta
from pathlib import Path

import psutil
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from jobs.models import ACTIVE, Job, NodeCommand, RenderNode, Status
from systemadmin.models import QueueSample, SystemEvent

HISTORY_HOURS = 24
# psutil measures CPU between two calls: keep the Process objects between requests.
_procs: dict[tuple[int, float], psutil.Process] = {}
_procs_lock = threading.Lock()
psutil.cpu_percent(interval=None)  # the first reading starts the measurement


def existing_parent(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (a volume not mounted yet still reports)."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def disk(name: str, path: str | os.PathLike) -> dict:
    where = existing_parent(Path(path))
    usage = psutil.disk_usage(str(where))
    return {"name": name, "path": str(path), "total": usage.total, "used": usage.used,
            "free": usage.free, "percent": usage.percent,
            "alert": usage.percent >= settings.DISK_ALERT_PERCENT}


def disks() -> list[dict]:
    return [disk("dropbox", settings.DROPBOX_PATH), disk("temp", settings.RENDER_TEMP_DIR)]


def machine() -> dict:
    memory = psutil.virtual_memory()
    return {
        "hostname": socket.gethostname(),
        "cpu": {"percent": psutil.cpu_percent(interval=None), "count": psutil.cpu_count()},
        "memory": {"total": memory.total, "used": memory.total - memory.available,
                   "available": memory.available, "percent": memory.percent},
        "disks": disks(),
        "disk_alert_percent": settings.DISK_ALERT_PERCENT,
    }


def _measured(proc: psutil.Process) -> psutil.Process:
    key = (proc.pid, proc.create_time())
    with _procs_lock:
        known = _procs.get(key)
        if known is None:
            known = _procs[key] = proc
            known.cpu_percent(interval=None)
        return known


def _forget_dead() -> None:
    with _procs_lock:
        for key in [k for k, p in _procs.items() if not p.is_running()]:
            del _procs[key]


def process_tree(pid: int, spawned_at=None) -> list[dict]:
    """The render process and its descendants with CPU and memory, or []."""
    try:
        root = psutil.Process(pid)
        # Started ahead of its job (jobs.node.spares), never after it was handed over.
        if spawned_at is not None and root.create_time() - spawned_at.timestamp() > 10:
            return []  # the pid was reused by something else
        members = [root, *root.children(recursive=True)]
    except (psutil.Error, OSError):
        return []
    tree = []
    for proc in members:
        try:
            measured = _measured(proc)
            with measured.oneshot():
                tree.append({
                    "pid": measured.pid,
                    "ppid": measured.ppid(),
                    "name": measured.name(),
                    "cpu_percent": measured.cpu_percent(interval=None),
                    "memory_rss": measured.memory_info().rss,
                    "status": measured.status(),
                })
        except (psutil.Error, OSError):
            continue
    return tree


def node_state(node: RenderNode, alive: bool, rendering: bool) -> str:
    """stopped, down, rendering, idle; or, under an admin's drain or stop command
    (NodeCommand), draining, stopping, and parked once the worker acknowledged
    that it renders nothing and claims nothing."""
    if node.stopped_at:
        return "stopped"
    if not alive:
        return "down"
    if node.command == NodeCommand.PARKED:
        return "parked"
    if node.command in NodeCommand.PARKING:
        # Parked only once the worker says so: with no job RENDERING under it a
        # draining node may still be claiming one (killed then, it would lose it).
        return "draining" if node.command == NodeCommand.DRAIN else "stopping"
    return "rendering" if rendering else "idle"


def nodes() -> list[dict]:
    here = socket.gethostname()
    _forget_dead()
    rendering = {job.node_id: job for job in
                 Job.objects.filter(status=Status.RENDERING, node__isnull=False)
                 .select_related("user")}
    found = []
    for node in RenderNode.objects.with_liveness().order_by("name"):
        alive = node.is_alive()
        job = rendering.get(node.pk)
        entry = {
            "name": node.name, "hostname": node.hostname, "pid": node.pid,
            "state": node_state(node, alive, job is not None),
            "alive": alive, "last_heartbeat": node.last_heartbeat.isoformat(),
            # On the database's clock, like the liveness rule (not this server's).
            "heartbeat_age_seconds": round(node.heartbeat_age.total_seconds(), 1),
            "started_at": node.started_at.isoformat(), "command": node.command,
            "job": None, "processes": [],
        }
        if job is not None:
            entry["job"] = {
                "id": str(job.pk), "name": job.display_name, "progress": job.progress,
                "phase": job.phase, "eta_seconds": job.eta_seconds,
                "started_at": job.started_at.isoformat() if job.started_at else None,
                "user": job.user.email if job.user else job.client,
                "render_pid": job.render_pid,
            }
            if job.render_pid and node.hostname == here:
                entry["processes"] = process_tree(job.render_pid, job.render_spawned_at)
        found.append(entry)
    return found


def queue_counts() -> dict:
    counts = dict(Job.objects.filter(status__in=ACTIVE).values_list("status")
                  .annotate(n=Count("pk")).values_list("status", "n"))
    return {status.lower(): counts.get(status, 0) for status in ACTIVE}


def snapshot() -> dict:
    return {"time": timezone.now().isoformat(), **machine(), "queue": queue_counts(),
            "nodes": nodes()}


def queue_history(hours: int = HISTORY_HOURS) -> list[dict]:
    since = timezone.now() - timedelta(hours=hours)
    rows = QueueSample.objects.filter(created_at__gte=since).order_by("created_at")
    return [{"time": s.created_at.isoformat(), "pending": s.pending,
             "validating": s.validating, "queued": s.queued, "rendering": s.rendering}
            for s in rows]


def recent_errors(limit: int = 20, *, exclude_kinds=()) -> list[dict]:
    """Failed jobs and system warnings/errors, newest first (``exclude_kinds``:
    system events to leave out, such as the admin panel's own actions)."""
    failed = (Job.objects.filter(status=Status.FAILED).order_by("-finished_at")
              .defer("config")[:limit])
    items = [{"time": job.finished_at or job.created_at, "kind": "job_failed",
              "level": "error", "job_id": job.pk, "name": job.display_name,
              "message": job.error} for job in failed]
    alerts = (SystemEvent.objects.filter(level__in=[SystemEvent.Level.WARNING,
                                                    SystemEvent.Level.ERROR])
              .exclude(kind__in=exclude_kinds)[:limit])
    items += [{"time": e.created_at, "kind": e.kind, "level": e.level, "job_id": None,
               "name": "", "message": e.message, "actor": e.actor} for e in alerts]
    items.sort(key=lambda item: item["time"], reverse=True)
    return items[:limit]


def full_disks() -> list[dict]:
    return [entry for entry in disks() if entry["alert"]]


def record_sample() -> QueueSample:
    counts = queue_counts()
    return QueueSample.objects.create(**counts)


def prune_samples(hours: int = HISTORY_HOURS + 1) -> int:
    cutoff = timezone.now() - timedelta(hours=hours)
    return QueueSample.objects.filter(created_at__lt=cutoff).delete()[0]
