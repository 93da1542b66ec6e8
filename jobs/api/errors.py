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


def _first_problem(errors, prefix: str = "") -> str:
    """"field.sub: message" for the first error, so ``detail`` alone says what to fix."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = "" if key == "non_field_errors" else str(key)
            where = f"{prefix}.{name}" if prefix and name else (name or prefix)
            return _first_problem(value, where)
    if isinstance(errors, list) and errors:
        return _first_problem(errors[0], prefix)
    return f"{prefix}: {errors}" if prefix else str(errors)


def _count(errors) -> int:
    if isinstance(errors, dict):
        return sum(_count(value) for value in errors.values())
    if isinstance(errors, list):
        return sum(_count(value) for value in errors) if errors else 0
    return 1


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
        detail = "Invalid input: " + _first_problem(data)
        more = _count(data) - 1
        if more > 0:
            detail += f" (and {more} more problem{'s' if more > 1 else ''})"
        response.data = {"detail": detail, "errors": data}
    return response
