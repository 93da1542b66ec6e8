"""Backpressure for HTTP responses served by daphne.

daphne writes every ``http.response.body`` message straight into Twisted's
send buffer and returns at once, so an application that produces faster
than the client reads (a 2 GiB render to a browser on the studio Wi-Fi)
piles the whole file up in the web process. Twisted itself knows when its
buffer is full: it pauses a registered push producer and resumes it once
the socket has drained. ``with_backpressure`` registers such a producer for
each streamed response and makes ``send`` wait while it is paused, so at
most about one chunk per connection sits in memory.

Other ASGI servers (uvicorn, hypercorn, the test clients) either pace
``send`` themselves or buffer by design; they get the application as it is.
"""

from __future__ import annotations

import asyncio
import functools

from twisted.internet.interfaces import IPushProducer
from twisted.web.http import Request
from zope.interface import implementer


@implementer(IPushProducer)
class Pacer:
    """Told by Twisted when the connection's send buffer is full (pause) and when
    it has drained (resume)."""

    def __init__(self):
        self.writable = asyncio.Event()
        self.writable.set()

    def pauseProducing(self):  # noqa: N802  (Twisted's interface)
        self.writable.clear()

    def resumeProducing(self):  # noqa: N802
        self.writable.set()

    def stopProducing(self):  # noqa: N802  (the connection is gone: daphne drops what follows)
        self.writable.set()


def daphne_request(send) -> Request | None:
    """The Twisted request behind daphne's ``send`` (``partial(handle_reply, request)``),
    or None under any other server."""
    if isinstance(send, functools.partial) and send.args and isinstance(send.args[0], Request):
        return send.args[0]
    return None


def with_backpressure(app):
    """``app`` with ``send`` paced by the client's socket under daphne (see the module doc)."""

    async def application(scope, receive, send):
        request = daphne_request(send) if scope.get("type") == "http" else None
        if request is None:
            return await app(scope, receive, send)
        pacer = None

        def release():
            nonlocal pacer
            if pacer is not None and request.producer is pacer and request.channel is not None:
                request.unregisterProducer()
            pacer = None

        async def paced_send(message):
            nonlocal pacer
            if message.get("type") != "http.response.body":
                return await send(message)
            more = message.get("more_body", False)
            if more and pacer is None and request.producer is None \
                    and request.channel is not None and not request.finished:
                pacer = Pacer()
                request.registerProducer(pacer, True)
            if not more:
                release()  # before daphne finishes the request and drops its channel
            await send(message)
            if more and pacer is not None:
                await pacer.writable.wait()

        try:
            return await app(scope, receive, paced_send)
        finally:
            release()

    return application
