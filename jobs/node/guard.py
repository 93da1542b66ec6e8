"""Runs a render command and takes its whole process tree down with the worker.

Usage: python guard.py <worker-pid> <worker-create-time> -- argv...
       python guard.py <worker-pid> <worker-create-time> --wait [-- argv...]

The render worker starts every render through this guard. With ``--wait`` the
guard is started ahead of its job (a spare, see jobs/node/spares.py): it
starts ``argv`` at once if given (a launcher that loads its program and then
waits for its job on stdin), and waits for one JSON line on its own stdin:
``{"marker": ..., "argv": [...], "cwd": ..., "input": ...}``. ``input`` (a
line) goes to the waiting launcher's stdin, and so does whatever comes after
it, up to the end of input; without a launcher, ``argv`` is started in
``cwd`` with ``marker`` in its environment. Its stdin closed without a line,
the guard ends what it started and exits 0.

The render worker starts every render through this guard. If the worker dies
without cleaning up (kill -9, a crash, PM2 killing it for memory), another
node requeues the job after NODE_TIMEOUT_SECONDS; a render still running here
would then be a second render of the same job. So the guard watches the
worker and, once it is gone, kills the render tree and exits.

When the render ends on its own, the guard also kills whatever it left
behind (AfterFX lingering after aerender exits is the classic case), found by
the marker variable the worker put into the render's environment.

Imports only the standard library and psutil, and no Django, so that it
starts quickly: it is paid for on every render.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil

POLL_SECONDS = 0.2
MARKER_ENV = "AE_RENDER_MANAGER_RENDER"


def kill_all(roots: list[psutil.Process], timeout: float = 2.0) -> list[int]:
    """Kill the processes and all their descendants; return the pids killed."""
    found: dict[int, psutil.Process] = {}
    frontier = list(roots)
    # Freeze each process before listing its children again, so nothing can
    # start a child between the listing and the killing.
    for _ in range(4):
        new = [p for p in frontier if p.pid not in found and p.pid != os.getpid()]
        if not new:
            break
        for proc in new:
            found[proc.pid] = proc
            with contextlib.suppress(psutil.Error):
                proc.suspend()
        frontier = [child for proc in new for child in _children(proc)]
    for proc in found.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_gone(list(found.values()), timeout)
    return sorted(found)


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until the processes are gone; return those still alive at the timeout.

    A zombie counts as gone: it is dead, only not yet reaped, and in a container
    whose init does not reap, it never will be.
    """
    deadline = time.monotonic() + timeout
    alive = procs
    while alive:
        _, alive = psutil.wait_procs(alive, timeout=0.05)  # reaps our own children
        alive = [proc for proc in alive if not _is_zombie(proc)]
        if time.monotonic() >= deadline:
            break
    return alive


def _is_zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def worker_gone(worker: psutil.Process, worker_pid: int) -> bool:
    # POSIX reparents orphans at once, which also sees through a zombie worker.
    if os.name == "posix" and os.getppid() != worker_pid:
        return True
    try:
        return not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def leftovers(markers, since: float | None = None) -> list[psutil.Process]:
    """Processes (not this one) whose marker variable is one of ``markers``; with
    ``since``, only those started since then (reading every process's
    environment is the slow part: it is paid on every render's end).

    Each process is looked at afresh (``fresh_processes``)."""
    markers = {marker for marker in markers if marker}
    if not markers:
        return []
    if since is not None:
        found = _linux_leftovers(markers, since)
        if found is not None:
            return found
    return [proc for proc in fresh_processes() if _carries(proc, markers, since)]


def _carries(proc: psutil.Process, markers: set[str], since: float | None) -> bool:
    try:
        if since is not None and proc.create_time() < since:
            return False
        return proc.environ().get(MARKER_ENV) in markers
    except (psutil.Error, OSError):  # Windows: a process can refuse mid-read
        return False


def fresh_processes():
    """Every process there is now but this one, each looked at afresh.

    Not ``psutil.process_iter``: it keeps the Process of a process id from one call
    to the next, so a process id reused since (quick on Windows) would come with the
    start time of the process that had it before, and psutil would refuse to signal
    it (NoSuchProcess: "reused"): a leftover would be neither found nor killed."""
    me = os.getpid()
    for pid in psutil.pids():
        if pid == me:
            continue
        try:
            proc = psutil.Process(pid)
        except (psutil.Error, OSError):  # Windows: some errors come through unconverted
            continue
        yield proc


def _linux_leftovers(markers: set[str], since: float) -> list[psutil.Process] | None:
    """``leftovers`` on Linux, read straight from /proc: a sweep happens at every
    render's end, before the next one starts, and most of its cost is making a
    psutil.Process of every process and reading it through psutil. Raw reads find
    the few candidates; psutil looks at those again (a process id may have been
    reused in between). None elsewhere, or if /proc cannot be read."""
    pids = _linux_started_since(since)
    if pids is None:
        return None
    needles = [b"\0" + f"{MARKER_ENV}={marker}".encode() + b"\0" for marker in markers]
    found = []
    me = os.getpid()
    for pid in pids:
        if pid == me:
            continue
        environ = _read_proc(pid, "environ")
        if environ is None or not any(needle in b"\0" + environ for needle in needles):
            continue
        try:
            proc = psutil.Process(pid)
        except (psutil.Error, OSError):
            continue
        if _carries(proc, markers, since):
            found.append(proc)
    return found


def _read_proc(pid: int, name: str) -> bytes | None:
    """All of /proc/<pid>/<name>, or None if it cannot be read (gone, not ours).
    os.read, not open(): half the cost, paid once per process at every sweep."""
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _linux_started_since(since: float) -> list[int] | None:
    """On Linux, the ids of the processes started since ``since`` (a second's slack),
    read straight from /proc. None elsewhere (or if /proc cannot be read)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        # psutil's create_time() is the same sum; it is checked again by the caller.
        after = (since - psutil.boot_time() - 1.0) * ticks
        names = os.listdir("/proc")
    except (OSError, ValueError, psutil.Error):
        return None
    pids = []
    for name in names:
        if not name.isdigit():
            continue
        stat = _read_proc(int(name), "stat")
        try:
            if stat is not None and int(stat.rsplit(b")", 1)[1].split()[19]) >= after:
                pids.append(int(name))  # field 22, starttime, in clock ticks
        except (IndexError, ValueError):
            continue
    return pids


def prepare_sweep() -> None:
    """What psutil reads once per process (the boot time, its own lazy set-up), read
    now, ahead of the sweep at the render's end: nothing about other processes."""
    with contextlib.suppress(psutil.Error, OSError):
        me = psutil.Process()
        me.create_time()
        me.environ()


def note(message: str) -> None:
    # Goes into the render log; when the worker is gone, nobody reads the pipe.
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"render manager: {message}\n")
        sys.stderr.flush()


def _read_job(into: dict, ready: threading.Event) -> None:
    """One JSON line from stdin (the job) into ``into``; nothing at end of input."""
    with contextlib.suppress(OSError, ValueError):
        line = sys.stdin.buffer.readline()
        if line.strip():
            into.update(json.loads(line))
    ready.set()


def _pass_on(into) -> None:
    """What else comes on stdin, line by line, to ``into``; closed at its end."""
    with contextlib.suppress(OSError, ValueError):
        for line in iter(sys.stdin.buffer.readline, b""):
            into.write(line)
            into.flush()
    with contextlib.suppress(OSError, ValueError):
        into.close()


def main(argv: list[str]) -> int:
    waiting = len(argv) >= 3 and argv[2] == "--wait"
    rest = argv[3:]
    if waiting and rest[:1] == ["--"]:
        rest = rest[1:]
    if len(argv) < 3 or not (waiting or (argv[2] == "--" and rest)):
        sys.stderr.write("usage: guard.py <worker-pid> <worker-create-time> "
                         "[--wait] -- argv...\n")
        return 2
    worker_pid, worker_created, command = int(argv[0]), float(argv[1]), rest
    try:
        worker = psutil.Process(worker_pid)
        if abs(worker.create_time() - worker_created) > 0.01:
            return 70  # the worker died before we even started
    except psutil.NoSuchProcess:
        return 70

    me = psutil.Process()

    def stop(*_):
        kill_all(_children(me))
        os._exit(143)

    for name in ("SIGTERM", "SIGINT", "SIGBREAK", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)

    flags = subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0
    markers = [os.environ.get(MARKER_ENV)]
    child = None
    if command:
        try:
            child = subprocess.Popen(command, creationflags=flags, stdin=subprocess.PIPE
                                     if waiting else subprocess.DEVNULL)
        except OSError as exc:
            note(f"cannot start {command[0]}: {exc}")
            return 127
    prepare_sweep()  # a spare: before its job comes; else beside the render
    if waiting:
        job: dict = {}
        handed = threading.Event()
        threading.Thread(target=_read_job, args=(job, handed), daemon=True).start()
        while not handed.wait(POLL_SECONDS):
            if worker_gone(worker, worker_pid):
                kill_all(_children(me))
                return 137
            if child is not None and child.poll() is not None:
                break  # the launcher died waiting: the worker sees the exit code
        if not job:
            if child is not None and child.poll() is None:
                with contextlib.suppress(OSError):
                    child.stdin.close()  # the launcher leaves on its own
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    kill_all(_children(me))
            code = 0 if child is None or child.returncode is None else child.returncode
            return 128 - code if code < 0 else code
        markers.append(job.get("marker"))
        if child is not None:
            with contextlib.suppress(OSError):
                child.stdin.write(str(job.get("input", "")).encode("utf-8") + b"\n")
                child.stdin.flush()
            # What the worker says next goes on to the launcher: "go" for a job
            # claimed ahead, and the end of input, which lets it go (it ends once
            # its render is done and its stdin has ended).
            threading.Thread(target=_pass_on, args=(child.stdin,), daemon=True).start()
        else:
            env = dict(os.environ)
            if job.get("marker"):
                env[MARKER_ENV] = job["marker"]
            try:
                child = subprocess.Popen(job["argv"], stdin=subprocess.DEVNULL, cwd=job.get("cwd"),
                                         env=env, creationflags=flags)
            except (OSError, KeyError, TypeError) as exc:
                note(f"cannot start the render: {exc}")
                return 127

    # A blocking wait in a thread sees the exit at once; Popen.wait(timeout)
    # would poll with sleeps of up to 50 ms.
    exited = threading.Event()
    threading.Thread(target=lambda: (child.wait(), exited.set()), daemon=True).start()
    while not exited.wait(POLL_SECONDS):
        if worker_gone(worker, worker_pid):
            killed = kill_all(_children(me))
            note(f"worker {worker_pid} is gone; killed the render (pids {killed})")
            return 137
    code = child.returncode

    # What the render started carries its marker (inherited from this guard's
    # environment, or the job's from the launcher) and cannot be older than this
    # guard (a second's slack for clocks that count in ticks). The guard's own
    # children are not looked for apart: orphans are re-parented away from it
    # (POSIX) or keep their dead parent's id (Windows). The process table is read
    # now, once: start times read earlier could belong to a process id reused since
    # (quick on Windows), and a lingering AfterFX would be skipped as too old.
    rest = leftovers(markers, since=me.create_time() - 1.0)
    if rest:
        killed = kill_all(rest)
        note(f"killed processes the render left behind (pids {killed})")
    # A child killed by a signal reports -N; exit like a shell would.
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    status = main(sys.argv[1:])
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    # At once: the worker waits for this exit to go on, and an interpreter's
    # orderly shutdown (its threads, modules) costs tens of milliseconds.
    os._exit(status)
