"""Reviewing previews in the dashboard: the "To review" page, the review panel of
a job's page, and the decisions (approve, reject, bulk approve).

Who may decide is who owns the job (its user, or an admin; jobs.access.owns);
the decision itself is a jobs.lifecycle transition, so a job already decided
elsewhere (another reviewer, the API) is reported, not decided twice. Rows on
the "To review" page are the job list's rows, so they stay live over the same
websocket after a decision: approved, queued, rendering, completed.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from jobs import lifecycle
from jobs.access import owns, visible_jobs
from jobs.models import Job, JobEvent, JobPreview, Status
from jobs.web.common import actor, get_job, safe_next_url, selected_ids

DECISIONS = ("approved", "rejected")
RECENT = timedelta(hours=24)
MAX_COMMENT_CHARS = 2000
PAGE_LIMIT = 200


def can_decide(job: Job, user) -> bool:
    return job.status == Status.AWAITING_REVIEW and owns(job, user)


def last_decision(job: Job) -> JobEvent | None:
    return JobEvent.objects.filter(job=job, kind__in=DECISIONS).order_by("-id").first()


def review_context(job: Job, user, next_url: str = "") -> dict:
    """What the review panel and the decision form of ``job`` show ``user``."""
    return {
        "job": job,
        "preview": JobPreview.objects.filter(job=job).defer("jpeg").first(),
        "can_decide": can_decide(job, user),
        "decisions": list(JobEvent.objects.filter(job=job, kind__in=DECISIONS).order_by("id")),
        "outcome": None,
        "next_url": next_url or reverse("jobs:detail", args=[job.pk]),
    }


def _comment(request) -> str:
    # PostgreSQL cannot store NUL characters in text.
    return request.POST.get("comment", "").replace("\x00", "").strip()[:MAX_COMMENT_CHARS]


def _decide(job: Job, user, decision: str, comment: str) -> str:
    """Apply a decision; "" when done, else why not."""
    if not owns(job, user):
        return "Only the job's owner or an admin can review it."
    if decision == "reject" and not comment:
        return "Say why you reject it: a comment is required."
    act = lifecycle.approve if decision == "approve" else lifecycle.reject
    if act(job.pk, actor=actor(user), comment=comment):
        return ""
    job.refresh_from_db(fields=["status"])
    return f"It is {job.status} now; only a job awaiting review can be decided."


@login_required
@require_POST
def decide(request, job_id):
    """Approve or reject one job: a page form, or htmx swapping the decision area."""
    job = get_job(request, job_id)
    decision = request.POST.get("decision", "")
    if decision not in ("approve", "reject"):
        return HttpResponseBadRequest("Choose approve or reject.")
    comment = _comment(request)
    problem = _decide(job, request.user, decision, comment)
    fallback = reverse("jobs:detail", args=[job.pk])
    if request.htmx:
        job.refresh_from_db()
        context = review_context(job, request.user, safe_next_url(request, fallback))
        context.update({"problem": problem, "comment": comment if problem else "",
                        "outcome": None if problem else last_decision(job)})
        return render(request, "jobs/_decision.html", context)
    if problem:
        messages.error(request, f"Could not {decision} {job.display_name}: {problem}")
    else:
        verb = "Approved (the final render is queued)" if decision == "approve" else "Rejected"
        messages.success(request, f"{verb}: {job.display_name}.")
    return redirect(safe_next_url(request, fallback))


@login_required
@require_GET
def review_panel(request, job_id):
    """The review panel of a job's page, fetched again when the job moves."""
    job = get_job(request, job_id)
    return render(request, "jobs/_review.html", review_context(job, request.user))


@login_required
@require_GET
def review_list(request):
    """My jobs waiting for review (everyone's for admins), then those decided lately."""
    visible = visible_jobs(request.user).select_related("user", "node", "preview") \
        .defer("config", "preview__jpeg")
    waiting = list(visible.filter(status=Status.AWAITING_REVIEW)
                   .order_by("created_at")[:PAGE_LIMIT])
    recent = JobEvent.objects.filter(kind__in=DECISIONS,
                                     created_at__gte=timezone.now() - RECENT)
    decided = list(visible.filter(pk__in=recent.values("job_id"))
                   .exclude(status=Status.AWAITING_REVIEW).order_by("-created_at")[:PAGE_LIMIT])
    outcomes = {}
    for event in recent.filter(job__in=[job.pk for job in decided]).order_by("id"):
        outcomes[event.job_id] = event
    next_url = reverse("jobs:review")
    return render(request, "jobs/review.html", {
        "waiting": [(job, {"can_decide": can_decide(job, request.user), "outcome": None})
                    for job in waiting],
        "decided": [(job, {"can_decide": False, "outcome": outcomes.get(job.pk)})
                    for job in decided],
        "is_admin": request.user.is_admin,
        "next_url": next_url,
        # The job list's socket keeps the rows live (new jobs are not inserted here).
        "ws_url": "/ws/jobs?status=review",
    })


@login_required
@require_POST
def bulk_approve(request):
    """Approve the selected jobs, with one comment for all of them."""
    fallback = reverse("jobs:review")
    ids = selected_ids(request, PAGE_LIMIT)
    if not ids:
        messages.info(request, "Select the previews to approve first (the boxes at the start "
                               "of each row).")
        return redirect(safe_next_url(request, fallback))
    if request.POST.get("action") != "approve":
        return HttpResponseForbidden("Only approving is done in bulk; reject one by one, "
                                     "with a reason each.")
    comment = _comment(request)
    done, skipped = 0, []
    for job in visible_jobs(request.user).filter(pk__in=ids):
        problem = _decide(job, request.user, "approve", comment)
        if problem:
            skipped.append(f"{job.display_name}: {problem}")
        else:
            done += 1
    if done:
        messages.success(request, f"Approved {done} preview{'s' if done != 1 else ''}; the "
                                  "final renders are queued.")
    if skipped:
        shown = "; ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
        messages.warning(request, f"Skipped {len(skipped)}: {shown}")
    return redirect(safe_next_url(request, fallback))
