"""API rate limits, one budget per API token (``API_RATE_LIMIT``, e.g. ``120/min``).

Browser sessions are not limited here. An over-limit request gets ``429``
with a ``Retry-After`` header and a JSON ``detail`` saying which limit was hit
and when to try again. Counts live in Django's cache (per process with the
default local-memory cache, which fits the single web process).
"""

from __future__ import annotations

import math

from django.conf import settings
from rest_framework import exceptions
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiClient

PERIOD_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


class RateLimited(exceptions.Throttled):
    def __init__(self, detail: str, wait: int):
        super().__init__(wait=wait)
        # DRF would append its own "Expected available in ..." sentence.
        self.detail = exceptions.ErrorDetail(detail, code=self.default_code)


class ApiTokenRateThrottle(SimpleRateThrottle):
    scope = "api_token"

    def get_rate(self):
        # Read on each request so that tests (and a settings reload) take effect.
        return settings.API_RATE_LIMIT

    def __init__(self):
        # SimpleRateThrottle reads the rate once in __init__; keep that but from our setting.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_cache_key(self, request, view):
        user = request.user
        if not isinstance(user, ApiClient):
            return None
        # A stored token is limited on its own; an API_TOKEN_<CLIENT> token by client.
        ident = f"token:{user.token.pk}" if user.token is not None else f"env:{user.name}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        if super().allow_request(request, view):
            return True
        wait = self.wait()
        seconds = max(1, math.ceil(wait or 1))
        per = PERIOD_WORDS[self.rate.split("/")[1][0]]
        client = getattr(request.user, "name", "this client")
        raise RateLimited(
            detail=(f"Rate limit exceeded for API client '{client}': at most "
                    f"{self.num_requests} requests per {per}. Try again in {seconds} "
                    f"second{'s' if seconds != 1 else ''}."),
            wait=seconds)
