"""nexrender's own server and worker: the peer the render benchmarks compare with.

Installed on demand with npm into var/bench/peers/ (never a dependency of the
project): @nexrender/server and @nexrender/worker of the same major version as
the pinned @nexrender/cli in package.json. The worker runs as its README says
(``nexrender-worker --host ... --binary ... --workpath ...``), polling the
server every NEXRENDER_API_POLLING milliseconds (30 000 by default), with the
same aerender simulator as ours, so the simulator's own times
(AERENDER_SIM_TIMES) say how long aerender itself ran on both sides.

On Linux it gets the same start-up workaround as our nexrender engine
(jobs/node/engines/nexrender_linux_preload.js): @nexrender/core has no table of
After Effects paths for Linux and crashes without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import requests
from harness import REPO, free_port, stop_processes

PEERS = REPO / "var" / "bench" / "peers"
PRELOAD = REPO / "jobs" / "node" / "engines" / "nexrender_linux_preload.js"
DEFAULT_POLLING_MS = 30_000  # @nexrender/worker's own default (src/index.js)
# The benchmarks' --peer-polling: nexrender peers to run, by NEXRENDER_API_POLLING.
POLLING_ARG = (str, "default,1000",
               "nexrender peers to run, by NEXRENDER_API_POLLING (ms, or 'default' for "
               "its own 30 s); empty: no peer")


def pollings(text: str) -> list[int | None]:
    """--peer-polling as NEXRENDER_API_POLLING values (None: the worker's default)."""
    return [None if part == "default" else int(part) for part in text.split(",") if part]


def pinned_major() -> str:
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["@nexrender/cli"]
    return pinned.lstrip("^~=").split(".")[0]


def install() -> tuple[Path, dict]:
    """The peer's install folder (installed now if it is not yet) and its versions."""
    major = pinned_major()
    folder = PEERS / f"nexrender-{major}"
    wanted = ("server", "worker")
    if not all((folder / "node_modules" / "@nexrender" / name / "package.json").is_file()
               for name in wanted):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"private": true}\n')
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("the nexrender peer needs npm (Node 20) to install")
        print(f"installing the peer: @nexrender/server@{major} @nexrender/worker@{major} "
              f"into {folder.relative_to(REPO)} ...", flush=True)
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--legacy-peer-deps",
                               f"@nexrender/server@{major}", f"@nexrender/worker@{major}"],
                              cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"npm could not install the peer:\n{done.stderr[-2000:]}")
    versions = {}
    for name in ("server", "worker", "core"):
        meta = folder / "node_modules" / "@nexrender" / name / "package.json"
        versions[name] = json.loads(meta.read_text())["version"]
    return folder, versions


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class NexrenderPeer:
    """A nexrender server and one worker; use as a context manager."""

    def __init__(self, root: Path, aerender: str, times_file: Path,
                 polling_ms: int | None = None):
        self.root = Path(root)
        self.aerender = aerender
        self.times_file = times_file
        self.polling_ms = polling_ms
        self.folder, self.versions = install()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.procs: list[subprocess.Popen] = []
        self.workpath = self.root / "work"

    @property
    def label(self) -> str:
        polling = "default polling (30 s)" if self.polling_ms is None \
            else f"NEXRENDER_API_POLLING={self.polling_ms}"
        return (f"nexrender-server {self.versions['server']} + nexrender-worker "
                f"{self.versions['worker']} (core {self.versions['core']}), {polling}")

    def _bin(self, name: str) -> str:
        return str(self.folder / "node_modules" / "@nexrender" / name / "src" / "bin.js")

    def _env(self) -> dict:
        env = dict(os.environ)
        env.pop("NEXRENDER_API_POLLING", None)
        if self.polling_ms is not None:
            env["NEXRENDER_API_POLLING"] = str(self.polling_ms)
        env.update({
            # The worker cannot turn analytics off: keep its id file out of $HOME.
            "HOME": str(self.root / "home"), "USERPROFILE": str(self.root / "home"),
            "NEXRENDER_DATABASE": str(self.root / "database.json"),
            "NEXRENDER_ENABLE_AELOG_PROJECT_FOLDER": "true",
            "AERENDER_SIM_TIMES": str(self.times_file),
            "FORCE_COLOR": "0", "NO_COLOR": "1",
        })
        if sys.platform not in ("win32", "darwin"):
            env["NODE_OPTIONS"] = f"--require {PRELOAD}"
        return env

    def __enter__(self) -> NexrenderPeer:
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "home").mkdir(parents=True)
        self.workpath.mkdir()
        env = self._env()
        self._start("server", ["node", self._bin("server"), "--port", str(self.port)], env)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    break
            if time.monotonic() > deadline:
                sys.exit(f"nexrender-server did not start; see {self.root / 'server.log'}")
            time.sleep(0.1)
        return self

    def start_worker(self) -> None:
        self._start("worker", ["node", self._bin("worker"), "--host",
                               f"http://127.0.0.1:{self.port}", "--binary", self.aerender,
                               "--workpath", str(self.workpath)], self._env())

    def _start(self, name: str, argv: list[str], env: dict) -> None:
        with open(self.root / f"{name}.log", "wb") as log:
            self.procs.append(subprocess.Popen(argv, cwd=self.root, env=env, stdout=log,
                                               stderr=subprocess.STDOUT))

    def job_json(self, uid: str, project: Path) -> dict:
        # As our engine builds it (jobs.node.engines.nexrender.build_job): core 1.63.3
        # cannot download a template without a name.
        return {"uid": uid, "template": {"src": project.as_uri(), "composition": "main",
                                         "name": f"project{project.suffix}"}}

    def submit(self, uid: str, project: Path) -> None:
        response = requests.post(f"{self.url}/jobs", json=self.job_json(uid, project), timeout=10)
        response.raise_for_status()

    def job(self, uid: str) -> dict:
        return requests.get(f"{self.url}/jobs/{uid}", timeout=10).json()

    def wait_done(self, uids, timeout: float) -> dict[str, dict]:
        """Wait until every job in ``uids`` is finished or failed; their last states."""
        deadline = time.monotonic() + timeout
        pending = set(uids)
        while True:
            listing = requests.get(f"{self.url}/jobs", timeout=10).json()
            done = {job["uid"]: job for job in listing
                    if job["uid"] in pending and job["state"] in ("finished", "error")}
            if len(done) == len(pending):
                return done
            if time.monotonic() > deadline:
                sys.exit(f"the nexrender peer did not finish in {timeout:.0f} s; "
                         f"see {self.root / 'worker.log'}")
            time.sleep(0.05)

    @staticmethod
    def finished_at(job: dict) -> float:
        """When the worker reported the job finished (the server's updatedAt)."""
        return _stamp(job["updatedAt"])

    def __exit__(self, *exc) -> None:
        stop_processes(reversed(self.procs), timeout=10)


def aerender_times(times_file: Path) -> list[dict]:
    """What the simulator wrote: one {"start", "end", "output", ...} per run."""
    if not times_file.exists():
        return []
    return [json.loads(line) for line in times_file.read_text().splitlines() if line.strip()]


def aerender_runs_by_key(times_file: Path, keys) -> dict[str, dict]:
    """The simulator's run for each key (a job uid or id hex) found in its -output path."""
    runs = {}
    for run in aerender_times(times_file):
        output = run.get("output") or ""
        for key in keys:
            if key in output:
                runs[key] = run
    return runs
