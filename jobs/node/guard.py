"""Runs a render command and takes its whole process tree down with the worker.

Usage: python guard.py <worker-pid> <worker-create-time> -- argv...

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


def leftovers(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(MARKER_ENV) == marker:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def note(message: str) -> None:
    # Goes into the render log; when the worker is gone, nobody reads the pipe.
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"render manager: {message}\n")
        sys.stderr.flush()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: guard.py <worker-pid> <worker-create-time> -- argv...\n")
        return 2
    worker_pid, worker_created, command = int(argv[0]), float(argv[1]), argv[3:]
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
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, creationflags=flags)
    except OSError as exc:
        note(f"cannot start {command[0]}: {exc}")
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

    marker = os.environ.get(MARKER_ENV)
    rest = _children(me) + (leftovers(marker) if marker else [])
    if rest:
        killed = kill_all(rest)
        note(f"killed processes the render left behind (pids {killed})")
    # A child killed by a signal reports -N; exit like a shell would.
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
