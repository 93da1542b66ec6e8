"""Pages that are not there, as the dashboard's own pages.

- ``/profile/`` (a slash too many, as people and browsers type) redirects to
  ``/profile`` when that is a page: the app's URLs have no trailing slash
  (the API's never do), so Django's APPEND_SLASH is off.
- Any other missing page is our 404 page (templates/404.html), with the reason
  a view gave, also with DEBUG on (``make run``): Django's debug 404 would
  list every URL of the app to whoever mistypes one. Under /api/ it is JSON.
"""

from __future__ import annotations

from django.http import Http404, HttpResponsePermanentRedirect, JsonResponse
from django.template.loader import render_to_string
from django.urls import is_valid_path

KEPT = ("/admin/", "/accounts/", "/static/")  # their own URLs end in a slash


class FriendlyNotFound:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code != 404 or getattr(response, "streaming", False):
            return response
        path = request.path_info
        if request.method in ("GET", "HEAD") and len(path) > 1 and path.endswith("/") \
                and not path.startswith(KEPT):
            shorter = path.rstrip("/") or "/"
            # Never "//host" or "/\\host": a browser would leave the site.
            if not shorter.startswith(("//", "/\\")) \
                    and is_valid_path(shorter, getattr(request, "urlconf", None)):
                query = request.META.get("QUERY_STRING", "")
                prefix = request.META.get("SCRIPT_NAME", "").rstrip("/")
                return HttpResponsePermanentRedirect(
                    prefix + shorter + (f"?{query}" if query else ""))
        reason = getattr(request, "not_found_reason", None)
        if reason is None and getattr(request, "resolver_match", None) is not None:
            return response  # a view answered 404 itself, in its own words
        if not response.get("Content-Type", "").startswith("text/html"):
            return response  # JSON, plain text
        if path.startswith("/api/"):
            return JsonResponse({"detail": reason or f"No such API endpoint: {path}"},
                                status=404)
        if getattr(response, "friendly", False):
            return response
        html = render_to_string("404.html", {"reason": reason, "path": path}, request=request)
        friendly = type(response)(html, status=404, content_type="text/html; charset=utf-8")
        friendly.friendly = True
        return friendly

    def process_exception(self, request, exception):
        if isinstance(exception, Http404):
            request.not_found_reason = str(exception)
        return None
