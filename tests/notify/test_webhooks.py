"""Webhooks to a local HTTP receiver: signed, refused for private targets by
default, and a slow receiver times out without holding up the worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from jobs import lifecycle
from jobs.links import check_download_signature
from jobs.models import Job, Status
from jobs.notify import webhooks
from tests.helpers.common import wait_for
from tests.helpers.farm import event_time, submit, use_aerender, wait_status

SECRET = "webhook-test-secret"


class Receiver:
    """Records every POST; answers ``status`` after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0, status: int = 200):
        self.delay = delay
        self.status = status
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body, "at": time.time()})
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(receiver.status)
                    if receiver.status in (301, 302):
                        self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/render?source=test"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def loopback_ok(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_SECRET = SECRET
    return settings


def verify_like_a_receiver(request: dict) -> dict:
    """What a receiving service does with the raw body and the two headers."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    timestamp = headers["x-render-timestamp"]
    assert abs(time.time() - int(timestamp)) < 60
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request["body"],
                        hashlib.sha256).hexdigest()
    assert headers["x-render-signature"] == f"sha256={expected}"
    assert webhooks.verify(request["body"], timestamp, headers["x-render-signature"], SECRET)
    assert headers["content-type"] == "application/json"
    return json.loads(request["body"])


# --- With a real render worker --------------------------------------------------------


@pytest.mark.slow
def test_completion_webhook_is_signed_and_carries_the_download_link(farm, user, receiver):
    use_aerender(farm)
    farm.configure(WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_SECRET=SECRET)
    farm.start_worker()
    job = submit(farm, user, "hooked.aep", callback_url=receiver.url, frames=6)
    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.error
    wait_for(lambda: receiver.requests, timeout=10, message="no webhook arrived")
    [request] = receiver.requests
    assert request["path"] == "/hooks/render?source=test"
    body = verify_like_a_receiver(request)
    assert set(body) == {"job_id", "event", "status", "output_url", "preview_url", "error"}
    assert (body["event"], body["preview_url"]) == ("completed", None)
    assert body["job_id"] == str(job.pk)
    assert body["status"] == "COMPLETED" and body["error"] is None
    link = urlsplit(body["output_url"])
    assert link.path == f"/api/jobs/{job.pk}/download"
    assert check_download_signature(job.pk, parse_qs(link.query)["signature"][0]) is None


@pytest.mark.slow
def test_a_slow_receiver_times_out_without_delaying_the_worker(farm, user):
    slow = Receiver(delay=10)
    try:
        use_aerender(farm)
        farm.configure(WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_SECRET=SECRET,
                       WEBHOOK_TIMEOUT_SECONDS=1)
        worker = farm.start_worker()
        first = submit(farm, user, "one.aep", callback_url=slow.url, frames=6)
        wait_status(first, Status.COMPLETED, Status.FAILED)
        second = submit(farm, user, "two.aep", callback_url=slow.url, frames=6)
        wait_status(second, Status.COMPLETED, Status.FAILED)
        assert (first.status, second.status) == (Status.COMPLETED, Status.COMPLETED)
        # The second job started right after the first, not after the webhook gave up.
        assert (event_time(second, Status.RENDERING) - event_time(first, Status.COMPLETED)
                < timedelta(seconds=3))
        wait_for(lambda: farm.worker_log(worker).count("timed out after 1 s") >= 2,
                 timeout=15, message=farm.worker_log(worker))
        assert worker.poll() is None
    finally:
        slow.close()


# --- Direct ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cancel_and_failure_send_webhooks(loopback_ok, receiver, user):
    cancelled = Job.objects.create(name="a.aep", user=user, status=Status.QUEUED,
                                   callback_url=receiver.url)
    failed = Job.objects.create(name="b.aep", user=user, status=Status.VALIDATING,
                                callback_url=receiver.url)
    silent = Job.objects.create(name="c.aep", user=user, status=Status.QUEUED)
    lifecycle.cancel(cancelled.pk, actor="admin@studio.test", reason="Cancelled by Ada")
    lifecycle.fail_validation(failed.pk, "The project file never finished syncing")
    lifecycle.cancel(silent.pk, actor="admin@studio.test")
    assert webhooks.dispatcher.flush(10)
    bodies = {b["job_id"]: b for b in (verify_like_a_receiver(r) for r in receiver.requests)}
    assert bodies == {
        str(cancelled.pk): {"job_id": str(cancelled.pk), "event": "cancelled",
                            "status": "CANCELLED", "output_url": None, "preview_url": None,
                            "error": "Cancelled by Ada"},
        str(failed.pk): {"job_id": str(failed.pk), "event": "failed", "status": "FAILED",
                         "output_url": None, "preview_url": None,
                         "error": "The project file never finished syncing"},
    }


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "10.1.2.3", "172.16.0.9", "192.168.1.20", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "[::1]", "[fe80::1]", "[fd00::1]",
    "[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]",
    # 6to4 of loopback and of a public address, site-local, NAT64 of private addresses,
    # Teredo, IPv4-compatible.
    "[2002:7f00:1::1]", "[2002:808:808::1]", "[fec0::1]", "[feff::1]", "[64:ff9b::7f00:1]",
    "[64:ff9b::a00:1]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::a00:1]",
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "[::127.0.0.1]",
])
def test_private_targets_are_refused_by_default(settings, host):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    result = webhooks.post(f"http://{host}:9/hook", {"job_id": "x"})
    assert not result.ok
    assert result.error.startswith("refused:"), result.error
    assert "WEBHOOK_ALLOW_PRIVATE" in result.error


def test_a_refused_target_is_never_contacted(settings, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    result = webhooks.post(receiver.url, {"job_id": "x"})
    assert result.error.startswith("refused:")
    time.sleep(0.2)
    assert receiver.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost",
                                 "gopher://127.0.0.1/"])
def test_only_http_urls_are_called(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert webhooks.post(url, {}).error.startswith("refused:")


def test_public_addresses_are_allowed():
    assert webhooks.is_public("8.8.8.8")
    assert webhooks.is_public("2606:4700:4700::1111")
    assert not webhooks.is_public("::ffff:192.168.0.1")
    # NAT64 of a public IPv4 address is that public address (IPv6-only networks).
    assert webhooks.is_public("64:ff9b::808:808")
    assert webhooks.is_public("::ffff:8.8.8.8")


def test_a_slow_receiver_times_out(settings):
    slow = Receiver(delay=5)
    try:
        settings.WEBHOOK_ALLOW_PRIVATE = True
        started = time.monotonic()
        result = webhooks.post(slow.url, {"job_id": "x"}, timeout=0.5)
        assert time.monotonic() - started < 2
        assert result.error == "timed out after 0.5 s"
    finally:
        slow.close()


def test_redirects_are_not_followed_and_errors_reported(settings):
    moved = Receiver(status=302)
    try:
        settings.WEBHOOK_ALLOW_PRIVATE = True
        result = webhooks.post(moved.url, {"job_id": "x"})
        assert (result.status, result.error, result.ok) == (302, "HTTP 302", False)
        assert len(moved.requests) == 1
    finally:
        moved.close()


def test_without_a_secret_the_call_is_unsigned(settings, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_SECRET = ""
    assert webhooks.post(receiver.url, {"job_id": "x"}).ok
    headers = {k.lower() for k in receiver.requests[0]["headers"]}
    assert "x-render-signature" not in headers and "x-render-timestamp" in headers


def test_verify_rejects_old_or_tampered_calls():
    body = b'{"job_id":"x"}'
    stamp = int(time.time())
    signature = webhooks.sign(body, stamp, SECRET)
    assert webhooks.verify(body, str(stamp), signature, SECRET)
    assert not webhooks.verify(body + b" ", str(stamp), signature, SECRET)
    assert not webhooks.verify(body, str(stamp - 3600), webhooks.sign(body, stamp - 3600, SECRET),
                               SECRET)
    assert not webhooks.verify(body, str(stamp), signature, "other-secret")


@pytest.mark.django_db(transaction=True)
def test_a_preview_ready_for_review_calls_the_webhook(loopback_ok, receiver, user):
    from jobs.links import check_preview_signature
    from jobs.models import JobPreview, RenderNode

    job = Job.objects.create(name="Ana-1", user=user, status=Status.QUEUED, review=True,
                             needs_preview=True, callback_url=receiver.url)
    claimed = lifecycle.claim_next(RenderNode.objects.create(name="render-01"))
    JobPreview.objects.create(job=job, path="/r/previews/x.mp4", size=10)
    assert lifecycle.preview_ready(claimed.pk, claimed.lease)
    lifecycle.reject(job.pk, actor="alice@studio.test", comment="Too dark")
    assert webhooks.dispatcher.flush(10)

    # Two delivery threads: the calls may arrive in either order.
    bodies = {b["event"]: b for b in (verify_like_a_receiver(r) for r in receiver.requests)}
    review, rejected = bodies["awaiting_review"], bodies["rejected"]
    assert (review["event"], review["status"], review["output_url"], review["error"]) == (
        "awaiting_review", "AWAITING_REVIEW", None, None)
    link = urlsplit(review["preview_url"])
    assert link.path == f"/api/jobs/{job.pk}/preview"
    assert check_preview_signature(job.pk, parse_qs(link.query)["signature"][0]) is None
    assert (rejected["event"], rejected["error"]) == (
        "rejected", "Rejected by alice@studio.test: Too dark")
