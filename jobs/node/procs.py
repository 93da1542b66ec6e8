"""Process control for the render worker: run a render, read it, kill it whole.

A render is a tree (nexrender -> aerender -> AfterFX) and every member must
die on cancel, on Windows too, so everything goes through psutil, never
through signals to a process group (POSIX only) or taskkill (Windows only).

Every render runs under ``jobs/node/guard.py``, which kills the tree if the
worker dies, and carries a marker variable in its environment so that a
restarted node can find and kill what its dead predecessor left running.
"""

from __future__ import annotations

import contextlib
import json
import locale
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from jobs.node.guard import MARKER_ENV, fresh_processes, kill_all, leftovers

__all__ = ["MARKER_ENV", "SPARE_MARK", "RenderProcess", "find_marked", "kill_marked",
           "kill_tree", "spares_of"]

log = logging.getLogger(__name__)

GUARD = Path(__file__).resolve().parent / "guard.py"
# In the marker of a process started ahead of its job: "<node>/spare/<id>".
SPARE_MARK = "/spare/"
MAX_LINE = 64 * 1024
READ_CHUNK = 256 * 1024
# Batches of at most READ_CHUNK bytes: a full queue holds ~4 MiB of output, and a
# flood then waits on the pipe (back-pressure) instead of growing memory.
QUEUE_BATCHES = 16
# When the root process exited but something it started still holds the pipe
# open, stop waiting for end of output after this long.
EOF_GRACE_SECONDS = 5.0
_EOF = None
NUL_STANDIN = "\ufffd"  # what a NUL byte in render output becomes
# What a Windows console program writes when it does not write UTF-8.
FALLBACK_ENCODING = locale.getencoding() if sys.platform == "win32" else "cp1252"


def kill_tree(pid: int, create_time: float | None = None, timeout: float = 2.0) -> list[int]:
    """Kill ``pid`` and all its descendants; return the pids killed.

    With ``create_time`` the process is only touched if it is still the one
    that was started then (pids are reused). Descendants are listed, and
    frozen, before anything dies, so orphans are reached too.
    """
    try:
        root = psutil.Process(pid)
        if create_time is not None and abs(root.create_time() - create_time) > 0.01:
            return []
    except psutil.NoSuchProcess:
        return []
    return kill_all([root], timeout=timeout)


def find_marked(prefix: str) -> list[psutil.Process]:
    """Processes whose environment has MARKER_ENV starting with ``prefix``, and the
    spares (jobs.node.spares) that started them: a spare keeps the marker it was
    started with, and only what it starts for its job carries the job's."""
    found, spares = [], []
    for proc in fresh_processes():
        try:
            value = proc.environ().get(MARKER_ENV)
        except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
        except OSError:
            continue  # Windows: a process can vanish or refuse mid-read
        if value is not None and value.startswith(prefix):
            found.append(proc)
        elif value is not None and SPARE_MARK in value:
            spares.append(proc)
    return found + spares_of(found, spares)


def spares_of(found: list[psutil.Process], spares: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``spares`` that have one of ``found`` among their descendants."""
    if not found or not spares:
        return []
    pids = {proc.pid for proc in found}
    owners = []
    for spare in spares:
        try:
            if any(child.pid in pids for child in spare.children(recursive=True)):
                owners.append(spare)
        except psutil.Error:
            continue
    return owners


def kill_marked(prefix: str, timeout: float = 2.0) -> list[int]:
    """Kill every process (and its descendants) marked with ``prefix``.

    Pass a complete leading part such as ``"node-a/"``: ``"node-a"`` would also
    match ``"node-ab/..."``.
    """
    marked = find_marked(prefix)
    return kill_all(marked, timeout=timeout) if marked else []


class RenderProcess:
    """A render command, started under the guard, with its output merged into one pipe.

    Read the output with :meth:`read` (it must be read: a full pipe stalls
    the render), watch for the end with :meth:`poll`.

    ``wait``: started ahead of its job (a spare, jobs.node.spares): the guard
    starts ``argv`` (if any: a launcher waiting for its job) and waits until
    :meth:`hand` gives it the job.
    """

    def __init__(self, argv: Sequence[str | os.PathLike], env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None, marker: str = "", wait: bool = False):
        me = psutil.Process()
        env = dict(os.environ if env is None else env)
        if marker:
            env[MARKER_ENV] = marker
        # Every marker this render's processes may carry (a spare's, then its job's).
        self.markers = [marker] if marker else []
        self.argv = [str(arg) for arg in argv]
        self.waiting = wait
        self.gated = False  # handed ahead of its start (hand, open_gate)
        self.started_at = time.monotonic()
        # -I: the guard needs neither the manager's sys.path nor PYTHON* variables,
        # and -I keeps the start-up cheap and predictable.
        command = [sys.executable, "-I", str(GUARD), str(me.pid), repr(me.create_time()),
                   *(["--wait"] if wait else []), "--", *self.argv]
        if sys.platform == "win32":
            # Own process group: a Ctrl+C meant for the worker is the worker's to
            # handle (it kills and requeues the render itself).
            flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
            extra = {"creationflags": flags}
        else:
            extra = {"start_new_session": True}
        self._popen = subprocess.Popen(
            command, stdin=subprocess.PIPE if wait else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=None if cwd is None else str(cwd),
            bufsize=0, **extra)
        self.pid: int = self._popen.pid
        try:
            self.create_time: float | None = psutil.Process(self.pid).create_time()
        except psutil.NoSuchProcess:
            self.create_time = None
        self.output_finished = False
        self.killed = False
        self._closed = False
        self._exited_at: float | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        self._early: list[str] = []  # read by await_line, handed out by the next read
        self._reader = threading.Thread(target=self._read_pipe, name=f"render-{self.pid}",
                                        daemon=True)
        self._reader.start()

    @property
    def marker(self) -> str:
        return self.markers[-1] if self.markers else ""

    def hand(self, marker: str, argv: Sequence[str | os.PathLike] | None = None,
             cwd: str | os.PathLike | None = None, child_input: dict | None = None,
             gated: bool = False) -> bool:
        """Give a waiting render its job: ``marker`` for what it starts from now on,
        and either ``child_input`` (a JSON line for the waiting launcher, with the
        marker added) or the ``argv`` to start in ``cwd``. False if it is gone.

        ``gated`` (with ``child_input`` only): the launcher prepares the render but
        starts aerender only at :meth:`open_gate` (a job claimed ahead)."""
        if not self.waiting or self._popen.poll() is not None:
            return False
        if gated and child_input is None:
            raise ValueError("only a launcher can wait at a gate")
        message = {"marker": marker, "cwd": None if cwd is None else str(cwd)}
        if child_input is not None:
            message["input"] = json.dumps({**child_input, "marker": marker,
                                           **({"gate": True} if gated else {})})
            message["gated"] = gated
        else:
            message["argv"] = [str(arg) for arg in argv or ()]
            self.argv = message["argv"]
        if marker:
            self.markers.append(marker)
        try:
            self._popen.stdin.write(json.dumps(message).encode("utf-8") + b"\n")
            if child_input is not None:
                self._popen.stdin.flush()  # open until let_go: the launcher waits for it
            else:
                self._popen.stdin.close()
        except (OSError, ValueError):
            return False
        self.waiting = False
        self.gated = gated
        return True

    def open_gate(self) -> bool:
        """Let a render handed ``gated`` start aerender. False if it could not be told
        (it ended: its output and exit code say why)."""
        if not self.gated:
            return True
        self.gated = False
        try:
            self._popen.stdin.write(b"go\n")
            self._popen.stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def let_go(self) -> None:
        """A launcher whose render reported success ends (its stdin ends); until
        then it waits, so that node.js ending does not take the CPU from the next
        render's start. Before success: it ends when its render does."""
        if self._popen.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self._popen.stdin.close()

    # --- output -------------------------------------------------------------

    def _read_pipe(self) -> None:
        fd = self._popen.stdout.fileno()
        pending = b""
        skipping = False  # inside an over-long line, dropping the rest of it
        try:
            while True:
                try:
                    chunk = os.read(fd, READ_CHUNK)
                except OSError:
                    break
                if not chunk:
                    break
                if skipping:
                    cut = chunk.find(b"\n")
                    if cut < 0:
                        continue
                    chunk, skipping = chunk[cut + 1:], False
                data = pending + chunk
                cut = data.rfind(b"\n")
                if cut >= 0:
                    self._put(_split(data[:cut]))
                    pending = data[cut + 1:]
                else:
                    pending = data
                if len(pending) > MAX_LINE:
                    # An endless line must not grow memory: keep its start only.
                    self._put(_split(pending[:MAX_LINE]))
                    pending, skipping = b"", True
            if pending:
                self._put(_split(pending))
        finally:
            # Closed here, not by close(): closing an fd another thread is
            # reading from could hand its number to an unrelated file.
            with contextlib.suppress(OSError):
                self._popen.stdout.close()
            self._put(_EOF)

    def _put(self, item) -> None:
        # Blocks while the queue is full (back-pressure on the render), but
        # gives up once nobody will read any more.
        while not self._closed:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def read(self, timeout: float = 0.0) -> list[str]:
        """Lines available now (without line ends), waiting up to ``timeout`` for the first."""
        lines, self._early = self._early, []
        if self.output_finished:
            if timeout > 0 and not lines:
                # Nothing more to read: wait for the exit instead of spinning.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(timeout=timeout)
            return lines
        try:
            batch = self._queue.get(timeout=timeout) if timeout > 0 and not lines \
                else self._queue.get_nowait()
        except queue.Empty:
            return lines
        while True:
            if batch is _EOF:
                self.output_finished = True
                break
            lines.extend(batch)
            if len(lines) >= 50_000:
                break  # hand over a bounded amount at a time
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                break
        return lines

    def await_line(self, wanted: Callable[[str], object], timeout: float) -> bool:
        """Wait up to ``timeout`` for a line for which ``wanted`` is true. Nothing is
        lost: what was read meanwhile, that line included, is what :meth:`read`
        returns first. False if the time ran out or the output ended first."""
        deadline = time.monotonic() + timeout
        while not self.output_finished and (left := deadline - time.monotonic()) > 0:
            try:
                batch = self._queue.get(timeout=left)
            except queue.Empty:
                return False
            if batch is _EOF:
                self.output_finished = True
                return False
            self._early.extend(batch)
            if any(wanted(line) for line in batch):
                return True
        return False

    # --- lifetime -------------------------------------------------------------

    def poll(self) -> int | None:
        """The exit code once the process exited and all its output was read, else None.

        After :meth:`kill` the code is returned at once; remaining output can
        still be read.
        """
        code = self._popen.poll()
        if code is None:
            return None
        if self.killed or (self.output_finished and not self._early):
            return code
        if self._exited_at is None:
            self._exited_at = time.monotonic()
        # Something the render started still holds the pipe: give up waiting.
        if time.monotonic() - self._exited_at > EOF_GRACE_SECONDS and self._queue.empty() \
                and not self._early:
            return code
        return None

    def child_alive(self) -> bool:
        """The guard has a live child (a spare's launcher, waiting for its job)."""
        try:
            return any(child.status() != psutil.STATUS_ZOMBIE
                       for child in psutil.Process(self.pid).children())
        except psutil.Error:
            return False

    def exited(self) -> bool:
        """The root process ended (its output may still be unread)."""
        return self._popen.poll() is not None

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def kill(self, timeout: float = 2.0) -> None:
        """Kill the whole render tree (and anything else carrying its marker)."""
        self.killed = True
        if self._popen.poll() is None:
            # psutil must not reap our own child, or Popen would lose its exit code.
            try:
                descendants = psutil.Process(self.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                descendants = []
            with contextlib.suppress(OSError):
                self._popen.kill()
            kill_all(descendants, timeout=timeout)
        for marker in self.markers:
            kill_marked(marker, timeout=timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=timeout)

    def sweep(self) -> list[int]:
        """Kill what carries this render's job marker (aerender, an After Effects it
        left running), not its root (its guard, and node.js waiting to be let go:
        on Windows its own environment carries the marker too): the render said
        it succeeded, so what else still runs with its marker is a leftover. Its
        guard sweeps again when it exits. Only processes started since this one
        are read (reading every environment is the slow part)."""
        if not self.markers or SPARE_MARK in self.markers[-1]:
            return []
        since = None if self.create_time is None else self.create_time - 1.0
        return kill_all([proc for proc in leftovers(self.markers[-1:], since=since)
                         if not _child_of(proc, self.pid)])

    def finish(self, timeout: float) -> list[str]:
        """Let a render that said it succeeded end by itself (its guard sweeps what it
        left behind), killing it after ``timeout``; then close it. Returns what it
        printed meanwhile."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        self.let_go()
        # Its output ends when its guard exits (the guard holds the pipe to the end):
        # woken by the reader at once, where Popen.wait(timeout) polls with sleeps.
        while not self.output_finished and (left := deadline - time.monotonic()) > 0:
            lines.extend(self.read(min(left, 0.5)))
        try:
            self._popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("render process %s did not end %g s after its render; killing it",
                        self.pid, timeout)
        self.close()
        return lines

    def close(self, timeout: float = 2.0) -> None:
        """Kill the render if it still runs, stop reading its output and end the
        reader thread (it would otherwise wait forever to hand over the rest of a
        flood nobody reads)."""
        if self._popen.poll() is None:
            self.kill()
        self._closed = True
        self._early = []
        if self._popen.stdin is not None:
            with contextlib.suppress(OSError):
                self._popen.stdin.close()
        with contextlib.suppress(queue.Empty):
            while True:  # unread output: free it now
                self._queue.get_nowait()
        self._reader.join(timeout)
        if self._reader.is_alive():
            log.warning("the output reader of render %s did not end (something still holds "
                        "its pipe open)", self.pid)

    @property
    def reader_alive(self) -> bool:
        return self._reader.is_alive()

    def __enter__(self) -> RenderProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _child_of(proc: psutil.Process, pid: int) -> bool:
    try:
        return proc.ppid() == pid
    except psutil.Error:
        return False


def without_nul(text: str) -> str:
    """``text`` as the database can store it: PostgreSQL takes no NUL in text
    (psycopg raises DataError)."""
    return text.replace("\x00", NUL_STANDIN)


def _split(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8")
        lines = text.split("\n")
    except UnicodeDecodeError:
        # A localized After Effects on Windows prints in the ANSI code page: decode
        # line by line, so one such line does not spoil its UTF-8 neighbours.
        lines = [decode_line(line) for line in data.split(b"\n")]
        text = "\n".join(lines)
    if "\x00" in text:
        # Every line may end up in the log, a warning or an error message.
        text = without_nul(text)
        lines = [without_nul(line) for line in lines]
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if len(text) > MAX_LINE and max(map(len, lines)) > MAX_LINE:
        lines = [line[:MAX_LINE] for line in lines]
    return lines


def decode_line(data: bytes) -> str:
    """UTF-8 if it is; else the machine's ANSI code page (cp1252 where there is none)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(FALLBACK_ENCODING, errors="replace")
