"""The receivers of a render node's job transitions, on a thread of their own.

Every transition sends ``lifecycle.job_transitioned`` after its commit, and
its receivers write counters and usage rows, raise alerts and queue
notifications (systemadmin.signals, jobs.notify). None of that is needed
before the next render may start, so a render node runs them here, in order,
beside its render loop (``start``), instead of between one render's end and
the next claim. At shutdown what is queued is still done (``stop``).

Beside is not enough on its own: a receiver running while the node completes
one job and claims the next takes the GIL and SQLite's write lock from them.
So the render loop holds the receivers from one render's end until the next
render's process has started (``hold``, ``go``), HOLD_LIMIT_SECONDS at most.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, connection

from jobs import lifecycle

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
HOLD_LIMIT_SECONDS = 1.0
_STOP = object()
# Set while receivers may run (cleared by ``hold``), and until when a hold lasts.
_free = threading.Event()
_free.set()
_held_until = 0.0


def hold() -> None:
    """The render loop is between two renders: receivers wait, HOLD_LIMIT_SECONDS
    from now at most (a loop that does not get to ``go``, a render that fails before
    its process starts, delays them that much once, never item by item)."""
    global _held_until
    _held_until = time.monotonic() + HOLD_LIMIT_SECONDS
    _free.clear()


def go() -> None:
    """The next render's process runs, or the node is idle: receivers may run."""
    _free.set()


class Bookkeeper:
    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="bookkeeping", daemon=True)

    def submit(self, fn: Callable[[], None]) -> None:
        self.queue.put(fn)

    def _run(self) -> None:
        try:
            while True:
                fn = self.queue.get()
                if fn is _STOP:
                    return
                _free.wait(max(0.0, _held_until - time.monotonic()))
                try:
                    fn()
                except Exception:  # receivers guard themselves; this is the last net
                    log.exception("a job transition's bookkeeping failed")
                    close_old_connections()
        finally:
            connection.close()

    def stop(self, timeout: float = DRAIN_SECONDS) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout)


_current: Bookkeeper | None = None


def start() -> Bookkeeper:
    """Run this process's transition receivers on a thread from now on."""
    global _current
    keeper = Bookkeeper()
    keeper.thread.start()
    _current = keeper
    lifecycle.run_receivers_with(keeper.submit)
    return keeper


def later(fn: Callable, *args) -> None:
    """``fn(*args)`` on the bookkeeping thread when there is one (in order, after
    the receivers queued before it), else now."""
    keeper = _current
    if keeper is None:
        fn(*args)
    else:
        keeper.submit(lambda: fn(*args))


def stop() -> None:
    """Back to running the receivers at once, after doing what is queued."""
    global _current
    keeper, _current = _current, None
    lifecycle.run_receivers_with(None)
    go()
    if keeper is not None:
        keeper.stop()
