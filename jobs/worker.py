"""The render node daemon: a thin loop over small units of work.

``Worker.step()`` does one round (heartbeat, requeue jobs of dead nodes,
claim and render one job) and tests call it directly. Signals only set a
flag; the loop notices it within a fraction of a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from jobs import lifecycle, thumbnails, validation
from jobs.engines import RenderError, get_engine
from jobs.engines.ffmpeg import needs_transcode, transcode
from jobs.models import Job, JobEvent, JobLog, Phase, RenderNode, Status
from jobs.presets import describe as describe_preset
from jobs.procs import RenderProcess, kill_marked
from jobs.progress import LogBuffer
from jobs.wakeup import Waker, wants_queue

log = logging.getLogger(__name__)

READ_SLICE = 0.1  # how long one read of render output may block
LOG_FLUSH_SECONDS = 2.0


def default_node_name() -> str:
    return socket.gethostname() or "render-node"


@dataclass
class RenderOutcome:
    status: str  # COMPLETED, QUEUED (retry or requeue), FAILED, CANCELLED, LOST
    reason: str = ""


@dataclass
class _RenderState:
    job: Job
    workdir: Path
    buffer: LogBuffer
    proc: RenderProcess | None = None
    last_output: float = field(default_factory=time.monotonic)
    last_progress_write: float = 0.0
    last_log_flush: float = field(default_factory=time.monotonic)
    last_check: float = field(default_factory=time.monotonic)
    progress_dirty: bool = False


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
                                     actor=f"node:{self.node_name}")

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
        # Operations chores on their own thread (queue samples, hourly retention,
        # disk and node alerts); it stops with stop_requested.
        from systemadmin import housekeeping

        housekeeping.start(self.stop_requested)
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
        workdir = Path(settings.RENDER_TEMP_DIR) / f"{job.pk.hex}-{job.attempts}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        buffer = LogBuffer(settings.RENDER_LOG_MAX_BYTES)
        state = _RenderState(job=job, workdir=workdir, buffer=buffer)
        self._seed_log(job, buffer)
        try:
            outcome = self._render(state, workdir, buffer)
        except Exception as exc:  # never let one job take the node down
            log.exception("render of job %s failed unexpectedly", job.pk)
            if state.proc is not None:
                state.proc.kill()
            outcome = self._crashed(state, f"internal error: {exc}")
        finally:
            self._wrap_up(state)
            JobEvent.objects.filter(job_id=job.pk, kind="progress").delete()
        log.info("job %s: %s %s", job.pk, outcome.status, outcome.reason)
        return outcome

    def _render(self, state: _RenderState, workdir: Path, buffer: LogBuffer) -> RenderOutcome:
        job = state.job
        engine = get_engine(job.engine)
        try:
            command = engine.command(job, workdir)
        except RenderError as exc:
            return self._crashed(state, str(exc), permanent=exc.permanent)
        progress = engine.progress(job)
        buffer.add(f"=== attempt {job.attempts} on {self.node_name} at "
                   f"{timezone.now():%Y-%m-%d %H:%M:%S} UTC ===")
        ran = self._run(state, command, progress, buffer)
        if isinstance(ran, RenderOutcome):
            return ran
        code, wall = ran
        Job.objects.filter(pk=job.pk).update(render_seconds=wall)
        if code != 0:
            errors = "; ".join(progress.errors[-3:]) or last_meaningful(buffer)
            return self._crashed(state, f"the renderer exited with code {code}"
                                 + (f": {errors}" if errors else ""))
        result = None
        if needs_transcode(job):
            result = self._encode(state, engine, workdir, buffer)
            if isinstance(result, RenderOutcome):
                return result
        return self._publish(state, engine, workdir, buffer, result)

    def _run(self, state: _RenderState, command, progress,
             buffer: LogBuffer) -> RenderOutcome | tuple[int, float]:
        """Run one command of a render under the watchdogs.

        Returns (exit code, wall seconds) when the process ended by itself, or the
        outcome when it was stopped: cancel or takeover, shutdown, stall.
        """
        job = state.job
        marker = f"{self.node_name}/{job.pk}/{job.lease}"
        spawned = time.monotonic()
        state.last_output = spawned
        state.proc = proc = RenderProcess(command.argv, command.env, command.cwd, marker)
        Job.objects.filter(pk=job.pk, lease=job.lease).update(
            render_pid=proc.pid, render_spawned_at=timezone.now())
        # Parsers may keep their own chatter (ffmpeg's progress blocks) out of the log.
        keep = getattr(progress, "keep_in_log", None)
        # A program that reports even while stuck (ffmpeg prints its progress block
        # twice a second) is alive only while its progress moves; others while they print.
        heartbeats = getattr(progress, "heartbeats", False)

        while True:
            lines = proc.read(READ_SLICE)
            now = time.monotonic()
            if lines:
                if not heartbeats:
                    state.last_output = now
                for line in lines:
                    if not line.strip():
                        continue  # nexrender --debug echoes a blank line per chunk
                    if progress.feed(line):
                        state.progress_dirty = True
                        state.last_output = now
                    if keep is None or keep(line):
                        buffer.append(line)
            if state.progress_dirty and \
                    now - state.last_progress_write >= settings.PROGRESS_WRITE_SECONDS:
                self._write_progress(job, progress)
                state.last_progress_write = now
                state.progress_dirty = False
            if now - state.last_log_flush >= LOG_FLUSH_SECONDS:
                self._flush_log(job, buffer)
                state.last_log_flush = now

            if self.stop_requested.is_set() or self.restart_requested:
                proc.kill()
                why = "restart" if self.restart_requested else "shutdown"
                lifecycle.requeue_interrupted(
                    job.pk, job.lease, f"The render node stopped ({why}); back in the queue",
                    actor=f"node:{self.node_name}")
                return RenderOutcome(Status.QUEUED, why)
            if now - state.last_check >= settings.WORKER_POLL_SECONDS:
                state.last_check = now
                lost = self._lost_claim(job)
                if lost:
                    proc.kill()
                    return RenderOutcome(Status.CANCELLED, lost)
            if now - state.last_output > settings.RENDER_STALL_SECONDS:
                proc.kill()
                silent = "made no progress" if heartbeats else "printed nothing"
                return self._crashed(
                    state, f"the render {silent} for {settings.RENDER_STALL_SECONDS:g} s "
                    "and was stopped")
            code = proc.poll()
            if code is not None:
                break

        wall = time.monotonic() - spawned
        self._write_progress(job, progress)
        state.progress_dirty = False
        return code, wall

    def _encode(self, state: _RenderState, engine, workdir: Path,
                buffer: LogBuffer) -> RenderOutcome | Path:
        """The job's output preset: transcode the finished render (phase "encoding")."""
        job = state.job
        try:
            step = transcode(engine.find_output(job, workdir), workdir, job.preset)
        except RenderError as exc:
            return self._crashed(state, str(exc), permanent=exc.permanent)
        Job.objects.filter(pk=job.pk, lease=job.lease).update(
            phase=Phase.ENCODING, progress=0, frames_done=0, eta_seconds=None)
        lifecycle.record(job.pk, "progress", to_status=Status.RENDERING,
                         message=f"Encoding: {describe_preset(job.preset)}")
        buffer.add(f"=== encoding with preset {describe_preset(job.preset)} ===")
        ran = self._run(state, step.command, step.progress, buffer)
        if isinstance(ran, RenderOutcome):
            return ran
        code, _wall = ran
        if code != 0 or not step.output.is_file() or step.output.stat().st_size == 0:
            errors = "; ".join(step.progress.errors[-3:]) or last_meaningful(buffer)
            return self._crashed(state, f"encoding with the {job.preset.get('name')} preset "
                                 f"failed (exit code {code})" + (f": {errors}" if errors else ""))
        return step.output

    def _publish(self, state: _RenderState, engine, workdir: Path, buffer: LogBuffer,
                 result: Path | None = None) -> RenderOutcome:
        job = state.job
        Job.objects.filter(pk=job.pk, lease=job.lease).update(phase=Phase.PUBLISHING)
        lifecycle.record(job.pk, "progress", to_status=Status.RENDERING)
        try:
            result = engine.find_output(job, workdir) if result is None else result
        except RenderError as exc:
            return self._crashed(state, str(exc), permanent=exc.permanent)
        if not lifecycle.still_mine(job.pk, job.lease):
            return RenderOutcome(Status.CANCELLED, "cancelled before publishing")
        has_thumbnail = thumbnails.capture(job, result)
        target = publish(result, Path(settings.RENDER_OUTPUT_DIR), output_name(job, result))
        self._wrap_up(state)
        if not lifecycle.complete(job.pk, job.lease, output_path=str(target),
                                  output_size=target.stat().st_size,
                                  has_thumbnail=has_thumbnail):
            target.unlink(missing_ok=True)
            return RenderOutcome(Status.CANCELLED, "cancelled while publishing")
        return RenderOutcome(Status.COMPLETED)

    def _crashed(self, state: _RenderState, reason: str, permanent: bool = False) -> RenderOutcome:
        job = state.job
        self._wrap_up(state)
        status = lifecycle.render_crashed(job.pk, job.lease, reason,
                                          actor=f"node:{self.node_name}", permanent=permanent)
        return RenderOutcome(status or "LOST", reason)

    def _lost_claim(self, job: Job) -> str:
        """Why this node must stop rendering ``job``, or "" to go on."""
        try:
            self.heartbeat(force=False)
            current = Job.objects.filter(pk=job.pk).values_list("status", "lease").first()
        except DatabaseError:
            log.exception("cannot reach the database during a render")
            connection.close()
            # Past the node timeout another node may take the job over: stop
            # rather than risk two renders of one job.
            if time.monotonic() - self.last_db_ok > settings.NODE_TIMEOUT_SECONDS * 0.8:
                return "lost contact with the database"
            return ""
        if current is None:
            return "the job was deleted"
        status, lease = current
        if status == Status.CANCELLED:
            return "cancelled"
        if status != Status.RENDERING or lease != job.lease:
            return "the job was taken over by another node"
        return ""

    def _write_progress(self, job: Job, progress) -> None:
        eta = progress.eta_seconds(time.monotonic())
        Job.objects.filter(pk=job.pk, status=Status.RENDERING, lease=job.lease).update(
            progress=round(progress.percent, 2), phase=progress.phase,
            frames_done=progress.frames_done, frames_total=progress.frames_total,
            eta_seconds=eta, last_output_at=timezone.now())
        lifecycle.record(job.pk, "progress", to_status=Status.RENDERING,
                         message=f"{progress.percent:.0f}%")

    def _wrap_up(self, state: _RenderState) -> None:
        """Store the log and remove the temp folder.

        Done before a render's final transition, so whoever sees the job
        finished sees its whole log and no leftover folder; and again at the
        end of every render, whatever happened (it is idempotent).
        """
        self._flush_log(state.job, state.buffer)
        shutil.rmtree(state.workdir, ignore_errors=True)

    def _seed_log(self, job: Job, buffer: LogBuffer) -> None:
        previous = JobLog.objects.filter(job_id=job.pk).first()
        if previous is not None and job.attempts > 1:
            buffer.add(previous.text())

    def _flush_log(self, job: Job, buffer: LogBuffer) -> None:
        JobLog.objects.update_or_create(job_id=job.pk, defaults={
            "head": buffer.head, "tail": buffer.tail, "omitted_bytes": buffer.omitted_bytes})


def last_meaningful(buffer: LogBuffer, limit: int = 300) -> str:
    for line in reversed(buffer.tail.splitlines() or buffer.head.splitlines()):
        line = line.strip()
        if line and not line.startswith("PROGRESS:") and not line.startswith("==="):
            return line[:limit]
    return ""


SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def output_name(job: Job, result: Path) -> str:
    stem = Path(job.display_name.replace("\\", "/")).stem or "render"
    stem = SAFE_NAME.sub("_", stem).strip(" .") or "render"
    return f"{stem[:80]}_{job.pk.hex[:8]}{result.suffix.lower()}"


def publish(result: Path, folder: Path, name: str) -> Path:
    """Move the finished file into the output folder in one atomic step.

    It is copied under a name Dropbox ignores (``.~*``) and then renamed, so
    Dropbox never syncs a partial file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    partial = folder / f".~{name}.partial"
    shutil.move(str(result), str(partial))
    os.replace(partial, target)
    return target
