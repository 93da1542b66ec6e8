"""The job list's filters, sorts and keyset pages.

The query string is parsed leniently (a bad value is ignored, never a 500),
and every page is a keyset query on an index, so page 2 000 costs what page 1
costs. The live list socket uses the same filter to place new jobs.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections import Counter

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.http import urlencode

from jobs import params as params_
from jobs.access import visible_jobs
from jobs.models import UNFINISHED, Job, Status

PAGE_SIZE = 50
# Counting every matching row would scan the whole table at 100 000 jobs;
# past this many the page just says "more than".
COUNT_CAP = 1000
STATUS_GROUPS = {
    "all": ("All", None),
    "active": ("Active", UNFINISHED),
    "waiting": ("Waiting", (Status.PENDING, Status.VALIDATING, Status.QUEUED)),
    "rendering": ("Rendering", (Status.RENDERING,)),
    "review": ("Awaiting review", (Status.AWAITING_REVIEW,)),
    "completed": ("Completed", (Status.COMPLETED,)),
    "failed": ("Failed", (Status.FAILED,)),
    "rejected": ("Rejected", (Status.REJECTED,)),
    "cancelled": ("Cancelled", (Status.CANCELLED,)),
}

# What needs attention first: running, a person's review, then waiting, then
# problems, then done.
STATUS_RANK = [Status.RENDERING, Status.AWAITING_REVIEW, Status.QUEUED, Status.VALIDATING,
               Status.PENDING, Status.FAILED, Status.REJECTED, Status.CANCELLED,
               Status.COMPLETED]

# Each sort is a list of (field, descending). The last key is unique, so that
# keyset pagination ("the rows after this one") never skips or repeats a row.
SORTS = {
    "newest": ("Newest first", [("created_at", True), ("id", True)]),
    "oldest": ("Oldest first", [("created_at", False), ("id", False)]),
    "priority": ("Priority", [("priority", True), ("created_at", True), ("id", True)]),
    "status": ("Status", [("status_rank", False), ("created_at", True), ("id", True)]),
}


# --- The job list -------------------------------------------------------------


class JobFilter:
    """The list's query string, parsed leniently: a bad value is ignored, never a 500."""

    def __init__(self, params, user):
        self.user = user
        self.status = params.get("status", "all")
        if self.status not in STATUS_GROUPS:
            self.status = "all"
        self.sort = params.get("sort", "newest")
        if self.sort not in SORTS:
            self.sort = "newest"
        self.q = params_.text(params.get("q", ""), 200)
        tz = timezone.get_current_timezone()
        # Dates whose day has no start or end a database can store are ignored.
        self.date_from = _date(params.get("from"))
        self.start = params_.day_start(self.date_from, tz)
        if self.start is None:
            self.date_from = None
        self.date_to = _date(params.get("to"))
        self.end = params_.day_end(self.date_to, tz)  # None for 9999-12-31: no end
        self.owner = params_.db_id(params.get("user", "")) if user.is_admin else None
        self.cursor = decode_cursor(params.get("after", ""), self.sort)

    def query(self) -> dict[str, str]:
        """The filter as query parameters (without the page cursor)."""
        values = {"status": self.status, "sort": self.sort, "q": self.q,
                  "from": self.date_from.isoformat() if self.date_from else "",
                  "to": self.date_to.isoformat() if self.date_to else "",
                  "user": str(self.owner or "")}
        defaults = {"status": "all", "sort": "newest"}
        return {k: v for k, v in values.items() if v and defaults.get(k) != v}

    def is_default(self) -> bool:
        return not self.query()

    def queryset(self, by_status: bool = True):
        """The jobs the filters match (``by_status``: in the chosen status tab too)."""
        jobs = visible_jobs(self.user)
        statuses = STATUS_GROUPS[self.status][1]
        if statuses and by_status:
            jobs = jobs.filter(status__in=statuses)
        if self.owner:
            jobs = jobs.filter(user_id=self.owner)
        if self.start is not None:
            jobs = jobs.filter(created_at__gte=self.start)
        if self.end is not None:
            jobs = jobs.filter(created_at__lt=self.end)
        if self.q:
            jobs = jobs.filter(search(self.q, self.user))
        return jobs

    def matches(self, job_id) -> bool:
        """Whether a (new) job belongs on the first page of this list."""
        return self.queryset().filter(pk=job_id).exists()


# A job id as people copy it: whole, or its first characters (the page shows 8).
_ID_PREFIX = re.compile(r"^[0-9a-f]{6,32}$")
# People whose names match: at most this many (their jobs are then searched by id).
MAX_PEOPLE = 50


def id_range(text: str) -> Q | None:
    """Jobs whose id starts with ``text`` (hex, dashes ignored): a range on the primary
    key, so it costs an index lookup, on PostgreSQL (uuid) and SQLite (hex text) alike."""
    digits = text.strip().lower().replace("-", "")
    if not _ID_PREFIX.match(digits):
        return None
    if len(digits) == 32:
        return Q(pk=uuid.UUID(digits))
    return Q(pk__gte=uuid.UUID(digits.ljust(32, "0")), pk__lte=uuid.UUID(digits.ljust(32, "f")))


# From this many hex digits on, a search that finds a job by its id is taken as one.
ID_SEARCH_DIGITS = 8


def search(text: str, user) -> Q:
    """The list's search: a job id (or its start), the name, the composition, the
    project path, the macOS username, or a person (name or email, for admins).

    The text columns have trigram indexes on PostgreSQL (migrations 0003, 0014), the
    id its primary key, people their own: the database answers from indexes."""
    by_id = id_range(text)
    if by_id is not None and len(text.replace("-", "")) >= ID_SEARCH_DIGITS \
            and visible_jobs(user).filter(by_id).exists():
        return by_id  # a job id as pages show it: that job, not names that look alike
    match = (Q(name__icontains=text) | Q(composition__icontains=text)
             | Q(project_path__icontains=text) | Q(mac_username__icontains=text))
    if by_id is not None:
        match |= by_id
    if getattr(user, "is_admin", False):
        people = list(get_user_model().objects.filter(
            Q(email__icontains=text) | Q(first_name__icontains=text)
            | Q(last_name__icontains=text) | Q(username__icontains=text))
            .values_list("pk", flat=True)[:MAX_PEOPLE])
        if people:
            match |= Q(user_id__in=people)
    return match


def _date(value):
    """A YYYY-MM-DD date, or None for anything else (including impossible dates)."""
    try:
        return parse_date(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _key_values(job: Job, sort: str) -> list:
    values = []
    for field, _ in SORTS[sort][1]:
        if field == "status_rank":
            values.append(STATUS_RANK.index(job.status) if job.status in STATUS_RANK else 99)
        elif field == "created_at":
            values.append(job.created_at.isoformat())
        elif field == "id":
            values.append(str(job.pk))
        else:
            values.append(getattr(job, field))
    return values


def encode_cursor(job: Job, sort: str) -> str:
    raw = json.dumps(_key_values(job, sort), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, sort: str) -> list | None:
    """The sort key values of the last row seen, or None (a bad cursor means page 1)."""
    if not text or len(text) > 400:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        keys = SORTS[sort][1]
        if not isinstance(values, list) or len(values) != len(keys):
            return None
        parsed = []
        for (field, _), value in zip(keys, values, strict=True):
            if field == "created_at":
                # Only a moment with its offset that the database can compare with.
                value = params_.aware(parse_datetime(value))
                if value is None:
                    return None
            elif field == "id":
                value = uuid.UUID(value)
            elif not isinstance(value, int) or isinstance(value, bool) \
                    or abs(value) > params_.MAX_ID:
                return None
            parsed.append(value)
        return parsed
    except (ValueError, TypeError, AttributeError):
        return None


def after_cursor(keys, values) -> Q:
    """Rows strictly after ``values`` in the order ``keys``: a keyset condition, so
    page 2 000 costs what page 1 costs (no OFFSET)."""
    condition = Q()
    equal: dict = {}
    for (field, descending), value in zip(keys, values, strict=True):
        condition |= Q(**equal, **{f"{field}__{'lt' if descending else 'gt'}": value})
        equal[field] = value
    # Implied by the above, but spelled out so that SQLite's planner (and
    # PostgreSQL's) can start an index range scan at the cursor.
    field, descending = keys[0]
    return Q(**{f"{field}__{'lte' if descending else 'gte'}": values[0]}) & condition


def _rows(jobs, order, limit: int, fenced: bool = False) -> list[Job]:
    if fenced:
        order = [_fenced(key) for key in order]
    return list(jobs.select_related("user", "node").order_by(*order)
                .defer("config", "callback_url", "submitted_path", "project", "warnings")[:limit])


def _fenced(key: str):
    """``key`` ("-created_at") as an expression no index is sorted by: the same order,
    but the database can no longer walk an index in that order and stop at a page."""
    field = key.lstrip("-")
    if field == "id":
        return key  # the tie-break; no index starts with it alone among these keys
    expression = Coalesce(F(field), F(field))
    return expression.desc() if key.startswith("-") else expression.asc()


def restricted_search(filters: JobFilter) -> bool:
    """A search among one person's jobs (a user's own, or an admin's user filter).

    Newest first, PostgreSQL walks the index of every job's created_at and tests
    each row for the person and the text, expecting a page of matches soon: when
    only other people's jobs hold the text it reads the whole table (1.0-1.8 s at
    1 000 000 jobs, issue #14). Sorted by an expression instead (``_fenced``), it
    first narrows to the person's matching jobs (the trigram indexes and the
    person's index, a bitmap AND) and sorts those: bounded by the person's jobs."""
    return bool(filters.q) and (bool(filters.owner)
                                or not getattr(filters.user, "is_admin", False))


def _rows_by_status(filters: JobFilter) -> list[Job]:
    """Status order, newest first within each status: one query per status on the
    (status, created_at) index, rather than sorting the whole table by a rank."""
    jobs = filters.queryset()
    cursor = filters.cursor
    first_rank = cursor[0] if cursor else 0
    rows: list[Job] = []
    for rank in range(max(0, first_rank), len(STATUS_RANK)):
        in_status = jobs.filter(status=STATUS_RANK[rank])
        if cursor and rank == first_rank:
            in_status = in_status.filter(after_cursor(SORTS["status"][1][1:], cursor[1:]))
        rows += _rows(in_status, ["-created_at", "-id"], PAGE_SIZE + 1 - len(rows),
                      fenced=restricted_search(filters))
        if len(rows) > PAGE_SIZE:
            break
    return rows


def page_of_jobs(filters: JobFilter):
    keys = SORTS[filters.sort][1]
    if filters.sort == "status":
        rows = _rows_by_status(filters)
    else:
        jobs = filters.queryset()
        if filters.cursor:
            jobs = jobs.filter(after_cursor(keys, filters.cursor))
        rows = _rows(jobs, [("-" if desc else "") + field for field, desc in keys],
                     PAGE_SIZE + 1, fenced=restricted_search(filters))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_cursor = encode_cursor(rows[-1], filters.sort) if more else None
    return rows, next_cursor


def capped_counts(jobs, statuses) -> dict[str, tuple[int, bool]]:
    """(count, more than COUNT_CAP) of ``jobs`` in each of ``statuses``, in one query.

    Each status is counted by a subquery that stops at COUNT_CAP + 1 rows, a
    range of an index that starts with the status (the visibility column before
    it for a user or a client: jobs.migrations 0015), which the database reads
    without the table (PostgreSQL: an index-only scan). A tab never costs more
    than COUNT_CAP index entries however many jobs there are, and never counts
    a job its reader may not see: ``jobs`` is already filtered by jobs.access.
    """
    parts, params = [], []
    for status in statuses:
        limited = jobs.filter(status=status).order_by().values("status")[: COUNT_CAP + 1]
        sql, part_params = limited.query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS capped_{len(parts)})")
        params.extend(part_params)
    with connections[jobs.db].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        found = cursor.fetchone()
    return {status: (min(n, COUNT_CAP), n > COUNT_CAP)
            for status, n in zip(statuses, found, strict=True)}


def sampled_counts(jobs, statuses, fenced: bool = False) -> dict[str, tuple[int, bool]]:
    """(count, at least that) of ``jobs`` in each of ``statuses`` from one pass over
    at most COUNT_CAP + 1 of them, newest first (the order of the page itself).

    A search is counted this way: its matches come from trigram indexes or a walk of
    the newest jobs, whichever the database finds cheaper for the text (as for the
    page), and never more than COUNT_CAP + 1 rows, where one capped count per
    status would collect every match of a common word once per status. When the
    search matches more than COUNT_CAP jobs in all, each count is what the newest
    COUNT_CAP + 1 hold: a true lower bound, shown with a "+".
    """
    newest = _fenced("-created_at") if fenced else "-created_at"  # restricted_search
    sample = list(jobs.order_by(newest).values_list("status", flat=True)
                  [: COUNT_CAP + 1])
    found = Counter(sample)
    cut = len(sample) > COUNT_CAP
    return {status: (min(found[status], COUNT_CAP), cut) for status in statuses}


def tab_counts(filters: JobFilter) -> dict[str, tuple[int, bool, bool]]:
    """(count, more than that, at least that) for every status tab, under the other
    filters, in one query: every status capped at COUNT_CAP (``capped_counts``), or,
    for a search, a sample of its newest COUNT_CAP + 1 matches (``sampled_counts``).
    The groups add their statuses up; a group is "more than" when any of its statuses
    is, or their sum passes the cap. A sampled count that stays under the cap is only
    a lower bound ("at least": the jobs past the sample may hold none of the group).

    Why capped and not counted: an exact count of 1 000 000 rows (or of a search
    matching a fifth of them) reads them all on every page view; a counter kept
    per status would be exact for admins only, since a user sees their own jobs
    and a filter or search makes any subset. "More than 1000" is what the page
    says, and it is true.
    """
    jobs = filters.queryset(by_status=False)
    sampled = bool(filters.q)
    if sampled:
        per_status = sampled_counts(jobs, Status.values, fenced=restricted_search(filters))
    else:
        per_status = capped_counts(jobs, Status.values)
    counts = {}
    for key, (_, statuses) in STATUS_GROUPS.items():
        parts = [per_status[status] for status in (statuses or Status.values)]
        total = sum(count for count, _ in parts)
        more = total > COUNT_CAP or (not sampled and any(over for _, over in parts))
        at_least = not more and any(over for _, over in parts)
        counts[key] = (min(total, COUNT_CAP), more or at_least, at_least)
    return counts


def counts_context(filters: JobFilter) -> dict:
    """The status tabs with their counts and the list's count (first pages only: a
    later page is reached from a first page that shows them)."""
    query = filters.query()
    counts = tab_counts(filters) if filters.cursor is None else {}
    tabs = []
    for key, (label, _) in STATUS_GROUPS.items():
        params = {k: v for k, v in query.items() if k != "status"}
        if key != "all":
            params["status"] = key
        count, capped, _ = counts.get(key, (None, False, False))
        tabs.append({"key": key, "label": label, "url": "?" + urlencode(params),
                     "count": count, "capped": capped, "current": filters.status == key})
    count, capped, at_least = counts.get(filters.status, (None, False, False))
    return {"filters": filters, "status_tabs": tabs, "count": count, "count_capped": capped,
            "count_at_least": at_least, "paged": filters.cursor is not None}
