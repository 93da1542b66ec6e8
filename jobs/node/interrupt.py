"""Stop requests for the long steps of a render.

The render's watchdog loop (jobs.node.render) checks between two reads of
the render's output whether it must stop: shutdown, a stop or restart
command, a cancel or a takeover, lost contact with the database. Steps that
run for long without that loop (downloads, zipping frames, thumbnails,
publishing a large file) call ``checkpoint()`` between chunks of work, which
raises ``Interrupted`` when the render must stop. Outside a render
(``watching`` not active) checkpoints do nothing.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

POLL_SECONDS = 0.2


class Interrupted(Exception):
    """The render must stop. ``requeue``: put the job back in the queue without
    using an attempt (the node stops); otherwise the job is no longer this
    render's (cancelled, taken over) and nothing is written."""

    def __init__(self, reason: str, requeue: bool):
        super().__init__(reason)
        self.reason = reason
        self.requeue = requeue


_check: ContextVar[Callable[[], Interrupted | None] | None] = ContextVar(
    "render_stop_check", default=None)


@contextmanager
def watching(check: Callable[[], Interrupted | None]) -> Iterator[None]:
    token = _check.set(check)
    try:
        yield
    finally:
        _check.reset(token)


def checkpoint() -> None:
    check = _check.get()
    if check is None:
        return
    stop = check()
    if stop is not None:
        raise stop


def run(argv: Sequence[str], timeout: float, **popen_kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, capture_output=True, timeout=...)`` that also stops
    (killing the program) at a checkpoint that says so."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen_kwargs)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                # communicate() may be called again after a timeout without losing output.
                out, err = proc.communicate(timeout=max(0.01, min(POLL_SECONDS, left)))
                return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(proc.args, timeout) from None
                checkpoint()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
