"""PostgreSQL restarted (``pg_ctl restart -m fast``) under two rendering nodes:
a short pause, then every job completes, none stays RENDERING, none uses a
second attempt, and no job ever renders twice at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests
from django.db import connection

from jobs.models import Job, JobEvent, RenderNode, Status
from jobs.submission.paths import output_file
from tests.faults.conftest import report
from tests.helpers import browser as browser_helpers
from tests.helpers.common import REPO, requires, wait_for
from tests.helpers.farm import RenderWatcher

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

daphne = browser_helpers.daphne


def restart_postgres() -> float:
    folder = os.environ.get("PGTEST_DIR")
    if not folder:
        requires("PGTEST_DIR (the throwaway server of tools/pgtest.py)",
                 "run the PostgreSQL pass through `make test-postgres` or `tools/pgtest.py run`")
    began = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "tools" / "pgtest.py"), "restart", folder],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    connection.close()  # this test's own session ended with the restart
    return time.monotonic() - began


def heartbeats_after(names, since_db) -> bool:
    return RenderNode.objects.filter(name__in=names, last_heartbeat__gt=since_db).count() \
        == len(names)


def db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def test_a_database_restart_under_two_rendering_nodes_costs_a_pause_only(farm, queued_jobs):
    farm.configure(NODE_TIMEOUT_SECONDS=10, HEARTBEAT_SECONDS=0.5)
    jobs = queued_jobs(6, frames=60, frame_seconds=0.05)  # ~3 s of rendering each
    names = [farm.node("node-a"), farm.node("node-b")]
    with RenderWatcher(farm) as watcher:
        farm.start_worker("node-a")
        farm.start_worker("node-b")
        # Both nodes in the middle of a render (frames done, not finished).
        wait_for(lambda: Job.objects.filter(status=Status.RENDERING, frames_done__gt=5)
                 .count() == 2, timeout=60, message="the two nodes never rendered at once")
        restarts = []
        for _ in range(2):
            took = restart_postgres()
            since = db_now()
            back = time.monotonic()
            wait_for(lambda since=since: heartbeats_after(names, since), timeout=20,
                     interval=0.1, message="a node did not heartbeat after the restart")
            restarts.append((took, time.monotonic() - back))
            # The second restart hits the next renders, whatever they are doing.
            wait_for(lambda: Job.objects.filter(status=Status.RENDERING).exists(), timeout=30)
        wait_for(lambda: not Job.objects.exclude(status__in=[Status.COMPLETED,
                                                             Status.FAILED]).exists(),
                 timeout=90, interval=0.2, message="jobs did not finish after the restarts")

    finished = {job.pk: job for job in Job.objects.filter(pk__in=[j.pk for j in jobs])}
    attempts = sorted(job.attempts for job in finished.values())
    claims = JobEvent.objects.filter(job__in=jobs, to_status=Status.RENDERING, kind="status")
    report("postgres restart", restarts=len(restarts),
           restart_seconds=[round(took, 2) for took, _ in restarts],
           heartbeat_back_after_seconds=[round(back, 2) for _, back in restarts],
           attempts=attempts, claims=claims.count(), most_renders_at_once=watcher.worst,
           jobs_watched=len(watcher.rendered), samples=watcher.samples)
    assert {job.status for job in finished.values()} == {Status.COMPLETED}, \
        [(job.name, job.status, job.error) for job in finished.values()]
    assert attempts == [1] * len(jobs)
    assert claims.count() == len(jobs)
    assert not JobEvent.objects.filter(job__in=jobs, kind__in=["retry", "node_lost",
                                                                "requeued"]).exists()
    assert watcher.worst == 1
    assert len(watcher.rendered) == len(jobs)
    for job in finished.values():
        assert output_file(job.output_path).stat().st_size == job.output_size > 0
    # A short pause: both nodes were heartbeating again within seconds.
    assert all(back < 10 for _, back in restarts), restarts


def test_the_web_process_answers_at_once_after_a_database_restart(daphne, api_token, user):
    # The web process keeps its connections in a pool (rendermanager/asgi.py): one a
    # restart broke must be replaced before a request gets it, not answer 500.
    Job.objects.create(user=user, client="bravo", status=Status.QUEUED,
                       project_path="D:\\Dropbox\\spot.aep")
    headers = {"X-API-Token": api_token}

    def listed() -> int:
        response = requests.get(f"{daphne.base}/api/jobs?status=QUEUED", headers=headers,
                                timeout=10)
        assert response.status_code == 200, response.text[:300]
        return response.json()["count"]

    assert listed() == 1  # the pool now holds the connection this used
    restart_postgres()
    # The very first requests after it: none may fail.
    assert [listed() for _ in range(3)] == [1, 1, 1]
