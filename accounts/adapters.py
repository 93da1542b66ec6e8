"""Who may sign in: company Google accounts, checked on the server at every login.

Google's `hd` authorization parameter only preselects company accounts in
Google's chooser; anyone can remove it from the URL. So the ID token's
claims are checked here, for new and returning users alike: the email's
domain, the `hd` (hosted domain) claim and `email_verified`. A user whose
Google account no longer belongs to the company is refused even though
their local account still exists.
"""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.shortcuts import render
from django.urls import reverse

from accounts.models import User


def refusal(provider: str, claims: dict) -> str:
    """Why this Google identity may not sign in, or "" when it may."""
    domain = settings.ALLOWED_EMAIL_DOMAIN
    if provider != "google":
        return "Only Google sign-in is available."
    if not domain:
        return ("Google sign-in is not set up on this server yet: ALLOWED_EMAIL_DOMAIN is "
                "empty. Ask the person who runs the render manager.")
    email = str(claims.get("email") or "").strip().lower()
    if not email or "@" not in email:
        return "Google did not tell us your email address."
    if email.rsplit("@", 1)[1] != domain:
        return f"Only @{domain} accounts can sign in, and {email} is not one."
    if str(claims.get("hd") or "").lower() != domain:
        return (f"{email} is not managed by the @{domain} Google Workspace, so it cannot "
                "sign in.")
    verified = claims.get("email_verified", claims.get("verified_email"))
    if verified is not True and str(verified).lower() != "true":
        return f"Google has not verified {email}, so it cannot sign in."
    return ""


def apply_google_profile(user: User, claims: dict) -> list[str]:
    """Copy name, avatar and admin role from Google onto ``user``; the changed fields."""
    changed = []
    first = str(claims.get("given_name") or "")[:150]
    last = str(claims.get("family_name") or "")[:150]
    if not first and not last and claims.get("name"):
        first, _, last = str(claims["name"]).partition(" ")
    picture = str(claims.get("picture") or "")[:500]
    for field, value in (("first_name", first), ("last_name", last), ("avatar_url", picture)):
        if value and getattr(user, field) != value:
            setattr(user, field, value)
            changed.append(field)
    email = str(claims.get("email") or "").lower()
    if email in settings.ADMIN_EMAILS and not user.is_admin:
        # Like `add_user --admin`: the dashboard role plus the Django admin for data fixes.
        user.role = User.Role.ADMIN
        user.is_staff = user.is_superuser = True
        changed += ["role", "is_staff", "is_superuser"]
    return changed


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        # Nobody signs themselves up with a password: accounts come from Google
        # (see SocialAccountAdapter) or from `manage.py add_user`.
        return False

    def get_signup_redirect_url(self, request):
        # First login: ask for the macOS usernames that tie submissions to the user.
        return reverse("profile") + "?welcome=1"


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def pre_social_login(self, request, sociallogin):
        claims = sociallogin.account.extra_data or {}
        problem = refusal(sociallogin.account.provider, claims)
        if problem:
            response = render(request, "account/refused.html", {"problem": problem},
                              status=403)
            raise ImmediateHttpResponse(response)
        user = sociallogin.user
        if sociallogin.is_existing and user is not None and user.pk:
            changed = apply_google_profile(user, claims)
            if changed:
                user.save(update_fields=changed)

    def is_open_for_signup(self, request, sociallogin):
        # pre_social_login has already refused everyone outside the company
        # domain; the account adapter's "closed" applies to passwords only.
        return True

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        user.email = (user.email or "").lower()
        # Same convention as `add_user`: the username is the email address.
        user.username = user.email
        apply_google_profile(user, sociallogin.account.extra_data or {})
        return user
