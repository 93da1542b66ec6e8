"""Values from query strings made into what the database can hold, or None.

A query string is typed by anyone: ``?user=²`` (a digit to ``str.isdigit``,
not to ``int``), a 20-digit id (beyond a 64-bit column: SQLite's driver
raises, PostgreSQL refuses), ``?to=9999-12-31`` (the day after does not
exist) or a NUL (PostgreSQL refuses text with one). Each getter here answers
None for such a value, so a page ignores it instead of answering 500.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

MAX_ID = 2**63 - 1
_ID = re.compile(r"[0-9]{1,19}")
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def db_id(raw) -> int | None:
    """A positive database id written in ASCII digits that fits a 64-bit column."""
    if not isinstance(raw, str) or not _ID.fullmatch(raw.strip()):
        return None
    value = int(raw.strip())
    return value if 0 < value <= MAX_ID else None


def beyond_64_bits(raw) -> bool:
    """Whether ``raw`` is a whole number (ASCII digits) no 64-bit column can hold."""
    if not isinstance(raw, str) or not _INTEGER.fullmatch(raw):
        return False
    digits = raw.strip().lstrip("+-").lstrip("0")
    return len(digits) > 19 or not -MAX_ID - 1 <= int(raw) <= MAX_ID


def day_start(day: date | None, tz) -> datetime | None:
    """Midnight at the start of ``day`` in ``tz``, if it exists and a database column
    can store it (in UTC it must stay within the years 1 to 9999)."""
    if day is None:
        return None
    try:
        moment = datetime.combine(day, time.min, tzinfo=tz)
        moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return moment


def day_end(day: date | None, tz) -> datetime | None:
    """Midnight at the end of ``day`` in ``tz`` (the start of the next), or None when
    there is no such moment (``9999-12-31``): the range is then open."""
    if day is None:
        return None
    try:
        return day_start(day + timedelta(days=1), tz)
    except OverflowError:
        return None


def text(raw, limit: int) -> str:
    """Search text: stripped, at most ``limit`` characters, no control characters."""
    if not isinstance(raw, str):
        return ""
    return "".join(ch for ch in raw if ch >= " " and ch != "\x7f").strip()[:limit]


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` if it has a UTC offset and is within what a database column holds."""
    if moment is None or moment.tzinfo is None:
        return None
    try:
        moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return moment
