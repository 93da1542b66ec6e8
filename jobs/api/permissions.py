from rest_framework.permissions import BasePermission

from accounts.models import ApiClient


def is_api_client(request) -> bool:
    return isinstance(request.user, ApiClient)


class IsApiClient(BasePermission):
    """Submissions come from services holding a token, never from a browser session."""

    message = ("Jobs are submitted by API clients with an X-API-Token header; a signed-in "
               "session cannot submit.")

    def has_permission(self, request, view):
        return is_api_client(request)


class IsAdminSession(BasePermission):
    """Queue control (cancel, priority) belongs to admins signed in to the dashboard."""

    message = "Only an admin signed in to the dashboard may do this."

    def has_permission(self, request, view):
        user = request.user
        return (not is_api_client(request) and user.is_authenticated
                and getattr(user, "is_admin", False))
