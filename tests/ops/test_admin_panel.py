"""The admin panel (/system) with Django's test client: what an admin sees, who
may see it, and each action's confirmation page and POST."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.models import Job, JobEvent, RenderNode, Status
from systemadmin import chart, updates, views
from systemadmin.models import QueueSample, SystemEvent, UpdateRun
from tests.helpers.updates import Repos, wait_run

pytestmark = pytest.mark.django_db

ADMIN_EMAIL = "admin@studio.test"
PANEL = "/system"
FRAGMENTS = ["/system/health", "/system/nodes", "/system/queue", "/system/errors",
             "/system/update"]
ACTIONS = ["/system/emergency-stop", "/system/clear-queue", "/system/restart-engine",
           "/system/update/check", "/system/update/execute"]


def text_of(response) -> str:
    """The page as text, tags removed and whitespace squeezed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def make_job(user, status, name, node=None, **fields):
    return Job.objects.create(user=user, status=status, name=name, client="bravo",
                              project_path=f"D:\\Dropbox\\projects\\{name}", node=node,
                              started_at=timezone.now() if status == Status.RENDERING else None,
                              **fields)


@pytest.fixture
def farm_state(user):
    """Two nodes (one rendering), jobs in every active status, a failure, samples."""
    busy = RenderNode.objects.create(name="node-a", hostname="render-01", pid=4242)
    idle = RenderNode.objects.create(name="node-b", hostname="render-02", pid=4343)
    RenderNode.objects.create(name="node-old", hostname="render-03",
                              last_heartbeat=timezone.now() - timedelta(hours=2))
    jobs = {
        "rendering": make_job(user, Status.RENDERING, "hero.aep", node=busy, progress=42.0),
        "queued": make_job(user, Status.QUEUED, "queued.aep"),
        "validating": make_job(user, Status.VALIDATING, "syncing.aep"),
        "pending": make_job(user, Status.PENDING, "new.aep"),
        "failed": make_job(user, Status.FAILED, "broken.aep", error="Missing footage: hero.mov",
                           finished_at=timezone.now()),
        "done": make_job(user, Status.COMPLETED, "done.aep"),
    }
    now = timezone.now()
    for minutes, queued in ((600, 2), (300, 7), (120, 3), (5, 1)):
        QueueSample.objects.create(created_at=now - timedelta(minutes=minutes), queued=queued,
                                   rendering=1)
    SystemEvent.objects.create(kind="disk_full", level="error",
                               message="Disk nearly full on render-01: the temp volume")
    return {"busy": busy, "idle": idle, **jobs}


# --- Who may see it ------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for url in [PANEL, *FRAGMENTS, *ACTIONS]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next=")
    response = client.post("/system/emergency-stop")
    assert response.status_code == 302
    # A section polled by htmx after the session ended sends the whole page to sign-in.
    response = client.get("/system/health", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response["HX-Redirect"] == "/accounts/login/?next=/system"


def test_users_get_403_and_change_nothing(browser_user, farm_state):
    for url in [PANEL, *FRAGMENTS, *ACTIONS]:
        assert browser_user.get(url).status_code == 403, url
    for url in ACTIONS:
        assert browser_user.post(url, {"node": "node-a"}).status_code == 403, url
    assert Job.objects.filter(status=Status.CANCELLED).count() == 0
    assert not RenderNode.objects.exclude(command="").exists()
    assert not SystemEvent.objects.exclude(kind="disk_full").exists()


def test_the_nav_links_the_panel_for_admins_only(browser_admin, browser_user):
    assert 'href="/system"' in browser_admin.get("/").content.decode()
    assert 'href="/system"' not in browser_user.get("/").content.decode()


# --- What an admin sees --------------------------------------------------------------------


def test_the_panel_shows_health_nodes_queue_and_errors(browser_admin, farm_state, settings):
    response = browser_admin.get(PANEL)
    assert response.status_code == 200
    html = response.content.decode()
    text = text_of(response)
    # Health, rendered on the server (psutil).
    for section in ("health-cpu", "health-memory", "health-disk-dropbox", "health-disk-temp"):
        assert f'id="{section}"' in html
    assert re.search(r"CPU \d+%", text) and re.search(r"Memory \d+%", text)
    assert re.search(r"Dropbox volume \d+%", text) and re.search(r"Temp volume \d+%", text)
    assert settings.DROPBOX_PATH in text
    assert 'id="health-updated"' in html
    # Render nodes: state, heartbeat, current job with its progress.
    assert re.search(r'data-node="node-a".*?RENDERING.*?hero\.aep.*?42%', html, re.S)
    assert re.search(r'data-node="node-b".*?IDLE', html, re.S)
    assert re.search(r'data-node="node-old".*?DOWN', html, re.S)
    assert "render-01" in text
    # Queue counts and the chart from the stored samples.
    assert re.search(r"PENDING 1 .*?VALIDATING 1 .*?QUEUED 1 .*?RENDERING 1", text)
    assert "<svg" in html and 'class="line line-waiting"' in html
    assert "Waiting: peak 7" in text and "4 samples" in text
    # Recent errors: the failed job and the alert.
    assert "broken.aep" in text and "Missing footage: hero.mov" in text
    assert "Disk nearly full on render-01" in text
    # Polling fragments and the actions' confirmation links, no CDN anywhere.
    for url in FRAGMENTS[:4]:
        assert f'hx-get="{url}"' in html
    for url in ACTIONS[:4]:
        assert f'href="{url}"' in html
    assert 'href="/system/restart-engine?node=node-a"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_the_panel_reads_with_an_empty_farm(browser_admin):
    response = browser_admin.get(PANEL)
    assert response.status_code == 200
    text = text_of(response)
    assert "No render node has registered yet" in text
    assert "No queue samples in the last 24 hours yet" in text
    assert "No failed jobs or system errors recently" in text


def test_fragments_are_fragments_and_refresh(browser_admin, farm_state):
    for url in FRAGMENTS:
        response = browser_admin.get(url, headers={"HX-Request": "true"})
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "<html" not in html and "<body" not in html, url
        if not url.endswith("update"):
            assert 'class="updated' in html, url
    first = browser_admin.get("/system/health").content.decode()
    assert re.search(r'id="health-cpu".*?\d+%', first, re.S)
    stamp = re.search(r'id="health-updated" datetime="([^"]+)"', first).group(1)
    assert datetime.fromisoformat(stamp) > timezone.now() - timedelta(seconds=5)
    nodes = browser_admin.get("/system/nodes").content.decode()
    assert "hero.aep" in nodes and "node-b" in nodes


def test_the_process_tree_of_a_local_render_is_shown(browser_admin, user):
    """A node on this machine rendering: its process tree with CPU and memory."""
    import os
    import socket
    import subprocess
    import sys

    import psutil

    proc = subprocess.Popen([sys.executable, "-c",
                             "import subprocess, sys, time; subprocess.Popen([sys.executable, "
                             "'-c', 'import time; time.sleep(30)']); time.sleep(30)"])
    try:
        from tests.helpers.common import wait_for

        wait_for(lambda: psutil.Process(proc.pid).children(), timeout=10)
        node = RenderNode.objects.create(name="local", hostname=socket.gethostname(),
                                         pid=os.getpid())
        make_job(user, Status.RENDERING, "local.aep", node=node, render_pid=proc.pid,
                 render_spawned_at=datetime.fromtimestamp(
                     psutil.Process(proc.pid).create_time(), tz=UTC))
        html = browser_admin.get("/system/nodes").content.decode()
        rows = re.findall(r'<tr class="proc-row">(.*?)</tr>', html, re.S)
        assert len(rows) == 2, html
        assert str(proc.pid) in rows[0] and "└" in rows[1]
        assert re.search(r"\d+%", rows[0]) and re.search(r"\d+(\.\d)?\s(MB|KB|bytes)", rows[0])
        assert "2 processes" in html
    finally:
        from jobs.node.procs import kill_tree

        kill_tree(proc.pid)
        proc.wait(timeout=10)


# --- Emergency stop ----------------------------------------------------------------------


def test_emergency_stop_confirms_then_cancels_everything(browser_admin, farm_state):
    page = browser_admin.get("/system/emergency-stop")
    assert page.status_code == 200
    text = text_of(page)
    assert "Are you sure? 4 jobs will be cancelled, and 1 render killed." in text
    assert "hero.aep — rendering (Alice Artist)" in text
    html = page.content.decode()
    assert 'method="post" action="/system/emergency-stop"' in html
    assert "csrfmiddlewaretoken" in html and "<html" in html
    # Asking changes nothing.
    assert Job.objects.filter(status=Status.CANCELLED).count() == 0
    assert not SystemEvent.objects.filter(kind="emergency_stop").exists()
    # The dialog asks for the same confirmation without the page around it.
    fragment = browser_admin.get("/system/emergency-stop", headers={"HX-Request": "true"})
    assert "<html" not in fragment.content.decode()
    assert 'id="confirm-action"' in fragment.content.decode()

    response = browser_admin.post("/system/emergency-stop", follow=True)
    assert response.redirect_chain == [("/system", 302)]
    assert messages_of(response) == ["Emergency stop: cancelled 4 jobs and stopped 1 render."]
    for key in ("rendering", "queued", "validating", "pending"):
        job = farm_state[key]
        job.refresh_from_db()
        assert job.status == Status.CANCELLED
        event = JobEvent.objects.get(job=job, kind="cancelled")
        assert event.actor == ADMIN_EMAIL and event.message == "Emergency stop by Ada Admin"
    assert Job.objects.get(pk=farm_state["done"].pk).status == Status.COMPLETED
    event = SystemEvent.objects.get(kind="emergency_stop")
    assert event.actor == ADMIN_EMAIL and "Ada Admin" in event.message
    # ...and it shows in the panel's list of admin actions.
    assert "Emergency stop by Ada Admin: 4 job(s) cancelled" in text_of(response)


def test_emergency_stop_with_nothing_active(browser_admin):
    assert "nothing will be cancelled" in text_of(browser_admin.get("/system/emergency-stop"))
    response = browser_admin.post("/system/emergency-stop", follow=True)
    assert messages_of(response) == [
        "Emergency stop: there were no active jobs; nothing was cancelled."]
    assert SystemEvent.objects.get(kind="emergency_stop").actor == ADMIN_EMAIL


def test_actions_need_the_csrf_token(admin, farm_state):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    for url in ACTIONS:
        assert client.post(url).status_code == 403, url
    assert Job.objects.filter(status=Status.CANCELLED).count() == 0
    assert not SystemEvent.objects.exclude(kind="disk_full").exists()
    # The confirmation page's own form carries the token.
    page = client.get("/system/emergency-stop").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post("/system/emergency-stop", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert SystemEvent.objects.filter(kind="emergency_stop").count() == 1


# --- Clear the queue ---------------------------------------------------------------------


def test_clear_queue_confirms_then_cancels_the_waiting_jobs(browser_admin, farm_state):
    text = text_of(browser_admin.get("/system/clear-queue"))
    assert "Are you sure? 3 waiting jobs will be cancelled. Renders in progress carry on." in text
    response = browser_admin.post("/system/clear-queue", follow=True)
    assert messages_of(response) == ["Queue cleared: cancelled 3 waiting jobs."]
    for key in ("queued", "validating", "pending"):
        farm_state[key].refresh_from_db()
        assert farm_state[key].status == Status.CANCELLED
        assert JobEvent.objects.get(job=farm_state[key], kind="cancelled").actor == ADMIN_EMAIL
    farm_state["rendering"].refresh_from_db()
    assert farm_state["rendering"].status == Status.RENDERING
    event = SystemEvent.objects.get(kind="clear_queue")
    assert event.actor == ADMIN_EMAIL and event.message.startswith("Queue cleared by Ada Admin")


# --- Restart the render engine ----------------------------------------------------------


def test_restart_one_node(browser_admin, farm_state):
    text = text_of(browser_admin.get("/system/restart-engine?node=node-a"))
    assert "Restart the render engine on node-a? 1 render will be stopped and put back" in text
    assert "hero.aep on node-a" in text
    html = browser_admin.get("/system/restart-engine?node=node-a").content.decode()
    assert '<input type="hidden" name="node" value="node-a">' in html
    response = browser_admin.post("/system/restart-engine", {"node": "node-a"}, follow=True)
    assert response.redirect_chain == [("/system#nodes", 302)]
    assert messages_of(response) == ["Restart requested on node-a; 1 render back to the queue."]
    assert dict(RenderNode.objects.values_list("name", "command")) == {
        "node-a": "restart", "node-b": "", "node-old": ""}
    event = SystemEvent.objects.get(kind="restart_engine")
    assert event.actor == ADMIN_EMAIL and "Ada Admin" in event.message
    assert JobEvent.objects.get(job=farm_state["rendering"],
                                kind="restart_requested").actor == ADMIN_EMAIL
    assert "restart requested" in browser_admin.get("/system/nodes").content.decode()


def test_restart_every_live_node(browser_admin, farm_state):
    text = text_of(browser_admin.get("/system/restart-engine"))
    assert "Restart the render engine on node-a, node-b?" in text
    response = browser_admin.post("/system/restart-engine", follow=True)
    assert messages_of(response) == [
        "Restart requested on node-a, node-b; 1 render back to the queue."]
    assert sorted(RenderNode.objects.filter(command="restart")
                  .values_list("name", flat=True)) == ["node-a", "node-b"]


def test_restart_with_no_node_running(browser_admin):
    assert "No render node is running" in text_of(browser_admin.get("/system/restart-engine"))
    response = browser_admin.post("/system/restart-engine", follow=True)
    assert messages_of(response) == ["No render node is running: nothing was restarted."]
    assert SystemEvent.objects.get(kind="restart_engine").actor == ADMIN_EMAIL


@pytest.mark.parametrize("node", ["node-z", "node-old\x00", "x" * 500, "<script>", "node-a'--"])
def test_unknown_or_malformed_nodes_are_refused_without_a_500(browser_admin, farm_state, node):
    RenderNode.objects.filter(name="node-old").update(stopped_at=timezone.now())
    page = browser_admin.get("/system/restart-engine", {"node": node})
    assert page.status_code == 404
    assert "No running render node is called" in text_of(page)
    assert 'id="confirm-action"' not in page.content.decode()
    assert "<script>" not in page.content.decode().split("<main ")[1]
    response = browser_admin.post("/system/restart-engine", {"node": node}, follow=True)
    assert response.status_code == 200
    assert messages_of(response)[0].startswith("No running render node is called")
    assert not RenderNode.objects.exclude(command="").exists()
    assert not SystemEvent.objects.filter(kind="restart_engine").exists()


def test_drained_and_stopping_nodes_show_their_state(browser_admin, farm_state):
    RenderNode.objects.filter(name="node-a").update(command="drain")
    RenderNode.objects.filter(name="node-b").update(command="parked")
    html = browser_admin.get("/system/nodes").content.decode()
    assert 'data-state="draining"' in html and "drain requested" in html
    assert 'data-state="parked"' in html and "not claiming jobs" in html
    assert "manage.py node_command node-b resume" in html
    RenderNode.objects.filter(name="node-a").update(command="stop")
    assert 'data-state="stopping"' in browser_admin.get("/system/nodes").content.decode()


def test_a_stopped_node_cannot_be_restarted(browser_admin, farm_state):
    RenderNode.objects.filter(name="node-b").update(stopped_at=timezone.now())
    assert browser_admin.get("/system/restart-engine?node=node-b").status_code == 404
    html = browser_admin.get("/system/nodes").content.decode()
    assert 'href="/system/restart-engine?node=node-b"' not in html


def test_other_methods_are_refused(browser_admin):
    assert browser_admin.put("/system/emergency-stop").status_code == 405
    assert browser_admin.delete("/system/clear-queue").status_code == 405
    assert browser_admin.post("/system/health").status_code == 405
    assert browser_admin.post(PANEL).status_code == 405


# --- Updates ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_check_then_update_from_the_panel(repos, browser_admin):
    text = text_of(browser_admin.get("/system/update/check"))
    assert "Fetch origin/main with git and list the new commits?" in text
    response = browser_admin.post("/system/update/check", follow=True)
    assert messages_of(response) == ["Up to date with origin/main."]
    assert "Up to date: no new commits on origin/main." in text_of(response)
    assert 'id="update-execute"' not in response.content.decode()

    new = repos.push_new_version()
    response = browser_admin.post("/system/update/check", follow=True)
    assert response.redirect_chain == [("/system#update", 302)]
    assert messages_of(response) == ["1 new commit on origin/main."]
    text = text_of(response)
    assert f"1 new commit {new[:10]} Widgets have a colour" in text
    assert 'id="update-execute"' in response.content.decode()
    checks = SystemEvent.objects.filter(kind="update_check").order_by("id")
    assert [e.actor for e in checks] == [ADMIN_EMAIL, ADMIN_EMAIL]
    assert checks.last().message == "Update check by Ada Admin: 1 new commit on origin/main"

    confirm = text_of(browser_admin.get("/system/update/execute"))
    assert "Update now from origin/main?" in confirm and "Widgets have a colour" in confirm
    response = browser_admin.post("/system/update/execute", follow=True)
    run = UpdateRun.objects.get()
    assert messages_of(response) == [f"Update started (run {run.pk}); its progress and log "
                                     "are below."]
    html = response.content.decode()
    assert f'data-run="{run.pk}"' in html and 'data-status-url="/api/system/update/status"' in html
    assert SystemEvent.objects.get(kind="update_started").actor == ADMIN_EMAIL
    run = wait_run(run.pk)
    assert run.state == UpdateRun.State.SUCCEEDED, run.log
    assert Repos.head(repos.install) == new
    html = browser_admin.get("/system/update").content.decode()
    assert "SUCCEEDED" in html and "== done: now at" in html and 'data-state="succeeded"' in html


def test_update_check_failure_is_a_message(browser_admin, monkeypatch):
    def broken():
        raise updates.UpdateError("git fetch failed: could not resolve host")

    monkeypatch.setattr(updates, "check", broken)
    response = browser_admin.post("/system/update/check", follow=True)
    assert response.status_code == 200
    assert messages_of(response) == [
        "Could not check for updates: git fetch failed: could not resolve host"]
    event = SystemEvent.objects.get(kind="update_check")
    assert event.actor == ADMIN_EMAIL and event.level == "warning"
    # A failed check is an error worth seeing.
    assert "could not resolve host" in text_of(browser_admin.get("/system/errors"))


def test_the_update_dialog_says_it_waits_for_the_renders(browser_admin, farm_state):
    text = text_of(browser_admin.get("/system/update/execute"))
    assert "pauses claims on every render node, waits until no render runs" in text
    assert "1 render running: the update waits for it to finish (at most 60 min)" in text
    assert not UpdateRun.objects.exists()


def test_a_running_update_shows_progress_and_log(browser_admin, admin):
    run = UpdateRun.objects.create(actor=ADMIN_EMAIL, step="migrate", steps_done=3,
                                   steps_total=6, log="== pull: git pull\nAlready up to date.\n")
    html = browser_admin.get(PANEL).content.decode()
    assert f'data-run="{run.pk}"' in html and 'data-state="running"' in html
    assert f'data-offset="{len(run.log)}"' in html
    assert "step 4 of 6: migrate" in html and 'aria-valuenow="50"' in html
    assert "Already up to date." in html
    # The log the page polls from that offset (the JSON API).
    body = browser_admin.get(f"/api/system/update/status?id={run.pk}&offset=10").json()
    assert body["run"]["log"] == run.log[10:]


# --- The chart -------------------------------------------------------------------------


class Sample:
    def __init__(self, created_at, waiting, rendering=0):
        self.created_at, self.waiting, self.rendering = created_at, waiting, rendering


def test_chart_draws_peaks_and_leaves_gaps():
    now = timezone.now()
    samples = [Sample(now - timedelta(minutes=m), w) for m, w in
               ((1430, 2), (1429, 9), (1428, 1), (700, 3), (699, 4), (10, 0))]
    samples.append(Sample(now - timedelta(hours=30), 99))  # older than the window
    built = chart.build(samples, now=now)
    assert built.samples == 6 and built.y_max == 10
    waiting = built.series[0]
    assert waiting.peak == 9 and waiting.last == 0
    # Three runs of samples with gaps between them: three separate lines.
    assert waiting.line.count("M") == 3 and waiting.area.count("Z") == 3
    # The peak of the first bucket is kept (9 of 10 → near the top of the plot).
    first_y = float(waiting.line.split()[1])
    assert first_y == pytest.approx(built.bottom - 0.9 * (built.bottom - built.top), abs=0.2)
    assert [label for _, label in built.x_ticks] and all(
        built.left <= x <= built.right for x, _ in built.x_ticks)
    assert "peak 9" in built.summary()


def test_chart_of_nothing():
    built = chart.build([], now=timezone.now())
    assert built.empty and built.series[0].line == "" and built.y_max == 4


@pytest.mark.parametrize("value,expected", [(0, 4), (4, 4), (5, 5), (7, 8), (9, 10),
                                            (11, 20), (45, 50), (101, 200)])
def test_nice_ceiling(value, expected):
    assert chart.nice_ceiling(value) == expected


def test_process_tree_order():
    procs = [{"pid": 3, "ppid": 2}, {"pid": 1, "ppid": 0}, {"pid": 2, "ppid": 1},
             {"pid": 4, "ppid": 1}]
    ordered = views._tree(procs)
    assert [(p["pid"], p["depth"]) for p in ordered] == [(1, 0), (2, 1), (3, 2), (4, 1)]
