from rest_framework import authentication, exceptions

from accounts.models import ApiToken

HEADER = "HTTP_X_API_TOKEN"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``X-API-Token: <token>``: the request acts as that token's client."""

    def authenticate(self, request):
        text = request.META.get(HEADER)
        if text is None:
            return None
        client = ApiToken.verify(text.strip())
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid API token.")
        return (client, client)

    def authenticate_header(self, request):
        # Without this DRF answers 403 instead of 401 for a missing token.
        return 'X-API-Token realm="api"'
