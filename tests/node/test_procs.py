"""Process control: whole trees die, markers find orphans, floods stay cheap,
and a render dies with its worker."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from jobs.node import guard
from jobs.node.procs import (
    MARKER_ENV,
    SPARE_MARK,
    RenderProcess,
    find_marked,
    kill_marked,
    kill_tree,
)
from tests.helpers.common import wait_for

REPO = Path(__file__).resolve().parents[2]

# A process that starts a child, which starts a grandchild; each prints its pid.
TREE = textwrap.dedent("""
    import subprocess, sys, time
    depth = int(sys.argv[1])
    print(__import__("os").getpid(), flush=True)
    if depth > 1:
        subprocess.Popen([sys.executable, __file__, str(depth - 1)])
    while True:
        time.sleep(60)
""")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def all_gone(pids, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.02)
    return all(gone(pid) for pid in pids)


def start_tree(tmp_path: Path, depth: int = 3, env=None) -> tuple[subprocess.Popen, list[int]]:
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    proc = subprocess.Popen([sys.executable, str(script), str(depth)], stdout=subprocess.PIPE,
                            text=True, env=env)
    root = psutil.Process(proc.pid)
    deadline = time.monotonic() + 10
    while len(root.children(recursive=True)) < depth - 1:
        assert time.monotonic() < deadline, "the process tree did not start"
        time.sleep(0.02)
    return proc, [proc.pid] + [child.pid for child in root.children(recursive=True)]


def test_kill_tree_kills_three_generations_within_two_seconds(tmp_path):
    proc, pids = start_tree(tmp_path)
    assert len(pids) == 3
    started = time.monotonic()
    killed = kill_tree(proc.pid, psutil.Process(proc.pid).create_time())
    assert set(pids) <= set(killed)
    assert all_gone(pids, timeout=2.0 - (time.monotonic() - started))


def test_kill_tree_checks_create_time_and_tolerates_missing_pids(tmp_path):
    proc, pids = start_tree(tmp_path, depth=1)
    try:
        assert kill_tree(proc.pid, create_time=12345.0) == []
        assert not gone(proc.pid)
    finally:
        kill_tree(proc.pid)
    assert kill_tree(proc.pid) == []  # already gone: no error


def test_find_and_kill_by_marker(tmp_path):
    node = f"test-node-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, **{MARKER_ENV: f"{node}/job-1/lease-1"})
    proc, pids = start_tree(tmp_path, depth=2, env=env)
    other, other_pids = start_tree(tmp_path, depth=1,
                                   env=dict(os.environ, **{MARKER_ENV: f"{node}x/job/l"}))
    try:
        found = {p.pid for p in find_marked(f"{node}/")}
        assert found == set(pids)
        assert set(kill_marked(f"{node}/")) >= set(pids)
        assert all_gone(pids, timeout=2)
        assert not gone(other.pid), "a longer node name sharing the prefix was killed"
    finally:
        kill_tree(other.pid)


def test_render_process_reads_output_and_exit_code():
    code = "import sys; print('one'); print('two\\r'); sys.stdout.write('no newline'); sys.exit(3)"
    with RenderProcess([sys.executable, "-c", code], env=dict(os.environ), cwd=REPO,
                       marker="") as render:
        lines = []
        while (status := render.poll()) is None:
            lines += render.read(timeout=0.5)
        assert status == 3
        assert lines == ["one", "two", "no newline"]
        assert render.output_finished


def test_render_process_caps_long_lines():
    code = "import sys; sys.stdout.write('x' * 1_000_000); print(); print('after')"
    with RenderProcess([sys.executable, "-c", code]) as render:
        lines = []
        while render.poll() is None:
            lines += render.read(timeout=0.5)
    assert [len(line) for line in lines] == [64 * 1024, 5]
    assert lines[-1] == "after"


def test_await_line_waits_for_one_line_and_loses_nothing_it_read():
    # How the node waits for the next render's own first line before publishing the
    # one before it (Worker.open_ahead): that render's loop then reads all of it.
    code = ("import time; print('[uid] rendering job...', flush=True); time.sleep(0.3); "
            "print('aerender version 24.0x0\\nPROGRESS: one', flush=True); time.sleep(0.3); "
            "print('after', flush=True)")
    aerender = re.compile(r"^aerender version").match
    with RenderProcess([sys.executable, "-c", code]) as render:
        assert not render.await_line(aerender, 0.05)
        assert render.await_line(aerender, 10)
        lines = render.read()
        assert lines[:3] == ["[uid] rendering job...", "aerender version 24.0x0", "PROGRESS: one"]
        while render.poll() is None:
            lines += render.read(timeout=0.5)
        assert lines == ["[uid] rendering job...", "aerender version 24.0x0", "PROGRESS: one",
                         "after"]
    # Output that ends without it: no waiting out the time, and its last words are
    # read before its exit code is given.
    with RenderProcess([sys.executable, "-c", "print('nexrender: error')"]) as failed:
        started = time.monotonic()
        assert not failed.await_line(aerender, 30)
        assert time.monotonic() - started < 10
        assert failed.poll() is None
        assert failed.read() == ["nexrender: error"]
        wait_for(lambda: failed.poll() is not None, timeout=10)
        assert failed.returncode == 0


def test_flood_of_200_mb_is_read_fast_with_bounded_memory(tmp_path, simulator):
    project = tmp_path / "flood.aep"
    project.write_text(json.dumps({"frames": 5, "frame_seconds": 0, "flood_mb": 200}))
    me = psutil.Process()
    before = me.memory_info().rss
    peak = before
    started = time.perf_counter()
    count = chars = 0
    frames = 0
    with RenderProcess([simulator, "-project", project, "-comp", "Main",
                        "-output", tmp_path / "out.avi"]) as render:
        while (status := render.poll()) is None:
            lines = render.read(timeout=1)
            count += len(lines)
            chars += sum(map(len, lines))
            frames += sum(1 for line in lines if line.startswith("  0:00:00:0"))
            peak = max(peak, me.memory_info().rss)
    elapsed = time.perf_counter() - started
    growth = (peak - before) / 2**20
    print(f"\nflood: {chars / 2**20:.0f} MiB in {count} lines, {elapsed:.2f} s "
          f"({chars / 2**20 / elapsed:.0f} MiB/s), RSS growth {growth:.1f} MiB")
    assert status == 0
    assert chars >= 200 * 2**20 * 0.99
    assert frames == 5
    assert growth < 40


def test_kill_takes_down_the_render_tree(tmp_path, simulator):
    project = tmp_path / "hang.aep"
    project.write_text(json.dumps({"hang": {"after_frames": 2}, "spawn_child": True,
                                   "frame_seconds": 0}))
    marker = f"test/{uuid.uuid4().hex}/lease"
    render = RenderProcess([simulator, "-project", project, "-comp", "Main",
                            "-output", tmp_path / "out.avi"], marker=marker)
    lines = []
    while not any("(2): " in line for line in lines):
        lines += render.read(timeout=1)
        assert render.poll() is None, lines
    pids = [render.pid] + [p.pid for p in psutil.Process(render.pid).children(recursive=True)]
    assert len(pids) == 3  # guard, simulator, its child
    started = time.monotonic()
    render.kill()
    assert time.monotonic() - started < 2
    assert all_gone(pids, timeout=2 - (time.monotonic() - started))
    assert render.poll() is not None
    assert find_marked(marker) == []
    render.close()


def test_guard_kills_what_a_finished_render_left_behind(tmp_path, simulator):
    project = tmp_path / "leaves-child.aep"
    project.write_text(json.dumps({"spawn_child": True, "frames": 3, "frame_seconds": 0}))
    marker = f"test/{uuid.uuid4().hex}/lease"
    lines = []
    with RenderProcess([simulator, "-project", project, "-comp", "Main",
                        "-output", tmp_path / "out.avi"], marker=marker) as render:
        while (status := render.poll()) is None:
            lines += render.read(timeout=1)
    assert status == 0
    child = int((tmp_path / "child.pid").read_text())
    assert all_gone([child], timeout=1)
    assert any("left behind" in line for line in lines), lines


@contextlib.contextmanager
def handed_launcher(tmp_path, source: str):
    """A spare running the Python launcher ``source``, handed a job (nexrender's
    launcher, in small): yields the render and the first line its launcher printed."""
    script = tmp_path / "launcher.py"
    script.write_text(textwrap.dedent(source))
    marker = f"test/{uuid.uuid4().hex}/lease"
    with RenderProcess([sys.executable, str(script)], marker=f"test{SPARE_MARK}{uuid.uuid4().hex}",
                       wait=True) as render:
        assert render.hand(marker, cwd=tmp_path, child_input={})
        lines = []
        while not lines:
            lines = render.read(timeout=5)
        yield render, lines[0]


def test_sweep_kills_what_carries_the_render_s_marker_but_not_the_render_itself(tmp_path):
    # A render that said it succeeded while something it started still runs (After
    # Effects lingering after aerender): the next render may start once it is swept.
    # As with nexrender's launcher: a spare, whose program starts the job's processes
    # with the job's marker.
    with handed_launcher(tmp_path, f"""
        import json, os, subprocess, sys, time
        job = json.loads(sys.stdin.readline())
        env = dict(os.environ, {MARKER_ENV}=job["marker"])
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 env=env, start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(60)
    """) as (render, line):
        child = int(line)
        started = time.monotonic()
        killed = render.sweep()
        assert child in killed and all_gone([child], timeout=2)
        assert time.monotonic() - started < 1.0
        # The render's own processes (its guard, its launcher: node.js ending) are left
        # to end by themselves.
        assert not render.exited()


@pytest.mark.parametrize("read", ["proc", "psutil"])
def test_sweep_spares_the_launcher_even_when_its_own_environment_carries_the_marker(
        tmp_path, monkeypatch, read):
    # On Windows, node.js setting the job's marker in process.env changes its own
    # environment block, which the sweep reads: the launcher, waiting to be let go,
    # is the render's root, not a leftover. (Here: the launcher re-executes itself
    # with the marker.) "psutil": the sweep as on Windows, without /proc.
    if read == "psutil":
        monkeypatch.setattr(guard, "_linux_started_since", lambda since: None)
    with handed_launcher(tmp_path, f"""
        import json, os, subprocess, sys, time
        if len(sys.argv) == 1:
            job = json.loads(sys.stdin.readline())
            os.execve(sys.executable, [sys.executable, __file__, job["marker"]],
                      dict(os.environ, {MARKER_ENV}=job["marker"]))
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=True)
        print(os.getpid(), child.pid, flush=True)
        time.sleep(60)
    """) as (render, line):
        launcher, child = map(int, line.split())
        assert psutil.Process(launcher).environ()[MARKER_ENV] == render.marker
        killed = render.sweep()
        assert killed == [child] and all_gone([child], timeout=2)
        assert not gone(launcher) and not render.exited()


def test_finish_lets_a_render_end_by_itself_and_kills_one_that_does_not():
    # A render that said it succeeded: its process ends by itself, its last words read.
    ending = RenderProcess([sys.executable, "-c", "print('bye', flush=True)"])
    assert ending.finish(10) == ["bye"]
    assert ending.returncode == 0
    # One that goes on after saying so is killed at the timeout, with what it carries.
    marker = f"test/{uuid.uuid4().hex}/lease"
    staying = RenderProcess([sys.executable, "-c",
                             "import time; print('still here', flush=True); time.sleep(60)"],
                            marker=marker)
    started = time.monotonic()
    assert staying.finish(0.5) == ["still here"]
    assert time.monotonic() - started < 5
    assert staying.exited() and find_marked(marker) == []


WORKER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {repo!r})
    from jobs.node.procs import RenderProcess
    render = RenderProcess(sys.argv[1:], marker={marker!r})
    while True:
        for line in render.read(timeout=1):
            if "(2): " in line:
                print(json.dumps({{"guard": render.pid}}), flush=True)
""")


def test_render_dies_when_the_worker_is_killed(tmp_path, simulator):
    project = tmp_path / "hang.aep"
    project.write_text(json.dumps({"hang": {"after_frames": 2}, "spawn_child": True,
                                   "frame_seconds": 0}))
    marker = f"test/{uuid.uuid4().hex}/lease"
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(repo=str(REPO), marker=marker))
    worker = subprocess.Popen(
        [sys.executable, str(script), str(simulator), "-project", str(project), "-comp", "Main",
         "-output", str(tmp_path / "out.avi")], stdout=subprocess.PIPE, text=True)
    try:
        guard = json.loads(worker.stdout.readline())["guard"]
        pids = [guard] + [p.pid for p in psutil.Process(guard).children(recursive=True)]
        assert len(pids) == 3
        psutil.Process(worker.pid).kill()  # kill -9: no chance to clean up
        started = time.monotonic()
        assert all_gone(pids, timeout=1.5), [p for p in pids if not gone(p)]
        print(f"\nrender tree gone {time.monotonic() - started:.2f} s after the worker died")
    finally:
        worker.kill()
        worker.wait()
        kill_marked(marker)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal")
def test_guard_kills_the_tree_on_sigterm(tmp_path, simulator):
    project = tmp_path / "hang.aep"
    project.write_text(json.dumps({"hang": {"after_frames": 1}, "frame_seconds": 0}))
    render = RenderProcess([simulator, "-project", project, "-comp", "Main",
                            "-output", tmp_path / "out.avi"])
    lines = []
    while not any("(1): " in line for line in lines):
        lines += render.read(timeout=1)
    pids = [render.pid] + [p.pid for p in psutil.Process(render.pid).children(recursive=True)]
    psutil.Process(render.pid).terminate()
    assert all_gone(pids, timeout=2)
    while render.poll() is None:
        render.read(timeout=0.2)
    assert render.poll() == 143


def test_closing_a_killed_flood_ends_its_reader_thread(tmp_path, simulator):
    project = tmp_path / "flood.aep"
    project.write_text(json.dumps({"frames": 50, "frame_seconds": 0, "flood_mb": 500}))
    render = RenderProcess([simulator, "-project", project, "-comp", "Main",
                            "-output", tmp_path / "out.avi"])
    # Nobody reads: the output queue fills and the reader waits to hand over more.
    wait_for_queue = time.monotonic() + 20
    while not render._queue.full() and time.monotonic() < wait_for_queue:
        time.sleep(0.05)
    assert render._queue.full()
    render.kill()
    render.close()
    assert not render.reader_alive
    assert not [t for t in threading.enumerate() if t.name == f"render-{render.pid}"]
