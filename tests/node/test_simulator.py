"""The aerender simulator prints only what real aerender prints (both styles, the
locales real logs show), and replays real logs for the end-to-end tests."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import pytest

from jobs.node.engines.ae_output import AeOutput, judge
from tests.helpers.aelogs import sample_lines, sample_path
from tests.helpers.farm import patch_like_nexrender

TC = r"\d{1,2}(?P<sep>[:;])\d{2}(?P=sep)\d{2}(?P=sep)\d{2}"
DATE = r"(\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M|\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}:\d{2}" \
       r"|\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2} GMT[+-]?\d*|\d{4}/\d{1,2}/\d{1,2} \d{2}:\d{2}:\d{2})"
# Every line shape, each as a real log shows it (tests/data/aelogs/, the file named).
REAL_SHAPES = [
    r"aerender version \d+\.\d+x\d+.*",  # 04_ (ours adds a note saying what it is)
    r"PROGRESS: Launching After Effects\.\.\.",  # 04_
    r"PROGRESS: \.\.\.After Effects successfully launched",  # 16_
    r"PROGRESS: Adding specified comp to Render Queue",  # 22a_
    r"Running Script: .+",  # 22a_
    # 14_ 22a_ 13_
    r"(PROGRESS:  |  )" + DATE + r": (Starting|Finished) composition (“.+”|[^“”]+)\.",
    r"(PROGRESS:  |  )(Render Settings|Quality|Resolution|Size|Proxy Use|Effects|Disk Cache"
    r"|Color Depth|Frame Blending|Field Render|Pulldown|Motion Blur|Solos|Time Span"
    r"|Guide Layers|Skip Existing Files|Output Module|Output To): .+",  # 14_ 29_
    r"(PROGRESS:  |  )(Start|End|Duration): " + TC,  # 14_ 29_
    r"(PROGRESS:  |  )Frame Rate: \d+[.,]\d\d \(comp\)",  # 14_ 29_
    r"(PROGRESS:  |  )" + TC + r" \(\d+\): \d+ Seconds",  # 22b_ 14_ 01_
    r"(PROGRESS:  |  )Total Time Elapsed: (\d+ Seconds|\d+ Min, \d+ Sec|\d+ Hr, \d+ Min)",  # 10_
    r"  ",  # 14_ (a separator holding two spaces)
    r"",
    r"aerender ERROR: No comp was found with the given name\.",  # 03_
    r"aerender Error: After Effects error: Error in output for render queue item 1, output "
    r"module 1\. Can not create a file in directory .+\. Try checking write permissions\.",  # 23_
    r"aerender SYNTAX ERROR: Illegal argument flag: \S+",  # 06a_
    r"WARNING:After Effects warning: Grouped_Message_\{some layers have missing dependencies\. "
    r"Press Ctrl-C to copy this list\.\|\|\|a layer has missing dependencies\.###@0 "
    r"dependencies are missing:\}Text Layer: Font family: .+, Font style: .+",  # 03_
    r"WARNING:After Effects warning: logged one error  error: Unable to Render: File Not "
    r"Found .+",  # 19_
]


def run(simulator, tmp_path, argv=(), **behaviour) -> subprocess.CompletedProcess:
    project = tmp_path / "spot.aep"
    project.write_text(json.dumps({"frames": 12, "frame_seconds": 0, **behaviour}))
    return subprocess.run(
        [str(simulator), "-project", str(project), "-comp", "Main",
         "-output", str(tmp_path / "out.avi"), *argv], capture_output=True, check=False)


def assert_real(lines: list[str]):
    odd = [line for line in lines if not any(re.fullmatch(shape, line) for shape in REAL_SHAPES)]
    assert odd == [], "lines real aerender does not print"


@pytest.mark.parametrize("style, locale, fps, drop", [
    ("render_log", "en_US", 25, False), ("render_log", "de_DE", 29.97, True),
    ("progress", "en_US", 23.976, False), ("progress", "de_DE", 25, False),
    ("render_log", "en_GB", 24, False), ("render_log", "zh_CN", 30, False)])
def test_output_has_only_real_line_shapes_and_reads_back(simulator, tmp_path, style, locale,
                                                           fps, drop):
    patch_like_nexrender(simulator)  # as nexrender runs it: -r is its patch's flag
    result = run(simulator, tmp_path, ["-r", "/tmp/nexrender-x-script.jsx", "-s", "2", "-e", "9"],
                 log_style=style, locale=locale, fps=fps, drop_frame=drop,
                 missing_fonts=[["Bebas", "Regular"]])
    assert result.returncode == 0, result.stdout
    lines = result.stdout.decode().splitlines()
    assert_real(lines)
    assert not any("Render Finished" in line for line in lines)
    assert any(line.startswith("PROGRESS:  ") for line in lines) is (style == "progress")
    if locale == "de_DE":
        assert any(re.search(r"Frame Rate: \d+,\d\d \(comp\)", line) for line in lines)
    output = AeOutput()  # nothing from the job: the total comes from the printed settings
    for line in lines:
        output.feed(line)
    assert (output.frames_total, output.frames_done, output.finished) == (8, 8, True)
    assert [w["message"] for w in output.warnings] == ["Missing font: Bebas Regular (Text Layer)"]
    assert judge(output, 0, True, {"composition": "Main"}) is None


def test_real_errors_and_late_missing_footage(simulator, tmp_path):
    result = run(simulator, tmp_path, compositions=["Other"])
    lines = result.stdout.decode().splitlines()
    assert (result.returncode, lines[-1]) == (1, "aerender ERROR: No comp was found with the "
                                                  "given name.")
    assert_real(lines)
    result = run(simulator, tmp_path, ["-bogus"])
    assert result.stdout.decode().splitlines() == [
        "aerender SYNTAX ERROR: Illegal argument flag: -bogus"]
    assert result.returncode == 1

    missing = tmp_path / "nowhere" / "out.avi"
    project = tmp_path / "spot.aep"
    result = subprocess.run([str(simulator), "-project", str(project), "-comp", "Main",
                             "-output", str(missing)], capture_output=True, check=False)
    assert result.returncode == 1
    assert result.stdout.decode().splitlines()[-1].endswith(
        f"Can not create a file in directory {missing.parent}. Try checking write permissions.")

    # Missing footage: AE finishes, writes placeholder frames, exits 0 and says so last.
    result = run(simulator, tmp_path, missing_footage=["C:\\footage\\logo.png"])
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0
    assert lines[-2].strip().startswith("Total Time Elapsed:")
    assert lines[-1] == ("WARNING:After Effects warning: logged one error  error: Unable to "
                         "Render: File Not Found C:\\footage\\logo.png")
    assert_real(lines)


def test_replay_prints_the_log_paced_holds_and_ends_as_told(simulator, tmp_path):
    release = tmp_path / "go"
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(simulator), "-project", str(_project(tmp_path, {
            "replay": str(sample_path("14_")), "replay_line_seconds": 0.001,
            "replay_hold": {"after": "(2):", "until_file": str(release)},
            "exit_code": 3, "output": True})),
         "-comp", "render", "-output", str(tmp_path / "out.avi")],
        stdout=subprocess.PIPE)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while not any(b"(2):" in line for line in seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    # Held after the line with "(2):": AE is "still rendering".
    assert seen[-1] == b"  0:00:00:01 (2): 0 Seconds\n" and proc.poll() is None
    release.touch()
    assert proc.wait(timeout=30) == 3
    reader.join(timeout=5)
    assert [line.decode().rstrip("\n") for line in seen] == sample_lines("14_")
    assert (tmp_path / "out.avi").stat().st_size > 0
    assert time.monotonic() - started >= len(seen) * 0.001


def test_replay_in_a_windows_code_page_and_without_output(simulator, tmp_path):
    result = subprocess.run(
        [str(simulator), "-project", str(_project(tmp_path, {
            "replay": str(sample_path("91_")), "replay_line_seconds": 0,
            "encoding": "cp1252"})),
         "-comp", "main", "-output", str(tmp_path / "out.avi")], capture_output=True)
    assert result.returncode == 0
    assert not (tmp_path / "out.avi").exists()
    last = result.stdout.splitlines()[-1]
    assert "Não é possível".encode("cp1252") in last
    with pytest.raises(UnicodeDecodeError):
        last.decode("utf-8")


def _project(tmp_path, behaviour: dict):
    project = tmp_path / "replay.aep"
    project.write_text(json.dumps(behaviour))
    return project
