"""Self-update against a local bare repository as the remote.

The "install" is a clone of a tiny throwaway Django project (one app, one
migration) so that the real ``migrate`` runs, fast, and its result can be
checked; install, collectstatic and restart are cheap commands that leave
marker files.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status
from jobs.notify import slack as notifications
from systemadmin import updates
from systemadmin.models import SystemEvent, UpdateRun
from tests.helpers.common import wait_for
from tests.helpers.fakeslack import FakeSlack
from tests.helpers.updates import Repos, git, wait_run

# --- Check ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_check_lists_the_new_commit(repos, admin_client):
    body = admin_client.get("/api/system/update/check").json()
    assert body["update_available"] is False and body["commits"] == []
    assert body["current"] == body["latest"] == repos.first

    new = repos.push_new_version()
    response = admin_client.get("/api/system/update/check")
    assert response.status_code == 200
    body = response.json()
    assert body["update_available"] is True and body["can_fast_forward"] is True
    assert (body["current"], body["latest"]) == (repos.first, new)
    [commit] = body["commits"]
    assert commit["sha"] == new and commit["subject"] == "Widgets have a colour"
    assert commit["author"] == "Test" and commit["short"] == new[:10]
    assert (body["remote"], body["branch"]) == ("origin", "main")
    # Checking changes nothing in the install.
    assert Repos.head(repos.install) == repos.first


@pytest.mark.django_db(transaction=True)
def test_check_with_an_unreachable_remote_is_a_clear_502(repos, admin_client, settings):
    settings.UPDATE_REMOTE = str(repos.install.parent / "no-such-repo.git")
    response = admin_client.get("/api/system/update/check")
    assert response.status_code == 502
    assert response.json()["detail"].startswith("git fetch failed")


# --- Execute -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_execute_pauses_claims_and_waits_for_the_render_in_progress(repos, admin_client,
                                                                    user):
    new = repos.push_new_version()
    node = RenderNode.objects.create(name="node-a")
    busy = Job.objects.create(name="busy.aep", user=user, status=Status.RENDERING,
                              node=node, lease=uuid.uuid4(), attempts=1)
    waiting = Job.objects.create(name="next.aep", user=user, status=Status.QUEUED)
    response = admin_client.post("/api/system/update/execute")
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]

    wait_for(lambda: "waiting for 1 render(s) to finish" in UpdateRun.objects.get(
        pk=run_id).log, timeout=10, message="the update did not wait for the render")
    run = UpdateRun.objects.get(pk=run_id)
    assert (run.state, run.step) == (UpdateRun.State.RUNNING, "drain")
    # No node may start anything meanwhile; the render in progress carries on.
    assert lifecycle.claims_paused()
    assert lifecycle.claim_next(node) is None
    assert Repos.head(repos.install) == repos.first

    assert lifecycle.complete(busy.pk, busy.lease, output_path="/x", output_size=1)
    run = wait_run(run_id)
    assert run.state == UpdateRun.State.SUCCEEDED, run.log
    assert Repos.head(repos.install) == new
    # The restart command finished here: claims resume at once.
    wait_for(lambda: not lifecycle.claims_paused(), timeout=10,
             message="claims stayed paused after the update")
    assert lifecycle.claim_next(node).pk == waiting.pk


@pytest.mark.django_db(transaction=True)
def test_renders_that_outlast_the_drain_timeout_fail_the_update_unchanged(repos, user,
                                                                          settings):
    repos.push_new_version()
    settings.UPDATE_DRAIN_TIMEOUT_SECONDS = 1
    Job.objects.create(name="long.aep", user=user, status=Status.RENDERING,
                       node=RenderNode.objects.create(name="node-a"))
    run = wait_run(updates.execute("admin@studio.test").pk)
    assert run.state == UpdateRun.State.FAILED and run.step == "drain"
    assert run.error == ("1 render(s) still running after 1 s "
                         "(UPDATE_DRAIN_TIMEOUT_SECONDS); nothing was changed")
    assert Repos.head(repos.install) == repos.first
    assert not lifecycle.claims_paused()


@pytest.mark.django_db(transaction=True)
def test_renders_of_dead_nodes_are_not_waited_for(repos, user, settings):
    # The farm's only worker crash-loops: its render stays RENDERING (only a live
    # worker requeues it), and the update that would fix the worker must go on.
    new = repos.push_new_version()
    settings.UPDATE_DRAIN_TIMEOUT_SECONDS = 30
    dead = RenderNode.objects.create(name="node-a")
    RenderNode.objects.filter(pk=dead.pk).update(
        last_heartbeat=timezone.now() - timedelta(seconds=settings.NODE_TIMEOUT_SECONDS + 60))
    Job.objects.create(name="orphan.aep", user=user, status=Status.RENDERING, node=dead,
                       lease=uuid.uuid4(), attempts=1)
    Job.objects.create(name="nodeless.aep", user=user, status=Status.RENDERING)
    began = time.monotonic()
    run = wait_run(updates.execute("admin@studio.test").pk)
    assert run.state == UpdateRun.State.SUCCEEDED, run.log
    assert time.monotonic() - began < settings.UPDATE_DRAIN_TIMEOUT_SECONDS
    assert "not waiting for 2 render(s) whose node stopped responding" in run.log
    assert Repos.head(repos.install) == new


@pytest.mark.django_db(transaction=True)
def test_the_drain_waits_for_a_claim_that_commits_just_after_the_pause(user, settings):
    # A node looked for a pause just before it was made and commits its claim a moment
    # later (jobs.lifecycle.claim_next): "nothing renders" at once is not yet the truth.
    settings.UPDATE_DRAIN_TIMEOUT_SECONDS = 30
    node = RenderNode.objects.create(name="node-a")
    output = updates._Log(UpdateRun.objects.create(actor="admin@studio.test"))

    def later(seconds, write):
        def run():
            try:
                write()
            finally:
                connection.close()  # this thread's own connection
        return threading.Timer(seconds, run)

    late = later(0.3, lambda: Job.objects.create(
        name="late.aep", user=user, status=Status.RENDERING, node=node, lease=uuid.uuid4(),
        attempts=1))
    done = later(1.5, lambda: Job.objects.filter(name="late.aep").update(
        status=Status.COMPLETED))
    late.start()
    done.start()
    try:
        assert updates._drain(output) == ""
    finally:
        late.join()
        done.join()
    assert "waiting for 1 render(s) to finish" in output.text
    assert "late.aep on node-a" in output.text


@pytest.mark.django_db(transaction=True)
def test_a_pause_lapses_by_itself(user):
    pause = lifecycle.pause_claims("an update whose process died", seconds=0.5)
    assert lifecycle.claims_paused()
    wait_for(lambda: not lifecycle.claims_paused(), timeout=5)
    assert lifecycle.extend_pause(pause, 30) and lifecycle.claims_paused()
    lifecycle.resume_claims(pause)
    assert not lifecycle.claims_paused()


@pytest.mark.django_db(transaction=True)
def test_execute_when_idle_ends_on_the_new_commit_with_migrations_applied(repos,
                                                                          admin_client):
    new = repos.push_new_version()
    response = admin_client.post("/api/system/update/execute")
    assert response.status_code == 202, response.content
    started = response.json()
    assert started["state"] == "running" and started["actor"] == "admin@studio.test"

    run = wait_run(started["id"])
    assert run.state == UpdateRun.State.SUCCEEDED, run.log
    assert Repos.head(repos.install) == new
    assert repos.applied_migrations() == ["0001_initial", "0002_colour"]
    assert (run.from_commit, run.to_commit) == (repos.first, new)
    assert run.progress == 100
    for name in ("install", "collectstatic"):
        assert (repos.install / f"{name}.marker").exists(), name
    # The run is marked succeeded just before the restart command starts (that
    # command may restart this very process).
    wait_for(lambda: "\nrestart done\n" in UpdateRun.objects.get(pk=run.pk).log, timeout=10,
             message="the restart command did not run")
    assert (repos.install / "restart.marker").exists()
    run.refresh_from_db()
    # package.json did not change: no npm ci.
    assert not (repos.install / "npm.marker").exists()
    assert "npm: package.json and package-lock.json unchanged, skipped" in run.log
    assert "Applying throwaway.0002_colour... OK" in run.log
    assert SystemEvent.objects.filter(kind="update", actor="admin@studio.test").exists()

    status = admin_client.get(f"/api/system/update/status?id={run.pk}&offset=10").json()["run"]
    assert status["state"] == "succeeded" and status["log"] == run.log[10:]
    assert status["log_length"] == len(run.log)
    # Nothing new any more.
    assert admin_client.get("/api/system/update/check").json()["update_available"] is False


@pytest.mark.django_db(transaction=True)
def test_a_failed_step_stops_the_update_and_tells_the_admin_channel(repos, settings):
    repos.push_new_version()
    settings.UPDATE_MIGRATE_COMMAND = ["{python}", "-c",
                                       "import sys; print('migration exploded'); sys.exit(3)"]
    with FakeSlack() as slack:
        settings.SLACK_BOT_TOKEN = "xoxb-test"
        settings.SLACK_API_URL = slack.url
        settings.SLACK_ADMIN_CHANNEL = "#render-alerts"
        run = updates.execute("admin@studio.test", wait=True)
        assert notifications.dispatcher.flush(10)
        alerts = slack.texts("#render-alerts")
    assert run.state == UpdateRun.State.FAILED
    assert run.step == "migrate"
    assert run.error == "step migrate failed (exit code 3)"
    assert "migration exploded" in run.log
    assert (repos.install / "install.marker").exists()
    assert not (repos.install / "collectstatic.marker").exists()
    assert not (repos.install / "restart.marker").exists()
    [alert] = alerts
    assert "Update failed at step migrate" in alert
    assert SystemEvent.objects.get(kind="update_failed").level == "error"


@pytest.mark.django_db(transaction=True)
def test_a_diverged_install_is_not_merged(repos, admin_client):
    repos.push_new_version()
    (repos.install / "local.txt").write_text("local change\n")
    git(repos.install, "add", "local.txt")
    git(repos.install, "commit", "-q", "-m", "Local hack")
    local = Repos.head(repos.install)
    assert admin_client.get("/api/system/update/check").json()["can_fast_forward"] is False
    run = updates.execute("admin@studio.test", wait=True)
    assert run.state == UpdateRun.State.FAILED and run.step == "pull"
    assert Repos.head(repos.install) == local


@pytest.mark.django_db(transaction=True)
def test_a_step_that_hangs_is_stopped(repos, settings):
    repos.push_new_version()
    settings.UPDATE_STEP_TIMEOUT_SECONDS = 1
    settings.UPDATE_INSTALL_COMMAND = ["{python}", "-c", "import time; time.sleep(60)"]
    run = updates.execute("admin@studio.test", wait=True)
    assert run.state == UpdateRun.State.FAILED and run.step == "install", run.log
    assert "timed out" in run.error


@pytest.mark.django_db(transaction=True)
def test_a_failing_restart_command_fails_the_run(repos, settings):
    repos.push_new_version()
    settings.UPDATE_RESTART_COMMAND = ["{python}", "-c", "import sys; sys.exit(1)"]
    run = updates.execute("admin@studio.test", wait=True)
    run.refresh_from_db()
    assert run.state == UpdateRun.State.FAILED and run.step == "restart"


@pytest.mark.django_db(transaction=True)
def test_a_second_update_is_refused_while_one_runs(repos, settings):
    repos.push_new_version()
    settings.UPDATE_INSTALL_COMMAND = ["{python}", "-c", "import time; time.sleep(3)"]
    first = updates.execute("admin@studio.test")
    with pytest.raises(updates.Refused, match="already running"):
        updates.execute("admin@studio.test")
    assert wait_run(first.pk).state == UpdateRun.State.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_a_run_left_by_a_dead_process_does_not_block_updates(repos):
    UpdateRun.objects.create(actor="x", hostname=__import__("socket").gethostname(),
                             pid=2 ** 22 + 12345)
    run = updates.execute("admin@studio.test", wait=True)
    assert run.state == UpdateRun.State.SUCCEEDED
    assert UpdateRun.objects.filter(state=UpdateRun.State.INTERRUPTED).count() == 1


def test_commands_are_argv_lists_never_shell_strings(settings, tmp_path):
    from rendermanager.settings import _command

    assert _command("X", '{python} -m pip install "a b"') == ["{python}", "-m", "pip",
                                                             "install", "a b"]
    assert _command("X", '["C:/Program Files/nodejs/npm.cmd", "ci"]') == [
        "C:/Program Files/nodejs/npm.cmd", "ci"]
    assert _command("X", "") == []
    assert updates.expand(["{python}", "-V"])[0].endswith(("python", "python3", "python.exe",
                                                           "python3.11"))
