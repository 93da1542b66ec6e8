"""``manage.py render_worker`` with test-only faults injected; never used in production.

    python tests/helpers/hooked_worker.py --node NAME

reads, from its environment:

- ``TEST_CLOCK_SKEW_SECONDS``: this process's ``django.utils.timezone.now()``
  runs that many seconds off (negative: behind), a render node whose clock
  is wrong. Patched before Django loads, so model defaults use it too.
  (libfaketime would do it for the whole process but breaks Python's timed
  waits.)
- ``TEST_SLOW_PUBLISH_SECONDS``: putting the output into the output folder
  takes this much longer, spent in small steps that stop at the render's
  checkpoints the way a slow copy to another volume does.
- ``TEST_OUTPUT_HELD_WHILE_RENDERING``: the finished file cannot be taken from
  its work folder (a Windows sharing violation) while a process of its render
  (one whose current directory is that folder) is still there, as when After
  Effects lingers after aerender and holds it open.
- ``TEST_DB_ERRORS``: JSON ``{"<part of the SQL>": count, ...}``: the first
  ``count`` queries whose SQL holds that text raise OperationalError, as when
  the database drops out for a moment (any thread of this process).
- ``TEST_DB_HANG_FILE``: while this file exists, every query of this process
  waits without an answer, as when the database's host vanished from the
  network (no error, no reset: TCP keeps trying). Deleting it lets them go on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def skew_clock(seconds: float) -> None:
    from django.utils import timezone

    real_now = timezone.now

    def skewed_now():
        return real_now() + timedelta(seconds=seconds)

    timezone.now = skewed_now


def slow_publish(seconds: float) -> None:
    from jobs.node import interrupt, publish

    move_in = publish._move_in

    def slow_move_in(result, partial, before_copy=None):
        # A copy to a slow volume: it says so before it starts, as a real copy does.
        if before_copy is not None:
            before_copy()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.05)
            interrupt.checkpoint()
        move_in(result, partial, before_copy)

    publish._move_in = slow_move_in


def output_held_while_rendering() -> None:
    import psutil
    from django.conf import settings

    from jobs.node import publish

    move_in = publish._move_in
    renders = Path(settings.RENDER_TEMP_DIR).resolve()

    def held_move_in(result, partial, before_copy=None):
        # The render's work folder and those in it.
        folders = {folder for folder in Path(result).resolve().parents
                   if renders in folder.parents}
        for proc in psutil.process_iter():
            try:
                held = proc.pid != os.getpid() and Path(proc.cwd()) in folders
            except (psutil.Error, OSError):
                continue
            if held:
                raise PermissionError(13, "The process cannot access the file because it "
                                          "is being used by another process", str(result))
        move_in(result, partial, before_copy)

    publish._move_in = held_move_in


def database_errors(spec: str) -> None:
    import threading

    from django.db import OperationalError
    from django.db.backends.signals import connection_created

    remaining = {str(text): int(count) for text, count in json.loads(spec).items()}
    lock = threading.Lock()

    def failing(execute, sql, params, many, context):
        with lock:
            hit = next((name for name, left in remaining.items() if left and name in sql), None)
            if hit:
                remaining[hit] -= 1
        if hit:
            raise OperationalError(f"injected: the server closed the connection ({hit})")
        return execute(sql, params, many, context)

    def wrap(sender, connection, **kwargs):
        if failing not in connection.execute_wrappers:
            connection.execute_wrappers.append(failing)

    connection_created.connect(wrap, weak=False)


def database_hang(gate: str) -> None:
    from django.db.backends.signals import connection_created

    gate_file = Path(gate)

    def hanging(execute, sql, params, many, context):
        while gate_file.exists():
            time.sleep(0.05)
        return execute(sql, params, many, context)

    def wrap(sender, connection, **kwargs):
        if hanging not in connection.execute_wrappers:
            connection.execute_wrappers.append(hanging)

    connection_created.connect(wrap, weak=False)


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rendermanager.settings")
    skew = float(os.environ.get("TEST_CLOCK_SKEW_SECONDS") or 0)
    if skew:
        skew_clock(skew)
    import django

    django.setup()
    slow = float(os.environ.get("TEST_SLOW_PUBLISH_SECONDS") or 0)
    if slow:
        slow_publish(slow)
    if os.environ.get("TEST_OUTPUT_HELD_WHILE_RENDERING"):
        output_held_while_rendering()
    if os.environ.get("TEST_DB_ERRORS"):
        database_errors(os.environ["TEST_DB_ERRORS"])
    if os.environ.get("TEST_DB_HANG_FILE"):
        database_hang(os.environ["TEST_DB_HANG_FILE"])
    from django.core.management import call_command

    call_command("render_worker", *argv)


if __name__ == "__main__":
    main(sys.argv[1:])
