"""The usage report: render time, renders and cost per user, API client and project.

Every render that ends (completed, a review preview, failed, retried, cancelled
or interrupted)
adds its time to the day's row of its user, its API client and its project
(``UsageDay``), from the lifecycle's job_transitioned signal. The report adds
those rows up over a date range, so it still covers days whose jobs retention
has deleted. Completed renders are what a studio bills; the time of the
others is shown beside them. Cost is render minutes at today's
RENDER_COST_PER_MINUTE.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from accounts.models import User
from jobs.forecast import cost
from jobs.models import Job, Status
from systemadmin.models import UsageDay

GROUPS = {UsageDay.Group.USER: "User", UsageDay.Group.CLIENT: "API client",
          UsageDay.Group.PROJECT: "Project"}
NO_USER = "(no user)"
NO_CLIENT = "(no API client)"
NO_PROJECT = "(timelines, no project file)"


# --- Adding up renders ------------------------------------------------------------------------


def _keys(job: dict) -> list[tuple[str, str, str]]:
    """(group, key, label) of a job's user, API client and project."""
    path_key = job["path_key"] or ""
    project = hashlib.sha1(path_key.encode("utf-8", "surrogatepass")).hexdigest() \
        if path_key else ""
    return [
        (UsageDay.Group.USER, str(job["user_id"] or ""), job["user__email"] or NO_USER),
        (UsageDay.Group.CLIENT, (job["client"] or "")[:64], job["client"] or NO_CLIENT),
        (UsageDay.Group.PROJECT, project, (job["project_path"] or NO_PROJECT)[:1024]),
    ]


def _add(day: date, group: str, key: str, label: str, fields: dict) -> None:
    rows = UsageDay.objects.filter(day=day, group=group, key=key)
    increments = {name: F(name) + value for name, value in fields.items()}
    if rows.update(label=label, **increments):
        return
    try:
        with transaction.atomic():
            UsageDay.objects.create(day=day, group=group, key=key, label=label, **fields)
    except IntegrityError:  # another node's render ended at the same moment
        rows.update(label=label, **increments)


def record(job_id, from_status: str, to_status: str, now=None) -> float | None:
    """Add a render that just ended to its day's usage; returns its seconds."""
    if from_status != Status.RENDERING or to_status == Status.RENDERING:
        return None
    job = Job.objects.filter(pk=job_id).values(
        "started_at", "finished_at", "user_id", "user__email", "client", "path_key",
        "project_path").first()
    if job is None or job["started_at"] is None:
        return None
    now = now or timezone.now()
    # A review preview is a render that did its work too.
    completed = to_status in (Status.COMPLETED, Status.AWAITING_REVIEW)
    end = job["finished_at"] if completed and job["finished_at"] else now
    seconds = max(0.0, (end - job["started_at"]).total_seconds())
    fields = ({"renders": 1, "seconds": seconds} if completed
              else {"failed_renders": 1, "failed_seconds": seconds})
    day = timezone.localdate(end)
    with transaction.atomic():
        for group, key, label in _keys(job):
            _add(day, group, key, label, fields)
    return seconds


# --- What is asked for ---------------------------------------------------------------------------

MAX_DAYS = 3660


@dataclass
class Asked:
    """The report's parameters (from the query string), and what was wrong with them."""

    group: str
    date_from: date
    date_to: date
    errors: dict = field(default_factory=dict)

    def query(self) -> dict:
        return {"group": self.group, "from": self.date_from.isoformat(),
                "to": self.date_to.isoformat()}


def _day(params, name: str, default: date, errors: dict) -> date:
    raw = (params.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        value = None
    if value is None:
        errors[name] = "A day as YYYY-MM-DD."
        return default
    return value


def asked(params) -> Asked:
    """group (user, client, project; default user), from and to (days, inclusive;
    default: this month so far). Bad values are named in ``errors``."""
    today = timezone.localdate()
    errors: dict = {}
    group = (params.get("group") or UsageDay.Group.USER).strip().lower()
    if group not in GROUPS:
        errors["group"] = f"One of: {', '.join(GROUPS)}."
        group = UsageDay.Group.USER
    date_from = _day(params, "from", today.replace(day=1), errors)
    date_to = _day(params, "to", today, errors)
    if not errors and date_from > date_to:
        errors["to"] = "Comes before from."
    elif not errors and (date_to - date_from).days > MAX_DAYS:
        errors["from"] = f"At most {MAX_DAYS} days at once."
    return Asked(group, date_from, date_to, errors)


# --- The report ---------------------------------------------------------------------------------


@dataclass
class Line:
    key: str
    label: str
    renders: int = 0
    seconds: float = 0.0
    failed_renders: int = 0
    failed_seconds: float = 0.0

    @property
    def minutes(self) -> float:
        return round(self.seconds / 60, 2)

    @property
    def failed_minutes(self) -> float:
        return round(self.failed_seconds / 60, 2)

    @property
    def cost(self) -> float | None:
        found = cost(self.seconds)
        return found["amount"] if found else None

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "renders": self.renders,
                "render_minutes": self.minutes, "cost": self.cost,
                "failed_renders": self.failed_renders, "failed_minutes": self.failed_minutes}


@dataclass
class Report:
    group: str
    date_from: date
    date_to: date
    lines: list[Line] = field(default_factory=list)
    total: Line = field(default_factory=lambda: Line("", "Total"))

    @property
    def currency(self) -> str | None:
        found = cost(0)
        return found["currency"] if found else None

    def as_dict(self) -> dict:
        return {"group": self.group, "from": self.date_from.isoformat(),
                "to": self.date_to.isoformat(), "currency": self.currency,
                "rows": [line.as_dict() for line in self.lines],
                "total": {k: v for k, v in self.total.as_dict().items()
                          if k not in ("key", "label")}}

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        cost_column = f"cost ({self.currency})" if self.currency else "cost"
        writer.writerow([GROUPS[self.group].lower(), "key", "renders", "render minutes",
                         cost_column, "failed renders", "failed minutes"])
        for line in [*self.lines, self.total]:
            writer.writerow([_cell(line.label), line.key, line.renders, f"{line.minutes:.2f}",
                             "" if line.cost is None else f"{line.cost:.2f}",
                             line.failed_renders, f"{line.failed_minutes:.2f}"])
        return out.getvalue()


def _person(user) -> str:
    name = user.get_full_name()
    return f"{name} <{user.email}>" if name and user.email else user.display_name()


def _cell(text: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def report(group: str, date_from: date, date_to: date) -> Report:
    """Usage per ``group`` key over the days ``date_from``..``date_to`` (inclusive)."""
    rows = (UsageDay.objects.filter(group=group, day__gte=date_from, day__lte=date_to)
            .values("key").annotate(label=Max("label"), renders=Sum("renders"),
                                    seconds=Sum("seconds"),
                                    failed_renders=Sum("failed_renders"),
                                    failed_seconds=Sum("failed_seconds")))
    result = Report(group, date_from, date_to)
    for row in rows:
        result.lines.append(Line(**row))
    if group == UsageDay.Group.USER:
        # Show people as they are called now (the label is their address then).
        ids = [int(line.key) for line in result.lines if line.key.isdigit()]
        names = {str(user.pk): _person(user) for user in User.objects.filter(pk__in=ids)}
        for line in result.lines:
            if line.key in names:
                line.label = names[line.key]
    result.lines.sort(key=lambda line: (-line.seconds, -line.failed_seconds, line.label))
    for line in result.lines:
        result.total.renders += line.renders
        result.total.seconds += line.seconds
        result.total.failed_renders += line.failed_renders
        result.total.failed_seconds += line.failed_seconds
    return result
