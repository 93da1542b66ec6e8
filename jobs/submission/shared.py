"""Rules a single job and a batch share: who submits (the macOS username), when the
project was saved, names and callback URLs. Each returns the cleaned value or
raises ``InvalidInput`` with the message for its field.
"""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from jobs.submission.errors import InvalidInput

# A client clock may run ahead a little; a saved_at far in the future would
# make the file checks wait for a save that never comes.
SAVED_AT_MAX_AHEAD = dt.timedelta(days=1)
MAX_NAME_CHARS = 200
MAX_URL_CHARS = 2000
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


NAIVE_SAVED_AT = ("Send the time with its UTC offset, e.g. 2025-01-31T14:05:00+01:00 (or Z "
                  "for UTC): without one it is ambiguous.")


def clean_saved_at(value) -> dt.datetime:
    """An ISO-8601 time with its UTC offset (a datetime, or text).

    A time without an offset is refused: taken as UTC, a client in Europe sending
    its local time would have every job fail the stale-file check, and one in
    America would silently disable it.
    """
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise InvalidInput(["Must be an ISO-8601 date and time, like "
                                "2025-03-01T12:00:00Z."])
        value = parsed
    if not isinstance(value, dt.datetime):
        raise InvalidInput(["Must be an ISO-8601 date and time, like 2025-03-01T12:00:00Z."])
    if timezone.is_naive(value):
        raise InvalidInput([NAIVE_SAVED_AT])
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidInput(["Lies outside the years 1 to 9999 in UTC."]) from None
    if value > timezone.now() + SAVED_AT_MAX_AHEAD:
        raise InvalidInput(["Lies more than a day in the future; check the client's clock."])
    return value


def find_mac_user(value):
    """(the cleaned name, the user who registered it); InvalidInput if nobody did."""
    from accounts.models import MacUsername

    if not isinstance(value, str) or not value.strip() or len(value) > 64 or "\x00" in value:
        raise InvalidInput(["Must be a macOS account name (at most 64 characters)."])
    user = MacUsername.find_user(value)
    if user is None:
        waiting = MacUsername.objects.filter(name__iexact=value.strip(),
                                             status=MacUsername.Status.PENDING).exists()
        if waiting:
            raise InvalidInput([f"The macOS username {value.strip()!r} is claimed in a profile "
                                "but waits for an admin's approval; submit again once it is "
                                "approved."])
        raise InvalidInput([f"Unknown macOS username {value.strip()!r}: the artist adds it "
                            "to their profile in the dashboard first."])
    return value.strip(), user


def clean_name(value) -> str:
    """A job's or batch's display name: no slashes or control characters."""
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
        raise InvalidInput([f"Must be a text of at most {MAX_NAME_CHARS} characters."])
    if _NAME_UNSAFE.search(value):
        raise InvalidInput(["May not contain slashes, backslashes or control characters."])
    return value.strip()


def clean_callback_url(value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > MAX_URL_CHARS:
        raise InvalidInput([f"Must be an http(s) URL of at most {MAX_URL_CHARS} characters."])
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise InvalidInput(["Must be an http(s) URL."]) from None
    return value
