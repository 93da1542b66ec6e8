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
"""

from __future__ import annotations

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

    def slow_move_in(result, partial):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.05)
            interrupt.checkpoint()
        move_in(result, partial)

    publish._move_in = slow_move_in


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
    from django.core.management import call_command

    call_command("render_worker", *argv)


if __name__ == "__main__":
    main(sys.argv[1:])
