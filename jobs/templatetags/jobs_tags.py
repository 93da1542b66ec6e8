"""Small presentation helpers for job pages: status colours, durations, ETAs."""

from __future__ import annotations

import re

from django import template
from django.utils import timezone
from django.utils.html import format_html

from jobs.estimates import duration_text as _seconds_text
from jobs.models import ACTIVE, Status
from jobs.node.engines.ae_output import TITLES as CAUSE_TITLES
from jobs.submission.paths import local_path

register = template.Library()

ATTEMPTS_PREFIX = re.compile(r"^(?:Failed after \d+ attempt\(s\)|Attempt \d+ of \d+ failed): ")

# One colour family per status; the CSS defines .status-<name>.
STATUS_TONE = {
    Status.PENDING: "pending",
    Status.VALIDATING: "validating",
    Status.QUEUED: "queued",
    Status.RENDERING: "rendering",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
    Status.AWAITING_REVIEW: "review",
    Status.REJECTED: "rejected",
    "SKIPPED": "cancelled",
    "DELETED": "cancelled",
}

STATUS_HINT = {
    Status.PENDING: "Accepted, file checks start in a moment",
    Status.VALIDATING: "Waiting until Dropbox has finished syncing the project file",
    Status.QUEUED: "Waiting for a free render node",
    Status.RENDERING: "Rendering on a render node",
    Status.COMPLETED: "Rendered and published to Dropbox",
    Status.FAILED: "Did not render; see the error",
    Status.CANCELLED: "Cancelled before it finished",
    Status.AWAITING_REVIEW: "Its preview is ready: waiting for a person to approve or reject it",
    Status.REJECTED: "A reviewer rejected its preview",
    "SKIPPED": "The batch check refused this row; it was not queued",
    "DELETED": "Its job was deleted by retention",
}


@register.filter
def output_location(job) -> str:
    """Where this server finds the job's output (stored relative to RENDER_OUTPUT_DIR)."""
    return local_path(job.output_path, output=True)


@register.filter
def status_tone(status: str) -> str:
    return STATUS_TONE.get(status, "pending")


@register.filter
def status_hint(status: str) -> str:
    return STATUS_HINT.get(status, "")


@register.filter
def is_active(status: str) -> bool:
    return status in ACTIVE


@register.filter
def seconds(value) -> str:
    """12 s, 3 min 05 s, 2 h 10 min."""
    if value is None or value == "":
        return ""
    try:
        return _seconds_text(max(0.0, float(value)))
    except (TypeError, ValueError):
        return ""


@register.filter
def duration(job) -> str:
    """How long a job rendered (or has been rendering)."""
    if not job.started_at:
        return ""
    end = job.finished_at or timezone.now()
    return _seconds_text(max(0.0, (end - job.started_at).total_seconds()))


@register.filter
def percent(value) -> str:
    try:
        number = max(0.0, min(100.0, float(value or 0)))
    except (TypeError, ValueError):
        number = 0.0
    return f"{number:.0f}"


@register.simple_tag
def short_id(job) -> str:
    return str(job.pk)[:8]


@register.simple_tag
def allowed_domain() -> str:
    from django.conf import settings

    return settings.ALLOWED_EMAIL_DOMAIN


@register.filter
def preset_text(preset) -> str:
    """An output preset in words: "web (H.264 8 Mbps, 1080p)"."""
    from jobs.submission.presets import describe

    try:
        return describe(preset)
    except (KeyError, TypeError):
        return ""


@register.filter
def failure(job) -> dict:
    """A job's error as the page shows it: a title for its error_code, the cause
    (the first line: After Effects' own words) and the hint (the lines after it)."""
    cause, _, hint = (job.error or "").partition("\n")
    # The attempt count is on the page already (jobs.lifecycle.render_crashed adds it).
    cause = ATTEMPTS_PREFIX.sub("", cause)
    return {"title": CAUSE_TITLES.get(job.error_code, ""), "cause": cause,
            "hint": hint.strip()}


@register.filter
def warning_title(code: str) -> str:
    return CAUSE_TITLES.get(code, "Warning")


@register.filter
def ago(value, now=None) -> str:
    """"just now", "5 min ago", "3 h ago", "yesterday", else the date (static/js/app.js
    keeps it current in the page, with the same words)."""
    if not value:
        return ""
    seconds = ((now or timezone.now()) - value).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    local = timezone.localtime(value)
    return f"{local:%b} {local.day}" if local.year == timezone.localtime().year \
        else f"{local:%b} {local.day}, {local.year}"


@register.simple_tag
def when(value, style: str = "full"):
    """A moment as ``<time>``: in the server's time zone, named; the page shows it in the
    viewer's own (static/js/app.js). ``style``: "full" (date and time) or "time"."""
    if not value:
        return "—"
    local = timezone.localtime(value)
    zone = local.tzname() or timezone.get_current_timezone_name()
    text = f"{local:%H:%M:%S}" if style == "time" else f"{local:%Y-%m-%d %H:%M:%S}"
    return format_html('<time class="local" datetime="{}" data-style="{}">{} {}</time>',
                       value.isoformat(), style, text, zone)


@register.filter
def since(job) -> str:
    """ISO time a rendering job started (for the page's ticking "elapsed")."""
    return job.started_at.isoformat() if job.started_at else ""


@register.filter
def client_label(client: str) -> str:
    """Who submitted: a client's name, or which person's token it was."""
    if not client:
        return ""
    if client.startswith("personal:"):
        from accounts.models import ApiToken

        token = ApiToken.objects.filter(client=client).only("name", "lookup").first()
        if token is None:
            return "a personal API token (since deleted)"
        return f"personal API token “{token.name}” ({token.prefix})" if token.name \
            else f"personal API token {token.prefix}"
    return client
