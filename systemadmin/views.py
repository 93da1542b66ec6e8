"""The admin panel: the farm's health, render nodes, queue depth, errors and
updates, and the actions that run the farm (ADMIN only).

Every figure is rendered on the server, so the page reads without JavaScript;
htmx re-fetches each section's fragment every few seconds. Each action is a
GET that shows what it will do ("3 jobs will be cancelled") and a POST (with
the CSRF token) that does it; with JavaScript the same confirmation opens in
a <dialog> on the panel. The work is done by systemadmin.services and
systemadmin.updates, which record every action as a SystemEvent naming the
admin.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Value, When
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from accounts import claims
from accounts.models import MacUsername
from jobs.models import UNFINISHED, Job, RenderNode, Status
from jobs.params import db_id
from systemadmin import chart, events, health, services, updates, usage
from systemadmin.models import QueueSample, SystemEvent, UpdateRun

ERRORS_SHOWN = 15
ACTIONS_SHOWN = 10
JOBS_LISTED = 8
CHECK_SESSION_KEY = "systemadmin_update_check"
# Polling intervals of the live sections, in seconds.
# Node states in the colours of the job statuses.
NODE_TONES = {"rendering": "rendering", "idle": "completed", "down": "failed",
              "stopped": "cancelled", "draining": "rendering", "stopping": "validating",
              "parked": "queued"}
# SystemEvents that are admin actions rather than alerts.
ACTION_KINDS = ("emergency_stop", "clear_queue", "restart_engine", "update_check",
                "update_started", "update", "node_drain", "node_stop", "node_resume")
REFRESH = {"health": 3, "nodes": 3, "queue": 10, "errors": 10}


def admin_required(view):
    """Anonymous: the sign-in page (or an HX-Redirect to it); a USER: 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            if getattr(request, "htmx", False):
                response = HttpResponse(status=401)
                response["HX-Redirect"] = (f"{settings.LOGIN_URL}?next="
                                           f"{reverse('systemadmin:panel')}")
                return response
            return redirect_to_login(request.get_full_path())
        if not getattr(user, "is_admin", False):
            raise PermissionDenied("Only admins may use the admin panel.")
        return view(request, *args, **kwargs)

    return wrapper


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def _when(value):
    return parse_datetime(value) if isinstance(value, str) else value


# --- The sections ---------------------------------------------------------------------


def health_context() -> dict:
    return {"machine": health.machine(), "updated_at": timezone.now()}


def _tree(processes: list[dict]) -> list[dict]:
    """The render process tree in parent-first order, each with its depth."""
    by_parent: dict[int, list[dict]] = {}
    pids = {p["pid"] for p in processes}
    roots = []
    for proc in processes:
        if proc["ppid"] in pids and proc["ppid"] != proc["pid"]:
            by_parent.setdefault(proc["ppid"], []).append(proc)
        else:
            roots.append(proc)
    ordered: list[dict] = []
    seen: set[int] = set()

    def walk(proc, depth):
        if proc["pid"] in seen:  # a cycle (pid reuse): stop
            return
        seen.add(proc["pid"])
        ordered.append({**proc, "depth": depth, "indent": min(depth, 8) * 1.1})
        for child in by_parent.get(proc["pid"], []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return ordered


def nodes_context() -> dict:
    found = health.nodes()
    jobs = {}
    ids = [n["job"]["id"] for n in found if n["job"]]
    if ids:
        jobs = {str(j.pk): j for j in Job.objects.filter(pk__in=ids).select_related("user")}
    for node in found:
        node["last_heartbeat"] = _when(node["last_heartbeat"])
        node["started_at"] = _when(node["started_at"])
        node["tree"] = _tree(node["processes"])
        node["tone"] = NODE_TONES.get(node["state"], "pending")
        node["job_obj"] = jobs.get(node["job"]["id"]) if node["job"] else None
        node["cpu_total"] = round(sum(p["cpu_percent"] for p in node["processes"]), 1)
        node["rss_total"] = sum(p["memory_rss"] for p in node["processes"])
    return {"nodes": found, "here": socket.gethostname(), "updated_at": timezone.now(),
            "node_timeout": settings.NODE_TIMEOUT_SECONDS}


def queue_context() -> dict:
    counts = health.queue_counts()
    since = timezone.now() - timedelta(hours=health.HISTORY_HOURS)
    samples = QueueSample.objects.filter(created_at__gte=since).order_by("created_at")
    return {"counts": counts, "waiting": counts["pending"] + counts["validating"]
            + counts["queued"], "chart": chart.build(samples, hours=health.HISTORY_HOURS),
            "updated_at": timezone.now()}


def errors_context() -> dict:
    errors = health.recent_errors(ERRORS_SHOWN, exclude_kinds=ACTION_KINDS)
    for item in errors:
        item["kind"] = item["kind"].replace("_", " ")
    return {"errors": errors, "actions": SystemEvent.objects.all()[:ACTIONS_SHOWN],
            "updated_at": timezone.now()}


def claims_context() -> dict:
    return {"claims": claims.recent(), "approval_required": settings.MAC_USERNAME_APPROVAL}


def update_context(request) -> dict:
    run = updates.latest_run()
    check = request.session.get(CHECK_SESSION_KEY)
    if check:
        # Copies: the session keeps the JSON-friendly originals.
        check = {**check, "checked_at": _when(check.get("checked_at")),
                 "commits": [{**c, "date": _when(c.get("date"))}
                             for c in check.get("commits", [])]}
        check["total"] = len(check["commits"]) + check.get("more", 0)
    return {"run": run, "check": check,
            "rendering": Job.objects.filter(status=Status.RENDERING).count(),
            "remote": settings.UPDATE_REMOTE, "branch": settings.UPDATE_BRANCH,
            "running": run is not None and run.state == UpdateRun.State.RUNNING}


# --- Pages ------------------------------------------------------------------------------


@admin_required
@require_GET
def panel(request):
    context = {}
    for build in (health_context, nodes_context, queue_context, errors_context,
                  claims_context):
        context.update(build())
    context.update(update_context(request))
    context.update({"updated_at": timezone.now(), "refresh": REFRESH})
    return render(request, "systemadmin/panel.html", context)


@admin_required
@require_GET
def health_fragment(request):
    return render(request, "systemadmin/_health.html", health_context())


@admin_required
@require_GET
def nodes_fragment(request):
    return render(request, "systemadmin/_nodes.html", nodes_context())


@admin_required
@require_GET
def queue_fragment(request):
    return render(request, "systemadmin/_queue.html", queue_context())


@admin_required
@require_GET
def errors_fragment(request):
    return render(request, "systemadmin/_errors.html", errors_context())


@admin_required
@require_GET
def update_fragment(request):
    return render(request, "systemadmin/_update.html", update_context(request))


# --- Actions: GET asks, POST does ---------------------------------------------------------


def confirm(request, *, title: str, question: str, action: str, button: str,
            details: list[str] = (), fields: dict | None = None, danger: bool = True,
            error: str = "", status: int = 200):
    """The confirmation: a page of its own, or (for the panel's dialog) a fragment."""
    context = {"title": title, "question": question, "action_url": action, "button": button,
               "details": list(details), "fields": fields or {}, "danger": danger,
               "error": error, "panel_url": reverse("systemadmin:panel")}
    template = ("systemadmin/_confirm.html" if getattr(request, "htmx", False)
                else "systemadmin/confirm.html")
    return render(request, template, context, status=status)


def back_to_panel(anchor: str = ""):
    return redirect(reverse("systemadmin:panel") + (f"#{anchor}" if anchor else ""))


def _job_lines(jobs) -> list[str]:
    rendering_first = Case(When(status=Status.RENDERING, then=Value(0)), default=Value(1))
    rows = list(jobs.select_related("user").order_by(rendering_first, "-priority", "created_at")
                .defer("config")[:JOBS_LISTED + 1])
    lines = [f"{job.display_name} — {job.status.lower()}"
             + (f" ({job.user.display_name()})" if job.user else "")
             for job in rows[:JOBS_LISTED]]
    if len(rows) > JOBS_LISTED:
        lines.append("…and more")
    return lines


@admin_required
@require_http_methods(["GET", "POST"])
def emergency_stop(request):
    if request.method == "POST":
        rendering = set(Job.objects.filter(status=Status.RENDERING).values_list("pk", flat=True))
        result = services.emergency_stop(request.user)
        count = len(result.job_ids)
        stopped = len(rendering.intersection(result.job_ids))
        if count:
            messages.success(request, f"Emergency stop: cancelled {plural(count, 'job')}"
                             + (f" and stopped {plural(stopped, 'render')}." if stopped else "."))
        else:
            messages.info(request, "Emergency stop: there were no active jobs; "
                          "nothing was cancelled.")
        return back_to_panel()
    active = Job.objects.filter(status__in=UNFINISHED)
    count = active.count()
    rendering = active.filter(status=Status.RENDERING).count()
    if count:
        question = (f"Are you sure? {plural(count, 'job')} will be cancelled"
                    + (f", and {plural(rendering, 'render')} killed." if rendering else "."))
    else:
        question = "There are no active jobs: nothing will be cancelled."
    return confirm(request, title="Emergency stop", question=question,
                   action=reverse("systemadmin:emergency-stop"), button="Stop everything",
                   details=_job_lines(active))


@admin_required
@require_http_methods(["GET", "POST"])
def clear_queue(request):
    if request.method == "POST":
        result = services.clear_queue(request.user)
        count = len(result.job_ids)
        if count:
            messages.success(request, f"Queue cleared: cancelled {plural(count, 'waiting job')}.")
        else:
            messages.info(request, "The queue was already empty; nothing was cancelled.")
        return back_to_panel()
    waiting = Job.objects.filter(status__in=services.WAITING)
    count = waiting.count()
    question = (f"Are you sure? {plural(count, 'waiting job')} will be cancelled. "
                "Renders in progress carry on." if count
                else "The queue is empty: nothing will be cancelled.")
    return confirm(request, title="Clear the queue", question=question,
                   action=reverse("systemadmin:clear-queue"), button="Clear the queue",
                   details=_job_lines(waiting))


def _node_name(request) -> str | None:
    """The ``node`` parameter: None for every node; "" for one that cannot exist."""
    data = request.POST if request.method == "POST" else request.GET
    raw = data.get("node", "")
    name = raw.strip()
    if not name:
        return None
    max_length = RenderNode._meta.get_field("name").max_length
    if len(name) > max_length or any(ord(ch) < 32 for ch in name):
        return ""  # a NUL would make PostgreSQL refuse the query
    return name


@admin_required
@require_http_methods(["GET", "POST"])
def restart_engine(request):
    node = _node_name(request)
    asked = (request.POST if request.method == "POST" else request.GET).get("node", "")
    unknown = f"No running render node is called “{asked[:100]}”."
    if request.method == "POST":
        if node == "":
            messages.error(request, unknown)
            return back_to_panel("nodes")
        try:
            result = services.restart_engine(request.user, node)
        except services.UnknownNode:
            messages.error(request, unknown)
            return back_to_panel("nodes")
        if result.nodes:
            back = len(result.job_ids)
            messages.success(request, f"Restart requested on {', '.join(result.nodes)}"
                             + (f"; {plural(back, 'render')} back to the queue." if back
                                else "."))
        else:
            messages.warning(request, "No render node is running: nothing was restarted.")
        return back_to_panel("nodes")
    nodes = RenderNode.objects.filter(stopped_at__isnull=True).order_by("name")
    action = reverse("systemadmin:restart-engine")
    if node is not None:
        target = nodes.filter(name=node).first() if node else None
        if target is None:
            return confirm(request, title="Restart the render engine", question=unknown,
                           action=action, button="", error=unknown, status=404)
        targets = [target]
    else:
        targets = list(nodes.alive())
    rendering = list(Job.objects.filter(status=Status.RENDERING, node__in=targets)
                     .select_related("node"))
    if targets:
        names = ", ".join(n.name for n in targets)
        question = f"Restart the render engine on {names}?"
        if rendering:
            question += (f" {plural(len(rendering), 'render')} will be stopped and put back in "
                         "the queue without using an attempt.")
        else:
            question += " Nothing is rendering there now."
    else:
        question = "No render node is running: there is nothing to restart."
    details = [f"{job.display_name} on {job.node.name}" for job in rendering]
    return confirm(request, title="Restart the render engine", question=question,
                   action=action, button="Restart" if targets else "Record anyway",
                   details=details, fields={"node": node} if node else {})


@admin_required
@require_http_methods(["GET", "POST"])
def update_check(request):
    remote = f"{settings.UPDATE_REMOTE}/{settings.UPDATE_BRANCH}"
    if request.method == "POST":
        actor, name = services.who(request.user)
        try:
            result = updates.check()
        except updates.UpdateError as exc:
            events.record("update_check", f"Update check by {name} failed: {exc}", actor=actor,
                          level=SystemEvent.Level.WARNING)
            messages.error(request, f"Could not check for updates: {exc}")
            return back_to_panel("update")
        count = len(result["commits"])
        found = plural(count, "new commit") if count else "no new commits"
        events.record("update_check", f"Update check by {name}: {found} on {remote}",
                      actor=actor)
        request.session[CHECK_SESSION_KEY] = {
            "checked_at": timezone.now().isoformat(), "current": result["current"],
            "latest": result["latest"], "update_available": result["update_available"],
            "can_fast_forward": result["can_fast_forward"],
            "commits": result["commits"][:50], "more": max(0, count - 50)}
        if count:
            messages.success(request, f"{plural(count, 'new commit')} on {remote}.")
        else:
            messages.info(request, f"Up to date with {remote}.")
        return back_to_panel("update")
    return confirm(request, title="Check for updates", danger=False,
                   question=f"Fetch {remote} with git and list the new commits? "
                   "Nothing is installed yet.",
                   action=reverse("systemadmin:update-check"), button="Check now")


@admin_required
@require_http_methods(["GET", "POST"])
def update_execute(request):
    if request.method == "POST":
        try:
            run = updates.execute(request.user)
        except updates.Refused as exc:
            messages.error(request, f"Update refused: {exc}")
            return back_to_panel("update")
        request.session.pop(CHECK_SESSION_KEY, None)
        messages.success(request, f"Update started (run {run.pk}); its progress and log "
                         "are below.")
        return back_to_panel("update")
    rendering = Job.objects.filter(status=Status.RENDERING).count()
    check = request.session.get(CHECK_SESSION_KEY) or {}
    commits = check.get("commits", [])
    question = (f"Update now from {settings.UPDATE_REMOTE}/{settings.UPDATE_BRANCH}? "
                "It pauses claims on every render node, waits until no render runs, then "
                "pulls (fast-forward only), installs, migrates, collects static files "
                "and restarts the services.")
    error = ""
    if rendering:
        error = (f"{plural(rendering, 'render')} running: the update waits for "
                 f"{'it' if rendering == 1 else 'them'} to finish (at most "
                 f"{settings.UPDATE_DRAIN_TIMEOUT_SECONDS / 60:g} min); no new render starts "
                 "meanwhile.")
    details = [f"{c.get('short', '')} {c.get('subject', '')}" for c in commits[:JOBS_LISTED]]
    return confirm(request, title="Update now", question=question, error=error,
                   action=reverse("systemadmin:update-execute"), button="Update now",
                   details=details)


@admin_required
@require_http_methods(["GET", "POST"])
def claim_decision(request, claim_id, decision):
    """Approve or refuse (revoke) a macOS username claim."""
    pk = db_id(claim_id)
    claim = (MacUsername.objects.select_related("user").filter(pk=pk).first()
             if pk is not None else None)
    if claim is None:
        raise Http404("No such claim.")
    who = claim.user.display_name()
    approve = decision == "approve"
    if request.method == "POST":
        actor, name = services.who(request.user)
        try:
            done = (claims.approve if approve else claims.refuse)(claim, request.user)
        except claims.ClaimTaken as exc:
            messages.error(request, str(exc))
            return back_to_panel("claims")
        verb = "approved" if approve else "refused"
        if done:
            events.record("mac_username_claim", f"{name} {verb} the claim of {who} on the "
                          f"macOS username “{claim.name}”", actor=actor)
            messages.success(request, f"“{claim.name}” {verb} for {who}.")
        else:
            messages.info(request, f"“{claim.name}” was already {verb}.")
        return back_to_panel("claims")
    if approve:
        question = (f"Approve “{claim.name}” for {who} ({claim.user.email})? Renders "
                    f"submitted as {claim.name} from now on are {who}'s.")
    else:
        question = (f"Refuse {who}'s claim on “{claim.name}”? Renders submitted as "
                    f"{claim.name} are refused until someone holds the name; renders already "
                    "submitted stay whose they are.")
    details = [f"Claimed {timezone.localtime(claim.claimed_at):%Y-%m-%d %H:%M}"
               + (f": {claim.reason}" if claim.reason else "")]
    url = "systemadmin:claim-approve" if approve else "systemadmin:claim-refuse"
    return confirm(request, title="Approve the claim" if approve else "Refuse the claim",
                   question=question, action=reverse(url, args=[claim.pk]),
                   button="Approve" if approve else "Refuse", details=details,
                   danger=not approve)


# --- The usage report ------------------------------------------------------------------------


@admin_required
@require_GET
def usage_report(request):
    """Render minutes, renders and cost per user, API client or project over some days."""
    wanted = usage.asked(request.GET)
    query = wanted.query()
    return render(request, "systemadmin/usage.html", {
        "asked": wanted, "report": usage.report(wanted.group, wanted.date_from, wanted.date_to),
        "groups": list(usage.GROUPS.items()),
        "csv_url": reverse("api-usage-report") + "?" + urlencode({**query, "format": "csv"}),
        "group_label": usage.GROUPS[wanted.group],
    })
