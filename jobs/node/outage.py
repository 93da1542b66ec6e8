"""Riding out database outages on a render node.

A PostgreSQL restart, a network blip or a long SQLite lock breaks the calls
of a thread's connection for a while. A render does not need the database
while it runs, so the node carries on: writes that only report progress are
skipped (the next one catches up), and writes that decide a job's fate are
retried until the database answers. After an error the thread's connection is
dropped, so that the next call opens a fresh one.

Django's ``Error`` is caught, not only ``DatabaseError``: a connection the
server closed raises ``InterfaceError``, which is not a ``DatabaseError``.
Only an outage is waited out: ``OperationalError`` (a lost or refused
connection, a server shutting down, SQLite's "database is locked", a
deadlock) and ``InterfaceError``. Anything else (``DataError``,
``IntegrityError``, ``ProgrammingError``...) fails the same way every time:
``persist`` raises ``Refused`` at once, and the caller fails the attempt.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from django.db import Error, InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)

MAX_RETRY_PAUSE = 1.0


# What a database that is away (or busy) raises; a retry may succeed.
TRANSIENT = (OperationalError, InterfaceError)


class GaveUp(Exception):
    """A write that had to wait for the database was abandoned (the node is stopping)."""


class Refused(Exception):
    """The database answered a write that decides a job's fate with an error that
    no retry can cure (invalid data, a constraint, a bug): the attempt fails."""

    def __init__(self, what: str, exc: Exception):
        super().__init__(f"the database refused {what}: {type(exc).__name__}: {short(exc)}")
        self.what = what


def transient(exc: BaseException) -> bool:
    """``exc`` is an outage (worth waiting out), not a refusal."""
    return isinstance(exc, TRANSIENT)


def reset() -> None:
    """Drop this thread's connection after an error; the next query reconnects."""
    with contextlib.suppress(Exception):
        connection.close()


def best_effort(what: str, fn: Callable, *args, **kwargs):
    """``fn(...)``, or None when the database is unavailable (logged, connection reset)."""
    try:
        return fn(*args, **kwargs)
    except Error as exc:
        log.warning("database unavailable, %s skipped: %s", what, short(exc))
        reset()
        return None


def persist(what: str, fn: Callable, *args, give_up: Callable[[], str] = lambda: "",
            **kwargs):
    """``fn(...)``, retried until the database answers.

    An error that is not an outage raises ``Refused`` at once. ``give_up()``
    is asked between tries; a non-empty answer (why) raises GaveUp. ``fn`` must
    be safe to run again: a commit whose answer was lost may have happened
    (lifecycle transitions are compare-and-set, so the second try of one that
    did happen reports "not moved"; callers check the job).
    """
    pause = 0.1
    began = None
    while True:
        try:
            result = fn(*args, **kwargs)
        except Error as exc:
            reset()
            if not transient(exc):
                log.error("database refused %s: %s", what, short(exc))
                raise Refused(what, exc) from exc
            now = time.monotonic()
            if began is None:
                began = now
                log.warning("database unavailable, retrying %s: %s", what, short(exc))
            why = give_up()
            if why:
                raise GaveUp(f"{what}: {why}") from exc
            time.sleep(pause)
            pause = min(pause * 2, MAX_RETRY_PAUSE)
            continue
        if began is not None:
            log.warning("database back: %s done after %.1f s", what, time.monotonic() - began)
        return result


def short(exc: Exception) -> str:
    """An error in one line (its first, 200 characters at most), for the log."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
