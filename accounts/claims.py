"""Claims on macOS usernames: who may take a name, and the admins' decisions.

A macOS username routes API submissions to a person: whoever holds "bob"
owns every render submitted as "bob". So a claim that could take someone
else's renders waits for an admin: a name that already has renders of
another person, or any claim at all when MAC_USERNAME_APPROVAL=true.
Admins' own claims and those of ``add_user`` need no approval. Waiting
claims are announced (``claim_waits``: systemadmin records and posts them);
admins approve or refuse them on the admin panel.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from accounts.models import MacUsername, User

Status = MacUsername.Status

# Sent after a claim that waits for an admin is saved, with ``claim`` (a MacUsername).
claim_waits = Signal()


class ClaimTaken(Exception):
    """Another person holds (or has claimed) the name."""


def approval_reason(name: str, user: User) -> str:
    """Why ``user``'s claim of ``name`` must wait for an admin, or "" if it need not."""
    from jobs.models import Job

    if user.is_admin:
        return ""
    other = (Job.objects.filter(mac_username__iexact=name).exclude(user=user)
             .select_related("user").order_by("-created_at").first())
    if other is not None:
        owner = other.user.display_name() if other.user else "a former user"
        return f"has renders of {owner}"
    if settings.MAC_USERNAME_APPROVAL:
        return "every claim is approved by an admin (MAC_USERNAME_APPROVAL)"
    return ""


def new_claim(claim: MacUsername, reason: str) -> None:
    """Set a fresh claim's status by ``reason`` (see ``approval_reason``)."""
    claim.status = Status.PENDING if reason else Status.APPROVED
    claim.reason = reason[:200]
    claim.claimed_at = timezone.now()
    claim.decided_by = claim.decided_at = None


def announce(claims: list[MacUsername]) -> None:
    for claim in claims:
        if claim.status == Status.PENDING:
            transaction.on_commit(lambda claim=claim: claim_waits.send(MacUsername, claim=claim))


def _decide(claim: MacUsername, status: str, admin) -> bool:
    if claim.status == status:
        return False
    try:
        with transaction.atomic():
            changed = MacUsername.objects.filter(pk=claim.pk, status=claim.status).update(
                status=status, decided_by=admin if isinstance(admin, User) else None,
                decided_at=timezone.now())
    except IntegrityError:
        # Approving a refused claim whose name someone else holds by now.
        raise ClaimTaken(f"“{claim.name}” is held by someone else now.") from None
    if changed:
        claim.refresh_from_db()
    return bool(changed)


def approve(claim: MacUsername, admin) -> bool:
    """The name is ``claim.user``'s from now on. False if it already was."""
    return _decide(claim, Status.APPROVED, admin)


def refuse(claim: MacUsername, admin) -> bool:
    """The claim (waiting or approved) holds the name no more; it stays for the record."""
    return _decide(claim, Status.REFUSED, admin)


def recent(days: int = 30, limit: int = 50) -> list[MacUsername]:
    """Waiting claims first, then those of the last ``days`` days, newest first."""
    since = timezone.now() - timezone.timedelta(days=days)
    rows = MacUsername.objects.select_related("user", "decided_by")
    waiting = list(rows.filter(status=Status.PENDING).order_by("-claimed_at")[:limit])
    others = list(rows.filter(claimed_at__gte=since).exclude(status=Status.PENDING)
                  .order_by("-claimed_at")[:max(0, limit - len(waiting))])
    return waiting + others
