"""Plain helpers shared by every test folder: the farm of real worker processes,
simulator projects, waiting for a condition, and skipping what is missing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() == "true"


def requires(what: str, how: str):
    """Skip outside CI when an optional piece is missing; fail in CI."""
    if CI:
        pytest.fail(f"{what} is missing in CI: {how}")
    pytest.skip(f"{what} is missing: {how}")


def signed_in(client, user):
    client.force_login(user)
    return client


def end_sessions(person) -> None:
    """``person`` signed out everywhere (elsewhere, or their sessions expired)."""
    from django.contrib.sessions.models import Session

    Session.objects.filter(pk__in=[
        session.pk for session in Session.objects.all()
        if session.get_decoded().get("_auth_user_id") == str(person.pk)]).delete()


def database_url() -> str:
    """A URL for the database the tests are using right now (the test database)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    host = db["HOST"] or "localhost"
    if host.startswith("/"):
        # dj-database-url reads a socket directory from the host part, quoted.
        from urllib.parse import quote

        host = quote(host, safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{db['NAME']}"


def make_project(dropbox: Path, name: str = "spot.aep", age: float = 120, **behaviour) -> Path:
    """A simulator project file (JSON standing in for an .aep), aged ``age`` seconds."""
    path = dropbox / "projects" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"frames": 10, "fps": 25, "frame_seconds": 0.01, **behaviour}))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


class Farm:
    """Settings shared by this test process and the worker processes it starts."""

    def __init__(self, settings, dropbox: Path, simulator: Path, tmp_path: Path):
        self.settings = settings
        self.dropbox = dropbox
        self.simulator = simulator
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen] = []
        # Node names are unique per test: a starting node kills every render
        # process marked with its name on this machine, including those of
        # other test runs going on at the same time.
        self.tag = uuid.uuid4().hex[:6]
        self.overrides: dict[str, object] = {}
        self.configure(MIN_FILE_AGE_SECONDS=0, STABILITY_CHECK_SECONDS=0.2,
                       VALIDATION_INTERVAL_SECONDS=0.2, VALIDATION_ATTEMPTS=10,
                       SAVED_AT_TOLERANCE_SECONDS=2, NODE_TIMEOUT_SECONDS=30,
                       HEARTBEAT_SECONDS=1, RENDER_STALL_SECONDS=600, MAX_RENDER_ATTEMPTS=3,
                       WORKER_POLL_SECONDS=0.2, PROGRESS_WRITE_SECONDS=0.2)

    def configure(self, **values):
        for key, value in values.items():
            setattr(self.settings, key, value)
            self.overrides[key] = value

    def env(self, **extra) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "rendermanager.settings",
            "DEBUG": "true",
            "ENV_FILE": str(self.tmp_path / "no.env"),
            "DROPBOX_PATH": str(self.settings.DROPBOX_PATH),
            "RENDER_OUTPUT_DIR": str(self.settings.RENDER_OUTPUT_DIR),
            "RENDER_TEMP_DIR": str(self.settings.RENDER_TEMP_DIR),
            "AERENDER_PATH": str(self.settings.AERENDER_PATH),
            "RENDER_ENGINE": str(self.settings.RENDER_ENGINE),
            "PYTHONUNBUFFERED": "1",
        })
        env.update({key: str(value) for key, value in self.overrides.items()})
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def node(self, name: str = "node-a") -> str:
        return f"{name}-{self.tag}"

    def start_worker(self, node: str = "node-a", hooked: bool = False,
                     **extra_env) -> subprocess.Popen:
        """A render_worker process; ``hooked``: through tests/helpers/hooked_worker.py,
        whose TEST_* variables (in ``extra_env``) inject faults."""
        node = self.node(node)
        log_path = self.tmp_path / f"worker-{node}-{len(self.processes)}.log"
        entry = [str(REPO / "tests" / "helpers" / "hooked_worker.py")] if hooked else \
            [str(REPO / "manage.py"), "render_worker"]
        # The child keeps its own copy of the file descriptor.
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, *entry, "--node", node],
                cwd=REPO, env=self.env(**extra_env), stdout=log, stderr=subprocess.STDOUT,
            )
        proc.log_path = log_path
        self.processes.append(proc)
        return proc

    def worker_log(self, proc) -> str:
        return Path(proc.log_path).read_text(errors="replace")

    def stop(self):
        import psutil

        from jobs.node.procs import kill_tree

        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    kill_tree(proc.pid)
                proc.wait(timeout=10)


def wait_for(predicate, timeout: float = 30, interval: float = 0.05, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"timed out after {timeout}s waiting for {predicate}")


def at_once(count: int, action) -> tuple[list, list]:
    """Run ``action(n)`` for n in range(count) on threads released together (a race).
    Returns (results, exceptions); every thread closes its database connection."""
    import threading

    barrier = threading.Barrier(count)
    results, errors = [], []

    def run(n):
        try:
            barrier.wait()
            results.append(action(n))
        except Exception as exc:  # the caller asserts on them
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors
