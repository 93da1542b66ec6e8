"""Helpers shared by the operations tests (Slack, webhooks, admin actions)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import psutil
from django.conf import settings

from jobs import lifecycle
from jobs.models import Job
from jobs.node.procs import MARKER_ENV, SPARE_MARK, spares_of
from jobs.submission.paths import dropbox_relative
from tests.helpers.common import REPO, make_project, wait_for


def submit(farm, user, name="spot.aep", callback_url="", priority=0, template=None,
           engine=None, **behaviour) -> Job:
    """Submit a simulator project the way the API does (PENDING, then the worker).
    ``template``: more nexrender template keys than the composition."""
    path = make_project(farm.dropbox, name, **behaviour)
    job = lifecycle.submit(actor="api:test", user=user, client="test",
                           project_path=dropbox_relative(path),
                           path_key=str(path).casefold(), name=name,
                           config={"template": {"composition": "main", **(template or {})}},
                           engine=engine or farm.settings.RENDER_ENGINE,
                           callback_url=callback_url).job
    if priority:
        Job.objects.filter(pk=job.pk).update(priority=priority)
    return job


def status_of(job) -> str:
    job.refresh_from_db()
    return job.status


def wait_status(job, *statuses, timeout=60):
    return wait_for(lambda: status_of(job) in statuses, timeout=timeout,
                    message=f"job stayed {job.status}, wanted {statuses}: {job.error}")


def render_processes(job_id=None, node: str = "") -> list[psutil.Process]:
    """Live render processes of ``job_id`` or of render node ``node`` (its full
    name, ``farm.node()``), found by their marker (and the spares that started
    them). Other test runs may be
    rendering on this machine at the same time: always narrow it down."""
    assert job_id or node
    found, spares = [], []
    for proc in psutil.process_iter():
        try:
            marker = proc.environ().get(MARKER_ENV, "")
            if not marker or not marker.startswith(f"{node}/" if node else "") \
                    or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if SPARE_MARK in marker:
                spares.append(proc)
            elif job_id is None or str(job_id) in marker:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    # A spare (jobs.node.spares) keeps its own marker: it is part of the render it
    # started; one still waiting for a job renders nothing.
    return found + spares_of(found, spares)


def spare_processes(node: str) -> list[psutil.Process]:
    """The live processes of ``node``'s spares (jobs.node.spares: a guard, a launcher),
    waiting for a job or rendering one, by their marker."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER_ENV, "").startswith(f"{node}{SPARE_MARK}") \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def event_time(job, to_status):
    event = job.events.filter(to_status=to_status).exclude(kind="progress").order_by("id").last()
    assert event is not None, f"no {to_status} event for {job.pk}"
    return event.created_at


def use_aerender(farm, patched: bool = True):
    """The direct aerender engine: no Node needed and quick to start. ``patched``: on
    a node whose After Effects has nexrender's patch (installed by a nexrender render
    there), which relinking footage needs (aerender -r)."""
    farm.configure(RENDER_ENGINE="aerender")
    if patched:
        patch_like_nexrender(farm.simulator)


def patch_like_nexrender(aerender) -> None:
    """Put nexrender's own patched commandLineRenderer.jsx beside ``aerender``, as
    nexrender does on its first render (@nexrender/core src/helpers/patch.js)."""
    patched = subprocess.run(
        [settings.NODE_BINARY, "-e", "process.stdout.write(require("
         "'@nexrender/core/src/assets/commandLineRenderer-default.jsx'))"],
        cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "nexrender-patch" in patched
    startup = Path(aerender).parent / "Scripts" / "Startup" / "commandLineRenderer.jsx"
    startup.write_text(patched, encoding="utf-8")


class RenderWatcher:
    """Watches the live render processes of a farm (found by their marker, not
    the job rows) on a thread, and keeps per job the most claims (leases) seen
    rendering at the same moment: more than one is a job rendered twice.

    Use as a context manager; ``most_at_once`` maps job id (str) to that count.
    """

    def __init__(self, farm, interval: float = 0.1):
        self.prefix = f"-{farm.tag}/"  # node names end with the farm's tag
        self.interval = interval
        self.most_at_once: dict[str, int] = {}
        self.rendered: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="render-watcher",
                                        daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            leases: dict[str, set[str]] = {}
            for proc in psutil.process_iter():
                try:
                    marker = proc.environ().get(MARKER_ENV, "")
                    if self.prefix not in marker or SPARE_MARK in marker \
                            or proc.status() == psutil.STATUS_ZOMBIE:
                        continue
                except (psutil.Error, OSError):
                    continue
                _node, job_id, lease = marker.rsplit("/", 2)
                leases.setdefault(job_id, set()).add(lease)
            for job_id, seen in leases.items():
                self.rendered.add(job_id)
                self.most_at_once[job_id] = max(self.most_at_once.get(job_id, 0), len(seen))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RenderWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def worst(self) -> int:
        return max(self.most_at_once.values(), default=0)
