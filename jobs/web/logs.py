"""A job's render log as the log viewer shows it: one section per attempt, each
line marked the way After Effects' output is read (errors, warnings, frames).

The render node writes ``=== attempt N on NODE at YYYY-MM-DD HH:MM:SS UTC ===``
before each attempt (jobs.node.render) and keeps earlier attempts' output in
front of it; lines are marked by jobs.node.engines.ae_output.line_kind, the
same rules the render node reads them with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.http import HttpResponse
from django.shortcuts import render

from jobs.models import JobLog
from jobs.node.engines.ae_output import line_kind

ATTEMPT = re.compile(r"^=== attempt (\d+) on (.+?) at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC ===$")
STEP = re.compile(r"^=== (.+) ===$")
OMITTED = re.compile(r"^\[\.\.\. (\d+) bytes of log omitted \.\.\.\]$")


@dataclass
class Line:
    number: int
    text: str
    kind: str  # error, warning, frame, step, omitted or ""


@dataclass
class Section:
    attempt: int | None  # None: output before the first marked attempt
    node: str = ""
    started: datetime | None = None
    lines: list[Line] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for line in self.lines if line.kind == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for line in self.lines if line.kind == "warning")


def _attempt(raw: str) -> Section | None:
    """The section an attempt marker starts; None for any other line. A render's own
    output can look like a marker: one whose number or time cannot be, is a line."""
    marker = ATTEMPT.match(raw)
    if marker is None or len(marker.group(1)) > 6:
        return None
    try:
        started = datetime.strptime(marker.group(3), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return Section(attempt=int(marker.group(1)), node=marker.group(2), started=started)


def sections(text: str) -> list[Section]:
    """The log split at its attempt markers, each line marked."""
    found: list[Section] = []
    current = Section(attempt=None)
    # Lines end at "\n" only, as in the downloaded file (str.splitlines also splits at
    # form feeds and other characters a render's output may hold).
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    for number, raw in enumerate(lines, start=1):
        raw = raw.removesuffix("\r")
        if section := _attempt(raw):
            if current.lines or current.attempt is not None:
                found.append(current)
            current = section
            continue
        if STEP.match(raw):
            kind = "step"
        elif OMITTED.match(raw):
            kind = "omitted"
        else:
            kind = line_kind(raw)
        current.lines.append(Line(number, raw, kind))
    if current.lines or current.attempt is not None:
        found.append(current)
    return found


def log_text(job) -> str:
    log = JobLog.objects.filter(job=job).first()
    return log.text() if log else ""


def viewer(request, job):
    text = log_text(job)
    parts = sections(text)
    return render(request, "jobs/log.html", {
        "job": job, "sections": parts, "lines": sum(len(s.lines) for s in parts),
        "empty": not text.strip(),
    })


def download(job) -> HttpResponse:
    response = HttpResponse(log_text(job) or "(no log yet)\n",
                            content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{str(job.pk)[:8]}.log"'
    return response
