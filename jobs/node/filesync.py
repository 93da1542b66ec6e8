"""Whether a file Dropbox delivers has fully arrived: the rules, for one observation.

The project file (jobs.node.validation), a timeline's sources and the footage
a project links to (jobs.node.preflight) all go through ``judge``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings


@dataclass
class Verdict:
    ready: bool = False
    problem: str = ""  # a failed check: counts as one of the limited attempts
    wait_until: datetime | None = None  # not a failure, just too early to say
    final: bool = False  # the problem cannot go away: fail now...
    code: str = ""  # ...with this error_code


def landed_at(stat: os.stat_result) -> float:
    """When the file arrived on this machine.

    Dropbox copies the modification time from the machine that saved the
    file, so the age must count from the local creation time: st_ctime is the
    creation time on Windows and the inode change time on Linux; macOS has a
    real birth time.
    """
    if sys.platform == "darwin" and hasattr(stat, "st_birthtime"):
        return stat.st_birthtime
    return stat.st_ctime


def judge(stat, now: datetime, seen_before: tuple, saved_at: datetime | None = None,
          saved_label: str = "saved_at") -> tuple[Verdict, os.stat_result | None]:
    """The sync rules for one observation of a file (or of several, summed up):
    old enough, not older than the version that was saved, and unchanged over
    the stability window since ``seen_before`` (size, mtime, when seen). The
    stat returned, if any, is the observation to remember."""
    age = now.timestamp() - landed_at(stat)
    if age < settings.MIN_FILE_AGE_SECONDS:
        wait = settings.MIN_FILE_AGE_SECONDS - age
        return Verdict(wait_until=now + timedelta(seconds=wait)), stat

    if saved_at is not None:
        slack = settings.SAVED_AT_TOLERANCE_SECONDS
        if stat.st_mtime < saved_at.timestamp() - slack:
            modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
            return Verdict(problem=(
                f"file is older than the saved version (modified {modified:%Y-%m-%d %H:%M:%S} "
                f"UTC, {saved_label} {saved_at:%Y-%m-%d %H:%M:%S} UTC): Dropbox has not "
                "delivered it yet")), None

    size, mtime, seen_at = seen_before
    if None in seen_before:
        # First look: come back after the stability window and compare.
        return Verdict(wait_until=now + stability()), stat
    if stat.st_size != size or stat.st_mtime != mtime:
        return Verdict(problem="file is still changing (size or modification time moved)"), stat
    if now - seen_at < stability():
        return Verdict(wait_until=seen_at + stability()), None
    return Verdict(ready=True), stat


def stability() -> timedelta:
    return timedelta(seconds=settings.STABILITY_CHECK_SECONDS)
