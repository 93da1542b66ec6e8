"""Dashboard pages: the job list, a job's detail, and the actions on jobs.

Every page reads fine without JavaScript; htmx only adds live updates, lazy
loading and in-place refreshes. Status changes go through jobs.lifecycle,
which refuses what does not fit the job's current state.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models.functions import Length, Right
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from jobs import forecast, lifecycle
from jobs.access import owns, visible_jobs
from jobs.models import (
    FINAL,
    UNFINISHED,
    Job,
    JobEvent,
    JobLog,
    Status,
)
from jobs.submission.paths import PathError, contained, dropbox_file, local_path
from jobs.web import logs
from jobs.web.common import (
    actor,
    get_job,
    media_context,
    output_on_mac,
    safe_next_url,
    selected_ids,
)
from jobs.web.filters import SORTS, JobFilter, counts_context, page_of_jobs
from jobs.web.review import review_context

BOOST_STEP = 10
LOG_TAIL_CHARS = 20_000
TIMELINE_LIMIT = 200


# --- Who sees what -------------------------------------------------------------------


def allowed_actions(job: Job, user) -> dict[str, bool]:
    mine = owns(job, user)
    return {
        "cancel": mine and job.status in UNFINISHED,
        "retry": mine and job.status in (Status.FAILED, Status.CANCELLED),
        "boost": user.is_admin and job.status not in FINAL,
        "download": job.status == Status.COMPLETED and bool(job.output_path),
    }


# --- The job list --------------------------------------------------------------------


@login_required
@require_GET
def job_list(request):
    filters = JobFilter(request.GET, request.user)
    rows, next_cursor = page_of_jobs(filters)
    query = filters.query()
    socket_query = {**query, "after": request.GET["after"]} if filters.cursor else query
    context = {
        **counts_context(filters),
        "jobs": rows,
        "next_url": "?" + urlencode({**query, "after": next_cursor}) if next_cursor else "",
        "first_url": "?" + urlencode(query) if query else "?",
        "sorts": [(key, label) for key, (label, _) in SORTS.items()],
        "users": User.objects.order_by("first_name", "email") if request.user.is_admin else [],
        # The websocket learns the filters and the page too, to decide whether a new job
        # belongs here (only on top of the first page) and which rows' ETAs it shows.
        "ws_url": "/ws/jobs" + ("?" + urlencode(socket_query) if socket_query else ""),
        "list_url": request.get_full_path(),
        "needs_mac_username": not request.user.mac_usernames.exists(),
        "is_admin": request.user.is_admin,
        # Queue ETAs: computed once per change of the queue, not per row.
        "forecast": forecast.for_page(rows),
    }
    return render(request, "jobs/list.html", context)


@login_required
@require_POST
def bulk_action(request):
    action = request.POST.get("action", "")
    fallback = reverse("jobs:list")
    if action not in ("cancel", "retry", "boost"):
        messages.error(request, "Choose cancel, retry or boost for the selected jobs.")
        return redirect(safe_next_url(request, fallback))
    if action == "boost" and not request.user.is_admin:
        return HttpResponseForbidden("Only admins can change priorities.")
    ids = selected_ids(request)
    if not ids:
        messages.info(request, "Select some jobs first (the boxes at the start of each row).")
        return redirect(safe_next_url(request, fallback))
    done, skipped = 0, []
    for job in visible_jobs(request.user).filter(pk__in=ids):
        ok, why = _apply(action, job, request.user)
        if ok:
            done += 1
        else:
            skipped.append(f"{job.display_name}: {why}")
    verb = {"cancel": "Cancelled", "retry": "Retried", "boost": "Boosted"}[action]
    if done:
        messages.success(request, f"{verb} {done} job{'s' if done != 1 else ''}.")
    if skipped:
        shown = "; ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
        messages.warning(request, f"Skipped {len(skipped)}: {shown}")
    return redirect(safe_next_url(request, fallback))


def _apply(action: str, job: Job, user) -> tuple[bool, str]:
    """Run one action through the lifecycle: (done, why not)."""
    allowed = allowed_actions(job, user)
    who = actor(user)
    if action == "cancel":
        if not allowed["cancel"]:
            return False, f"already {job.status.lower()}"
        if lifecycle.cancel(job.pk, actor=who, reason=f"Cancelled by {who}"):
            return True, ""
        return False, "it finished in the meantime"
    if action == "retry":
        if not allowed["retry"]:
            return False, (f"it is {job.status.lower()}; only failed or cancelled jobs "
                           "can be retried")
        try:
            if lifecycle.retry(job.pk, actor=who):
                return True, ""
        except lifecycle.Conflict as exc:
            return False, str(exc)
        return False, "its status changed in the meantime"
    if action == "boost":
        if not allowed["boost"]:
            return False, f"it is {job.status.lower()}"
        if lifecycle.set_priority(job.pk, job.priority + BOOST_STEP, actor=who):
            return True, ""
        return False, "it no longer exists"
    return False, "unknown action"


# --- One job -------------------------------------------------------------------------


def timeline(job: Job):
    # Progress ticks are outbox traffic, not history.
    events = JobEvent.objects.filter(job=job).exclude(kind="progress").order_by("-id")
    return list(reversed(events[:TIMELINE_LIMIT]))


def log_tail(job: Job) -> tuple[str, bool]:
    """The end of the log and whether there is more before it. Only the last
    LOG_TAIL_CHARS leave the database, however long the log is."""
    row = (JobLog.objects.filter(job=job)
           .annotate(head_end=Right("head", LOG_TAIL_CHARS), tail_end=Right("tail", LOG_TAIL_CHARS),
                     head_len=Length("head"), tail_len=Length("tail"))
           .values("head_end", "tail_end", "head_len", "tail_len", "omitted_bytes").first())
    if row is None:
        return "", False
    if row["omitted_bytes"]:
        return row["tail_end"] or "", True
    text = ((row["head_end"] or "") + (row["tail_end"] or ""))[-LOG_TAIL_CHARS:]
    return text, (row["head_len"] or 0) + (row["tail_len"] or 0) > LOG_TAIL_CHARS


def file_info(job: Job, previous: tuple | None = None) -> dict:
    """What this server sees of the project file now: missing, still changing or stable.

    "Still changing" means its size or modification time moved since the last
    look (the page's previous poll, or the validator's last observation), or it
    was modified within the stability window.
    """
    info = {"path": local_path(job.project_path), "state": "missing", "size": None,
            "modified": None}
    if not job.project_path:
        info["state"] = "none"
        return info
    try:
        path = dropbox_file(job.project_path)
    except PathError:
        return info  # not a path of this machine's Dropbox folder: missing here
    try:
        stat = contained(path).stat()
    except PathError as exc:
        info.update(state="outside", problem=exc.message)
        return info
    except OSError:
        if job.is_final:
            info["state"] = "gone"  # moved or cleaned up since: no alarm
        return info
    info["size"] = stat.st_size
    info["modified"] = datetime.fromtimestamp(stat.st_mtime, tz=timezone.get_current_timezone())
    info["mtime"] = stat.st_mtime
    if previous is None and job.validation_size is not None and job.validation_mtime is not None:
        previous = (job.validation_size, job.validation_mtime)
    recent = time.time() - max(stat.st_mtime, stat.st_ctime) < settings.STABILITY_CHECK_SECONDS
    moved = previous is not None and (previous[0] != stat.st_size
                                      or abs(previous[1] - stat.st_mtime) > 1e-6)
    info["state"] = "changing" if recent or moved else "stable"
    return info


def detail_context(job: Job, user) -> dict:
    return {
        "job": job,
        "actions": allowed_actions(job, user),
        "is_admin": user.is_admin,
        "config_json": json.dumps(job.config, indent=2, ensure_ascii=False, sort_keys=False),
        "download_url": reverse("api-job-download", args=[job.pk]),
        "mac_output": output_on_mac(job),
        **media_context(job),
    }


@login_required
@require_GET
def job_detail(request, job_id):
    job = get_job(request, job_id)
    context = detail_context(job, request.user)
    context.update(review_context(job, request.user))
    context.update({
        "events": timeline(job),
        "file": file_info(job),
        "ws_url": f"/ws/jobs/{job.pk}",
        "has_log": JobLog.objects.filter(job=job).exists(),
        "forecast": forecast.current() if not job.is_final else None,
    })
    return render(request, "jobs/detail.html", context)


@login_required
@require_GET
def job_log_tail(request, job_id):
    """The log's last lines, for the detail page (lazy, and polled while rendering)."""
    job = get_job(request, job_id)
    text, truncated = log_tail(job)
    return render(request, "jobs/_log.html", {"job": job, "log_text": text,
                                              "truncated": truncated})


@login_required
@require_GET
def job_log_full(request, job_id):
    """The log viewer: every attempt's output, AE's errors and warnings marked."""
    return logs.viewer(request, get_job(request, job_id))


@login_required
@require_GET
def job_log_download(request, job_id):
    return logs.download(get_job(request, job_id))


@login_required
@require_GET
def job_file(request, job_id):
    job = get_job(request, job_id)
    previous = None
    with contextlib.suppress(KeyError, ValueError):
        previous = (int(request.GET["size"]), float(request.GET["mtime"]))
    return render(request, "jobs/_file.html", {"job": job, "file": file_info(job, previous)})


@login_required
@require_GET
def job_actions(request, job_id):
    job = get_job(request, job_id)
    return render(request, "jobs/_actions.html", detail_context(job, request.user))


@login_required
@require_POST
def job_action(request, job_id, action):
    if action not in ("cancel", "retry", "boost", "priority"):
        raise Http404("No such action.")
    job = get_job(request, job_id)
    fallback = reverse("jobs:detail", args=[job.pk])
    if action == "boost" and not request.user.is_admin:
        return HttpResponseForbidden("Only admins can change priorities.")
    if action == "priority":
        if not request.user.is_admin:
            return HttpResponseForbidden("Only admins can change priorities.")
        try:
            priority = int(request.POST.get("priority", ""))
            if abs(priority) > 1_000_000:
                raise ValueError
        except ValueError:
            messages.error(request, "Priority must be a whole number.")
            return redirect(safe_next_url(request, fallback))
        lifecycle.set_priority(job.pk, priority, actor=actor(request.user))
        messages.success(request, f"Priority set to {priority}.")
        return redirect(safe_next_url(request, fallback))
    ok, why = _apply(action, job, request.user)
    verb = {"cancel": "Cancelled", "retry": "Sent back to the queue",
            "boost": "Boosted"}.get(action, action)
    if ok:
        messages.success(request, f"{verb}: {job.display_name}.")
    else:
        messages.error(request, f"Could not {action} {job.display_name}: {why}.")
    return redirect(safe_next_url(request, fallback))

