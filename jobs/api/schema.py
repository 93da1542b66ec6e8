"""OpenAPI descriptions that drf-spectacular cannot infer."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Token",
            "description": "A client's token, from `python manage.py create_api_token "
                           "<client>` or an API_TOKEN_<CLIENT> environment variable.",
        }
