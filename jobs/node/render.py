"""One render on this node: a claimed job, from its temp folder to a final transition.

The worker loop (jobs.node.worker) claims a job and hands it to ``Render``,
which asks the engine for a command, runs it under the watchdogs (cancel or
takeover, shutdown or a stop command, stall, lost contact with the database),
transcodes to the job's preset if it has one, and publishes the output. Every
outcome ends in one lifecycle transition.

The database may be away for a while (a PostgreSQL restart, a long SQLite
lock): writes that only report progress or the log are skipped until it is
back, and the final transition waits for it (jobs.node.outage). Every write
is guarded by the claim's lease, so a render that lost its job writes nothing.
Long steps outside the watchdog loop stop at checkpoints (jobs.node.interrupt).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import Error, connection
from django.db.models.functions import Now
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobEvent, JobLog, Phase, Status
from jobs.node import bookkeeping, contact, followups, live_frame, outage, preview
from jobs.node.engines import RenderError, get_engine
from jobs.node.engines.ae_output import STALLED_HINT
from jobs.node.engines.ffmpeg import needs_transcode, transcode
from jobs.node.interrupt import Interrupted, watching
from jobs.node.procs import RenderProcess, without_nul
from jobs.node.progress import LogBuffer
from jobs.node.publish import (
    MoveInFailed,
    Published,
    PublishError,
    output_folder,
    output_name,
    publish,
)
from jobs.node.retention import discard_temp_dir
from jobs.submission import presets
from jobs.submission.paths import output_relative
from jobs.submission.presets import describe as describe_preset

log = logging.getLogger(__name__)

READ_SLICE = 0.1  # how long one read of render output may block
LOG_FLUSH_SECONDS = 2.0
PUBLISH_FAILED = "publish_failed"
DATABASE_REFUSED = "database_refused"
PRUNE_PROGRESS_EVERY = 60  # progress writes (a minute at the default pace)
# How far into a render the next render's process starts (jobs.node.spares): at once,
# beside this one's start-up, so that it is waiting however short this render is
# (0.3 s before ce531d3; bench/render_overhead.py and bench/dispatch_latency.py
# measure the choice).
SPARE_AFTER_SECONDS = 0.0
# How far into a render the last render's receivers and chores may run beside it, if
# its first progress does not come sooner (jobs.node.bookkeeping): its start-up first.
GO_AFTER_SECONDS = 0.5
# A job claimed ahead starts aerender as the render before it ends; that render's
# publishing (a few database writes) waits until aerender printed its first line,
# this long at most: beside aerender's start-up it would slow it (bench/render_overhead.py
# measures both), and a completion this much later is more than anyone notices.
UNDER_WAY_SECONDS = 0.2
# Render._publish: the publishing phase is not written yet.
NOT_WRITTEN = -1
# How long a render's process may take to end once its render reported success
# (RenderCommand.done_line: node.js exiting, the guard's sweep, milliseconds)
# before it is killed.
FINISH_SECONDS = 10.0


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
        # Set (and the process killed) by jobs.node.contact when the heartbeat went
        # silent, even while this thread is blocked on the database.
        self.contact_lost = ""
        now = time.monotonic()
        self.last_output = now
        self.last_progress_write = 0.0
        self.last_log_flush = now
        self.last_check = now
        self.progress_dirty = False
        self.progress_events = 0
        # What the stored log row holds already (LogBuffer.total_bytes, head_bytes).
        self.log_written = (-1, -1)
        self.log_exists = False
        self.frames: live_frame.FrameWatcher | None = None
        # The process said its render succeeded (RenderCommand.done_line) and is
        # ending: the job goes on without waiting for it.
        self.finishing = False
        # Claimed ahead (jobs.node.worker, claim_ahead): the command was built, and
        # its process (``ahead_proc``) handed its job to wait at its gate, while the
        # render before it ran.
        self.command = None
        self.command_error: RenderError | None = None
        self.ahead_proc = False
        self.claimed_at = now

    def prepare(self) -> None:
        """Claimed ahead: make the work folder, build the command and hand it to a
        spare that waits at its gate (jobs.node.spares), all while the render before
        it runs. Whatever fails here is done again (or reported) by ``run``."""
        job = self.job
        try:
            # Inside the render before it: nothing here may wait for the database
            # (a failed read is done again, waiting, by ``run``).
            self._set_up(wait=False)
            engine = get_engine(job.engine)
            try:
                self.command = engine.command(job, self.workdir)
            except RenderError as exc:
                self.command_error = exc
                return
            spares = getattr(self.worker, "spares", None)
            if self.command.spare is not None and spares is not None:
                marker = f"{self.worker.node_name}/{job.pk}/{job.lease}"
                self.proc = spares.start(self.command, marker, gated=True)
                self.ahead_proc = self.proc is not None
        except (outage.GaveUp, KeyboardInterrupt, Interrupted):
            raise  # the render before it must stop: it is that render's to handle
        except Exception as exc:
            log.warning("job %s, claimed ahead: preparing failed (%s); it starts when its "
                        "turn comes", job.pk, exc)
            if isinstance(exc, Error):
                outage.reset()
            self.drop_process()
            self.buffer = LogBuffer(settings.RENDER_LOG_MAX_BYTES)
            self.command = self.command_error = None

    def drop_process(self) -> None:
        """Kill the process handed ahead (if any) and remove the work folder."""
        if self.proc is not None:
            self.proc.close()
            self.proc = None
        self.ahead_proc = False
        discard_temp_dir(self.workdir)

    def open_gate(self) -> None:
        """The render before this one has ended: let this one start aerender."""
        if self.proc is not None and self.proc.gated:
            self.proc.open_gate()
            self.last_output = time.monotonic()

    def wait_under_way(self) -> bool:
        """Its gate just opened: wait until its program printed its first line
        (RenderCommand.first_line), UNDER_WAY_SECONDS at most. What it printed is
        read as usual once this render's loop runs. False if it did not show in time."""
        if self.proc is None or getattr(self.command, "first_line", None) is None:
            return False
        return self.proc.await_line(self.command.under_way, UNDER_WAY_SECONDS)

    def _set_up(self, wait: bool = True) -> None:
        """An empty work folder, and the earlier attempts' log; ``wait``: for the
        database, if it is away."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if wait:
            self._persist("reading the earlier attempts' log", self._seed_log)
        else:
            self._seed_log()

    def run(self) -> RenderOutcome:
        job = self.job
        if self.command is None and self.command_error is None:
            self._set_up()
        try:
            with watching(self.stop_check):
                outcome = self._render()
        except Interrupted as stop:
            if self.proc is not None:
                self.proc.kill()
            outcome = self._interrupted(stop)
        except (outage.GaveUp, KeyboardInterrupt):
            if self.proc is not None:
                self.proc.kill()
            raise
        except outage.TRANSIENT as exc:
            # A database call this render could not do without: the database's
            # fault, not the job's, so the attempt is not counted.
            log.warning("job %s: database error mid-render: %s", job.pk, exc)
            outage.reset()
            if self.proc is not None:
                self.proc.kill()
            outcome = self._interrupted(Interrupted("a database error", requeue=True))
        except (outage.Refused, Error) as exc:
            # Not an outage: retrying would fail the same way (and the heartbeat
            # would keep the job RENDERING forever), so the attempt fails and counts.
            if not isinstance(exc, outage.Refused):
                log.exception("job %s: database error mid-render", job.pk)
                outage.reset()
                exc = outage.Refused("a database call", exc)
            if self.proc is not None:
                self.proc.kill()
            outcome = self._crashed(str(exc), code=DATABASE_REFUSED)
        except Exception as exc:  # never let one job take the node down
            log.exception("render of job %s failed unexpectedly", job.pk)
            if self.proc is not None:
                self.proc.kill()
            outcome = self._crashed(f"internal error: {exc}", code="internal_error")
        finally:
            self._stop_frames()
            let_finish = getattr(self.worker, "let_finish", None)
            if self.proc is not None and self.finishing and not self.proc.exited() \
                    and let_finish is not None:
                # Its process (and its work folder, its current directory) are the
                # worker's to wait for before the next render starts.
                let_finish(self.proc, self.workdir, job.pk)
            else:
                if self.proc is not None:
                    self.proc.close()  # ends its reader thread, even after a flood
                discard_temp_dir(self.workdir)
            # Beside the next render: nothing waits for this. Only what is older than
            # now: the next render may be another attempt of this very job.
            bookkeeping.later(outage.best_effort, "removing progress events",
                              JobEvent.objects.filter(job_id=job.pk, kind="progress",
                                                      created_at__lte=timezone.now()).delete)
        log.info("job %s: %s %s", job.pk, outcome.status, outcome.reason)
        return outcome

    def _render(self) -> RenderOutcome:
        job, workdir, buffer = self.job, self.workdir, self.buffer
        engine = get_engine(job.engine)
        command, error = self.command, self.command_error
        if command is None and error is None:
            try:
                command = engine.command(job, workdir)
            except RenderError as exc:
                error = exc
        if error is not None:
            return self._crashed(str(error), permanent=error.permanent, code=error.code)
        progress = engine.progress(job)
        buffer.add(f"=== attempt {job.attempts} on {self.worker.node_name} at "
                   f"{timezone.now():%Y-%m-%d %H:%M:%S} UTC ===")
        self.frames = live_frame.watch(engine, job, workdir)
        # Its last process: the next job may be claimed ahead while it runs.
        last = not (job.needs_preview or needs_transcode(job))
        ran = self._run(command, progress, last_write=False, last=last)
        self._stop_frames(last=not isinstance(ran, RenderOutcome))
        if last:
            self._hand_over()
        if isinstance(ran, RenderOutcome):
            return ran
        code, wall = ran
        # What AE warned about (missing fonts, footage) stays visible however it ends,
        # beside what reading the project found before (jobs.node.preflight).
        known = job.warnings or []
        warnings = known + [w for w in getattr(progress, "warnings", []) if w not in known]
        # The last progress, with the render time and warnings, in one write and
        # without an event: whatever comes next (a failure, encoding, publishing)
        # records one, and open pages then read all of it.
        end = {"render_seconds": wall, "warnings": warnings}
        try:
            engine.check(job, workdir, progress, code)
        except RenderError as exc:
            self._end_write(progress, **end)
            return self._crashed(str(exc), permanent=exc.permanent, code=exc.code)
        if last:
            # Publishing is next: its phase goes in the same write, which is also the
            # claim check before it.
            return self._publish(engine, mine=self._end_write(progress, phase=Phase.PUBLISHING,
                                                              **end))
        self._end_write(progress, **end)
        if job.needs_preview:
            return self._preview(engine)
        result = None
        if needs_transcode(job):
            result = self._encode(engine, job.preset,
                                  f"with preset {describe_preset(job.preset)}")
            if isinstance(result, RenderOutcome):
                return result
        return self._publish(engine, result)

    def _run(self, command, progress, last_write: bool = True,
             last: bool = False) -> RenderOutcome | tuple[int, float]:
        """Run one command of a render under the watchdogs.

        Returns (exit code, wall seconds) when the process ended by itself, or the
        outcome of a stall; raises Interrupted when the render must stop (cancel
        or takeover, shutdown or a stop command, lost contact with the database).
        ``last_write``: write the last progress at the end (else the caller does).
        ``last``: the render's last process: the node may claim its next job ahead
        while it runs (Worker.claim_ahead).
        """
        job, buffer = self.job, self.buffer
        marker = f"{self.worker.node_name}/{job.pk}/{job.lease}"
        settle = getattr(self.worker, "settle", None)
        spares = getattr(self.worker, "spares", None)
        if command.spare is None:
            spares = None
        handed_ahead = self.ahead_proc
        if handed_ahead:
            # Handed ahead, waiting at its gate (opened already if the render before
            # it ended well: Render._hand_over).
            self.ahead_proc = False
            proc = self.proc
            if proc.gated:
                # Not opened as the render before it ended (that one failed or
                # stopped): its claim is looked at first, as it may have waited.
                if settle is not None:
                    settle()
                stop = self.stop_check()
                if stop is not None:
                    raise stop
                lost = outage.best_effort("checking the claim", self._lost_claim)
                if lost is None:
                    raise Interrupted("the database did not answer before it started",
                                      requeue=True)
                if lost:
                    raise Interrupted(lost, requeue=False)
                self.open_gate()
            spawned = self.last_output
        else:
            if self.finishing:  # this render's own, before its encode
                self._end_finishing()
            elif self.proc is not None:
                self.proc.close()
            if settle is not None:
                settle()  # the last render's process has ended: renders never overlap
            spawned = time.monotonic()
            self.last_output = spawned
            if spares is not None:
                self.proc = proc = spares.start(command, marker)
            else:
                self.proc = proc = RenderProcess(command.argv, command.env, command.cwd,
                                                 marker)
        done_line = getattr(command, "done_line", None)
        succeeded = False
        claim_ahead = getattr(self.worker, "claim_ahead", None) \
            if last and command.handoff is not None else None
        # The last render's receivers (and its temp folder's removal) run beside this
        # one once it is under way: its first progress, or GO_AFTER_SECONDS.
        held = True
        self._update("the render's process id", render_pid=proc.pid,
                     render_spawned_at=timezone.now())
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
                    if done_line is not None and line.strip() == done_line:
                        succeeded = True
                        continue
                    if progress.feed(line):
                        self.progress_dirty = True
                        self.last_output = now
                    if keep is None or keep(line):
                        buffer.append(line)
            if held and (self.progress_dirty or now - spawned >= GO_AFTER_SECONDS):
                bookkeeping.go()
                held = False
            if spares is not None and (proc.exited() or (
                    not held if handed_ahead else now - spawned >= SPARE_AFTER_SECONDS)):
                # The next render's process, as soon as this one's process ended,
                # or beside its start (SPARE_AFTER_SECONDS: at once). A render
                # handed ahead was set up already, and its aerender is starting:
                # the spare (node.js loading nexrender, a few hundred ms of CPU)
                # waits until that render is under way, as the bookkeeping does.
                spares.refill()
                spares = None
            if succeeded:
                # Nothing more before the next render's start (Render._hand_over): its
                # process ends once let go (Worker.let_finish), its guard sweeps
                # then, and a render started later waits for them (Worker.settle).
                code = proc.poll()
                if code is None:
                    code, self.finishing = 0, True
                bookkeeping.hold()
                break
            if claim_ahead is not None:
                claim_ahead(progress, now)
            if self.progress_dirty and \
                    now - self.last_progress_write >= settings.PROGRESS_WRITE_SECONDS:
                self.last_progress_write = now
                if outage.best_effort("a progress write", self._write_progress,
                                      progress) is not None:
                    self.progress_dirty = False
            if now - self.last_log_flush >= LOG_FLUSH_SECONDS:
                self.last_log_flush = now
                outage.best_effort("a log write", self._flush_log)

            stop = self.stop_check()
            if stop is not None:
                proc.kill()
                raise stop
            if now - self.last_output > settings.RENDER_STALL_SECONDS:
                proc.kill()
                silent = "made no progress" if heartbeats else "printed nothing"
                hint = "" if heartbeats else f"\n{STALLED_HINT}"
                return self._crashed(
                    f"the render {silent} for {settings.RENDER_STALL_SECONDS:g} s "
                    f"and was stopped{hint}", code="stalled")
            code = proc.poll()
            if code is not None:
                # From here to the next render's start, the node's own work comes
                # first (jobs.node.bookkeeping).
                bookkeeping.hold()
                break

        wall = time.monotonic() - spawned
        if last_write:
            outage.best_effort("a progress write", self._write_progress, progress)
            self.progress_dirty = False
        return code, wall

    def _hand_over(self) -> None:
        """This render's processes are done: a job claimed ahead may start aerender
        now, and this one publishes once that aerender printed its first line
        (Worker.open_ahead). Renders never overlap: its process has ended, or it
        said it succeeded (aerender has ended) and what still carries its marker (an
        After Effects left running) is killed first. node.js is let go once the next
        render is under way (Worker.let_finish), or at once if none starts beside it."""
        open_ahead = getattr(self.worker, "open_ahead", None)
        if open_ahead is None or not getattr(self.worker, "ahead", None):
            if self.finishing:
                self.proc.let_go()  # nothing starts beside it: node.js ends while it publishes
            return
        if self.finishing:
            killed = self.proc.sweep()
            if killed:
                self.buffer.append(f"render manager: killed processes the render left "
                                   f"behind (pids {killed})")
        open_ahead()

    def _move_out(self, result: Path, folder: Path) -> Published:
        """``publish``; once more, after the render's process has ended, if what it left
        running held the file (After Effects lingering after aerender, on Windows)."""
        name, tag = output_name(self.job, result), self.job.lease.hex[:12]
        try:
            return publish(result, folder, name, tag=tag, before_copy=self._publishing_shown)
        except MoveInFailed:
            if not self.finishing:
                raise
            self._end_finishing()  # its guard has swept what it left behind
            return publish(result, folder, name, tag=tag, before_copy=self._publishing_shown)

    def _publishing_shown(self) -> None:
        """A copy to another volume may take minutes: an event wakes open pages, which
        show the publishing phase (written already). A rename, over in a millisecond,
        goes without: the completion's event follows at once."""
        outage.best_effort("a progress event", lifecycle.record, self.job.pk, "progress",
                           to_status=Status.RENDERING)

    def _end_finishing(self) -> None:
        """Wait for the process of a render that reported success to end."""
        if self.finishing:
            self.proc.finish(FINISH_SECONDS)
            self.finishing = False

    def _encode(self, engine, preset: dict, label: str) -> RenderOutcome | Path:
        """Transcode the finished render with ``preset`` (phase "encoding"); ``label``
        says what for, in the log and the timeline."""
        job, workdir, buffer = self.job, self.workdir, self.buffer
        try:
            step = transcode(engine.find_output(job, workdir), workdir, preset)
        except RenderError as exc:
            return self._crashed(str(exc), permanent=exc.permanent, code=exc.code)
        self._update("the phase", phase=Phase.ENCODING, progress=0, frames_done=0,
                     eta_seconds=None)
        outage.best_effort("a progress event", lifecycle.record, job.pk, "progress",
                           to_status=Status.RENDERING, message=f"Encoding: {label}")
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
        self._update("the phase", phase=Phase.PUBLISHING)
        outage.best_effort("a progress event", lifecycle.record, job.pk, "progress",
                           to_status=Status.RENDERING)
        if not self._persist("checking the claim", lifecycle.still_mine, job.pk, job.lease):
            return RenderOutcome(Status.CANCELLED, "cancelled before publishing the preview")
        try:
            self._persist("storing the preview", preview.store, job, result)
        except PublishError as exc:
            return self._crashed(str(exc), code=PUBLISH_FAILED)
        refused = self._wrap_up()
        if refused:
            return self._crashed(refused, code=DATABASE_REFUSED)
        ready = self._persist("marking the preview ready", lifecycle.preview_ready,
                              job.pk, job.lease)
        if not ready and not self._persist("checking the job", Job.objects.filter(
                pk=job.pk, lease=job.lease, status=Status.AWAITING_REVIEW).exists):
            return RenderOutcome(Status.CANCELLED, "cancelled while publishing the preview")
        return RenderOutcome(Status.AWAITING_REVIEW)

    def _publish(self, engine, result: Path | None = None,
                 mine: int | None = NOT_WRITTEN) -> RenderOutcome:
        """``mine``: the rows of the write that set the phase to publishing, if the
        caller made it (else it is made here)."""
        job = self.job
        # The phase is written under the claim: no row changed, the claim is gone.
        # (During an outage, None: the claim is checked once the database is back.)
        if mine == NOT_WRITTEN:
            mine = self._update("the phase", phase=Phase.PUBLISHING)
        if mine == 0:
            return RenderOutcome(Status.CANCELLED, "cancelled before publishing")
        try:
            result = engine.find_output(job, self.workdir) if result is None else result
        except RenderError as exc:
            return self._crashed(str(exc), permanent=exc.permanent, code=exc.code)
        if mine is None and not self._persist("checking the claim", lifecycle.still_mine,
                                              job.pk, job.lease):
            return RenderOutcome(Status.CANCELLED, "cancelled before publishing")
        folder = self._persist("reading the output folder", output_folder, job)
        try:
            published = self._move_out(result, folder)
        except PublishError as exc:
            return self._crashed(str(exc), code=PUBLISH_FAILED)
        refused = self._wrap_up()
        if refused:
            published.withdraw()
            return self._crashed(refused, code=DATABASE_REFUSED)
        # Stored relative to RENDER_OUTPUT_DIR: every machine finds it in its own.
        try:
            done = self._persist("completing the job", lifecycle.complete, job.pk, job.lease,
                                 output_path=output_relative(published.path),
                                 output_size=published.size,
                                 # The poster frame and preview video come later (followups).
                                 follow_ups=followups.after_completion(job, published.path))
        except outage.Refused:
            published.withdraw()
            raise
        if not done:
            # A retried commit may have happened the first time round.
            done = self._persist("checking the job", Job.objects.filter(
                pk=job.pk, lease=job.lease, status=Status.COMPLETED).exists)
        if not done:
            published.withdraw()  # only while it still is the file this render wrote
            return RenderOutcome(Status.CANCELLED, "cancelled while publishing")
        followups.poke()  # its poster frame, beside the next render
        return RenderOutcome(Status.COMPLETED)

    def _stop_frames(self, last: bool = False) -> None:
        """Stop sending the live frame; ``last``: the render ended, send its last frame."""
        if self.frames is not None:
            frames, self.frames = self.frames, None
            frames.stop(last=last)

    def _crashed(self, reason: str, permanent: bool = False, code: str = "") -> RenderOutcome:
        job = self.job
        reason = without_nul(reason)
        self._wrap_up()  # a log the database refuses is lost: the failure is recorded
        try:
            status = self._persist("recording the failed attempt", lifecycle.render_crashed,
                                   job.pk, job.lease, reason, permanent=permanent, code=code,
                                   actor=f"node:{self.worker.node_name}")
        except outage.Refused:
            # Nothing left to try from here (logged by outage); the job stays
            # RENDERING until this node's orphans are released between renders.
            status = None
        return RenderOutcome(status or "LOST", reason)

    def _interrupted(self, stop: Interrupted) -> RenderOutcome:
        job = self.job
        if not stop.requeue:
            return RenderOutcome(Status.CANCELLED, stop.reason)
        self._wrap_up()
        self._persist("requeueing the job", lifecycle.requeue_interrupted, job.pk, job.lease,
                      f"The render node stopped ({stop.reason}); back in the queue",
                      actor=f"node:{self.worker.node_name}")
        return RenderOutcome(Status.QUEUED, stop.reason)

    # --- watchdogs ------------------------------------------------------------------

    def stop_check(self) -> Interrupted | None:
        """Why the render must stop now, or None. Cheap: called between reads."""
        why = self.worker.stopping()
        if why:
            return Interrupted(why, requeue=True)
        lost = self.contact_lost or contact.lost_contact(self.worker.heartbeat)
        if lost:
            self.contact_lost = lost
            return Interrupted(lost, requeue=True)
        now = time.monotonic()
        if now - self.last_check >= settings.WORKER_POLL_SECONDS:
            self.last_check = now
            lost = outage.best_effort("checking the claim", self._lost_claim)
            if lost:
                return Interrupted(lost, requeue=False)
        return None

    def _lost_claim(self) -> str:
        """Why this render's claim is gone, or "" to go on."""
        job = self.job
        # The job claimed ahead (if any) is looked at in the same query: a cancelled
        # one is let go before it starts.
        ahead = getattr(self.worker, "ahead", None)
        ids = [job.pk] if ahead is None else [job.pk, ahead.job.pk]
        rows = {pk: (status, lease) for pk, status, lease in
                Job.objects.filter(pk__in=ids).values_list("pk", "status", "lease")}
        if len(ids) > 1 and rows.get(ids[1]) != (Status.RENDERING, ahead.job.lease):
            log.info("job %s, claimed ahead, is no longer this node's", ids[1])
            self.worker.forget_ahead()
        current = rows.get(job.pk)
        if current is None:
            return "the job was deleted"
        status, lease = current
        if status == Status.CANCELLED:
            return "cancelled"
        if status != Status.RENDERING or lease != job.lease:
            return "the job was taken over by another node"
        return ""

    # --- writes ----------------------------------------------------------------------

    def _persist(self, what: str, fn, *args, **kwargs):
        """A write that decides the job's fate: wait for the database (not when the
        node is shutting down: then GaveUp, and the job is released later)."""
        def give_up() -> str:
            return "the node is shutting down" if self.worker.stop_requested.is_set() else ""
        return outage.persist(what, fn, *args, give_up=give_up, **kwargs)

    def _update(self, what: str, **fields) -> int | None:
        """Write ``fields`` while the claim is this render's: the rows written (0: the
        claim is gone), or None when the database did not answer."""
        job = self.job
        return outage.best_effort(what, Job.objects.filter(
            pk=job.pk, status=Status.RENDERING, lease=job.lease).update, **fields)

    def _end_write(self, progress, **fields) -> int | None:
        """The render's last progress with ``fields``, without an event: the rows
        written (0: the claim is gone), None when the database did not answer."""
        self.progress_dirty = False
        return outage.best_effort("the render's end", self._progress_update, progress, **fields)

    def _progress_update(self, progress, **fields) -> int:
        job = self.job
        values = {"progress": round(progress.percent, 2), "phase": progress.phase,
                  "frames_done": progress.frames_done, "frames_total": progress.frames_total,
                  "eta_seconds": progress.eta_seconds(time.monotonic()),
                  "last_output_at": Now(), **fields}
        return Job.objects.filter(pk=job.pk, status=Status.RENDERING, lease=job.lease) \
            .update(**values)

    def _write_progress(self, progress) -> bool:
        """The progress, and an event that wakes open pages."""
        job = self.job
        self._progress_update(progress)
        event = lifecycle.record(job.pk, "progress", to_status=Status.RENDERING,
                                 message=f"{progress.percent:.0f}%")
        self.progress_events += 1
        if self.progress_events % PRUNE_PROGRESS_EVERY == 0:
            # Progress events only wake the live bridge, which shows the job's
            # current state: the read ones can go, so that the outbox does not
            # grow with the length of the render.
            JobEvent.objects.filter(job_id=job.pk, kind="progress", id__lt=event.pk).delete()
        return True

    def _wrap_up(self) -> str:
        """Store the log and remove the temp folder, before a final transition, so
        that whoever sees the job finished sees its whole log and no leftover
        folder. Waits for the database; returns why it refused the log ("" when
        stored): a render must not finish as done with its log lost."""
        try:
            self._persist("storing the log", self._flush_log)
            refused = ""
        except outage.Refused as exc:
            refused = str(exc)
        discard_temp_dir(self.workdir)
        return refused

    def _seed_log(self) -> None:
        job = self.job
        if job.attempts <= 1:
            return  # a first attempt has no earlier log to read
        previous = JobLog.objects.filter(job_id=job.pk).first()
        if previous is not None:
            self.buffer.add(previous.text())

    def _flush_log(self) -> None:
        """Write what changed since the last write, if anything, and only while the
        claim is this render's. Once the head is full only the tail (capped) is
        written, so the cost of a write does not grow with the log."""
        buffer, job = self.buffer, self.job
        total, head_bytes = buffer.total_bytes, buffer.head_bytes
        if (total, head_bytes) == self.log_written:
            return
        fields = {"tail": buffer.tail, "omitted_bytes": buffer.omitted_bytes,
                  "updated_at": timezone.now()}
        if head_bytes != self.log_written[1] or not self.log_exists:
            fields["head"] = buffer.head
        mine = JobLog.objects.filter(job_id=job.pk, job__lease=job.lease)
        if not (self.log_exists and mine.update(**fields)):
            # The first write of this render (or its row went): the whole row.
            fields["head"] = buffer.head
            if not store_log_if_mine(job.pk, job.lease, **fields):
                return  # no longer this render's job: its log is not ours to write
        self.log_exists = True
        self.log_written = (total, head_bytes)


def store_log_if_mine(job_id, lease, **fields) -> bool:
    """Insert or replace the job's log row, only while ``lease`` is the job's claim:
    one statement (an autocommit round trip) whether an earlier attempt left a row
    or not, and no separate look at the claim. True if written."""
    quote = connection.ops.quote_name
    row = JobLog(job_id=job_id, **fields)
    columns = JobLog._meta.concrete_fields  # the key (job_id) first
    values = [field.get_db_prep_save(getattr(row, field.attname), connection)
              for field in columns]
    pk, lease_field = Job._meta.pk, Job._meta.get_field("lease")
    updates = ", ".join(f"{quote(field.column)} = excluded.{quote(field.column)}"
                        for field in columns if not field.primary_key)
    # SQLite reads "ON CONFLICT" after a SELECT without WHERE as a join clause:
    # the WHERE here is required anyway.
    sql = (f"INSERT INTO {quote(JobLog._meta.db_table)} "
           f"({', '.join(quote(field.column) for field in columns)}) "
           f"SELECT {', '.join(['%s'] * len(columns))} WHERE EXISTS ("
           f"SELECT 1 FROM {quote(Job._meta.db_table)} WHERE {quote(pk.column)} = %s "
           f"AND {quote(lease_field.column)} = %s) "
           f"ON CONFLICT ({quote(JobLog._meta.pk.column)}) DO UPDATE SET {updates}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, pk.get_db_prep_value(job_id, connection),
                             lease_field.get_db_prep_value(lease, connection)])
        return cursor.rowcount > 0


def last_meaningful(buffer: LogBuffer, limit: int = 300) -> str:
    for line in reversed(buffer.tail.splitlines() or buffer.head.splitlines()):
        line = line.strip()
        if line and not line.startswith("PROGRESS:") and not line.startswith("==="):
            return line[:limit]
    return ""
