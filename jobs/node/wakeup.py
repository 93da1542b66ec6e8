"""Waking an idle worker as soon as there is work.

On PostgreSQL every JobEvent is also sent as ``NOTIFY rm_events`` (see
jobs.lifecycle), and an idle worker LISTENs on a dedicated connection, so a
newly queued job starts within milliseconds. SQLite has no such channel: the
worker sleeps for the poll interval. Both fall back to polling, so a lost
notification only costs latency.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from django.db import connection

from jobs.lifecycle import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

POKE_SLICE_SECONDS = 0.1


class Waker:
    def __init__(self):
        self.conn = None
        self.pending: list[str] = []
        # Set by another thread of this process (the validator queued a job).
        self.poked = threading.Event()

    def poke(self) -> None:
        """End the current (or next) wait now: work was made by this very process."""
        self.poked.set()

    def _listen(self):
        if self.conn is not None or connection.vendor != "postgresql":
            return self.conn
        try:
            params = connection.get_connection_params()
            conn = connection.get_new_connection(params)
            conn.autocommit = True
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.conn = conn
        except Exception:
            log.exception("could not LISTEN for job events; falling back to polling")
            self.conn = None
        return self.conn

    def listening(self) -> bool:
        """Notifications reach this waker (PostgreSQL's LISTEN); else it only polls."""
        return self._listen() is not None

    def wait(self, timeout: float, wanted=None) -> list[str]:
        """Block up to ``timeout`` seconds or until a wanted notification arrives.

        ``wanted(payload) -> bool`` filters which notifications end the wait;
        payloads look like ``"<event id>:<job id>:<status or kind>"``.
        """
        if self.poked.is_set():
            self.poked.clear()
            return []
        conn = self._listen()
        if conn is None:
            if self.poked.wait(timeout):
                self.poked.clear()
            return []
        deadline = time.monotonic() + timeout
        received: list[str] = []
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return received
                if self.poked.is_set():
                    self.poked.clear()
                    return received
                # In slices, so that a poke from this process is seen soon too.
                slice_ = min(remaining, POKE_SLICE_SECONDS)
                for note in conn.notifies(timeout=slice_, stop_after=1):
                    received.append(note.payload)
                if received and (wanted is None or any(wanted(p) for p in received)):
                    return received
        except Exception:
            log.exception("lost the LISTEN connection; reconnecting")
            self.close()
            time.sleep(min(timeout, 1.0))
            return received

    def close(self):
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def wants_queue(payload: str) -> bool:
    return payload.endswith(":QUEUED") or payload.endswith(":PENDING")


def wants_submission(payload: str) -> bool:
    """A job to validate: a new submission (or one sent back to validation)."""
    return payload.endswith(":PENDING")
