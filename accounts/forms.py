"""Profile changes, shared by the profile page and the /api/user endpoints."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts import claims
from accounts.models import MacUsername, User

MAX_MAC_USERNAMES = 20
SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def clean_mac_usernames(names, user: User) -> list[str]:
    """Validated, de-duplicated names; ValidationError says which one is wrong and why."""
    if not isinstance(names, list | tuple):
        raise ValidationError("Send a list of macOS usernames.")
    cleaned: list[str] = []
    seen: set[str] = set()
    for raw in names:
        if not isinstance(raw, str):
            raise ValidationError(f"{raw!r} is not a macOS username (expected text).")
        name = raw.strip()
        if not name:
            continue
        if len(name) > 64 or any(c in name for c in "/\\:") or not name.isprintable():
            raise ValidationError(f"{name!r} is not a macOS username: at most 64 characters, "
                                  "no slashes or colons.")
        if name.casefold() in seen:
            continue
        seen.add(name.casefold())
        cleaned.append(name)
    if len(cleaned) > MAX_MAC_USERNAMES:
        raise ValidationError(f"At most {MAX_MAC_USERNAMES} macOS usernames, please.")
    wanted = Q()
    for name in cleaned:
        wanted |= Q(name__iexact=name)
    taken = (MacUsername.objects.exclude(user=user).exclude(status=MacUsername.Status.REFUSED)
             .filter(wanted).select_related("user").first()) if cleaned else None
    if taken is not None:
        how = ("already belongs to" if taken.status == MacUsername.Status.APPROVED
               else "is claimed by (waiting for an admin)")
        raise ValidationError(
            f"The macOS username {taken.name!r} {how} {taken.user.display_name()}. "
            "Ask them or an admin to remove it first.")
    return cleaned


def save_mac_usernames(user: User, names: list[str]) -> list[MacUsername]:
    """Make ``names`` (already cleaned) ``user``'s macOS usernames: new ones are claims,
    approved at once or waiting for an admin (accounts.claims). Returns the new claims.

    Refused claims stay for the record; naming one again claims it anew.
    """
    made: list[MacUsername] = []
    try:
        with transaction.atomic():
            keep = {n.casefold() for n in names}
            mine = {c.name.casefold(): c for c in user.mac_usernames.all()}
            for folded, existing in mine.items():
                if folded not in keep and existing.status != MacUsername.Status.REFUSED:
                    existing.delete()
            for name in names:
                claim = mine.get(name.casefold())
                if claim is not None and claim.status != MacUsername.Status.REFUSED:
                    if claim.name != name:
                        # Same name, new spelling (e.g. capitals): keep what the user typed.
                        MacUsername.objects.filter(pk=claim.pk).update(name=name)
                    continue
                claim = claim or MacUsername(user=user)
                claim.name = name
                claims.new_claim(claim, claims.approval_reason(name, user))
                claim.save()
                made.append(claim)
    except IntegrityError:
        # Someone claimed one of the names between the check and the save.
        raise ValidationError("One of these macOS usernames was just taken by another user; "
                              "reload and try again.") from None
    claims.announce(made)
    return made


def clean_slack_id(value, user: User) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError("The Slack user ID must be text like U012AB3CD.")
    value = value.strip().upper()
    if not value:
        return ""
    if not SLACK_ID.match(value):
        raise ValidationError(f"{value!r} is not a Slack user ID. In Slack open your profile, "
                              "choose ⋮ → Copy member ID; it looks like U012AB3CD.")
    other = User.objects.exclude(pk=user.pk).filter(slack_user_id=value).first()
    if other is not None:
        raise ValidationError(f"The Slack user ID {value} already belongs to "
                              f"{other.display_name()}.")
    return value


class ProfileForm(forms.Form):
    """The profile page's form; one name per line or separated by commas."""

    mac_usernames = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        label="macOS usernames",
        help_text="The short name of your Mac account (the folder name under /Users). "
                  "One per line; submissions from these accounts are yours.")
    slack_user_id = forms.CharField(
        required=False, max_length=40, label="Slack member ID",
        help_text="For direct messages when your renders start, finish or fail. "
                  "In Slack: your profile → ⋮ → Copy member ID.")

    def __init__(self, *args, user: User, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_mac_usernames(self):
        raw = self.cleaned_data["mac_usernames"]
        return clean_mac_usernames(re.split(r"[,\n\r]+", raw), self.user)

    def clean_slack_user_id(self):
        return clean_slack_id(self.cleaned_data["slack_user_id"], self.user)

    def save(self) -> list[MacUsername]:
        """Saves the profile; returns the new macOS username claims."""
        made = save_mac_usernames(self.user, self.cleaned_data["mac_usernames"])
        if self.user.slack_user_id != self.cleaned_data["slack_user_id"]:
            self.user.slack_user_id = self.cleaned_data["slack_user_id"]
            self.user.save(update_fields=["slack_user_id"])
        return made
