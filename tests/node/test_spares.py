"""Spare render processes (jobs.node.spares): the next render's process starts before
its job is claimed, and is handed the job when it is; real processes throughout."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from jobs.models import Job, Status
from jobs.node import spares as spares_module
from jobs.node.engines import get_engine
from jobs.node.spares import Spares, SpareSpec
from jobs.submission.paths import dropbox_relative
from tests.helpers.common import make_project, wait_for
from tests.helpers.farm import (
    render_processes,
    spare_processes,
    submit,
    use_aerender,
    wait_status,
)

pytestmark = pytest.mark.slow


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def is_launcher(proc: psutil.Process) -> bool:
    try:
        return proc.cmdline()[1].endswith("nexrender_launcher.js")
    except (psutil.Error, IndexError):
        return False


def test_a_render_starts_in_a_spare_started_before_its_claim(farm, user, nexrender_cli):
    farm.start_worker()
    node = farm.node()
    # Idle, the node keeps nexrender (node.js, @nexrender/core loaded) waiting.
    spare = wait_for(lambda: [p for p in spare_processes(node)
                              if is_launcher(p)],
                     timeout=30, message="no spare nexrender process while idle")[0]
    job = submit(farm, user, frames=40, frame_seconds=0.05)
    wait_status(job, Status.RENDERING, Status.COMPLETED, Status.FAILED)
    simulator = wait_for(lambda: [p for p in render_processes(job.pk)
                                  if "aerender" in cmdline(p)], timeout=30,
                         message="the simulator never started")[0]
    # aerender's parent is the spare's launcher, which was waiting before the claim.
    assert simulator.parent().pid == spare.pid
    job.refresh_from_db()
    assert spare.create_time() < job.started_at.timestamp()
    # While it renders, the next render's spare is started.
    wait_for(lambda: [p for p in spare_processes(node) if p.pid != spare.pid
                      and is_launcher(p)
                      and not p.children()], timeout=30,
             message="no spare for the next render")
    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.error
    log = job.log.text()
    assert "> starting nexrender-cli" in log and "> job rendering successfully finished" in log
    assert job.attempts == 1


# node.js taking a second to exit once nexrender reported success (an 'exit' handler,
# loaded into every node.js the engine starts); each exit of a render is noted with
# its marker and the time.
SLOW_EXIT = """
const fs = require('fs');
process.on('exit', () => {
    const marker = process.env.AE_RENDER_MANAGER_RENDER || '';
    if (!process.env.SLOW_EXIT_LOG || marker.includes('/spare/')) return;
    const end = Date.now() + 1000;
    while (Date.now() < end) {}
    fs.appendFileSync(process.env.SLOW_EXIT_LOG, `${marker} ${Date.now() / 1000}\\n`);
});
"""


def test_a_job_completes_while_its_process_ends_and_the_next_render_waits_for_it(
        farm, user, nexrender_cli, tmp_path):
    preload = tmp_path / "slow_exit.js"
    preload.write_text(SLOW_EXIT)
    exits = tmp_path / "exits.txt"
    # Not claimed ahead (tests/node/test_ahead.py): the later render's process is handed
    # its job once the earlier one's has ended.
    farm.start_worker(NODE_OPTIONS=f"--require {preload}", SLOW_EXIT_LOG=exits,
                      CLAIM_AHEAD_SECONDS=0)
    first = submit(farm, user, "first.aep", frames=3)
    second = submit(farm, user, "second.aep", frames=3)
    for job in (first, second):
        wait_status(job, Status.COMPLETED, Status.FAILED)
        assert job.status == Status.COMPLETED, job.error

    def noted() -> dict[str, float]:
        lines = exits.read_text().splitlines() if exits.is_file() else []
        return {line.split("/")[1]: float(line.rsplit(" ", 1)[1]) for line in lines}

    # Validation may let either through first.
    earlier, later = sorted((first, second), key=lambda job: job.started_at)
    earlier_ended = wait_for(lambda: noted().get(str(earlier.pk)), timeout=30)
    # The earlier job was COMPLETED (published, and the next one claimed) while its
    # node.js was still exiting...
    assert earlier.finished_at.timestamp() < earlier_ended - 0.5
    # ...and the later render's process got its job only once the earlier one's had
    # ended and its guard had swept: renders never overlap.
    assert later.render_spawned_at.timestamp() > earlier_ended
    # The line that said so is the node's, not the log's.
    assert "render manager: rendered" not in first.log.text()
    assert "> job rendering successfully finished" in first.log.text()


def test_an_output_held_by_what_the_render_left_running_is_published_once_it_ended(
        farm, user, nexrender_cli, tmp_path):
    # The finished file cannot be moved while the render's node.js is still there (as
    # with After Effects lingering on Windows): published once its process has ended.
    preload = tmp_path / "slow_exit.js"
    preload.write_text(SLOW_EXIT)
    farm.start_worker(hooked=True, NODE_OPTIONS=f"--require {preload}",
                      SLOW_EXIT_LOG=tmp_path / "exits.txt", TEST_OUTPUT_HELD_WHILE_RENDERING=1)
    job = submit(farm, user, frames=3)
    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.error
    assert job.attempts == 1 and not job.events.filter(kind="retry").exists()


def test_a_dead_spare_is_replaced_without_costing_the_job_an_attempt(farm, user,
                                                                     nexrender_cli):
    farm.start_worker()
    node = farm.node()
    launcher = wait_for(lambda: [p for p in spare_processes(node)
                                 if is_launcher(p)], timeout=30)[0]
    launcher.kill()  # its guard notices within its poll; the job may come sooner
    job = submit(farm, user, frames=5)
    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.error
    assert job.attempts == 1 and not job.events.filter(kind="retry").exists()


def test_a_spare_dies_with_its_worker(farm, user, nexrender_cli):
    worker = farm.start_worker()
    node = farm.node()
    waiting = wait_for(lambda: len(spare_processes(node)) >= 2 and spare_processes(node),
                       timeout=30, message="no spare (guard and launcher) while idle")
    os.kill(worker.pid, signal.SIGKILL)
    gone, alive = psutil.wait_procs(waiting, timeout=10)
    assert not alive, [cmdline(p) for p in alive]


def test_a_stale_spare_is_replaced_and_an_old_one_too(farm, user, monkeypatch, tmp_path):
    use_aerender(farm)
    engine = get_engine("aerender")
    spares = Spares("spares-test")
    try:
        spares.prepare(engine.spare())
        first = spares.proc
        # The settings changed since it started (another environment): not used.
        stale = SpareSpec(spares.spec.argv, spares.spec.env + (("EXTRA", "1"),),
                          spares.spec.cwd)
        spares.prepare(stale)
        assert spares.proc is not first and spares.spec == stale
        assert first.exited() or wait_for(lambda: first.exited(), timeout=10)
        # Too old: replaced by a fresh one when the job comes, which still renders.
        monkeypatch.setattr(spares_module, "MAX_AGE_SECONDS", 0.0)
        old = spares.proc
        project = make_project(farm.dropbox, frames=2)
        workdir = tmp_path / "work"
        workdir.mkdir()

        job = Job(config={"template": {"composition": "main"}},
                  project_path=dropbox_relative(project))
        command = engine.command(job, workdir)
        proc = spares.start(command, "spares-test/job/lease")
        assert proc is not old and (spares.handed, spares.fresh) == (0, 1)
        lines = []
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            lines += proc.read(0.1)
        assert proc.poll() == 0, lines
        assert any("Finished composition" in line for line in lines)
        assert old.exited() or wait_for(lambda: old.exited(), timeout=10)
        assert Path(workdir / "result.avi").is_file()
    finally:
        spares.close()


def test_a_spare_that_dies_at_once_is_not_started_again_at_every_idle_poll(
        tmp_path, monkeypatch, caplog):
    # NODE_BINARY missing: the guard cannot start the launcher and exits at once.
    spec = SpareSpec.make((str(tmp_path / "no-such-node"), "launcher.js"), dict(os.environ),
                          tmp_path / "spare")
    spares = Spares("spares-test")
    started = []
    spawn = spares._spawn
    monkeypatch.setattr(spares, "_spawn", lambda s: started.append(s) or spawn(s))
    try:
        spares.prepare(spec)
        first = spares.proc
        wait_for(first.exited, timeout=30, message="the broken spare did not exit")
        # Two seconds of an idle node's polls (0.5 s by default; faster here).
        end = time.monotonic() + 2
        while time.monotonic() < end:
            spares.prepare(spec)
            spares.refill()
            time.sleep(0.05)
        assert len(started) == 1
        warnings = [r for r in caplog.records if "ended while waiting" in r.getMessage()]
        assert len(warnings) == 1 and "the next one in 60 s" in warnings[0].getMessage()
        # Once the pause is over it is tried again (the binary may be installed now).
        monkeypatch.setattr(spares_module, "RETRY_DEAD_SECONDS", 0.0)
        spares.prepare(spec)
        assert len(started) == 2
    finally:
        spares.close()
