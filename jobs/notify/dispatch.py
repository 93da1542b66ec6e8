"""Background delivery for notifications (Slack, webhooks).

Receivers of ``lifecycle.job_transitioned`` run in the process that moved the
job (often the render worker), so they only build a message and hand the
delivery to a dispatcher's threads; nothing waits for the network.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

QUEUE_LIMIT = 500


class Dispatcher:
    """A few daemon threads that run small delivery tasks in the background.

    ``submit`` never blocks: when the backlog is full the task is dropped and
    logged. Tasks must not touch the database (they run on their own threads).
    """

    def __init__(self, name: str, threads: int = 2, limit: int = QUEUE_LIMIT):
        self.name = name
        self.threads = threads
        self._queue: queue.Queue = queue.Queue(maxsize=limit)
        self._started: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            for number in range(self.threads):
                thread = threading.Thread(target=self._run, name=f"{self.name}-{number}",
                                          daemon=True)
                thread.start()
                self._started.append(thread)

    def submit(self, task: Callable[[], None], what: str) -> bool:
        self._start()
        try:
            self._queue.put_nowait((task, what))
        except queue.Full:
            log.warning("%s: backlog full, dropped %s", self.name, what)
            return False
        return True

    def _run(self) -> None:
        while True:
            task, what = self._queue.get()
            try:
                task()
            except Exception:  # a delivery problem must never kill the thread
                log.exception("%s: %s failed", self.name, what)
            finally:
                self._queue.task_done()

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted task has run (tests, shutdown). True if idle."""
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True
