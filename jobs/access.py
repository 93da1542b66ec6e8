"""Who may see which jobs: the one rule the dashboard, the API and the live
updates all apply."""

from __future__ import annotations

from accounts.models import ApiClient
from jobs.models import Batch, Job


def person(user):
    """Who ``user`` acts for: a personal API token acts for its person."""
    if isinstance(user, ApiClient) and user.user is not None:
        return user.user
    return user


def visible_jobs(user):
    """An API client sees the jobs it submitted, a user their own, an admin everyone's,
    and nobody else anything. A personal token sees what its person sees."""
    user = person(user)
    if isinstance(user, ApiClient):
        return Job.objects.filter(client=user.name)
    if not getattr(user, "is_authenticated", False):
        return Job.objects.none()
    if user.is_admin:
        return Job.objects.all()
    return Job.objects.filter(user=user)


def owns(job: Job, user) -> bool:
    """Whether ``user`` may act on ``job`` as its owner (admins own every job)."""
    user = person(user)
    return bool(getattr(user, "is_authenticated", False)
                and (getattr(user, "is_admin", False) or job.user_id == user.pk))


def visible_batches(user):
    """The same rule for batches: the client's, the user's own, or (admins) all."""
    user = person(user)
    if isinstance(user, ApiClient):
        return Batch.objects.filter(client=user.name)
    if not getattr(user, "is_authenticated", False):
        return Batch.objects.none()
    if user.is_admin:
        return Batch.objects.all()
    return Batch.objects.filter(user=user)
