"""Real After Effects output, replayed end to end: a real worker, the real nexrender
CLI, and the simulator printing a log a user posted (tests/data/aelogs/, each file
names its source) as aerender's output, then exiting as that render did.

How each render ended (exit code, output file or none) comes from its source:
nexrender printing "rendering took" means aerender exited 0, "Couldn't find a
result file" means there was no file, a render nexrender or the poster took for a
success left one. Where the source does not say, the replay exits 1 with no file.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs.models import Job, Status
from tests.helpers.aelogs import sample_path
from tests.helpers.common import wait_for
from tests.helpers.farm import status_of, submit, wait_status

pytestmark = pytest.mark.slow

# sample -> (exit code, leaves an output file, error_code, AE's words in the error's first line)
FAILING = {
    "02_": (0, False, "ae_exited_silently", "After Effects successfully launched"),
    "03_": (0, False, "missing_composition", "No comp was found with the given name."),
    "04_": (0, False, "ae_launch_failed", "-1701: AEGetParamPt failed at line 894"),
    "05_": (0, False, "ae_launch_failed", "-1701: AEGetParamPt failed at line 918"),
    "06a": (1, False, "bad_arguments", "Illegal argument flag: -reuse"),
    "06b": (1, False, "bad_arguments", "Illegal argument flag: -reuse"),
    "07_": (0, False, "ae_exited_silently", "PROGRESS: Launching After Effects..."),
    "09_": (0, False, "ae_error", "After Effects\ufffd: 2\"y 1 \ufffd\ufffd\ufffd"),
    "11_": (1, False, "ae_busy", "After Effects can not render for aerender. Another instance"),
    "12_": (1, False, "ae_busy", "After Effects can not render for aerender. Another instance"),
    "15_": (0, True, "missing_template", "No render settings template was found"),
    "16_": (0, False, "ae_exited_silently", "After Effects successfully launched"),
    "17_": (1, False, "missing_composition", "No comp was found with the given name."),
    "19_": (0, True, "missing_footage", "Unable to Render: File Not Found C:\\Users\\"),
    "20_": (1, False, "ae_exited_silently", "due to an unknown reason"),
    "21_": (0, True, "footage_unreadable", "Could not read from source."),
    "23_": (1, False, "output_not_writable", "Can not create a file in directory"),
    "24_": (0, False, "ae_launch_failed", "-1701: AEGetParamPt failed at line 918"),
    "25_": (0, False, "unsupported_codec", "The source compression type is not supported."),
    "26_": (1, False, "script_error", "Couldn't find any layers by provided name (cent)"),
    "27_": (1, False, "missing_template", "No output module template was found"),
    "28_": (0, False, "ae_exited_silently", "PROGRESS: Launching After Effects..."),
    "31_": (0, True, "output_write_failed", "An output module failed."),
    "34_": (0, True, "missing_footage", "renderizar: arquivo /Users/filipedeschamps/"),
}
PERMANENT = {"missing_composition", "missing_template", "bad_arguments", "output_not_writable",
             "footage_unreadable", "unsupported_codec", "script_error", "missing_footage"}


def replay(farm, user, prefix_or_path, exit_code=0, output=True, template=None, engine=None,
           name_suffix="", **behaviour) -> Job:
    """A job whose "AE" prints a log, then exits with ``exit_code``, leaving ``output``."""
    log = prefix_or_path if not isinstance(prefix_or_path, str) else sample_path(prefix_or_path)
    return submit(farm, user, f"replay-{log.stem[:12]}{name_suffix}.aep", template=template,
                  engine=engine, replay=str(log), replay_line_seconds=0.002,
                  exit_code=exit_code, output=output, **behaviour)


def held_progress(job, counter: int):
    """The job while AE is held after printing the frame ``counter``."""
    try:
        return wait_for(lambda: status_of(job) == Status.RENDERING
                        and job.frames_done == counter and job, timeout=60)
    except AssertionError:
        raise AssertionError(f"job never showed frame {counter}: {job.status} "
                             f"{job.frames_done} {job.error}") from None


def test_every_failing_log_fails_with_aes_cause_and_is_retried_by_cause(
        farm, user, nexrender_cli, browser_user):
    farm.configure(MAX_RENDER_ATTEMPTS=2)
    empty = farm.tmp_path / "empty.log"
    empty.write_text("")
    jobs = {prefix: replay(farm, user, prefix, exit_code, output)
            for prefix, (exit_code, output, _, _) in FAILING.items()}
    # aerender printed nothing and failed: nexrender's own words are all there is.
    jobs["empty"] = replay(farm, user, empty, exit_code=1, output=False)
    farm.start_worker()
    expected = {**FAILING, "empty": (1, False, "ae_exited_silently", "nexrender: aerender.exe "
                                     "failed to render the output into the file due to an "
                                     "unknown reason")}
    wrong = []
    for prefix, job in jobs.items():
        _, _, code, words = expected[prefix]
        wait_status(job, Status.FAILED, Status.COMPLETED, timeout=240)
        first, _, hint = job.error.partition("\n")
        attempts = 1 if code in PERMANENT else 2
        # The attempt that decided went through nexrender to the replaying "aerender".
        last_attempt = job.log.text().rpartition("=== attempt ")[2]
        through_nexrender = "spawning aerender process:" in last_attempt
        if (job.status, job.error_code, job.attempts) != (Status.FAILED, code, attempts) \
                or words not in first or not hint or "ChildProcess" in job.error \
                or not through_nexrender:
            retries = list(job.events.filter(kind="retry").values_list("message", flat=True))
            wrong.append((prefix, job.status, job.error_code, job.attempts, job.error,
                          retries, job.log.text()))
    assert wrong == []

    # Warnings AE printed are kept, however the render ended.
    assert [w["message"] for w in jobs["03_"].warnings] == [
        "Missing font: Bebas Regular (Text Layer)", "Missing font: Roboto Black (Text Layer)"]
    assert [w["code"] for w in jobs["34_"].warnings] == ["missing_footage", "missing_font"]
    # The job page shows the cause and the hint.
    page = browser_user.get(reverse("jobs:detail", args=[jobs["03_"].pk])).content.decode()
    assert "Composition not found" in page
    assert "No comp was found with the given name." in page
    assert "The job asks for the composition “main”" in page
    assert "Bebas Regular" in page


def test_missing_footage_is_never_a_silent_success(farm, user, nexrender_cli, user_client,
                                                   browser_user):
    failing = replay(farm, user, "19_")
    continuing = replay(farm, user, "19_", template={"continueOnMissing": True},
                        name_suffix="continue")
    farm.start_worker()
    wait_status(failing, Status.FAILED, Status.COMPLETED, timeout=120)
    assert (failing.status, failing.error_code, failing.attempts) == (
        Status.FAILED, "missing_footage", 1)
    wait_status(continuing, Status.FAILED, Status.COMPLETED, timeout=120)
    assert continuing.status == Status.COMPLETED, continuing.error
    body = user_client.get(f"/api/jobs/{continuing.pk}").json()
    assert body["error_code"] == ""
    assert body["warnings"] == [{"code": "missing_footage", "message": (
        "Unable to Render: File Not Found C:\\Users\\...\\(Footage)\\_Ressourcen\\Bilder\\"
        "Platzhalter Bild.jpg")}]
    page = browser_user.get(reverse("jobs:detail", args=[continuing.pk])).content.decode()
    assert "After Effects warnings" in page and "Platzhalter Bild.jpg" in page


def test_progress_while_ae_renders_matches_the_log(farm, user, nexrender_cli):
    # 13_: frames 200..240 of a 240-frame render (the job renders frames 0..239),
    # held after "(220)": the log says 220 of 240 (nexrender itself said 91 %).
    release = farm.tmp_path / "release-13"
    tail = replay(farm, user, "13_", template={"frameStart": 0, "frameEnd": 239},
                  replay_hold={"after": "(220):", "until_file": str(release)})
    farm.start_worker()

    job = held_progress(tail, 220)
    assert abs(job.progress - 100 * 220 / 240) <= 1.5, job.progress
    assert job.frames_total == 240
    release.touch()
    wait_status(tail, Status.COMPLETED, Status.FAILED, timeout=60)
    assert (tail.status, tail.progress, tail.error_code) == (Status.COMPLETED, 100, "")

    # 90_, CONSTRUCTED (see its header): 23.976 fps and several frames per line.
    # (Submitted once the first is done: held jobs would wait for each other.)
    release_90 = farm.tmp_path / "release-90"
    constructed = replay(farm, user, "90_",
                         replay_hold={"after": "(120):", "until_file": str(release_90)})
    job = held_progress(constructed, 120)
    assert abs(job.progress - 50.0) <= 1.5 and job.frames_total == 240
    release_90.touch()
    wait_status(constructed, Status.COMPLETED, Status.FAILED, timeout=60)
    assert constructed.status == Status.COMPLETED, constructed.error


def test_a_render_that_hangs_shows_its_progress_then_stalls(farm, user, nexrender_cli):
    # 14_: Duration 0:00:06:16 at "25,00" is 166 frames; the excerpt (a render that
    # hung) stops after frame 4, and so does the replay.
    farm.configure(RENDER_STALL_SECONDS=5, MAX_RENDER_ATTEMPTS=1)
    job = replay(farm, user, "14_", output=False, then="hang")
    farm.start_worker()
    held = held_progress(job, 4)
    assert held.frames_total == 166
    assert abs(held.progress - 100 * 4 / 166) <= 1.5
    wait_status(job, Status.FAILED, timeout=60)
    assert job.error_code == "stalled"
    assert "printed nothing for 5 s" in job.error.partition("\n")[0]


def test_warnings_from_the_project_stay_beside_aes(farm, user, nexrender_cli):
    # Reading the project before the render (jobs.node.preflight) may have warned
    # already; what AE prints is added, not put in its place.
    job = submit(farm, user, "fonts.aep", missing_fonts=[["Bebas", "Regular"]])
    read_before = {"code": "missing_footage", "message": "Footage 'logo.png' is missing "
                   "(logo.png): rendered with placeholders (continueOnMissing)"}
    Job.objects.filter(pk=job.pk).update(warnings=[read_before])
    farm.start_worker()
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=120)
    assert job.status == Status.COMPLETED, job.error
    assert job.warnings == [read_before, {"code": "missing_font", "message":
                                          "Missing font: Bebas Regular (Text Layer)"}]


def test_successful_real_logs_complete(farm, user, nexrender_cli):
    jobs = [replay(farm, user, prefix) for prefix in ("01_", "10_")]
    farm.start_worker()
    for job in jobs:
        wait_status(job, Status.COMPLETED, Status.FAILED, timeout=120)
        assert (job.status, job.progress, job.error_code) == (Status.COMPLETED, 100, ""), \
            job.error
    assert jobs[0].frames_done == 21280  # the drop-frame log's counter


def test_localized_ae_in_a_windows_code_page(farm, user, nexrender_cli):
    # 91_, CONSTRUCTED (see its header): unknown labels, pt-BR messages from a real
    # log, printed in cp1252 as a localized AE on Windows does.
    release = farm.tmp_path / "release-91"
    direct = replay(farm, user, "91_", engine="aerender", encoding="cp1252",
                    replay_hold={"after": "(60):", "until_file": str(release)})
    wrapped = replay(farm, user, "91_", engine="nexrender", encoding="cp1252",
                     name_suffix="nexrender")
    farm.start_worker()
    job = held_progress(direct, 60)
    assert job.frames_total == 120 and abs(job.progress - 50.0) <= 1.5
    release.touch()
    for job in (direct, wrapped):
        wait_status(job, Status.FAILED, Status.COMPLETED, timeout=120)
        assert (job.status, job.error_code) == (Status.FAILED, "missing_footage")
        assert [w["code"] for w in job.warnings] == ["missing_font", "missing_footage"]
    # aerender's bytes reach the manager as they are, and are decoded as the code page;
    # nexrender decodes them as UTF-8 itself, and the letters it could not read are lost.
    assert "Não é possível renderizar: arquivo C:\\projetos\\vídeo\\imagem.png não " \
           "localizado" in direct.error.partition("\n")[0]
    assert "N\ufffdo \ufffd poss\ufffdvel renderizar" in wrapped.error.partition("\n")[0]
