"""A local fake of the Slack Web API methods the manager uses, over real HTTP.

slack-sdk's WebClient talks to it unchanged (``SLACK_API_URL`` points here):
``conversations.open`` answers a DM channel id ``D<user>``, ``chat.postMessage``
records the message. ``delay`` slows every answer down; ``fail`` answers
``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Call:
    method: str
    params: dict
    authorization: str
    at: float


class FakeSlack:
    def __init__(self, delay: float = 0.0, fail: str = ""):
        self.delay = delay
        self.fail = fail
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                kind = self.headers.get("Content-Type", "")
                if "json" in kind:
                    params = json.loads(raw or "{}")
                else:
                    params = {k: v[0] for k, v in parse_qs(raw).items()}
                method = self.path.rsplit("/", 1)[-1]
                with fake._lock:
                    fake.calls.append(Call(method, params, self.headers.get("Authorization", ""),
                                           time.monotonic()))
                if fake.delay:
                    time.sleep(fake.delay)
                body = fake.answer(method, params)
                data = json.dumps(body).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout): fine

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, params: dict) -> dict:
        if self.fail:
            return {"ok": False, "error": self.fail}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(params.get("users", "?"))}}
        if method == "chat.postMessage":
            return {"ok": True, "channel": params.get("channel"), "ts": f"{time.time():.6f}"}
        return {"ok": False, "error": "unknown_method"}

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/api"

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what was sent -----------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[dict]:
        with self._lock:
            return [c.params for c in self.calls if c.method == "chat.postMessage"
                    and (channel is None or c.params.get("channel") == channel)]

    def texts(self, channel: str | None = None) -> list[str]:
        return [m.get("text", "") for m in self.messages(channel)]

    def opened(self) -> list[str]:
        with self._lock:
            return [c.params.get("users") for c in self.calls if c.method == "conversations.open"]


def closed_port_url() -> str:
    """A loopback URL where nothing listens (a Slack that is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"
