"""The profile page: who you are, the macOS usernames and Slack ID that route
renders to you, and your last week of jobs."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone

from accounts.forms import ProfileForm
from accounts.models import MacUsername
from jobs.models import Job

RECENT_DAYS = 7


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
    else:
        names = "\n".join(user.mac_usernames.exclude(status=MacUsername.Status.REFUSED)
                          .values_list("name", flat=True))
        form = ProfileForm(initial={"mac_usernames": names,
                                    "slack_user_id": user.slack_user_id}, user=user)
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    recent = (Job.objects.filter(user=user, created_at__gte=since)
              .defer("config").order_by("-created_at")[:100])
    return render(request, "account/profile.html", {
        "form": form,
        "recent_jobs": recent,
        "recent_days": RECENT_DAYS,
        "welcome": request.GET.get("welcome") == "1",
        "mac_usernames": list(user.mac_usernames.filter(status=MacUsername.Status.APPROVED)
                              .values_list("name", flat=True)),
        "waiting_claims": user.mac_usernames.filter(status=MacUsername.Status.PENDING),
        "refused_claims": user.mac_usernames.filter(status=MacUsername.Status.REFUSED),
    })
