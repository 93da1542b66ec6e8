"""Health figures for the admin panel: machine, disks, nodes with the render
process tree, queue depth samples and recent errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from django.utils import timezone

from jobs.models import Job, RenderNode, Status
from systemadmin import chores, events, health
from systemadmin.models import QueueSample
from tests.helpers.common import wait_for


def test_health_reports_cpu_memory_and_both_volumes(admin_client, dropbox, settings):
    settings.DISK_ALERT_PERCENT = 100
    body = admin_client.get("/api/system/health").json()
    assert 0 <= body["cpu"]["percent"] <= 100 and body["cpu"]["count"] >= 1
    assert body["memory"]["total"] == psutil.virtual_memory().total
    assert 0 < body["memory"]["percent"] < 100
    disks = {d["name"]: d for d in body["disks"]}
    assert set(disks) == {"dropbox", "temp"}
    assert disks["dropbox"]["path"] == str(dropbox)
    expected = psutil.disk_usage(str(dropbox))
    assert disks["dropbox"]["total"] == expected.total
    assert disks["dropbox"]["alert"] is False
    # The temp folder does not exist yet: its volume is still reported.
    assert not os.path.exists(settings.RENDER_TEMP_DIR)
    assert disks["temp"]["total"] > 0
    assert body["hostname"] == socket.gethostname()
    assert body["queue"] == {"pending": 0, "validating": 0, "queued": 0, "rendering": 0}


def test_nodes_show_state_job_and_the_render_process_tree(admin_client, user):
    # A stand-in render on this machine: a process with a child.
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
            "time.sleep(30)")
    render = subprocess.Popen([sys.executable, "-c", code])
    try:
        proc = psutil.Process(render.pid)
        wait_for(proc.children, timeout=5, message="the child did not start")
        here = socket.gethostname()
        busy = RenderNode.objects.create(name="node-a", hostname=here)
        RenderNode.objects.create(name="node-b", hostname=here)
        RenderNode.objects.create(name="node-c", hostname="elsewhere",
                                  last_heartbeat=timezone.now() - timedelta(minutes=5))
        spawned = datetime.fromtimestamp(proc.create_time(), tz=UTC)
        job = Job.objects.create(name="spot.aep", user=user, status=Status.RENDERING,
                                 node=busy, render_pid=render.pid, render_spawned_at=spawned,
                                 progress=42.0, phase="rendering")
        nodes = {n["name"]: n for n in admin_client.get("/api/system/health").json()["nodes"]}
        assert {k: n["state"] for k, n in nodes.items()} == {
            "node-a": "rendering", "node-b": "idle", "node-c": "down"}
        assert nodes["node-a"]["job"]["id"] == str(job.pk)
        assert nodes["node-a"]["job"]["progress"] == 42.0
        assert nodes["node-a"]["job"]["user"] == user.email
        tree = nodes["node-a"]["processes"]
        assert [p["pid"] for p in tree][:1] == [render.pid]
        assert len(tree) == 2 and tree[1]["ppid"] == render.pid
        assert all(p["memory_rss"] > 0 and p["cpu_percent"] >= 0 for p in tree)
        assert nodes["node-c"]["heartbeat_age_seconds"] >= 299
        # A reused pid (another start time) shows no tree.
        Job.objects.filter(pk=job.pk).update(render_spawned_at=spawned - timedelta(hours=1))
        nodes = {n["name"]: n for n in admin_client.get("/api/system/health").json()["nodes"]}
        assert nodes["node-a"]["processes"] == []
    finally:
        from jobs.node.procs import kill_tree

        kill_tree(render.pid)
        render.wait(timeout=5)


def test_queue_history_comes_from_stored_samples(admin_client, user):
    now = timezone.now()
    QueueSample.objects.create(created_at=now - timedelta(hours=30), queued=99)
    QueueSample.objects.create(created_at=now - timedelta(hours=2), queued=3, rendering=1)
    Job.objects.create(user=user, status=Status.QUEUED)
    Job.objects.create(user=user, status=Status.PENDING)
    assert chores.record_queue_sample() is not None
    # Another node a moment later does not add a duplicate.
    assert chores.record_queue_sample() is None
    body = admin_client.get("/api/system/queue-history").json()
    assert body["hours"] == 24
    samples = body["samples"]
    assert [(s["queued"], s["rendering"], s["pending"]) for s in samples] == [(3, 1, 0),
                                                                             (1, 0, 1)]
    # Samples older than a day (and an hour of slack) are pruned.
    assert not QueueSample.objects.filter(queued=99).exists()


def test_recent_errors_list_failed_jobs_and_system_errors(admin_client, user):
    now = timezone.now()
    Job.objects.create(name="old.aep", user=user, status=Status.FAILED, error="bad frame",
                       finished_at=now - timedelta(hours=3))
    Job.objects.create(name="ok.aep", user=user, status=Status.COMPLETED, finished_at=now)
    events.record("disk_full", "Disk nearly full", level="warning")
    events.record("clear_queue", "Queue cleared by Ada", level="info")
    errors = admin_client.get("/api/system/errors").json()["errors"]
    assert [(e["kind"], e["message"]) for e in errors] == [
        ("disk_full", "Disk nearly full"), ("job_failed", "bad frame")]
    assert admin_client.get("/api/system/errors?limit=1").json()["errors"][0]["kind"] == \
        "disk_full"
    assert admin_client.get("/api/system/errors?limit=x").status_code == 400


@pytest.mark.parametrize("percent, alert", [(100, False), (0, True)])
def test_disk_alert_threshold(settings, dropbox, percent, alert):
    settings.DISK_ALERT_PERCENT = percent
    assert all(d["alert"] is alert for d in health.disks())


def test_public_health_says_only_ok_or_error():
    """GET /health is for anyone (load balancers, PM2 checks): a database error's text
    names its host and user, so it stays in the server log."""
    from tests.ops.test_settings_env import clean_env, start

    code = ("import logging; logging.disable(logging.CRITICAL)\n"
            "from django.test import Client\n"
            "r = Client().get('/health'); print(r.status_code, r.content.decode())")
    # A real connection failure: nothing listens on port 9.
    env = clean_env(DEBUG="false", SECRET_KEY="s" * 50, ALLOWED_HOSTS="testserver",
                    DATABASE_URL="postgres://render_user:hunter2@127.0.0.1:9/render_db")
    result = start(env, code)
    assert result.returncode == 0, result.stderr

    status, body = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "503"
    assert json.loads(body) == {"status": "error", "database": "error"}
    for secret in ("127.0.0.1", "render_user", "render_db", "hunter2", "connection"):
        assert secret not in body
