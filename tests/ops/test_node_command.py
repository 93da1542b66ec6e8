"""manage.py node_command: drain, stop and resume render nodes through the database
(the worker's side of it runs in tests/faults/test_pm2_stop.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models.functions import Now

from jobs.models import Job, RenderNode, Status
from systemadmin import services
from systemadmin.models import SystemEvent


def run(*args: str) -> str:
    out = StringIO()
    call_command("node_command", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def nodes(db, user):
    live_a = RenderNode.objects.create(name="node-a")
    live_b = RenderNode.objects.create(name="node-b")
    dead = RenderNode.objects.create(name="node-dead")
    RenderNode.objects.filter(pk=dead.pk).update(last_heartbeat=Now() - timedelta(hours=1))
    job = Job.objects.create(user=user, status=Status.RENDERING, node=live_a,
                             lease=uuid.uuid4(), attempts=1, name="spot.aep")
    return live_a, live_b, dead, job


def commands() -> dict:
    return dict(RenderNode.objects.values_list("name", "command"))


def test_all_targets_the_live_nodes_and_records_who_asked(nodes):
    _a, _b, _dead, job = nodes
    out = run("--all", "stop")
    assert "Node stop requested by manage.py node_command" in out
    assert commands() == {"node-a": "stop", "node-b": "stop", "node-dead": ""}
    event = job.events.get(kind="stop_requested")
    assert "puts its render back in the queue (no attempt used)" in event.message
    assert SystemEvent.objects.get(kind="node_stop").message.endswith("on node-a, node-b")


def test_named_nodes_and_resume(nodes):
    run("node-b", "drain")
    assert commands()["node-b"] == "drain"
    RenderNode.objects.filter(name="node-b").update(command="parked")
    run("node-b", "stop")  # a parked node renders nothing: it stays parked
    assert commands()["node-b"] == "parked"
    run("node-a", "node-b", "resume")
    assert commands() == {"node-a": "", "node-b": "", "node-dead": ""}


@pytest.mark.parametrize("args, message", [
    (["node-a", "pause"], "the action must be one of drain, stop, resume"),
    (["stop"], "name the nodes or give --all"),
    (["--all", "node-a", "stop"], "name the nodes or give --all"),
    (["node-z", "drain"], "No running render node is called 'node-z'"),
    (["node-a", "stop", "--wait", "--timeout", "0"], "--timeout must be more than 0"),
])
def test_mistakes_are_clear_and_change_nothing(nodes, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert set(commands().values()) == {""}


def test_wait_ends_when_the_nodes_are_parked_or_down(nodes):
    live_a, live_b, dead, job = nodes
    RenderNode.objects.filter(pk=live_b.pk).update(command="parked")
    states = services.wait_settled(["node-b", "node-dead"], timeout=5, poll=0.05)
    assert states == {"node-b": "parked", "node-dead": "down"}
    # node-a still renders: waiting for it times out.
    RenderNode.objects.filter(pk=live_a.pk).update(command="drain")
    assert services.wait_settled(["node-a"], timeout=0.2, poll=0.05) == {"node-a": "draining"}
    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    RenderNode.objects.filter(pk=live_a.pk).update(command="parked")
    assert services.wait_settled(["node-a"], timeout=5, poll=0.05) == {"node-a": "parked"}


def test_a_timed_out_wait_exits_1(nodes):
    with pytest.raises(SystemExit) as exited:
        call_command("node_command", "node-a", "drain", "--wait", "--timeout", "0.3",
                     stdout=StringIO(), stderr=StringIO())
    assert exited.value.code == 1


def test_a_drained_node_is_parked_only_once_its_worker_says_so(nodes):
    # No job RENDERING under node-b, but its worker has not acknowledged the
    # drain: it may be claiming a job this moment, which a kill would lose.
    run("node-b", "drain")
    assert services.wait_settled(["node-b"], timeout=0.2, poll=0.05) == {"node-b": "draining"}
    with pytest.raises(SystemExit) as exited:
        call_command("node_command", "node-b", "drain", "--wait", "--timeout", "0.3",
                     stdout=StringIO(), stderr=StringIO())
    assert exited.value.code == 1
    RenderNode.objects.filter(name="node-b").update(command="parked")  # the worker's ack
    assert services.wait_settled(["node-b"], timeout=5, poll=0.05) == {"node-b": "parked"}
