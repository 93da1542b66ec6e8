"""Estimates on job pages: "#3 in queue · starts ~14:05 · done ~14:32"."""

from __future__ import annotations

from django import template
from django.utils import timezone

from jobs import forecast as queue_forecast
from jobs.estimates import duration_text
from jobs.models import FINAL, Status

register = template.Library()

PAGE_FORECAST = "_queue_forecast"

NOT_QUEUED_YET = {Status.PENDING: "After checks", Status.VALIDATING: "After checks",
                  Status.AWAITING_REVIEW: "If approved now"}


@register.simple_tag(takes_context=True)
def job_estimate(context, job, forecast=None, given=None):
    """``given`` if there is one, else the estimate of ``job`` from ``forecast``
    (the page's, or the current one); None for a final job."""
    if given:
        return given
    if job is None or job.status in FINAL:
        return None
    if not forecast:
        # A page that did not pass one: fetch it once for all its rows (the
        # bottom of the context stack lives as long as the page's rendering).
        forecast = context.get(PAGE_FORECAST) or queue_forecast.current()
        context.dicts[0][PAGE_FORECAST] = forecast
    return queue_forecast.estimate_for(job, forecast)


def clock(when, now=None) -> str:
    """14:05 today, Tue 09:10 this week, else 2026-03-14 09:10 (local time)."""
    local = timezone.localtime(when)
    today = timezone.localdate(now or timezone.now())
    days = (local.date() - today).days
    if days == 0:
        return f"{local:%H:%M}"
    if 0 < days < 7:
        return f"{local:%a %H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


@register.filter
def eta_words(estimate, status) -> str:
    """The estimate in a few words for a list row or the job page."""
    if estimate is None:
        return ""
    parts = []
    if estimate.position:
        parts.append(f"#{estimate.position} in queue")
    if status != Status.RENDERING and estimate.starts_at is not None:
        parts.append(f"starts ~{clock(estimate.starts_at)}")
    if estimate.finishes_at is not None:
        parts.append(f"done ~{clock(estimate.finishes_at)}")
    else:
        parts.append(f"≈ {duration_text(estimate.render_seconds)} to render")
    text = " · ".join(parts)
    return f"{NOT_QUEUED_YET[status]}: {text}" if status in NOT_QUEUED_YET else text


@register.filter
def estimate_cost(estimate) -> str:
    """"about 5.24 EUR", or "" without a configured rate."""
    if estimate is None:
        return ""
    cost = queue_forecast.cost(estimate.render_seconds)
    return f"about {cost['amount']:.2f} {cost['currency']}" if cost else ""
