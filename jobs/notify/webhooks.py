"""Webhooks: a POST to a job's ``callback_url`` when it completes, fails, is cancelled
or rejected, and when its preview is ready for review.

Body: ``{"job_id", "event", "status", "output_url", "preview_url", "error"}`` (JSON,
UTF-8). ``event`` is the status in lower case (``completed``, ``failed``,
``cancelled``, ``rejected``, ``awaiting_review``); ``preview_url`` is a signed
link to the review preview, for jobs that have one.

Signature: ``X-Render-Timestamp: <unix seconds>`` and
``X-Render-Signature: sha256=<hex>``, the HMAC-SHA256 with ``WEBHOOK_SECRET``
of ``"<timestamp>.<body>"``. A receiver recomputes it over the raw body and
rejects old timestamps (replays). Without a secret the call is unsigned.

Safety: only http(s); the host name is resolved once, every address must be
public (no loopback, private, link-local, multicast, reserved, unspecified;
no IPv6 tunnel or site-local forms; an IPv4 address inside IPv6 judged as
itself) unless ``WEBHOOK_ALLOW_PRIVATE=true``, and the connection goes to the checked
address (no second lookup for DNS rebinding to exploit). Redirects are not
followed. Each call is limited by ``WEBHOOK_TIMEOUT_SECONDS`` and runs on a
background thread, never on the worker's; failures are logged, not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from jobs.models import Status
from jobs.notify.dispatch import Dispatcher

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Render-Signature"
TIMESTAMP_HEADER = "X-Render-Timestamp"
USER_AGENT = "ae-render-manager-webhook/1"
MAX_RESPONSE_BYTES = 64 * 1024

dispatcher = Dispatcher("webhook", threads=2)


class WebhookRefused(Exception):
    """The callback URL may not be called (bad scheme, private address, ...)."""


@dataclass
class Delivery:
    url: str
    status: int | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# --- Signing -------------------------------------------------------------------


def sign(body: bytes, timestamp: int, secret: str | None = None) -> str:
    secret = settings.WEBHOOK_SECRET if secret is None else secret
    material = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), material, hashlib.sha256).hexdigest()


def verify(body: bytes, timestamp: str, signature: str, secret: str,
           max_age: float = 300, now: float | None = None) -> bool:
    """What a receiver does: check the signature and that the call is recent."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - stamp) > max_age:
        return False
    return hmac.compare_digest(sign(body, stamp, secret), signature or "")


# --- Where we may connect ---------------------------------------------------------


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
# IPv6 forms that reach IPv4 addresses (or a private network) whichever the IPv4 address:
# 6to4 (RFC 3056), Teredo, local-use NAT64 (RFC 8215), IPv4-compatible (deprecated),
# and site-local (fec0::/10, deprecated but still routed inside some networks).
TUNNELS = [ipaddress.ip_network(net) for net in
           ("2002::/16", "2001::/32", "64:ff9b:1::/48", "::/96", "fec0::/10")]


def is_public(address: str) -> bool:
    """Whether ``address`` is an ordinary public host. IPv6 forms that carry an IPv4
    address are judged by that address (IPv4-mapped, NAT64) or refused (tunnels)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.is_site_local or any(ip in net for net in TUNNELS):
            return False
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)


def resolve(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to) for ``url``, or WebhookRefused."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookRefused("only http and https callback URLs are called")
    host = parts.hostname
    if not host:
        raise WebhookRefused("the callback URL has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("the callback URL has an invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise WebhookRefused(f"cannot resolve {host}")
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        blocked = [a for a in addresses if not is_public(a)]
        if blocked:
            raise WebhookRefused(
                f"{host} resolves to a loopback/private/link-local address ({blocked[0]}); "
                "set WEBHOOK_ALLOW_PRIVATE=true to allow that")
    return scheme, host, port, addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # Certificate and SNI are checked against the host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


# --- Sending -------------------------------------------------------------------------


# Besides the final statuses (jobs.models.FINAL), the one a client acts on.
NOTIFIED = (Status.AWAITING_REVIEW,)


def payload(job, status: str | None = None) -> dict:
    from jobs.links import signed_download_url, signed_preview_url
    from jobs.models import JobPreview

    status = status or job.status
    output_url = signed_download_url(job) if status == Status.COMPLETED else None
    has_preview = JobPreview.objects.filter(job_id=job.pk).exists()
    quiet = status in (Status.COMPLETED, Status.AWAITING_REVIEW)
    return {"job_id": str(job.pk), "event": status.lower(), "status": status,
            "output_url": output_url,
            "preview_url": signed_preview_url(job) if has_preview else None,
            "error": None if quiet else (job.error or None)}


def post(url: str, data: dict, timeout: float | None = None) -> Delivery:
    """POST ``data`` to ``url`` now (on the calling thread). Never raises."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS if timeout is None else timeout
    started = time.monotonic()
    result = Delivery(url)
    body = json.dumps(data, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               TIMESTAMP_HEADER: str(timestamp)}
    if settings.WEBHOOK_SECRET:
        headers[SIGNATURE_HEADER] = sign(body, timestamp)
    connection = None
    try:
        scheme, host, port, address = resolve(url)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kind = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        connection = kind(host, port, address, timeout)
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        result.status = response.status
        if not result.ok:
            result.error = f"HTTP {response.status}"
    except WebhookRefused as exc:
        result.error = f"refused: {exc}"
    except TimeoutError:
        result.error = f"timed out after {timeout:g} s"
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if connection is not None:
            connection.close()
        result.seconds = time.monotonic() - started
    return result


def _deliver(url: str, data: dict) -> None:
    result = post(url, data)
    if result.ok:
        log.info("webhook for job %s delivered to %s (%s)", data["job_id"], url, result.status)
    else:
        log.warning("webhook for job %s to %s not delivered: %s", data["job_id"], url,
                    result.error)


def on_transition(sender, job_id, from_status, to_status, kind, actor, message, **_):
    """Receiver of lifecycle.job_transitioned: queue the callback, return at once."""
    from jobs.models import FINAL, Job

    if to_status not in FINAL and to_status not in NOTIFIED:
        return
    try:
        job = Job.objects.filter(pk=job_id).first()
        if job is None or not job.callback_url:
            return
        data = payload(job, to_status)
        dispatcher.submit(lambda: _deliver(job.callback_url, data), f"webhook for {job_id}")
    except Exception:
        log.exception("could not queue the webhook for job %s", job_id)
