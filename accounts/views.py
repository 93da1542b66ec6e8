"""The profile page: who you are, the macOS usernames and Slack ID that route
renders to you, your numbers for the last 7 and 30 days, what you are told
about your renders and where, and your personal API tokens (an admin sees and
revokes everyone's)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.forms import ProfileForm
from accounts.models import (
    MAX_PERSONAL_TOKENS,
    NOTIFY_CHANNELS,
    NOTIFY_EVENTS,
    ApiToken,
    MacUsername,
    User,
)
from jobs.models import Job, Status

RECENT_DAYS = 7
STATS_DAYS = (7, 30)
MAX_TOKEN_NAME = 100


def render_stats(user, days: int, now=None) -> dict:
    """The person's renders submitted in the last ``days`` days: how many, the hours
    render nodes spent on them, and the share of finished ones that failed."""
    since = (now or timezone.now()) - timedelta(days=days)
    found = Job.objects.filter(user=user, created_at__gte=since).aggregate(
        renders=Count("pk"), completed=Count("pk", filter=Q(status=Status.COMPLETED)),
        failed=Count("pk", filter=Q(status=Status.FAILED)), seconds=Sum("render_seconds"))
    finished = found["completed"] + found["failed"]
    return {"days": days, "renders": found["renders"], "completed": found["completed"],
            "failed": found["failed"], "hours": (found["seconds"] or 0) / 3600,
            "failure_rate": found["failed"] / finished if finished else None}


def tokens_context(user) -> dict:
    mine = ApiToken.objects.filter(user=user).order_by("revoked_at", "-created_at")
    everyone = None
    if user.is_admin:
        everyone = (ApiToken.objects.filter(revoked_at__isnull=True).select_related("user")
                    .order_by("user__email", "client", "-created_at"))
    return {"tokens": mine, "all_tokens": everyone, "max_tokens": MAX_PERSONAL_TOKENS}


def notifications_context(user) -> dict:
    rows = [{"event": event, "label": label,
             "channels": [{"channel": channel, "on": user.wants(channel, event)}
                          for channel in NOTIFY_CHANNELS]}
            for event, label in NOTIFY_EVENTS.items()]
    return {"notify_rows": rows, "notify_channels": NOTIFY_CHANNELS}


def page(request, form, status: int = 200, **extra):
    user = request.user
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    recent = (Job.objects.filter(user=user, created_at__gte=since)
              .defer("config", "project").order_by("-created_at")[:100])
    return render(request, "account/profile.html", {
        "form": form,
        "recent_jobs": recent,
        "recent_days": RECENT_DAYS,
        "stats": [render_stats(user, days) for days in STATS_DAYS],
        "welcome": request.GET.get("welcome") == "1",
        "mac_usernames": list(user.mac_usernames.filter(status=MacUsername.Status.APPROVED)
                              .values_list("name", flat=True)),
        "waiting_claims": user.mac_usernames.filter(status=MacUsername.Status.PENDING),
        "refused_claims": user.mac_usernames.filter(status=MacUsername.Status.REFUSED),
        **tokens_context(user), **notifications_context(user), **extra,
    }, status=status)


@login_required
def profile(request):
    user = request.user
    if request.method == "POST":
        form = ProfileForm(request.POST, user=user)
        if form.is_valid():
            try:
                made = form.save()
            except ValidationError as exc:
                form.add_error("mac_usernames", exc)
            else:
                messages.success(request, "Profile saved.")
                for claim in made:
                    if claim.status == MacUsername.Status.PENDING:
                        messages.warning(request, f"“{claim.name}” waits for an admin's "
                                         f"approval ({claim.reason}); until then its renders "
                                         "are not yours.")
                return redirect("profile")
        return page(request, form)
    return page(request, _blank_form(user))


def _blank_form(user) -> ProfileForm:
    names = "\n".join(user.mac_usernames.exclude(status=MacUsername.Status.REFUSED)
                      .values_list("name", flat=True))
    return ProfileForm(initial={"mac_usernames": names, "slack_user_id": user.slack_user_id},
                       user=user)


@login_required
@require_POST
def notifications(request):
    """Which events reach the person, and where (accounts.models.NOTIFY_EVENTS)."""
    chosen = {channel: [event for event in NOTIFY_EVENTS
                        if request.POST.get(f"{channel}-{event}") == "on"]
              for channel in NOTIFY_CHANNELS}
    request.user.notifications = chosen
    request.user.save(update_fields=["notifications"])
    messages.success(request, "Notification settings saved.")
    return redirect("/profile#notifications")


@login_required
@require_POST
def create_token(request):
    """A personal API token, shown once on the page that answers (never stored)."""
    user = request.user
    name = " ".join(request.POST.get("name", "").replace("\x00", "").split())[:MAX_TOKEN_NAME]
    problem = "" if name else "Name the token after what will use it (e.g. “my render script”)."
    token = None
    if name:
        with transaction.atomic():
            # The person's row is the lock (on SQLite the write transaction is): two
            # requests at once cannot both count 19 and make the 21st token.
            User.objects.select_for_update().only("pk").get(pk=user.pk)
            if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() \
                    >= MAX_PERSONAL_TOKENS:
                problem = (f"You have {MAX_PERSONAL_TOKENS} tokens already: revoke one you "
                           "no longer use.")
            else:
                token, text = ApiToken.issue_personal(user, name)
    if token is None:
        return page(request, _blank_form(user), status=400, token_problem=problem,
                    token_name=name)
    response = page(request, _blank_form(user), new_token=text, new_token_name=token.name)
    # The token is in this page only: no cache may keep it.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def revoke_token(request, token_id: int):
    """Revoke one of your tokens; an admin may revoke anyone's (clients' too)."""
    tokens = ApiToken.objects.all() if request.user.is_admin \
        else ApiToken.objects.filter(user=request.user)
    token = tokens.filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token, or it is not yours.")
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        whose = "" if token.user_id == request.user.pk else \
            f" ({token.user.email if token.user_id else 'client ' + token.client})"
        messages.success(request, f"Revoked the token {token.name or token.client} "
                                  f"{token.prefix}{whose}: it no longer works.")
    return redirect("/profile#tokens")
