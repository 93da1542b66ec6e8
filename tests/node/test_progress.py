"""Progress from aerender's own lines (as nexrender --debug echoes them) and the capped log."""

from __future__ import annotations

import json
import subprocess

import pytest

from jobs.models import JobLog, Phase
from jobs.node.progress import AerenderProgress, LogBuffer, timecode_frames

# Captured from `nexrender-cli --debug` (cli 1.46.5, core 1.63.3) driving the
# simulator, 10 frames at 25 fps; blank lines are nexrender's own echo.
NEXRENDER_DEBUG = """\
> starting nexrender-cli
checking After Effects command line renderer patch...
[a6c68c8dff5f4165ba5cdc051018716e] setting up job...
[a6c68c8dff5f4165ba5cdc051018716e] downloading assets...
[a6c68c8dff5f4165ba5cdc051018716e] rendering job...
[a6c68c8dff5f4165ba5cdc051018716e] spawning aerender process: /tmp/simt/inst/aerender -project /tmp/simt/wd/a6c68c8dff5f4165ba5cdc051018716e/project.aep -comp Main -output /tmp/simt/wd/a6c68c8dff5f4165ba5cdc051018716e/result.avi -r /tmp/simt/wd/a6c68c8dff5f4165ba5cdc051018716e/nexrender-a6c68c8dff5f4165ba5cdc051018716e-script.jsx
aerender version 24.0x0 (AE Render Manager simulator, not Adobe After Effects)

PROGRESS:  11/21/2026 01:03:45 PM: Starting composition \u201cMain\u201d.

PROGRESS:  Render Settings: Best Settings
PROGRESS:  Output Module: Lossless
PROGRESS:      Output To: /tmp/simt/wd/a6c68c8dff5f4165ba5cdc051018716e/result.avi
PROGRESS:  Start: 0:00:00:00
PROGRESS:  End: 0:00:00:09
PROGRESS:  Duration: 0:00:00:10
PROGRESS:  Frame Rate: 25.00 (comp)

[a6c68c8dff5f4165ba5cdc051018716e] rendering progress 0%...
PROGRESS:  0:00:00:00 (1): 0 Seconds

PROGRESS:  0:00:00:01 (2): 0 Seconds

[a6c68c8dff5f4165ba5cdc051018716e] rendering progress 20%...
PROGRESS:  0:00:00:02 (3): 0 Seconds

PROGRESS:  0:00:00:03 (4): 0 Seconds

[a6c68c8dff5f4165ba5cdc051018716e] rendering progress 40%...
PROGRESS:  0:00:00:04 (5): 0 Seconds

PROGRESS:  0:00:00:05 (6): 0 Seconds

[a6c68c8dff5f4165ba5cdc051018716e] rendering progress 61%...
PROGRESS:  0:00:00:06 (7): 0 Seconds

PROGRESS:  0:00:00:07 (8): 0 Seconds

[a6c68c8dff5f4165ba5cdc051018716e] rendering progress 80%...
PROGRESS:  0:00:00:08 (9): 0 Seconds

PROGRESS:  0:00:00:09 (10): 0 Seconds
PROGRESS:  11/21/2026 01:03:45 PM: Finished composition \u201cMain\u201d.

PROGRESS:  Total Time Elapsed: 0 Seconds
PROGRESS:  Render Finished

[a6c68c8dff5f4165ba5cdc051018716e] rendering took ~0.281 sec.
[a6c68c8dff5f4165ba5cdc051018716e] applying postrender actions...
[a6c68c8dff5f4165ba5cdc051018716e] skipping the clean up...
> job rendering successfully finished
"""  # noqa: E501 (captured lines are kept whole)

# Captured from a failing render: nexrender repeats aerender's output in its error.
NEXRENDER_FAILURE = """\
[79616c70c93440029533630db88de905] spawning aerender process: /tmp/simt/inst/aerender -project x.aep -comp Main -output result.avi
[79616c70c93440029533630db88de905] rendering reached an error: Unable to find composition Main

aerender version 24.0x0 (AE Render Manager simulator, not Adobe After Effects)
PROGRESS:  11/21/2026 01:03:48 PM: Starting composition \u201cMain\u201d.

aerender Error: Unable to find composition Main

[79616c70c93440029533630db88de905] skipping the clean up...
> job rendering failed
Error: aerender version 24.0x0 (AE Render Manager simulator, not Adobe After Effects)
PROGRESS:  11/21/2026 01:03:48 PM: Starting composition \u201cMain\u201d.

aerender Error: Unable to find composition Main

    at ChildProcess.<anonymous> (/work/main/node_modules/@nexrender/core/src/tasks/render.js:330:31)
"""  # noqa: E501 (captured lines are kept whole)


def feed_all(progress: AerenderProgress, text: str, start: float = 0.0, step: float = 0.1):
    for i, line in enumerate(text.splitlines()):
        progress.feed(line, now=start + i * step)


def test_captured_nexrender_run_reaches_all_frames_and_100_percent():
    progress = AerenderProgress()
    phases = []
    for i, line in enumerate(NEXRENDER_DEBUG.splitlines()):
        progress.feed(line, now=i * 0.1)
        phases.append(progress.phase)
    assert progress.frames_total == 10
    assert progress.frames_done == 10
    assert progress.percent == 100.0
    assert progress.finished
    assert progress.eta_seconds(now=100) == 0
    assert progress.errors == []
    # Setting up until the first frame, then rendering, and it stays so.
    assert phases[0] == Phase.SETTING_UP
    assert phases[-1] == Phase.RENDERING
    first = phases.index(Phase.RENDERING)
    assert set(phases[first:]) == {Phase.RENDERING}


def test_progress_moves_frame_by_frame_and_ignores_nexrender_percentages():
    progress = AerenderProgress()
    assert not progress.feed("PROGRESS:  Start: 0:00:00:00")
    for line in ("PROGRESS:  Duration: 0:00:00:10", "PROGRESS:  Frame Rate: 25.00 (comp)"):
        assert progress.feed(line)
    assert progress.frames_total == 10
    assert progress.phase == Phase.SETTING_UP
    assert progress.percent == 0
    assert not progress.feed("[abc] rendering progress 61%...")
    assert progress.feed("PROGRESS:  0:00:00:03 (4): 0 Seconds")
    assert progress.frames_done == 1
    assert progress.phase == Phase.RENDERING
    assert progress.percent == pytest.approx(10.0)
    # The same frame echoed twice counts once.
    assert not progress.feed("PROGRESS:  0:00:00:03 (4): 0 Seconds")
    assert progress.frames_done == 1


def test_lines_are_found_behind_a_prefix():
    progress = AerenderProgress()
    progress.feed("[uid] stdout: PROGRESS:  Duration: 0:00:01:00")
    progress.feed("2026-01-01 12:00:00 PROGRESS:  Frame Rate: 30.00 (comp)")
    progress.feed("[uid] PROGRESS:  0:00:00:12 (13): 1 Seconds")
    assert progress.frames_total == 30
    assert progress.frames_done == 1


def test_field_suffixes_and_drop_frame_timecodes():
    progress = AerenderProgress()
    progress.feed("PROGRESS:  Duration: 0;01;00;02")
    progress.feed("PROGRESS:  Frame Rate: 29.97 (comp)")
    # One minute plus two frames of 29.97 drop-frame is 1800 frames.
    assert progress.frames_total == 1800
    progress.feed("PROGRESS:  0;00;01;12 (43U): 0 Seconds")
    progress.feed("PROGRESS:  0;00;01;12 (43L): 0 Seconds")
    progress.feed("PROGRESS:  0;00;01;13 (44U): 0 Seconds")
    assert progress.frames_done == 2
    assert timecode_frames(0, 10, 0, 0, 29.97, drop=True) == 17982
    assert timecode_frames(0, 0, 10, 0, 29.97, drop=True) == 300
    assert timecode_frames(1, 0, 0, 0, 25, drop=False) == 90000


def test_duration_in_frames_and_non_integer_rates():
    progress = AerenderProgress()
    progress.feed("PROGRESS:  Duration: 240")
    progress.feed("PROGRESS:  Frame Rate: 23.976 (comp)")
    assert progress.frames_total == 240
    progress = AerenderProgress()
    progress.feed("PROGRESS:  Duration: 0:00:10:00")
    progress.feed("PROGRESS:  Frame Rate: 23.976 (comp)")
    assert progress.frames_total == 240  # AE timecode counts at the nominal 24


def test_a_known_frame_range_and_increment_decide_the_total():
    progress = AerenderProgress(frame_start=10, frame_end=19)
    progress.feed("PROGRESS:  Duration: 0:00:10:00")
    progress.feed("PROGRESS:  Frame Rate: 25.00 (comp)")
    assert progress.frames_total == 10
    assert AerenderProgress(frame_start=0, frame_end=9, frame_increment=2).frames_total == 5
    stepped = AerenderProgress(frame_increment=2)
    stepped.feed("PROGRESS:  Duration: 0:00:00:11")
    stepped.feed("PROGRESS:  Frame Rate: 25.00 (comp)")
    assert stepped.frames_total == 6


def test_percent_is_capped_and_eta_follows_the_rate():
    progress = AerenderProgress()
    progress.feed("PROGRESS:  Duration: 0:00:00:10", now=0)
    progress.feed("PROGRESS:  Frame Rate: 25.00 (comp)", now=0)
    assert progress.eta_seconds(now=0) is None
    for frame in range(5):  # one frame every 2 s
        progress.feed(f"PROGRESS:  0:00:00:{frame:02d} ({frame + 1}): 0 Seconds", now=frame * 2.0)
    # 4 frames in 8 s after the first: 5 left take 10 s.
    assert progress.eta_seconds(now=8.0) == 10
    for frame in range(5, 14):  # more frames than the duration said
        progress.feed(f"PROGRESS:  0:00:00:{frame:02d} ({frame + 1}): 0 Seconds", now=frame * 2.0)
    assert progress.percent == 100.0
    assert progress.phase == Phase.RENDERING


def test_errors_are_kept_once_and_only_the_last_few():
    progress = AerenderProgress()
    feed_all(progress, NEXRENDER_FAILURE)
    assert progress.errors == ["Unable to find composition Main"]
    assert progress.frames_done == 0
    assert progress.phase == Phase.SETTING_UP
    for i in range(8):
        progress.feed(f"aerender ERROR: problem {i}")
    assert progress.errors == [f"problem {i}" for i in range(3, 8)]
    assert progress.error.endswith("problem 7")
    progress.feed("Error: nexrender: Can't find a layer by name: logo")
    assert progress.errors[-1] == "nexrender: Can't find a layer by name: logo"


def test_live_simulator_output_with_a_frame_range(tmp_path, simulator):
    project = tmp_path / "spot.aep"
    project.write_text(json.dumps({"frames": 50, "fps": 25, "frame_seconds": 0}))
    result = subprocess.run(
        [str(simulator), "-project", str(project), "-comp", "Main", "-output",
         str(tmp_path / "out.avi"), "-s", "5", "-e", "14"],
        capture_output=True, text=True, check=True)
    progress = AerenderProgress(frame_start=5, frame_end=14)
    changed = [progress.feed(line) for line in result.stdout.splitlines()]
    assert sum(changed) == 10 + 3  # frames, Duration, Frame Rate, Render Finished
    assert progress.frames_total == progress.frames_done == 10
    assert progress.percent == 100.0
    unranged = AerenderProgress()
    for line in result.stdout.splitlines():
        unranged.feed(line)
    assert unranged.frames_total == 10  # the simulator prints the range's Duration


# --- LogBuffer ----------------------------------------------------------------


def test_log_buffer_keeps_everything_while_it_fits():
    log = LogBuffer(1000)
    log.extend(["one", "two\n", "three"])
    assert log.head == "one\ntwo\nthree\n"
    assert log.tail == ""
    assert log.omitted_bytes == 0
    assert log.text() == "one\ntwo\nthree\n"


def test_log_buffer_keeps_head_and_tail_and_counts_the_rest():
    log = LogBuffer(10_000)
    lines = [f"line {i:06d} " + "x" * 80 for i in range(10_000)]
    log.extend(lines)
    total = sum(len(line) + 1 for line in lines)
    head, tail = log.head, log.tail
    assert head.startswith("line 000000 ")
    assert tail.endswith("line 009999 " + "x" * 80 + "\n")
    assert len(head.encode()) <= 5000 and len(tail.encode()) <= 5000
    assert len(head) + len(tail) + log.omitted_bytes == total
    assert log.total_bytes == total
    # The same shape as the JobLog row it fills.
    row = JobLog(head=head, tail=tail, omitted_bytes=log.omitted_bytes)
    assert f"[... {log.omitted_bytes} bytes of log omitted ...]" in row.text()


def test_log_buffer_counts_bytes_of_non_ascii_text_and_huge_lines():
    log = LogBuffer(10_000)
    log.append("é" * 3000)  # 6000 bytes: does not fit the 5000-byte head
    assert log.head == ""
    assert len(log.tail.encode()) <= 5000
    log.append("ü" * 10_000)  # bigger than the whole tail: its end is kept
    assert log.tail.endswith("ü\n")
    assert len(log.tail.encode()) <= 5000
    assert log.omitted_bytes + len(log.tail.encode()) == 6001 + 20_001


def test_log_buffer_add_splits_a_block_of_lines():
    earlier = LogBuffer(10_000)
    earlier.extend(f"old line {i} " + "y" * 90 for i in range(500))
    log = LogBuffer(10_000)
    log.add(earlier.text())
    log.add("new line")
    assert log.head.startswith("old line 0 ")
    assert log.tail.endswith("new line\n")
    assert log.omitted_bytes > 0
