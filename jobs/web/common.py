"""What every dashboard page needs: the job a user may see, who acts, and where to
go back to after a form."""

from __future__ import annotations

import uuid

from django.http import Http404
from django.utils.http import url_has_allowed_host_and_scheme

from jobs.access import visible_jobs
from jobs.models import Job


def get_job(request, job_id) -> Job:
    job = visible_jobs(request.user).select_related("user", "node").filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job, or it is not yours.")
    return job


def actor(user) -> str:
    return user.email or user.username


def safe_next_url(request, fallback: str) -> str:
    """The form's ``next`` if it stays on this site, else ``fallback``."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return fallback


def selected_ids(request, limit: int = 500) -> list[uuid.UUID]:
    """The job ids ticked in a list's boxes (``job`` fields); malformed ones are ignored."""
    ids = []
    for raw in request.POST.getlist("job")[:limit]:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            continue
    return ids
