"""One render on this node: a claimed job, from its temp folder to a final transition.

The worker loop (jobs.node.worker) claims a job and hands it to ``Render``,
which asks the engine for a command, runs it under the watchdogs (cancel or
takeover, shutdown, stall), transcodes to the job's preset if it has one, and
publishes the output. Every outcome ends in one lifecycle transition.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobEvent, JobLog, Phase, Status
from jobs.node import followups, live_frame, preview
from jobs.node.engines import RenderError, get_engine, thumbnails
from jobs.node.engines.ae_output import STALLED_HINT
from jobs.node.engines.ffmpeg import needs_transcode, transcode
from jobs.node.procs import RenderProcess
from jobs.node.progress import LogBuffer
from jobs.node.publish import output_folder, output_name, publish
from jobs.submission import presets
from jobs.submission.paths import output_relative
from jobs.submission.presets import describe as describe_preset

log = logging.getLogger(__name__)

READ_SLICE = 0.1  # how long one read of render output may block
LOG_FLUSH_SECONDS = 2.0


@dataclass
class RenderOutcome:
    # COMPLETED, AWAITING_REVIEW (a preview), QUEUED (retry or requeue), FAILED,
    # CANCELLED, LOST
    status: str
    reason: str = ""


class Render:
    """``worker`` is the node's Worker: its name, stop flags and heartbeat."""

    def __init__(self, worker, job: Job):
        self.worker = worker
        self.job = job
        self.workdir = Path(settings.RENDER_TEMP_DIR) / f"{job.pk.hex}-{job.attempts}"
        self.buffer = LogBuffer(settings.RENDER_LOG_MAX_BYTES)
        self.proc: RenderProcess | None = None
        now = time.monotonic()
        self.last_output = now
        self.last_progress_write = 0.0
        self.last_log_flush = now
        self.last_check = now
        self.progress_dirty = False
        self.frames: live_frame.FrameWatcher | None = None

    def run(self) -> RenderOutcome:
        job = self.job
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._seed_log()
        try:
            outcome = self._render()
        except Exception as exc:  # never let one job take the node down
            log.exception("render of job %s failed unexpectedly", job.pk)
            if self.proc is not None:
                self.proc.kill()
            outcome = self._crashed(f"internal error: {exc}", code="internal_error")
        finally:
            self._stop_frames()
            self._wrap_up()
            JobEvent.objects.filter(job_id=job.pk, kind="progress").delete()
        log.info("job %s: %s %s", job.pk, outcome.status, outcome.reason)
        return outcome

    def _render(self) -> RenderOutcome:
        job, workdir, buffer = self.job, self.workdir, self.buffer
        engine = get_engine(job.engine)
        try:
            command = engine.command(job, workdir)
        except RenderError as exc:
            return self._crashed(str(exc), permanent=exc.permanent, code=exc.code)
        progress = engine.progress(job)
        buffer.add(f"=== attempt {job.attempts} on {self.worker.node_name} at "
                   f"{timezone.now():%Y-%m-%d %H:%M:%S} UTC ===")
        self.frames = live_frame.watch(engine, job, workdir)
        ran = self._run(command, progress)
        self._stop_frames(last=not isinstance(ran, RenderOutcome))
        if isinstance(ran, RenderOutcome):
            return ran
        code, wall = ran
        # What AE warned about (missing fonts, footage) stays visible however it ends,
        # beside what reading the project found before (jobs.node.preflight).
        known = job.warnings or []
        warnings = known + [w for w in getattr(progress, "warnings", []) if w not in known]
        Job.objects.filter(pk=job.pk).update(render_seconds=wall, warnings=warnings)
        try:
            engine.check(job, workdir, progress, code)
        except RenderError as exc:
            return self._crashed(str(exc), permanent=exc.permanent, code=exc.code)
        if job.needs_preview:
            return self._preview(engine)
        result = None
        if needs_transcode(job):
            result = self._encode(engine, job.preset,
                                  f"with preset {describe_preset(job.preset)}")
            if isinstance(result, RenderOutcome):
                return result
        return self._publish(engine, result)

    def _run(self, command, progress) -> RenderOutcome | tuple[int, float]:
        """Run one command of a render under the watchdogs.

        Returns (exit code, wall seconds) when the process ended by itself, or the
        outcome when it was stopped: cancel or takeover, shutdown, stall.
        """
        job, buffer = self.job, self.buffer
        marker = f"{self.worker.node_name}/{job.pk}/{job.lease}"
        spawned = time.monotonic()
        self.last_output = spawned
        self.proc = proc = RenderProcess(command.argv, command.env, command.cwd, marker)
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
                    self.last_output = now
                for line in lines:
                    if not line.strip():
                        continue  # nexrender --debug echoes a blank line per chunk
                    if progress.feed(line):
                        self.progress_dirty = True
                        self.last_output = now
                    if keep is None or keep(line):
                        buffer.append(line)
            if self.progress_dirty and \
                    now - self.last_progress_write >= settings.PROGRESS_WRITE_SECONDS:
                self._write_progress(progress)
                self.last_progress_write = now
                self.progress_dirty = False
            if now - self.last_log_flush >= LOG_FLUSH_SECONDS:
                self._flush_log()
                self.last_log_flush = now

            if self.worker.stop_requested.is_set() or self.worker.restart_requested:
                proc.kill()
                why = "restart" if self.worker.restart_requested else "shutdown"
                lifecycle.requeue_interrupted(
                    job.pk, job.lease, f"The render node stopped ({why}); back in the queue",
                    actor=f"node:{self.worker.node_name}")
                return RenderOutcome(Status.QUEUED, why)
            if now - self.last_check >= settings.WORKER_POLL_SECONDS:
                self.last_check = now
                lost = self._lost_claim()
                if lost:
                    proc.kill()
                    return RenderOutcome(Status.CANCELLED, lost)
            if now - self.last_output > settings.RENDER_STALL_SECONDS:
                proc.kill()
                silent = "made no progress" if heartbeats else "printed nothing"
                hint = "" if heartbeats else f"\n{STALLED_HINT}"
                return self._crashed(
                    f"the render {silent} for {settings.RENDER_STALL_SECONDS:g} s "
                    f"and was stopped{hint}", code="stalled")
            code = proc.poll()
            if code is not None:
                break

        wall = time.monotonic() - spawned
        self._write_progress(progress)
        self.progress_dirty = False
        return code, wall

    def _encode(self, engine, preset: dict, label: str) -> RenderOutcome | Path:
        """Transcode the finished render with ``preset`` (phase "encoding"); ``label``
        says what for, in the log and the timeline."""
        job, workdir, buffer = self.job, self.workdir, self.buffer
        try:
            step = transcode(engine.find_output(job, workdir), workdir, preset)
        except RenderError as exc:
            return self._crashed(str(exc), permanent=exc.permanent, code=exc.code)
        Job.objects.filter(pk=job.pk, lease=job.lease).update(
            phase=Phase.ENCODING, progress=0, frames_done=0, eta_seconds=None)
        lifecycle.record(job.pk, "progress", to_status=Status.RENDERING,
                         message=f"Encoding: {label}")
        buffer.add(f"=== encoding {label} ===")
        ran = self._run(step.command, step.progress)
        if isinstance(ran, RenderOutcome):
            return ran
        code, _wall = ran
        if code != 0 or not step.output.is_file() or step.output.stat().st_size == 0:
            errors = "; ".join(step.progress.errors[-3:]) or last_meaningful(buffer)
            return self._crashed(f"encoding {label} failed (exit code {code})"
                                 + (f": {errors}" if errors else ""), code="encoding_failed")
        return step.output

    def _preview(self, engine) -> RenderOutcome:
        """A review job's first render: encode it small, publish it, wait for a person."""
        job = self.job
        result = self._encode(engine, presets.PREVIEW, "the preview (small H.264)")
        if isinstance(result, RenderOutcome):
            return result
        Job.objects.filter(pk=job.pk, lease=job.lease).update(phase=Phase.PUBLISHING)
        lifecycle.record(job.pk, "progress", to_status=Status.RENDERING)
        if not lifecycle.still_mine(job.pk, job.lease):
            return RenderOutcome(Status.CANCELLED, "cancelled before publishing the preview")
        preview.store(job, result)
        self._wrap_up()
        if not lifecycle.preview_ready(job.pk, job.lease):
            return RenderOutcome(Status.CANCELLED, "cancelled while publishing the preview")
        return RenderOutcome(Status.AWAITING_REVIEW)

    def _publish(self, engine, result: Path | None = None) -> RenderOutcome:
        job, workdir = self.job, self.workdir
        Job.objects.filter(pk=job.pk, lease=job.lease).update(phase=Phase.PUBLISHING)
        lifecycle.record(job.pk, "progress", to_status=Status.RENDERING)
        try:
            result = engine.find_output(job, workdir) if result is None else result
        except RenderError as exc:
            return self._crashed(str(exc), permanent=exc.permanent, code=exc.code)
        if not lifecycle.still_mine(job.pk, job.lease):
            return RenderOutcome(Status.CANCELLED, "cancelled before publishing")
        has_thumbnail = thumbnails.capture(job, result)
        target = publish(result, output_folder(job), output_name(job, result))
        self._wrap_up()
        # Stored relative to RENDER_OUTPUT_DIR: every machine finds it in its own.
        if not lifecycle.complete(job.pk, job.lease, output_path=output_relative(target),
                                  output_size=target.stat().st_size,
                                  has_thumbnail=has_thumbnail,
                                  follow_ups=followups.after_completion(job, target)):
            target.unlink(missing_ok=True)
            return RenderOutcome(Status.CANCELLED, "cancelled while publishing")
        return RenderOutcome(Status.COMPLETED)

    def _stop_frames(self, last: bool = False) -> None:
        """Stop sending the live frame; ``last``: the render ended, send its last frame."""
        if self.frames is not None:
            frames, self.frames = self.frames, None
            frames.stop(last=last)

    def _crashed(self, reason: str, permanent: bool = False, code: str = "") -> RenderOutcome:
        job = self.job
        self._wrap_up()
        status = lifecycle.render_crashed(job.pk, job.lease, reason, permanent=permanent,
                                          actor=f"node:{self.worker.node_name}", code=code)
        return RenderOutcome(status or "LOST", reason)

    def _lost_claim(self) -> str:
        job = self.job
        """Why this node must stop rendering ``job``, or "" to go on."""
        try:
            self.worker.heartbeat(force=False)
            current = Job.objects.filter(pk=job.pk).values_list("status", "lease").first()
        except DatabaseError:
            log.exception("cannot reach the database during a render")
            connection.close()
            # Past the node timeout another node may take the job over: stop
            # rather than risk two renders of one job.
            if time.monotonic() - self.worker.last_db_ok > settings.NODE_TIMEOUT_SECONDS * 0.8:
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

    def _write_progress(self, progress) -> None:
        job = self.job
        eta = progress.eta_seconds(time.monotonic())
        Job.objects.filter(pk=job.pk, status=Status.RENDERING, lease=job.lease).update(
            progress=round(progress.percent, 2), phase=progress.phase,
            frames_done=progress.frames_done, frames_total=progress.frames_total,
            eta_seconds=eta, last_output_at=timezone.now())
        lifecycle.record(job.pk, "progress", to_status=Status.RENDERING,
                         message=f"{progress.percent:.0f}%")

    def _wrap_up(self) -> None:
        """Store the log and remove the temp folder.

        Done before a render's final transition, so whoever sees the job
        finished sees its whole log and no leftover folder; and again at the
        end of every render, whatever happened (it is idempotent).
        """
        self._flush_log()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _seed_log(self) -> None:
        job = self.job
        previous = JobLog.objects.filter(job_id=job.pk).first()
        if previous is not None and job.attempts > 1:
            self.buffer.add(previous.text())

    def _flush_log(self) -> None:
        buffer = self.buffer
        JobLog.objects.update_or_create(job_id=self.job.pk, defaults={
            "head": buffer.head, "tail": buffer.tail, "omitted_bytes": buffer.omitted_bytes})


def last_meaningful(buffer: LogBuffer, limit: int = 300) -> str:
    for line in reversed(buffer.tail.splitlines() or buffer.head.splitlines()):
        line = line.strip()
        if line and not line.startswith("PROGRESS:") and not line.startswith("==="):
            return line[:limit]
    return ""
