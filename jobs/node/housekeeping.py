"""Periodic chores every render worker runs on a background thread.

The render node's own chores are retention (``jobs.node.retention``, hourly) and
the overrun check; the worker runs one more, taking back dead nodes' jobs, on a
thread of its own (a slow chore here must not hold it). Other apps add theirs
with ``register()`` when Django starts (the admin app: queue-depth samples, disk
and node alerts), so the node depends on no app above it. Every chore is
guarded: a failure is logged and the worker carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import connection

from jobs.node import overruns, retention

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0

# (name, every N seconds, function), in the order they run.
CHORES: list[tuple[str, float, Callable[[], object]]] = [
    ("retention", retention.PURGE_EVERY_SECONDS, retention.purge),
    ("overrun check", overruns.CHECK_SECONDS, overruns.check),
]


def register(name: str, every: float, chore: Callable[[], object]) -> None:
    """Add a chore (once per name: AppConfig.ready may run more than once)."""
    if all(existing != name for existing, _, _ in CHORES):
        CHORES.append((name, every, chore))


class Housekeeper:
    def __init__(self, stop: threading.Event, chores=None):
        self.stop = stop
        self.chores = list(CHORES if chores is None else chores)
        self.last: dict[str, float] = {}

    def run_due(self) -> list[str]:
        ran = []
        now = time.monotonic()
        for name, every, chore in self.chores:
            last = self.last.get(name)
            if last is not None and now - last < every:
                continue
            self.last[name] = now
            try:
                chore()
                ran.append(name)
            except Exception:
                log.exception("housekeeping: %s failed", name)
                connection.close()  # a broken connection is reopened next time
        return ran

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.run_due()
                self.stop.wait(TICK_SECONDS)
        finally:
            connection.close()


def start(stop: threading.Event, chores=None, name: str = "housekeeping") -> threading.Thread:
    """Run the chores (default: the registered ones) on a daemon thread until
    ``stop`` is set."""
    keeper = Housekeeper(stop, chores=chores)
    thread = threading.Thread(target=keeper.run, name=name, daemon=True)
    thread.start()
    return thread
