from rest_framework.permissions import BasePermission

from accounts.models import ApiClient


def is_api_client(request) -> bool:
    return isinstance(request.user, ApiClient)


def session_user(request):
    """The person who submits for themselves: a signed-in session, or a personal token's
    person; None for a client's token (a service submits for the artist it names)."""
    user = request.user
    if isinstance(user, ApiClient):
        return user.user
    return user if getattr(user, "is_authenticated", False) else None


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
