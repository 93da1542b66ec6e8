"""API submissions per second with concurrent clients, and their p95 latency.

    python bench/api_throughput.py [--db sqlite|postgres] [--clients 8] [--requests 800]

Serves the app with daphne (as `make run` does) and submits jobs for distinct
projects from ``--clients`` threads over keep-alive HTTP connections.
"""

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

from harness import REPO, Bench, parse_args, percentile


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    args = parse_args(__doc__, clients=(int, 8, "concurrent clients"),
                      requests=(int, 800, "total submissions"))
    # The per-token rate limit would measure the throttle, not the server.
    with Bench("api", args.db, API_RATE_LIMIT="1000000/min") as bench:
        import os

        from accounts.models import ApiToken, MacUsername, User

        user = User.objects.create_user("bench", email="bench@studio.test")
        MacUsername.objects.create(user=user, name="bench")
        _, token = ApiToken.issue("bench")
        paths = [str(bench.project(f"a{n}.aep")) for n in range(args.requests)]
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "rendermanager.asgi:application"], cwd=REPO, env=dict(os.environ),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            latencies, statuses, lock = [], {}, threading.Lock()
            work = iter(paths)

            def client():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                while True:
                    with lock:
                        path = next(work, None)
                    if path is None:
                        break
                    body = json.dumps({"project_path": path, "mac_username": "bench",
                                       "saved_at": "2020-01-01T00:00:00Z",
                                       "nexrender": {"template": {"composition": "main"}}})
                    started = time.monotonic()
                    conn.request("POST", "/api/jobs", body=body, headers={
                        "X-API-Token": token, "Content-Type": "application/json"})
                    response = conn.getresponse()
                    response.read()
                    elapsed = time.monotonic() - started
                    with lock:
                        latencies.append(elapsed)
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                conn.close()

            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=10)
        ms = [v * 1000 for v in latencies]
        print(f"{len(latencies)} submissions from {args.clients} clients on {args.db} "
              f"in {wall:.2f} s: {len(latencies) / wall:.1f} submissions/s")
        print(f"latency p50={percentile(ms, 50):.1f}ms p95={percentile(ms, 95):.1f}ms "
              f"max={max(ms):.1f}ms; statuses {statuses}")


if __name__ == "__main__":
    main()
