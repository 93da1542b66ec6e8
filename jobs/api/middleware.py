from django.conf import settings
from django.http import JsonResponse


class ApiBodyLimitMiddleware:
    """Refuse oversized API bodies with 413 before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and request.method in ("POST", "PUT", "PATCH"):
            limit = settings.API_MAX_BODY_BYTES
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
            if length > limit:
                return _too_large(limit)
            if not length and request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
                body = request.read(limit + 1)
                if len(body) > limit:
                    return _too_large(limit)
                request._body = body
        return self.get_response(request)


def _too_large(limit):
    return JsonResponse(
        {"detail": f"Request body is larger than the limit of {limit} bytes."}, status=413
    )
