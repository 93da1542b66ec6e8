"""The ASGI application: HTTP through Django, websockets through Channels. The web
server's entry point (rendermanager/asgi.py) serves it; tests drive it in-process."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rendermanager.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from jobs.web.consumers import websocket_urlpatterns  # noqa: E402
from rendermanager.backpressure import with_backpressure  # noqa: E402

application = ProtocolTypeRouter({
    # Large downloads are paced by the client's socket (rendermanager.backpressure).
    "http": with_backpressure(django_asgi_app),
    # The session cookie identifies the user; the Origin check stops other
    # sites from opening a socket with that cookie.
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
