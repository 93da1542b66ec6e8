"""The job list's rows, rendered in Python: ``{% job_rows jobs %}`` and ``{% job_row job %}``.

A row through the template engine (templates/jobs/_status.html, _progress.html,
_estimate.html and _problem.html included per row, each variable resolved and
each filter applied node by node) cost about 0.8 ms; a page of 50 rows spent
two thirds of its time there (issue #14). This is the same markup, written
once here for the list, its live pushes and the review page; the pages that
show one job (detail, batch cards) keep the included templates.
tests/web/test_row_markup.py renders the original template (kept there as the
reference) beside this for jobs in every state, so the two cannot drift apart.
"""

from __future__ import annotations

import html

from django import template
from django.template.defaultfilters import capfirst, linebreaksbr, truncatechars
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from jobs.models import ACTIVE, Status

from .estimate_tags import eta_words, job_estimate
from .jobs_tags import STATUS_HINT, STATUS_TONE, ago, duration, failure, seconds

register = template.Library()

NONE = '<span class="faint none" aria-label="None">—</span>'


class Urls:
    """The row's links, reversed once per page and then formatted per job."""

    def __init__(self):
        marker = "00000000-0000-0000-0000-000000000000"
        self.detail = reverse("jobs:detail", args=[marker]).replace(marker, "{}")
        self.thumbnail = reverse("api-job-thumbnail", args=[marker]).replace(marker, "{}")


def _e(value) -> str:
    """conditional_escape without its lazy-string wrapper (the same entities)."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


def status_badge(status: str) -> str:
    """templates/jobs/_status.html."""
    return (f'<span class="status status-{_e(STATUS_TONE.get(status, "pending"))}" '
            f'title="{_e(STATUS_HINT.get(status, ""))}" data-status="{_e(status)}">'
            f'{_e(status)}</span>\n')


def progress(job) -> str:
    """templates/jobs/_progress.html (a list row: not ``large``)."""
    status = job.status
    if status in (Status.RENDERING, Status.COMPLETED) or job.progress:
        tone = STATUS_TONE.get(status, "pending")
        try:
            pct = f"{max(0.0, min(100.0, float(job.progress or 0))):.0f}"
        except (TypeError, ValueError):
            pct = "0"
        if status == Status.RENDERING:
            phase = _e(capfirst(job.get_phase_display() or "starting"))
            if job.started_at:
                phase += (f' · <span class="elapsed" data-since="{_e(job.started_at.isoformat())}">'
                          f'{_e(duration(job))}</span><span class="sr-only"> elapsed</span>')
            if job.eta_seconds:
                phase += f'<span class="live-only"> · ETA {_e(seconds(job.eta_seconds))}</span>'
        elif status == Status.COMPLETED:
            phase = _e(duration(job))
        elif status == Status.AWAITING_REVIEW:
            phase = "Preview ready · awaiting review"
        else:
            phase = ""
        return (f'\n\n<div class="bar {_e(tone)}" role="progressbar" aria-valuemin="0" '
                f'aria-valuemax="100" aria-valuenow="{pct}" aria-label="Progress">'
                f'<span style="width: {pct}%"></span></div>\n<div class="progress-meta">\n'
                f'  <span class="pct">{pct}%</span>\n  <span class="phase">{phase}</span>\n'
                f'</div>\n\n\n')
    if status == Status.VALIDATING:
        text = _e(capfirst(job.validation_message or "Waiting for Dropbox to finish syncing"))
        return f'\n\n<span class="small muted">{text}</span>\n\n'
    if status == Status.QUEUED:
        return '\n\n<span class="small muted">Waiting for a render node</span>\n\n'
    if status == Status.PENDING:
        return '\n\n<span class="small muted">Accepted</span>\n\n'
    return f"\n{NONE}\n\n"


def estimate(context, job) -> str:
    """templates/jobs/_estimate.html (a list row: not ``large``)."""
    est = job_estimate(context, job, context.get("forecast"), context.get("estimate"))
    if not est:
        return ""
    oob = ' hx-swap-oob="true"' if context.get("oob") else ""
    return (f'\n<div class="eta small muted" id="eta-{_e(job.pk)}"{oob} title="Render ≈ '
            f'{_e(seconds(est.render_seconds))}: {_e(est.basis)}">'
            f'{_e(eta_words(est, job.status))}</div>')


def problem(job, urls: Urls) -> str:
    """templates/jobs/_problem.html."""
    status = job.status
    if status == Status.FAILED and job.error:
        f = failure(job)
        code = ""
        if job.error_code:
            code = (f'<div class="small muted">Cause code <code>{_e(job.error_code)}</code> · '
                    f'<a href="{urls.detail.format(job.pk)}#job-failure">the job\'s page</a></div>')
        return (f'\n<details class="problem problem-failed">\n  <summary><strong>'
                f'{_e(f["title"] or "Failed")}</strong><span class="problem-cause">: '
                f'{_e(f["cause"])}</span></summary>\n  <div class="problem-full">'
                f'{linebreaksbr(job.error)}{code}</div>\n</details>\n')
    if status == Status.CANCELLED:
        if job.superseded_by:
            inner = (f'Superseded by <a href="{urls.detail.format(_e(job.superseded_by))}" '
                     f'class="superseded-link">a newer job</a>')
        else:
            inner = _e(job.error or "Cancelled")
        return f'\n<div class="problem problem-cancelled">{inner}</div>\n'
    if status == Status.REJECTED:
        reason = _e(truncatechars(job.error, 120))
        return f'\n<div class="problem problem-rejected">{reason}</div>\n'
    if job.error and status in ACTIVE:
        title = failure(job)["title"]
        return (f'\n<details class="problem problem-retry">\n  <summary>Attempt '
                f'{_e(job.attempts)} failed{": " + _e(title.lower()) if title else ""}'
                f'</summary>\n  <div class="problem-full">{linebreaksbr(job.error)}</div>\n'
                f'</details>\n')
    return '<span class="faint no-problem" aria-label="No problem">—</span>\n'


def row(context, job, urls: Urls, now) -> str:
    """templates/jobs/_row.html as it was: one ``<tr>`` of the job list."""
    pk = _e(job.pk)
    name = _e(job.display_name)
    status = job.status
    thumb = ""
    if job.has_thumbnail and status == Status.COMPLETED:
        version = int(job.finished_at.timestamp()) if job.finished_at else ""
        thumb = (f'<img class="thumb" src="{urls.thumbnail.format(pk)}?v={version}" alt="" '
                 f'width="64" height="36" loading="lazy">')
    comp = ""
    if job.composition:
        comp = (f'<span class="comp" title="Composition"><span class="sr-only">Composition: '
                f'</span>{_e(job.composition)}</span>')
    user = ""
    if context.get("is_admin"):
        if job.user:
            who = _e(job.user.display_name())
        else:
            who = f'<span class="faint">{_e(job.mac_username or job.client or "—")}</span>'
        user = f'<td class="cell-user" data-label="User">{who}</td>'
    node = _e(job.node.name) if job.node else NONE
    created = timezone.localtime(job.created_at)
    oob = ' hx-swap-oob="true"' if context.get("oob") else ""
    return (
        f'<tr id="job-{pk}" class="job-row tone-{_e(STATUS_TONE.get(status, "pending"))}" '
        f'data-status="{_e(status)}"{oob}>\n'
        f'  <td class="check"><input type="checkbox" name="job" value="{pk}" form="bulk-form" '
        f'aria-label="Select {name}"></td>\n'
        f'  <td class="cell-status">{status_badge(status)}</td>\n'
        f'  <td class="cell-job">\n    {thumb}\n'
        f'    <a class="job-name" href="{urls.detail.format(pk)}">{name}</a>\n'
        f'    <div class="job-sub">{comp}<span class="job-path" title="{_e(job.project_path)}">'
        f'<bdi>{_e(job.project_path or job.engine)}</bdi></span></div>\n  </td>\n'
        f'  {user}\n'
        f'  <td class="cell-node" data-label="Node">{node}</td>\n'
        f'  <td class="progress-cell" data-label="Progress">{progress(job)}'
        f'{estimate(context, job)}\n</td>\n'
        f'  <td class="cell-problem" data-label="Problem">{problem(job, urls)}</td>\n'
        f'  <td class="cell-priority num" data-label="Priority">{_e(job.priority)}</td>\n'
        f'  <td class="cell-time nowrap" data-label="Submitted"><time class="ago" '
        f'datetime="{_e(created.isoformat())}" title="{created:%Y-%m-%d %H:%M:%S} '
        f'{_e(created.tzname() or "")}">{_e(ago(job.created_at, now))}</time></td>\n'
        f'</tr>\n')


@register.simple_tag(takes_context=True)
def job_rows(context, jobs):
    """Every row of a page, with the links reversed and the time taken once."""
    urls, now = Urls(), timezone.now()
    return mark_safe("".join(row(context, job, urls, now) for job in jobs))


@register.simple_tag(takes_context=True)
def job_row(context, job):
    """One row (a live push, the review page)."""
    return mark_safe(row(context, job, Urls(), timezone.now()))
