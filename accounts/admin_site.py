"""The Django admin, behind the dashboard's own sign-in.

Django's admin has its own password form, which would let a password in
where the dashboard allows only Google (ALLOW_PASSWORD_LOGIN=false), without
the company-domain check or allauth's rate limits. Here its login page sends
people to the dashboard's sign-in instead, and comes back afterwards.

Every admin view also refuses a query-string number no 64-bit column holds
(``?user=99999999999999999999``) and a NUL character: the admin filters with
them as they are, and SQLite's driver or PostgreSQL fails on them.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from jobs.params import beyond_64_bits


class AdminSite(admin.AdminSite):
    def login(self, request, extra_context=None):
        target = request.GET.get("next") or ""
        if not url_has_allowed_host_and_scheme(target, {request.get_host()},
                                               require_https=request.is_secure()):
            target = ""
        target = target or reverse("admin:index", current_app=self.name)
        if request.user.is_authenticated:
            if not self.has_permission(request):
                # Back to the sign-in would loop: the user is signed in already.
                raise PermissionDenied("This account may not use the Django admin.")
            return redirect(target)
        return redirect_to_login(target, settings.LOGIN_URL)

    def admin_view(self, view, cacheable=False):
        guarded = super().admin_view(view, cacheable)

        def checked(request, *args, **kwargs):
            for key, values in request.GET.lists():
                for text in (key, *values):
                    if beyond_64_bits(text) or "\x00" in text:
                        return HttpResponseBadRequest(
                            "The query string holds a number too large for any record, or a "
                            "NUL character.", content_type="text/plain")
            return guarded(request, *args, **kwargs)

        checked.__wrapped__ = guarded
        for attribute in ("csrf_exempt", "admin_site"):
            if hasattr(guarded, attribute):
                setattr(checked, attribute, getattr(guarded, attribute))
        return checked
