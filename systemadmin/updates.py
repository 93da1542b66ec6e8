"""Self-update from git: check the configured remote/branch, and execute
(pull fast-forward only, install, migrate, collect static, restart).

Every command is an argv list run without a shell, in UPDATE_REPO_DIR (the
install). Execute runs on a background thread of the web process and stores
its progress and log in an ``UpdateRun`` row that the admin panel polls. A
failing step stops the run, is recorded as a system error and is reported to
the Slack admin channel.

The first step drains the farm: claims are paused on every node
(lifecycle.pause_claims) and the update waits until no render runs, at most
UPDATE_DRAIN_TIMEOUT_SECONDS (then it fails, having changed nothing). The
renders in progress finish normally, so the restart that PM2 does outright on
Windows finds no render to kill and no attempt is lost. The pause is a lease
the update keeps renewing: if this process dies, the farm resumes by itself.

The restart step is last: the run is marked succeeded first, because the
restart command (e.g. ``pm2 restart ...``) may well restart this very
process. The pause is kept over the restart and lapses
RESUME_AFTER_RESTART_SECONDS later (or is lifted at once if this process
survives the command). If the restart command itself exits with an error
within RESTART_WAIT_SECONDS the run is turned into a failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from django.conf import settings
from django.db import Error, connection, transaction
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, Status, alive_q
from systemadmin import events
from systemadmin.models import UpdateRun

log = logging.getLogger(__name__)

GIT_TIMEOUT_SECONDS = 120
LOG_LIMIT = 200_000
LOG_FLUSH_SECONDS = 0.5
RESTART_WAIT_SECONDS = 10
# The claim pause is renewed while the update runs and lapses this long after
# its process stopped renewing it.
PAUSE_LEASE_SECONDS = 60
RESUME_AFTER_RESTART_SECONDS = 60
DRAIN_POLL_SECONDS = 0.5
# A node that looked for a pause just before ours was made may still commit its claim
# (jobs.lifecycle.claim_next): "no render running" counts only this long after pausing.
CLAIM_SETTLE_SECONDS = 1.0
PACKAGE_FILES = ("package.json", "package-lock.json")

_lock = threading.Lock()
_thread: threading.Thread | None = None


class UpdateError(Exception):
    """A git command failed (remote unreachable, branch unknown, ...)."""


class Refused(Exception):
    """Execute is not possible now (an update runs)."""


# --- Running commands -----------------------------------------------------------


def repo_dir() -> Path:
    return Path(settings.UPDATE_REPO_DIR)


def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a password prompt
    env["PYTHONUNBUFFERED"] = "1"
    return env


def expand(argv: list[str]) -> list[str]:
    """``{python}`` → this interpreter; a bare program name → its full path
    (on Windows that finds ``pm2.cmd``/``npm.cmd``)."""
    argv = [arg.replace("{python}", sys.executable) for arg in argv]
    if argv and os.sep not in argv[0] and "/" not in argv[0]:
        found = shutil.which(argv[0])
        if found:
            argv[0] = found
    return argv


def _popen_extra() -> dict:
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NO_WINDOW}
    return {}


def git(*args: str, timeout: float = GIT_TIMEOUT_SECONDS) -> str:
    argv = expand([settings.UPDATE_GIT, *args])
    try:
        result = subprocess.run(argv, cwd=repo_dir(), env=command_env(), capture_output=True,
                                text=True, encoding="utf-8", errors="replace", timeout=timeout,
                                stdin=subprocess.DEVNULL, **_popen_extra())
    except FileNotFoundError:
        raise UpdateError(f"git was not found ({settings.UPDATE_GIT}); set UPDATE_GIT") from None
    except subprocess.TimeoutExpired:
        raise UpdateError(f"git {args[0]} took longer than {timeout:g} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise UpdateError(f"git {args[0]} failed: {detail[-1] if detail else result.returncode}")
    return result.stdout


# --- Check ------------------------------------------------------------------------


@dataclass
class Commit:
    sha: str
    author: str
    date: str
    subject: str

    def as_dict(self) -> dict:
        return {"sha": self.sha, "short": self.sha[:10], "author": self.author,
                "date": self.date, "subject": self.subject}


def fetch() -> str:
    """Fetch the configured branch; returns the commit it points at."""
    git("fetch", "--no-tags", "--quiet", settings.UPDATE_REMOTE, settings.UPDATE_BRANCH)
    return git("rev-parse", "--verify", "FETCH_HEAD^{commit}").strip()


def new_commits(current: str, latest: str) -> list[Commit]:
    out = git("log", "--format=%H%x1f%an%x1f%aI%x1f%s%x1e", f"{current}..{latest}", "--")
    commits = []
    for record in out.split("\x1e"):
        fields = record.strip().split("\x1f")
        if len(fields) == 4:
            commits.append(Commit(*fields))
    return commits


def is_ancestor(older: str, newer: str) -> bool:
    try:
        git("merge-base", "--is-ancestor", older, newer)
    except UpdateError:
        return False
    return True


def rendering_count() -> int:
    return Job.objects.filter(status=Status.RENDERING).count()


def check() -> dict:
    current = git("rev-parse", "--verify", "HEAD^{commit}").strip()
    latest = fetch()
    commits = new_commits(current, latest)
    return {
        "remote": settings.UPDATE_REMOTE, "branch": settings.UPDATE_BRANCH,
        "current": current, "latest": latest,
        "update_available": bool(commits),
        "can_fast_forward": is_ancestor(current, latest),
        "commits": [c.as_dict() for c in commits],
        "rendering": rendering_count(),
        "last_run": run_dict(latest_run()),
    }


# --- Execute -----------------------------------------------------------------------


def latest_run() -> UpdateRun | None:
    return UpdateRun.objects.order_by("-created_at", "-id").first()


def run_dict(run: UpdateRun | None, log_offset: int = 0) -> dict | None:
    if run is None:
        return None
    return {
        "id": run.pk, "state": run.state, "step": run.step, "progress": run.progress,
        "steps_done": run.steps_done, "steps_total": run.steps_total,
        "from_commit": run.from_commit, "to_commit": run.to_commit, "error": run.error,
        "actor": run.actor, "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "log": run.log[log_offset:], "log_length": len(run.log),
    }


def _abandon_stale_runs() -> None:
    """Runs whose process is gone (the server restarted mid-update) are over."""
    here = socket.gethostname()
    for run in UpdateRun.objects.filter(state=UpdateRun.State.RUNNING):
        mine = run.hostname == here and run.pid == os.getpid()
        if mine and _thread is not None and _thread.is_alive():
            continue
        if not mine and run.hostname == here and run.pid and psutil.pid_exists(run.pid):
            continue
        if not mine and run.hostname != here and \
                (timezone.now() - run.created_at).total_seconds() < 6 * 3600:
            continue  # another machine's update, maybe still running
        UpdateRun.objects.filter(pk=run.pk, state=UpdateRun.State.RUNNING).update(
            state=UpdateRun.State.INTERRUPTED, finished_at=timezone.now(),
            error="The process running the update stopped before it finished.")


def steps() -> list[tuple[str, list[str]]]:
    return [
        ("drain", []),
        ("pull", ["{git}", "pull", "--ff-only", "--no-rebase", "--no-tags",
                  settings.UPDATE_REMOTE, settings.UPDATE_BRANCH]),
        ("install", list(settings.UPDATE_INSTALL_COMMAND)),
        ("npm", list(settings.UPDATE_NPM_COMMAND)),
        ("migrate", list(settings.UPDATE_MIGRATE_COMMAND)),
        ("collectstatic", list(settings.UPDATE_COLLECTSTATIC_COMMAND)),
        ("restart", list(settings.UPDATE_RESTART_COMMAND)),
    ]


def execute(admin, wait: bool = False) -> UpdateRun:
    """Start an update (it first waits for the renders in progress); Refused if
    another update is running."""
    global _thread
    actor = getattr(admin, "email", "") or str(admin)
    with _lock:
        _abandon_stale_runs()
        if UpdateRun.objects.filter(state=UpdateRun.State.RUNNING).exists():
            raise Refused("An update is already running.")
        with transaction.atomic():
            run = UpdateRun.objects.create(actor=actor, steps_total=len(steps()),
                                           hostname=socket.gethostname(), pid=os.getpid())
        events.record("update_started", f"Update started by {actor}", actor=actor)
        _thread = threading.Thread(target=_run_safely, args=(run.pk,), name="update",
                                   daemon=True)
        _thread.start()
        thread = _thread
    if wait:
        thread.join()
        run.refresh_from_db()
    return run


class _Log:
    """The run's log, written to the database at most every LOG_FLUSH_SECONDS."""

    def __init__(self, run: UpdateRun):
        self.run = run
        self.text = run.log
        self.flushed = time.monotonic()

    def add(self, line: str) -> None:
        self.text += line if line.endswith("\n") else line + "\n"
        if len(self.text) > LOG_LIMIT:
            self.text = "[... earlier output omitted ...]\n" + self.text[-LOG_LIMIT // 2:]
        if time.monotonic() - self.flushed >= LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self, **fields) -> None:
        UpdateRun.objects.filter(pk=self.run.pk).update(log=self.text, **fields)
        for key, value in fields.items():
            setattr(self.run, key, value)
        self.flushed = time.monotonic()


def _run_safely(run_id: int) -> None:
    try:
        _run(UpdateRun.objects.get(pk=run_id))
    except Exception as exc:  # a bug here must still end the run visibly
        log.exception("update run %s crashed", run_id)
        _fail(UpdateRun.objects.get(pk=run_id), None, "internal", f"internal error: {exc}")
    finally:
        connection.close()


class _Pause:
    """The farm-wide claim pause of one update, renewed on a thread while it runs."""

    def __init__(self, actor: str):
        self.actor = actor
        self.id = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.id = lifecycle.pause_claims(f"update started by {self.actor}",
                                         PAUSE_LEASE_SECONDS, actor=self.actor)
        self._thread = threading.Thread(target=self._renew, name="update-pause", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        try:
            while not self._stop.wait(PAUSE_LEASE_SECONDS / 4):
                try:
                    lifecycle.extend_pause(self.id, PAUSE_LEASE_SECONDS)
                except Error:
                    log.warning("could not renew the claim pause; retrying")
                    connection.close()
        finally:
            connection.close()

    def _stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def hand_over(self, seconds: float):
        """Stop renewing: the pause lapses ``seconds`` from now unless lifted
        (lifecycle.resume_claims with the id returned)."""
        held, self.id = self.id, None
        if held is not None:
            self._stop_renewing()
            lifecycle.extend_pause(held, seconds)
        return held

    def release(self) -> None:
        if self.id is not None:
            self._stop_renewing()
            lifecycle.resume_claims(self.id)
            self.id = None


def _drain(output: _Log) -> str:
    """Wait until no render runs (claims are paused); "" or why not."""
    limit = settings.UPDATE_DRAIN_TIMEOUT_SECONDS
    settled = time.monotonic() + CLAIM_SETTLE_SECONDS
    deadline = time.monotonic() + limit
    shown = None
    told_dead = None
    while True:
        rendering = Job.objects.filter(status=Status.RENDERING)
        # A render whose node is not alive (by the one liveness rule) is not running:
        # only a live worker requeues it, and the node may be the very one that
        # crash-loops until this update is in.
        busy = list(rendering.filter(alive_q("node__")).order_by("started_at")
                    .values_list("pk", "name", "node__name"))
        dead = rendering.exclude(alive_q("node__")).count()
        if dead and dead != told_dead:
            told_dead = dead
            output.add(f"not waiting for {dead} render(s) whose node stopped responding "
                       "(they go back to the queue when a render node next runs)")
        if not busy and time.monotonic() >= settled:
            output.add("no render running: claims stay paused until the update is done")
            return ""
        if busy and time.monotonic() >= deadline:
            return (f"{len(busy)} render(s) still running after {limit:g} s "
                    "(UPDATE_DRAIN_TIMEOUT_SECONDS); nothing was changed")
        ids = [job_id for job_id, _name, _node in busy]
        if ids and ids != shown:
            shown = ids
            output.add(f"waiting for {len(busy)} render(s) to finish (new claims are paused): "
                       + ", ".join(f"{name or job_id} on {node or '?'}"
                                   for job_id, name, node in busy[:10]))
            output.flush()
        time.sleep(DRAIN_POLL_SECONDS if busy else max(0.0, settled - time.monotonic()))


def _run(run: UpdateRun) -> None:
    pause = _Pause(run.actor)
    try:
        _run_steps(run, pause)
    finally:
        pause.release()  # unless handed over to the restart


def _run_steps(run: UpdateRun, pause: _Pause) -> None:
    output = _Log(run)
    started = git("rev-parse", "HEAD").strip()
    output.flush(from_commit=started)
    output.add(f"Update of {repo_dir()} from {settings.UPDATE_REMOTE}/"
               f"{settings.UPDATE_BRANCH}, started by {run.actor} at "
               f"{timezone.now():%Y-%m-%d %H:%M:%S} UTC; now at {started[:10]}")
    for number, (name, argv) in enumerate(steps()):
        output.flush(step=name, steps_done=number)
        if name == "drain":
            output.add("== drain: pausing claims on every render node")
            pause.start()
            why = _drain(output)
            if why:
                pause.release()  # before the run reads as failed
                return _fail(run, output, name, why)
            continue
        if name == "npm" and argv and not _packages_changed(started):
            output.add("== npm: package.json and package-lock.json unchanged, skipped")
            continue
        if not argv:
            output.add(f"== {name}: no command configured, skipped")
            continue
        argv = [settings.UPDATE_GIT if a == "{git}" else a for a in argv]
        if name == "restart":
            # Keep the farm paused through the restart (it may end this process);
            # the pause lapses by itself if nobody lifts it.
            held = pause.hand_over(RESUME_AFTER_RESTART_SECONDS)
            if _restart(run, output, argv, number) and held is not None:
                lifecycle.resume_claims(held)
            return None
        code = _run_step(output, name, expand(argv))
        if code != 0:
            return _fail(run, output, name, f"step {name} failed" +
                         (f" (exit code {code})" if code is not None else " (timed out)"))
        if name == "pull":
            now_at = git("rev-parse", "HEAD").strip()
            output.flush(to_commit=now_at)
            output.add(f"== now at {now_at[:10]}")
    _succeed(run, output)


def _packages_changed(since: str) -> bool:
    try:
        changed = git("diff", "--name-only", since, "HEAD", "--", *PACKAGE_FILES)
    except UpdateError:
        return True
    return bool(changed.strip())


def _run_step(output: _Log, name: str, argv: list[str]) -> int | None:
    """Run one step, streaming its output into the log; its exit code, None on timeout."""
    output.add(f"== {name}: {' '.join(argv)}")
    try:
        proc = subprocess.Popen(argv, cwd=repo_dir(), env=command_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, **_popen_extra())
    except OSError as exc:
        output.add(f"cannot start {argv[0]}: {exc}")
        return 127
    started = time.monotonic()
    watchdog = _Watchdog(proc)
    timer = threading.Timer(settings.UPDATE_STEP_TIMEOUT_SECONDS, watchdog)
    timer.daemon = True
    timer.start()
    try:
        for raw in proc.stdout:
            output.add(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        code = proc.wait()
    finally:
        timer.cancel()
        proc.stdout.close()
    output.add(f"({name}: exit code {code} after {time.monotonic() - started:.1f} s)")
    if watchdog.fired:
        output.add(f"{name} took longer than {settings.UPDATE_STEP_TIMEOUT_SECONDS:g} s "
                   "and was stopped")
        return None
    return code


class _Watchdog:
    """Kills a step's process tree when its time is up."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.fired = False

    def __call__(self) -> None:
        from jobs.node.guard import kill_all

        self.fired = True
        try:
            descendants = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        # Our own child is killed through Popen: psutil must not reap it, or
        # Popen would lose its exit status.
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(psutil.Error, OSError):
            kill_all(descendants)


def _restart(run: UpdateRun, output: _Log, argv: list[str], number: int) -> bool:
    """Run the restart command; True if it finished (and this process survived it)."""
    argv = expand(argv)
    output.add(f"== restart: {' '.join(argv)}")
    _succeed(run, output, note="the services restart now")
    extra = _popen_extra()
    if sys.platform == "win32":
        extra["creationflags"] = (subprocess.CREATE_NO_WINDOW
                                  | subprocess.CREATE_NEW_PROCESS_GROUP)
    else:
        extra["start_new_session"] = True  # survives this process being restarted
    try:
        proc = subprocess.Popen(argv, cwd=repo_dir(), env=command_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, **extra)
    except OSError as exc:
        _fail(run, output, "restart", f"cannot start the restart command: {exc}")
        return True
    try:
        out, _ = proc.communicate(timeout=RESTART_WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        output.add(f"restart command still running after {RESTART_WAIT_SECONDS} s; "
                   f"leaving it to finish (claims resume within "
                   f"{RESUME_AFTER_RESTART_SECONDS} s)")
        output.flush()
        return False
    text = out.decode("utf-8", errors="replace").strip()
    if text:
        output.add(text)
    if proc.returncode != 0:
        _fail(run, output, "restart", f"step restart failed (exit code {proc.returncode})")
    else:
        output.flush()
    return True


def _succeed(run: UpdateRun, output: _Log, note: str = "") -> None:
    to_commit = git("rev-parse", "HEAD").strip()
    output.add(f"== done: now at {to_commit[:10]}" + (f"; {note}" if note else ""))
    output.flush(state=UpdateRun.State.SUCCEEDED, steps_done=run.steps_total, step="",
                 to_commit=to_commit, finished_at=timezone.now())
    events.record("update", f"Updated {run.from_commit[:10]} → {to_commit[:10]} "
                  f"(started by {run.actor})", actor=run.actor)


def _fail(run: UpdateRun, output: _Log | None, step: str, error: str) -> None:
    output = output or _Log(run)
    output.add(f"== FAILED: {error}")
    output.flush(state=UpdateRun.State.FAILED, error=error, step=step,
                 finished_at=timezone.now())
    events.alert("update_failed", f"Update failed at step {step}: {error}. "
                 f"See the admin panel for the log (started by {run.actor}).")
