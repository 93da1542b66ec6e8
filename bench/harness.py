"""Shared set-up for the benchmarks: a fresh database, Dropbox folder and workers.

Every benchmark is one command (``python bench/<name>.py [--db sqlite|postgres]``)
that prints its figures. PostgreSQL runs come from tools/pgtest.py, the same
throwaway server the tests use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parse_args(description: str, **extra) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    for name, (kind, default, help_text) in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default,
                            help=help_text)
    return parser.parse_args()


class Bench:
    """Environment for one benchmark run; use as a context manager."""

    def __init__(self, name: str, db: str, **settings):
        self.name = name
        self.db = db
        self.root = REPO / "var" / "bench" / f"{name}-{db}"
        self.workers: list[subprocess.Popen] = []
        self.pg_dir = REPO / "var" / "bench" / "postgres"
        self.settings = settings

    def __enter__(self):
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "Dropbox" / "projects").mkdir(parents=True)
        if self.db == "postgres":
            url = self._start_postgres()
        else:
            url = f"sqlite:///{self.root / 'bench.sqlite3'}"
        env = {
            "DEBUG": "true",
            "ENV_FILE": str(self.root / "none.env"),
            "DATA_DIR": str(self.root),
            "DATABASE_URL": url,
            "DROPBOX_PATH": str(self.root / "Dropbox"),
            "RENDER_TEMP_DIR": str(self.root / "tmp"),
            "LOG_LEVEL": "WARNING",
            "MIN_FILE_AGE_SECONDS": "0",
            "STABILITY_CHECK_SECONDS": "0",
            "VALIDATION_INTERVAL_SECONDS": "0.1",
        }
        env.update({k: str(v) for k, v in self.settings.items()})
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "rendermanager.settings"
        import django

        django.setup()
        from django.core.management import call_command

        from jobs.node.simulator import install

        call_command("migrate", verbosity=0)
        binary = install(self.root / "aerender")
        self.aerender = binary
        os.environ["AERENDER_PATH"] = str(binary)
        from django.conf import settings

        settings.AERENDER_PATH = str(binary)
        return self

    def _start_postgres(self) -> str:
        out = subprocess.run([sys.executable, str(REPO / "tools" / "pgtest.py"), "start",
                              str(self.pg_dir)], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"could not start PostgreSQL: {out.stderr.strip() or out.stdout.strip()}")
        server = out.stdout.strip().splitlines()[-1]
        base, _, _ = server.rpartition("/")
        dbname = f"bench_{self.name}"
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return f"{base}/{dbname}"

    def project(self, name: str, **behaviour) -> Path:
        path = self.root / "Dropbox" / "projects" / name
        path.write_text(json.dumps({"frames": 1, "fps": 25, "frame_seconds": 0, **behaviour}))
        stamp = time.time() - 3600
        os.utime(path, (stamp, stamp))
        return path

    def start_worker(self, node: str = "bench-node", **extra) -> subprocess.Popen:
        env = dict(os.environ, **{k: str(v) for k, v in extra.items()})
        # The child keeps its own copy of the file descriptor.
        with open(self.root / f"worker-{node}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, str(REPO / "manage.py"), "render_worker",
                                     "--node", node], cwd=REPO, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def wait_worker_ready(self, node: str = "bench-node", timeout: float = 30) -> None:
        from jobs.models import RenderNode

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if RenderNode.objects.filter(name=node, stopped_at__isnull=True).exists():
                time.sleep(0.5)  # let it reach its idle wait
                return
            time.sleep(0.05)
        sys.exit(f"worker {node} did not start; see {self.root}/worker-{node}.log")

    @contextlib.contextmanager
    def daphne(self, port: int):
        """daphne serving the app on ``port`` (as `make run` does), up and answering."""
        import requests

        log = open(self.root / "daphne.log", "wb")  # noqa: SIM115 (lives as long as daphne)
        proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p",
                                 str(port), "rendermanager.asgi:application"], cwd=REPO,
                                env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit(f"daphne did not start; see {self.root / 'daphne.log'}")
                time.sleep(0.2)
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            log.close()

    def __exit__(self, *exc):
        stop_processes(self.workers, timeout=15)
        from django.db import connections

        connections.close_all()
        if self.db == "postgres":
            subprocess.run([sys.executable, str(REPO / "tools" / "pgtest.py"), "stop",
                            str(self.pg_dir)], capture_output=True)
        return False


def stop_processes(procs, timeout: float) -> None:
    """Terminate each process still running; kill one that takes longer than ``timeout``."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary(label: str, values, unit: str = "ms", scale: float = 1000.0) -> str:
    scaled = [v * scale for v in values]
    return (f"{label}: n={len(scaled)} p50={percentile(scaled, 50):.1f}{unit} "
            f"p95={percentile(scaled, 95):.1f}{unit} max={max(scaled):.1f}{unit} "
            f"mean={statistics.fmean(scaled):.1f}{unit}")
