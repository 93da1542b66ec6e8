"""Who a request is: sessions for everyone, passwords only when the install allows them.

``ALLOW_PASSWORD_LOGIN=false`` (production) must mean that a password opens
nothing: not the dashboard's sign-in, not the Django admin, not anything
that calls ``django.contrib.auth.authenticate``. So no backend checks a
password then, and a session that was opened with a password stops counting
once passwords are turned off. Google sign-in never goes through a password
backend: allauth logs its users in with the first of its own backends,
``SessionBackend``.
"""

from __future__ import annotations

from allauth.account.auth_backends import AuthenticationBackend
from django.conf import settings


class SessionBackend(AuthenticationBackend):
    """Keeps Google sign-ins (and test logins) signed in; checks no password."""

    def authenticate(self, request, **credentials):
        return None


class PasswordBackend(AuthenticationBackend):
    """allauth's username/email + password check, only with ALLOW_PASSWORD_LOGIN=true.

    Sessions it opened are valid only while passwords are allowed.
    """

    def authenticate(self, request, **credentials):
        if not settings.ALLOW_PASSWORD_LOGIN:
            return None
        return super().authenticate(request, **credentials)

    def get_user(self, user_id):
        if not settings.ALLOW_PASSWORD_LOGIN:
            return None
        return super().get_user(user_id)
