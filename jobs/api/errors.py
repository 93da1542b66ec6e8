from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.lifecycle import Conflict


class ConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The action does not fit the job's current state."
    default_code = "conflict"


class Gone(APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "The resource is no longer available."
    default_code = "gone"


REQUIRED = "This field is required."
SHOWN = 3  # problems spelled out in ``detail``; the rest are counted


def problems(errors, prefix: str = "") -> list[tuple[str, str]]:
    """Every (dotted field, message) of DRF field errors, in order."""
    if isinstance(errors, dict):
        found = []
        for key, value in errors.items():
            name = "" if key == "non_field_errors" else str(key)
            found += problems(value, f"{prefix}.{name}" if prefix and name else (name or prefix))
        return found
    if isinstance(errors, list):
        return [item for value in errors for item in problems(value, prefix)]
    return [(prefix, str(errors))]


def summary(errors) -> str:
    """``detail`` for field errors: every missing field by name, then the first other
    problems, so that ``detail`` alone says what to fix."""
    found = problems(errors)
    missing = [where for where, message in found if message == REQUIRED]
    others = [f"{where}: {message}" if where else message
              for where, message in found if message != REQUIRED]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)} (required)")
    parts += others[:SHOWN]
    text = "Invalid input: " + "; ".join(parts)
    more = len(others) - SHOWN
    if more > 0:
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return text


def exception_handler(exc, context):
    """DRF's handler; every error body is JSON with a readable ``detail``.

    Field errors stay machine-readable under ``errors``.
    """
    if isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, list):
        data = {"non_field_errors": data}
    if isinstance(data, dict) and "detail" not in data:
        response.data = {"detail": summary(data), "errors": data}
    return response
