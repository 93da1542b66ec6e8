"""Reading After Effects' output: every real sample in tests/data/aelogs/ (users'
posted logs; each file's header names its source) read line by line, and the
verdict on how the attempt ended.

How each render ended (exit code, output file) is taken from what its source
shows: nexrender printing "rendering took" means aerender exited 0; "Couldn't
find a result file" means there was no file; a render nexrender or the poster
called a success left its file. Excerpts that stop mid-render are read but not
judged. Samples 90_ and 91_ are constructed (their headers say how and why).
"""

from __future__ import annotations

import pytest

from jobs.models import Phase
from jobs.node.engines.ae_output import (
    UNDECODABLE,
    AeOutput,
    elapsed_seconds,
    judge,
    timecode_frames,
)
from jobs.node.procs import _split
from tests.helpers.aelogs import all_samples, sample_lines

TEMPLATE = {"composition": "main"}
UNJUDGED = None  # an excerpt that stops while AE is still rendering


def read(prefix: str, **job) -> AeOutput:
    output = AeOutput(**job)
    for number, line in enumerate(sample_lines(prefix)):
        output.feed(line, now=number * 0.1)
    return output


# sample -> (exit code, output file left, error_code, words of the cause), or UNJUDGED
ENDINGS = {
    "01_": (0, True, None, ""),
    "02_": (0, False, "ae_exited_silently", "“PROGRESS: ...After Effects successfully launched”"),
    "03_": (0, False, "missing_composition", "No comp was found with the given name."),
    "04_": (0, False, "ae_launch_failed", "-1701: AEGetParamPt failed at line 894"),
    "05_": (0, False, "ae_launch_failed", "-1701: AEGetParamPt failed at line 918"),
    "06a": (1, False, "bad_arguments", "SYNTAX ERROR: Illegal argument flag: -reuse"),
    "06b": (1, False, "bad_arguments", "SYNTAX ERROR: Illegal argument flag: -reuse"),
    "07_": (0, False, "ae_exited_silently", "“PROGRESS: Launching After Effects...”"),
    "08_": (0, True, None, ""),
    "09_": (0, False, "ae_error", "After Effects\ufffd: 2\"y 1 \ufffd\ufffd\ufffd \ufffd\ufffd!W"),
    "10_": (0, True, None, ""),
    "11_": (1, False, "ae_busy", "After Effects can not render for aerender. Another instance"),
    "12_": (1, False, "ae_busy", "or another script, may be running; or, AE may be waiting"),
    "13_": (0, True, None, ""),
    "14_": UNJUDGED,
    "15_": (0, True, "missing_template", "No render settings template was found"),
    "16_": (0, False, "ae_exited_silently", "successfully launched"),
    "17_": (1, False, "missing_composition", "No comp was found with the given name."),
    "18_": (0, True, None, ""),
    "19_": (0, True, "missing_footage", "Unable to Render: File Not Found C:\\Users\\...\\"),
    "20_": (1, False, "ae_exited_silently", "failed to render the output into the file due "
            "to an unknown reason"),
    "21_": (0, True, "footage_unreadable", "Could not read from source. Please check"),
    "22a": UNJUDGED,
    "22b": UNJUDGED,
    "23_": (1, False, "output_not_writable", "Can not create a file in directory {insert dir "
            "here}. Try checking write permissions."),
    "24_": (0, False, "ae_launch_failed", "AEGetParamPt failed at line 918"),
    "25_": (0, False, "unsupported_codec", "The source compression type is not supported."),
    "26_": (1, False, "script_error", "nexrender: Couldn't find any layers by provided name "
            "(cent) inside a composition"),
    "27_": (1, False, "missing_template", "No output module template was found"),
    "28_": (0, False, "ae_exited_silently", "Launching After Effects"),
    "29_": UNJUDGED,
    "30_": UNJUDGED,
    "31_": (0, True, "output_write_failed", "An output module failed."),
    "32_": UNJUDGED,
    "33_": UNJUDGED,
    "34_": (0, True, "missing_footage", "N\ufffdo \ufffd poss\ufffdvel renderizar: arquivo "
            "/Users/filipedeschamps/video-maker/content/6-converted.png"),
    "90_": (0, True, None, ""),
    "91_": (0, True, "missing_footage", "Não é possível renderizar: arquivo "
            "C:\\projetos\\vídeo\\imagem.png não localizado"),
}

# sample -> (frames done, total printed, finished, warning codes)
PROGRESS = {
    "01_": (21280, None, True, []),
    "02_": (0, None, False, ["ae_warning"]),
    "03_": (0, None, False, ["missing_font", "missing_font"]),
    "08_": (0, None, False, []),
    "10_": (0, None, True, []),
    "13_": (240, None, True, []),
    "14_": (4, 166, False, []),
    "15_": (0, None, False, []),
    "18_": (0, None, False, ["ae_warning"]),
    "19_": (0, None, True, ["missing_footage"]),
    "22a": (0, None, False, []),
    "22b": (135, None, False, []),
    "29_": (0, 125, False, ["missing_font"]),
    "30_": (0, None, False, []),
    "32_": (0, None, False, []),
    "33_": (0, None, False, []),
    "34_": (0, None, False, ["missing_footage", "missing_font"]),
    "90_": (240, 240, True, []),
    "91_": (120, 120, False, ["missing_font", "missing_footage"]),
}


def test_every_sample_has_its_expectations():
    assert sorted(ENDINGS) == [name[:3] for name in all_samples()]


@pytest.mark.parametrize("prefix", sorted(ENDINGS))
def test_how_each_real_render_ended(prefix):
    output = read(prefix)
    if ENDINGS[prefix] is UNJUDGED:
        assert output.errors == [], "an excerpt of a running render has no error"
        return
    exit_code, has_output, code, words = ENDINGS[prefix]
    cause = judge(output, exit_code, has_output, TEMPLATE)
    if code is None:
        assert cause is None, cause
        return
    assert cause is not None and cause.code == code, cause
    # One line in AE's own words: never a stack frame, never just an exit code.
    assert words in cause.cause
    assert "\n" not in cause.cause and not cause.cause.startswith("at ")
    assert cause.hint
    assert not any(noise in cause.text() for noise in (
        "ChildProcess", "render.js", "exited with code 1", "[info]", "NVAPI"))


@pytest.mark.parametrize("prefix", sorted(PROGRESS))
def test_progress_counters_totals_and_warnings(prefix):
    done, total, finished, warnings = PROGRESS[prefix]
    output = read(prefix)
    assert output.frames_done == done
    assert output.frames_total == total
    assert output.finished is finished
    assert [warning["code"] for warning in output.warnings] == warnings
    assert output.phase == (Phase.RENDERING if done or finished else Phase.SETTING_UP)


def test_progress_follows_the_counter_not_the_lines():
    # 13_: AE 2022's un-prefixed lines, a 24-frame timebase, frames 200..240 of a
    # 240-frame render (the job renders frames 0..239). nexrender said 91 %.
    output = AeOutput(frame_start=0, frame_end=239)
    lines = sample_lines("13_")
    for line in lines[:lines.index("  0:00:09:03 (220): 0 Seconds") + 1]:
        output.feed(line)
    assert output.frames_done == 220
    assert output.percent == pytest.approx(100 * 220 / 240)
    assert not output.finished
    for line in lines:
        output.feed(line)
    assert output.percent == 100.0 and output.elapsed_seconds == 17

    # 14_: Duration 0:00:06:16 at "25,00": 166 frames; 4 done.
    output = read("14_")
    assert output.fps == 25.0
    assert output.percent == pytest.approx(100 * 4 / 166)
    assert output.eta_seconds(now=10.0) is not None

    # 01_: drop-frame timecodes and the last counter printed twice.
    output = read("01_", known_total=21280)
    assert output.frames_done == 21280 and output.percent == 100.0
    assert output.elapsed_seconds == 26 * 3600 + 15 * 60


def test_a_known_total_beats_the_range_and_the_printed_duration():
    output = read("14_", known_total=400, frame_start=0, frame_end=9)
    assert output.frames_total == 400
    assert read("14_", frame_start=0, frame_end=9).frames_total == 10
    assert read("14_", frame_start=0, frame_end=9, frame_increment=2).frames_total == 5
    assert read("14_", frame_increment=2).frames_total == 83


def test_constructed_23976_and_several_frames_per_line():
    # CONSTRUCTED sample (90_): no real log shows these; see its header.
    output = AeOutput()
    lines = sample_lines("90_")
    for line in lines[:next(i for i, line in enumerate(lines) if "(120)" in line) + 1]:
        output.feed(line)
    assert output.fps == pytest.approx(23.976)
    assert output.frames_total == 240  # AE's timecode counts 24 frames a second
    assert output.frames_done == 120 and output.percent == 50.0
    assert not output.feed("  0:00:04:03 (100): 1 Seconds")  # a repeat never goes back
    assert output.frames_done == 120


def test_unknown_labels_are_read_by_position():
    # CONSTRUCTED sample (91_): labels of no language stand for Start/End/Duration/Rate.
    output = AeOutput()
    lines = sample_lines("91_")
    for line in lines[:next(i for i, line in enumerate(lines) if "(60)" in line) + 1]:
        output.feed(line)
    assert output.fps == 30.0 and output.frames_total == 120
    assert output.percent == 50.0


def test_field_render_counters_and_drop_frame_durations():
    # The "(123U)" form is from nexrender #897's regex fix; no posted log shows it.
    output = AeOutput()
    for line in ("  Duration: 0;01;00;02", "  Frame Rate: 29,97 (comp)",
                 "  0;00;01;12 (43U): 0 Seconds", "  0;00;01;12 (43L): 0 Seconds"):
        output.feed(line)
    assert output.frames_total == 1800  # one drop-frame minute and two frames
    assert output.frames_done == 43
    assert timecode_frames(0, 10, 0, 0, 29.97, drop=True) == 17982
    assert timecode_frames(1, 0, 0, 0, 25, drop=False) == 90000


def test_missing_footage_fails_unless_the_job_continues_on_missing():
    for prefix in ("19_", "34_"):
        output = read(prefix)
        assert judge(output, 0, True, TEMPLATE).code == "missing_footage"
        assert judge(output, 0, True, {**TEMPLATE, "continueOnMissing": True}) is None
        assert "missing_footage" in [warning["code"] for warning in output.warnings]
    # Another error still fails a job that continues on missing footage.
    output = read("19_")
    output.feed("aerender ERROR: No comp was found with the given name.")
    cause = judge(output, 0, True, {**TEMPLATE, "continueOnMissing": True})
    assert cause.code == "missing_composition" and cause.permanent


def test_missing_fonts_are_named():
    assert [w["message"] for w in read("03_").warnings] == [
        "Missing font: Bebas Regular (Text Layer)", "Missing font: Roboto Black (Text Layer)"]


def test_the_most_specific_of_several_errors_is_the_cause():
    # 25_: "Error executing script", the codec error, "Runtime error in After Effects".
    output = read("25_")
    assert len(output.errors) == 3
    cause = judge(output, 0, False, TEMPLATE)
    assert cause.cause == "After Effects: The source compression type is not supported."


def test_nexrender_copy_gives_way_to_aes_own_line():
    output = AeOutput()
    output.feed("[abcdefghij] rendering reached an error: After Effects can not render for "
                "aerender. Another instance of aerender, or another script, may be running: or,")
    output.feed("aerender ERROR: After Effects can not render for aerender. Another instance of "
                "aerender, or another script, may be running; or, AE may be waiting")
    assert output.errors == ["After Effects can not render for aerender. Another instance of "
                             "aerender, or another script, may be running; or, AE may be waiting"]


def test_repeated_output_and_two_line_messages_are_kept_once():
    # nexrender prints aerender's whole output again when a render fails.
    lines = sample_lines("09_")
    output = AeOutput()
    for line in lines + ["> job rendering failed"] + [f"Error: {lines[0]}"] + lines[1:]:
        output.feed(line)
    assert len(output.errors) == 1
    cause = judge(output, 1, False, TEMPLATE)
    assert cause.cause.endswith("-\ufffd\ufffd\ufffd\ufffd'\ufffd\ufffdeCP")  # the second line
    assert UNDECODABLE in cause.hint
    assert not cause.permanent  # unknown words: another attempt is allowed


def test_hints_name_the_composition_and_templates():
    cause = judge(read("03_"), 0, False, {"composition": "Main Comp"})
    assert "“Main Comp”" in cause.hint
    cause = judge(read("27_"), 1, False, {**TEMPLATE, "outputModule": "H.264 (Match)"})
    assert "“H.264 (Match)”" in cause.hint
    assert "Privacy & Security" in judge(read("04_"), 0, False, TEMPLATE).hint


@pytest.mark.parametrize("code, permanent", [
    ("03_", True), ("27_", True), ("23_", True), ("06a", True), ("25_", True), ("21_", True),
    ("26_", True), ("19_", True), ("12_", False), ("04_", False), ("07_", False),
    ("31_", False), ("09_", False)])
def test_what_will_fail_again_fails_at_once(code, permanent):
    exit_code, has_output, *_ = ENDINGS[code]
    assert judge(read(code), exit_code, has_output, TEMPLATE).permanent is permanent


def test_crashes_stalls_and_missing_files_without_an_ae_error():
    output = read("14_")
    cause = judge(output, 3, False, TEMPLATE)
    assert (cause.code, cause.permanent) == ("crashed", False)
    assert cause.cause == ("After Effects stopped after frame 4 of 166 and printed no error "
                           "(the renderer exited with code 3)")
    finished = read("13_")
    assert judge(finished, 0, False, TEMPLATE).code == "no_output"
    assert judge(finished, 1, True, TEMPLATE).code == "crashed"
    stalled = AeOutput()
    stalled.feed("Error: No update from aerender for 60 seconds")
    assert judge(stalled, 1, False, TEMPLATE).code == "stalled"
    missing = AeOutput()
    missing.feed("Error: Error starting aerender process: Error: spawn /x/aerender ENOENT")
    cause = judge(missing, 1, False, TEMPLATE)
    assert cause.code == "ae_launch_failed" and "AERENDER_PATH" in cause.hint


def test_noise_that_says_error_is_not_an_error():
    output = AeOutput()
    for line in ("  [ERROR] NVAPI error (C:\\code\\Util\\DriverInfo.cpp:309):",
                 "[2022-02-07 16:43:14] [error] handle_connect error: refused",
                 "lifecycle error Error: Couldn't find a result file",
                 "Error: aerender version 17.5x40",
                 "    at Process.ChildProcess._handle.onexit (internal/child_process.js:283:5)",
                 "[OVsMVgXpF9hvTIrYEJWK2] rendering progress 100%...",
                 "INFO:After Effects: this project must be converted from version 23.1.",
                 "  Finished composition “Error in name”."):
        output.feed(line)
    assert output.errors == []
    assert output.ae_version == "17.5x40"
    assert output.frames_done == 0


def test_total_time_elapsed_forms():
    assert elapsed_seconds("26 Hr, 15 Min") == 94500
    assert elapsed_seconds("1 Min, 28 Sec") == 88
    assert elapsed_seconds("17 Seconds") == 17
    assert elapsed_seconds("") is None


def test_output_in_an_ansi_code_page_is_decoded_line_by_line():
    # A localized AE on Windows prints in its ANSI code page (here cp1252), while
    # nexrender's own lines are UTF-8.
    data = ("aerender ERROR: Não é possível\n".encode("cp1252")
            + "[uid] rendering job… ✓\n".encode())
    assert _split(data) == ["aerender ERROR: Não é possível", "[uid] rendering job… ✓", ""]
    assert _split(b"\x81\x8d ok\n") == ["\ufffd\ufffd ok", ""]  # bytes cp1252 lacks
