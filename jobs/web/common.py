"""What every dashboard page needs: the job a user may see, who acts, and where to
go back to after a form."""

from __future__ import annotations

import uuid

from django.http import Http404
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.models import MacUsername
from jobs.access import visible_jobs
from jobs.models import FollowUp, Job, JobFollowUp, JobFrame, JobProxy, Status
from jobs.submission.paths import mac_path


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


def media_context(job: Job) -> dict:
    """What the job page shows of the job's pictures: the preview video of a completed
    video (or whether it is being made), and the newest frame of an image sequence.
    The bytes stay in the database."""
    proxy = JobProxy.objects.filter(job=job).defer("mp4").first()
    making = None
    if proxy is None and job.status == Status.COMPLETED:
        making = (JobFollowUp.objects.filter(job=job, kind="proxy")
                  .values_list("status", flat=True).first())
    return {"proxy": proxy, "frame": JobFrame.objects.filter(job=job).defer("jpeg").first(),
            "proxy_state": making, "FollowUp": FollowUp}


def output_on_mac(job: Job) -> str | None:
    """The output's path as its artist's Mac has it (None without a macOS username)."""
    if job.status != Status.COMPLETED or not job.output_path:
        return None
    name = job.mac_username
    if not name and job.user_id:
        name = job.user.mac_usernames.filter(status=MacUsername.Status.APPROVED).values_list(
            "name", flat=True).first()
    return mac_path(job.output_path, mac_username=name or "", output=True,
                    submitted=job.submitted_path)
