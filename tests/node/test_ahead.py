"""The next job claimed ahead (jobs.node.worker, claim_ahead): while a nexrender render
ends, its node claims the next job and nexrender sets it up behind a gate; aerender
starts only once the render before it has ended. Real worker, real nexrender CLI,
real processes, watched while they run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import psutil
import pytest

from jobs import lifecycle
from jobs.models import Job, Status
from jobs.node import bookkeeping
from jobs.node import render as render_module
from jobs.node import worker as worker_module
from jobs.node.worker import Worker
from tests.helpers.common import wait_for
from tests.helpers.farm import render_processes, spare_processes, submit, wait_status

pytestmark = pytest.mark.slow


class AerenderWatch:
    """Samples the live processes every 20 ms and notes each job whose aerender (the
    simulator, found by the job's marker) was seen running: a render that started,
    however it ended."""

    def __init__(self, *jobs):
        self.jobs = jobs
        self.seen: set = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.02):
            for job in self.jobs:
                for proc in render_processes(job.pk):
                    try:
                        if any("aerender" in part for part in proc.cmdline()[1:2]):
                            self.seen.add(job.pk)
                    except psutil.Error:
                        continue

    def close(self) -> set:
        self.stop.set()
        self.thread.join(5)
        return self.seen


def set_up_ahead(farm, job) -> list[psutil.Process]:
    """The processes a job claimed ahead waits in: its launcher (a spare's, whose
    marker is the spare's: what it starts for the job carries the job's) works in
    the job's folder, under its guard."""
    found = []
    for proc in spare_processes(farm.node()):
        try:
            if job.pk.hex in proc.cwd():
                found += [proc, proc.parent()]
        except (psutil.Error, AttributeError):
            continue
    return found


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def runs(times_file) -> dict[str, dict]:
    """The simulator's own record of each run (start and end on the wall clock), by
    the job id in its output path."""
    found = {}
    for line in times_file.read_text().splitlines() if times_file.is_file() else []:
        run = json.loads(line)
        for part in (run.get("output") or "").replace("\\", "/").split("/"):
            if len(part) == 32:
                found[part] = run
    return found


def claimed_ahead(job) -> bool:
    return job.events.filter(to_status=Status.RENDERING,
                             message__startswith="Next on").exists()


def test_a_backlog_is_claimed_ahead_and_its_aerender_runs_never_overlap(
        farm, user, nexrender_cli, tmp_path):
    times = tmp_path / "aerender-times.jsonl"
    farm.start_worker(AERENDER_SIM_TIMES=times)
    # The first render is long enough for the others to be validated and queued.
    jobs = [submit(farm, user, "first.aep", frames=60, frame_seconds=0.05)]
    jobs += [submit(farm, user, f"next{n}.aep", frames=20, frame_seconds=0.04)
             for n in range(2)]
    for job in jobs:
        wait_status(job, Status.COMPLETED, Status.FAILED)
        assert job.status == Status.COMPLETED, job.error
        assert job.attempts == 1
    ran = runs(times)
    order = sorted(jobs, key=lambda job: ran[job.pk.hex]["start"])
    for before, after in zip(order, order[1:], strict=False):
        # Claimed while the render before it still ran...
        assert claimed_ahead(after), list(after.events.values_list("message", flat=True))
        assert after.started_at < before.finished_at
        # ...and its aerender started only once the one before had ended.
        assert ran[after.pk.hex]["start"] >= ran[before.pk.hex]["end"]
    # Its log is the render's, as for any job.
    log = order[-1].log.text()
    assert "> starting nexrender-cli" in log and "Finished composition" in log


def test_a_job_claimed_ahead_and_cancelled_never_starts(farm, user, nexrender_cli, tmp_path):
    farm.start_worker()
    first = submit(farm, user, "first.aep", frames=60, frame_seconds=0.05)
    wait_status(first, Status.RENDERING)
    ahead = submit(farm, user, "ahead.aep", frames=5)
    watch = AerenderWatch(ahead)
    wait_for(lambda: claimed_ahead(ahead), timeout=30, message="the next job was not "
             "claimed ahead")
    # Set up by nexrender while the first renders: its processes wait at their gate.
    waiting = wait_for(lambda: set_up_ahead(farm, ahead), timeout=10)
    first.refresh_from_db()
    assert first.status == Status.RENDERING
    assert lifecycle.cancel(ahead.pk, actor="test")
    wait_status(first, Status.COMPLETED, Status.FAILED)
    assert first.status == Status.COMPLETED, first.error
    # Let go once the node saw it (at its next look at the claim), never rendered.
    gone, alive = psutil.wait_procs(waiting, timeout=10)
    assert not alive, "the cancelled job's processes are still there"
    later = submit(farm, user, "later.aep", frames=3)
    wait_status(later, Status.COMPLETED, Status.FAILED)
    assert later.status == Status.COMPLETED, later.error
    assert ahead.pk not in watch.close()
    ahead.refresh_from_db()
    assert ahead.status == Status.CANCELLED


def test_a_job_claimed_ahead_renders_when_the_render_before_it_is_cancelled(
        farm, user, nexrender_cli, tmp_path):
    times = tmp_path / "aerender-times.jsonl"
    farm.start_worker(AERENDER_SIM_TIMES=times)
    first = submit(farm, user, "first.aep", frames=60, frame_seconds=0.05)
    wait_status(first, Status.RENDERING)
    ahead = submit(farm, user, "ahead.aep", frames=5)
    wait_for(lambda: claimed_ahead(ahead), timeout=30)
    wait_for(lambda: set_up_ahead(farm, ahead), timeout=10)
    first_processes = render_processes(first.pk)
    assert lifecycle.cancel(first.pk, actor="test")
    wait_status(ahead, Status.COMPLETED, Status.FAILED)
    assert ahead.status == Status.COMPLETED, ahead.error
    assert ahead.attempts == 1
    # The cancelled render was killed before the one claimed ahead started.
    assert not [proc for proc in first_processes if alive(proc)]
    ran = runs(times)
    assert first.pk.hex not in ran and ahead.pk.hex in ran
    assert ran[ahead.pk.hex]["start"] > Job.objects.get(pk=first.pk).finished_at.timestamp()


def test_a_job_claimed_ahead_goes_back_to_the_queue_when_the_node_stops(
        farm, user, nexrender_cli):
    # Claimed ahead at once, however long the render before it.
    worker = farm.start_worker(CLAIM_AHEAD_SECONDS=600)
    first = submit(farm, user, "first.aep", frames=400, frame_seconds=0.05)
    wait_status(first, Status.RENDERING)
    ahead = submit(farm, user, "ahead.aep", frames=5)
    watch = AerenderWatch(ahead)
    wait_for(lambda: claimed_ahead(ahead), timeout=30)
    waiting = wait_for(lambda: set_up_ahead(farm, ahead), timeout=10)
    os.kill(worker.pid, signal.SIGTERM)
    worker.wait(timeout=30)
    gone, alive = psutil.wait_procs(waiting, timeout=10)
    assert not alive
    for job in (first, ahead):
        job.refresh_from_db()
        assert job.status == Status.QUEUED
        assert job.attempts == 0  # neither was the job's fault
    assert ahead.events.filter(kind="requeued", message__contains="before starting it") \
        .exists()
    assert ahead.pk not in watch.close()


class Eta:
    """A render's progress as far as claiming ahead is concerned."""

    def __init__(self, seconds):
        self.seconds = seconds

    def eta_seconds(self, now=None):
        return self.seconds


@pytest.fixture
def node(farm, nexrender_cli):
    worker = Worker(farm.node("node-ahead"), validate=False)
    worker.register()
    yield worker
    worker.give_back_ahead("test over")
    worker.settle()
    worker.spares.close()


def queued(user, farm, name) -> Job:
    job = submit(farm, user, name, engine="nexrender", frames=3)
    Job.objects.filter(pk=job.pk).update(status=Status.QUEUED)
    return job


def set_up(proc) -> list[str]:
    """What a process handed ahead printed until nexrender ran the job's scripts."""
    lines = []
    wait_for(lambda: lines.extend(proc.read(0.1)) or any("running script" in line
                                                           for line in lines),
             timeout=30, message=f"not set up: {lines}")
    return lines


def test_a_job_is_claimed_ahead_only_when_the_render_is_due_to_end(node, farm, user, settings):
    job = queued(user, farm, "next.aep")
    now = time.monotonic()
    node.claim_ahead(Eta(None), now)  # no estimate yet
    node.claim_ahead(Eta(settings.CLAIM_AHEAD_SECONDS + 1), now + 1)
    assert node.ahead is None and Job.objects.get(pk=job.pk).status == Status.QUEUED
    settings.CLAIM_AHEAD_SECONDS = 0  # switched off
    node.claim_ahead(Eta(0), now + 2)
    assert node.ahead is None
    settings.CLAIM_AHEAD_SECONDS = 3
    node.claim_ahead(Eta(2), now + 3)
    assert node.ahead is not None and node.ahead.job.pk == job.pk
    assert claimed_ahead(job) and Job.objects.get(pk=job.pk).status == Status.RENDERING


def test_a_render_shorter_than_a_poll_is_claimed_ahead_of_once_it_has_an_estimate(
        node, farm, user, settings):
    now = time.monotonic()
    node.claim_ahead(Eta(None), now)  # its first lines: no estimate yet, no claim tried
    job = queued(user, farm, "next.aep")
    node.claim_ahead(Eta(0.2), now + 0.01)
    assert node.ahead is not None and node.ahead.job.pk == job.pk


def test_an_empty_queue_is_asked_once_per_poll(node, farm, user, settings):
    now = time.monotonic()
    node.claim_ahead(Eta(1), now)  # nothing queued
    job = queued(user, farm, "next.aep")
    node.claim_ahead(Eta(1), now + settings.WORKER_POLL_SECONDS / 2)
    assert node.ahead is None
    node.claim_ahead(Eta(1), now + settings.WORKER_POLL_SECONDS + 0.01)
    assert node.ahead is not None and node.ahead.job.pk == job.pk


def test_a_job_claimed_ahead_that_waited_too_long_goes_back_and_is_not_claimed_again(
        node, farm, user, monkeypatch):
    job = queued(user, farm, "next.aep")
    now = time.monotonic()
    node.claim_ahead(Eta(1), now)
    proc = node.ahead.proc
    assert proc is not None and proc.gated
    # nexrender sets it up (its last step before the render: the scripts), then waits:
    # its render step ("rendering job...") and aerender are behind the gate.
    lines = set_up(proc)
    time.sleep(0.5)
    lines += proc.read(0.1)
    assert not any("rendering job" in line or "spawning aerender" in line for line in lines)
    monkeypatch.setattr(worker_module, "ahead_give_back_seconds", lambda: 0.0)
    node.claim_ahead(Eta(1), now + 1)
    assert node.ahead is None
    job.refresh_from_db()
    assert (job.status, job.attempts, job.node) == (Status.QUEUED, 0, None)
    assert job.events.filter(kind="requeued", message__contains="longer than expected") \
        .exists()
    assert proc.exited()
    # Not again during this render: it would only wait again.
    node.claim_ahead(Eta(1), now + 2)
    assert node.ahead is None
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_the_gate_opens_and_the_node_goes_on_once_the_next_aerender_is_under_way(
        node, farm, user, monkeypatch):
    # The render before it publishes then: its database writes would slow aerender's
    # start-up. (Real aerender's first line is its version: tests/data/aelogs.)
    monkeypatch.setattr(render_module, "UNDER_WAY_SECONDS", 60)
    queued(user, farm, "next.aep")
    node.claim_ahead(Eta(1), time.monotonic())
    ahead = node.ahead
    set_up(ahead.proc)
    node.open_ahead()
    lines = ahead.proc.read()
    assert any(line.startswith("aerender version") for line in lines), lines
    # Read once, by its render's loop as by this: nothing was lost or read twice.
    assert sum("spawning aerender" in line for line in lines) == 1
    rest = []
    wait_for(lambda: rest.extend(ahead.proc.read(0.1)) or ahead.command.done_line
             in [line.strip() for line in rest], timeout=60, message=f"not done: {rest}")
    assert not any(line.startswith("aerender version") for line in rest)


def test_a_launcher_whose_gate_never_opens_ends_without_starting_aerender(
        node, farm, user):
    job = queued(user, farm, "next.aep")
    node.claim_ahead(Eta(1), time.monotonic())
    proc = node.ahead.proc
    lines = set_up(proc)
    # The node lets go of its stdin without "go" (as when it dies): the launcher leaves.
    proc._popen.stdin.close()
    wait_for(lambda: lines.extend(proc.read(0.1)) or proc.poll() is not None, timeout=10)
    assert proc.poll() == 3
    assert not any("spawning aerender" in line for line in lines)
    node.forget_ahead()
    assert Job.objects.get(pk=job.pk).status == Status.RENDERING  # the node's to give back


def test_a_job_whose_preparing_failed_renders_when_its_turn_comes(node, farm, user,
                                                                   monkeypatch):
    job = queued(user, farm, "next.aep")
    from jobs.node.engines.nexrender import NexrenderEngine

    command = NexrenderEngine.command

    def unreadable(self, job, workdir):
        raise OSError("the disk went away for a moment")

    monkeypatch.setattr(NexrenderEngine, "command", unreadable)
    node.claim_ahead(Eta(1), time.monotonic())
    assert node.ahead is not None and node.ahead.proc is None
    monkeypatch.setattr(NexrenderEngine, "command", command)
    assert node.step()  # the render before it has ended: its turn
    job.refresh_from_db()
    assert job.status == Status.COMPLETED, job.error
    assert job.attempts == 1 and job.log.text().count("=== attempt") == 1


def rendered(render) -> None:
    """Open the gate of a render claimed ahead and read until its launcher said the
    render succeeded (nothing else runs it here)."""
    render.proc.open_gate()
    lines = []
    wait_for(lambda: lines.extend(render.proc.read(0.1)) or render.command.done_line
             in [line.strip() for line in lines], timeout=60, message=f"not done: {lines}")


def test_a_finished_render_s_node_js_ends_once_the_next_render_is_under_way(
        node, farm, user):
    # node.js ending costs milliseconds of CPU: not beside the next aerender's start.
    bookkeeping.start()
    try:
        queued(user, farm, "first.aep")
        node.claim_ahead(Eta(1), time.monotonic())
        first, node.ahead = node.ahead, None
        rendered(first)
        time.sleep(0.5)
        assert not first.proc.exited()  # done, and waiting to be let go
        queued(user, farm, "second.aep")
        node.claim_ahead(Eta(1), time.monotonic())
        assert node.ahead is not None  # starting beside it: the first waits for it
        bookkeeping.hold()
        node.let_finish(first.proc, first.workdir, first.job.pk)
        time.sleep(0.5)
        assert not first.proc.exited()
        bookkeeping.go()  # the next render is under way
        wait_for(first.proc.exited, timeout=10)
        assert first.proc.returncode == 0

        # Nothing starting beside it: let go at once, whatever is held.
        second, node.ahead = node.ahead, None
        rendered(second)
        bookkeeping.hold()
        node.let_finish(second.proc, second.workdir, second.job.pk)
        wait_for(second.proc.exited, timeout=10)
        assert second.proc.returncode == 0
        node.settle()
        assert not first.workdir.exists() and not second.workdir.exists()
    finally:
        bookkeeping.stop()
