"""Reading the project before rendering (jobs.node.preflight), through validation ticks.

Every read runs the real reader in a child process (py-aep), on projects
built with py-aep (tests/helpers/aep.py) and on real ones After Effects saved.
"""

from __future__ import annotations

import os
import random
import time

import psutil
import pytest

from jobs import lifecycle
from jobs.models import Job, Status
from jobs.node import preflight
from jobs.node.footage import locate
from tests.helpers.aep import (
    collected_mogrt,
    promo_project,
    real_sample,
    settle,
    submit,
    tick_until,
    write_png,
)
from tests.helpers.common import make_project


def retried(job, times=2) -> Job:
    return tick_until(job, lambda job: job.validation_attempts >= times)


def footage(job) -> dict[str, dict]:
    return {item["name"]: item for item in job.project["footage"]}


ALL = {"logo.png", "background.png", "card.png", "plate.png"}


# --- What is read -------------------------------------------------------------------


def test_compositions_frames_footage_and_fonts_are_known_before_rendering(fast_checks, dropbox,
                                                                          user):
    promo = promo_project(dropbox, present=ALL)
    job = settle(submit(user, promo.path))
    assert job.status == Status.QUEUED, job.error
    project = job.project
    assert project["error"] is None
    assert project["compositions"] == ["intro", "main", "unused"]
    # The work area: 1 s + 2 s at 25 fps.
    assert project["composition"] == {
        "name": "main", "width": 1920, "height": 1080, "fps": 25.0, "duration_seconds": 2.0,
        "frames": 50, "start_frame": 25, "end_frame": 74, "range": "work area"}
    assert job.frames_total == 50
    assert project["saved_with"] == "25.2x21"
    assert project["saved_with_name"] == "After Effects 2025 (25.2)"
    # Fonts of the composition and of the one nested in it.
    assert sorted(project["fonts"]) == ["Montserrat-Bold", "Roboto-Regular"]
    # Footage of the composition tree only (unused.png belongs to "unused").
    items = footage(job)
    assert set(items) == ALL
    assert {name: item["status"] for name, item in items.items()} == dict.fromkeys(ALL, "found")
    assert items["logo.png"]["path"] == "/Users/alice/Dropbox/projects/promo/footage/logo.png"
    # Found through the macOS -> Dropbox mapping...
    assert items["logo.png"]["resolved"] == str(promo.files["logo.png"])
    assert items["background.png"]["resolved"] == str(promo.files["background.png"])
    # ...or, saved on another disk, relative to the project's folder as AE does.
    assert items["card.png"]["path"] == "/Volumes/Work/promo/footage/card.png"
    assert items["card.png"]["relative_path"] == "footage/card.png"
    assert items["card.png"]["resolved"] == str(promo.files["card.png"])
    assert sorted(items["logo.png"]["used_by"]) == ["intro › Logo small", "main › Logo"]
    assert items["logo.png"]["size"] == promo.files["logo.png"].stat().st_size
    assert job.warnings == []
    events = list(job.events.filter(kind="preflight").values_list("message", flat=True))
    assert len(events) == 1
    assert "composition 'main' 1920×1080, 25 fps, 50 frames" in events[0]


def test_frame_range_of_the_job_wins_over_the_work_area(fast_checks, dropbox, user):
    promo = promo_project(dropbox, present=ALL)
    job = settle(submit(user, promo.path, frameStart=0, frameEnd=99, frameIncrement=2))
    assert job.status == Status.QUEUED
    assert job.project["composition"]["frames"] == 50
    assert job.project["composition"]["range"] == "frameStart/frameEnd"
    assert job.project["composition"]["duration_seconds"] == 4.0
    assert job.frames_total == 50


def test_a_missing_composition_fails_at_once_with_the_list(fast_checks, dropbox, user):
    promo = promo_project(dropbox, present=ALL)
    job = settle(submit(user, promo.path, composition="Main "))
    assert job.status == Status.FAILED
    assert job.error == "Composition 'Main ' is not in the project. It has: intro, main, unused"
    assert job.error_code == "missing_composition"
    assert job.validation_attempts == 0  # no point in asking again
    assert job.project["compositions"] == ["intro", "main", "unused"]
    assert job.project["composition"] is None
    assert job.started_at is None
    # A retry reads the project afresh.
    lifecycle.retry(job.pk, actor="admin")
    job.refresh_from_db()
    assert job.project == {} and job.frames_total is None
    job = settle(job)
    assert job.error_code == "missing_composition"
    assert job.events.filter(kind="preflight").count() == 2


# --- Footage ----------------------------------------------------------------------------


def test_missing_footage_fails_naming_every_missing_file(fast_checks, dropbox, user):
    # plate.png was already missing when AE saved; card.png is not here either.
    promo = promo_project(dropbox, present={"logo.png", "background.png"})
    job = settle(submit(user, promo.path))
    assert job.status == Status.FAILED
    assert job.error_code == "missing_footage"
    assert job.error.startswith("Footage is missing: ")
    assert "'card.png' (" in job.error and "'plate.png' (" in job.error
    assert str(dropbox / "projects/promo/footage/plate.png") in job.error
    assert "unused.png" not in job.error  # not in the composition
    items = footage(job)
    assert items["plate.png"]["status"] == items["card.png"]["status"] == "missing"
    # Failed at the first look: the files that are here were not watched to the end.
    assert items["logo.png"]["status"] == "syncing"
    # Where AE would look first: the mapped absolute path, else the relative one.
    assert items["plate.png"]["resolved"] == str(dropbox / "projects/promo/footage/plate.png")
    assert items["card.png"]["resolved"] == str(dropbox / "projects/promo/footage/card.png")
    assert job.started_at is None


def test_footage_that_may_still_arrive_is_waited_for_within_the_limits(fast_checks, dropbox, user):
    promo = promo_project(dropbox, present={"logo.png", "background.png", "card.png"},
                          plate_missing_at_save=False)
    job = settle(submit(user, promo.path))
    assert job.status == Status.FAILED
    assert job.error_code == "missing_footage"
    assert job.error.startswith("Footage is missing: 'plate.png'")
    assert job.validation_attempts == fast_checks.VALIDATION_ATTEMPTS - 1
    assert job.events.filter(kind="validation", message__contains="footage not found").exists()


def test_footage_delivered_late_lets_the_job_go_on(fast_checks, dropbox, user):
    fast_checks.VALIDATION_ATTEMPTS = 100
    promo = promo_project(dropbox, present={"logo.png", "background.png", "card.png"},
                          plate_missing_at_save=False)
    job = retried(submit(user, promo.path))
    assert job.status == Status.VALIDATING
    assert footage(job)["plate.png"]["status"] == "missing"
    write_png(dropbox / "projects/promo/footage/plate.png")  # Dropbox delivers it
    job = settle(job)
    assert job.status == Status.QUEUED
    assert footage(job)["plate.png"]["status"] == "found"


def test_continue_on_missing_renders_with_the_missing_files_as_warnings(fast_checks, dropbox, user):
    promo = promo_project(dropbox, present={"logo.png", "background.png", "card.png"})
    job = settle(submit(user, promo.path, continueOnMissing=True))
    assert job.status == Status.QUEUED
    assert footage(job)["plate.png"]["status"] == "missing"
    assert job.warnings == [{
        "code": "missing_footage",
        "message": f"Footage 'plate.png' is missing ({dropbox}/projects/promo/footage/plate.png)"
                   ": rendered with placeholders (continueOnMissing)"}]


def test_footage_still_syncing_holds_the_job_until_it_is_stable(fast_checks, dropbox, user):
    fast_checks.VALIDATION_ATTEMPTS = 100
    promo = promo_project(dropbox, present=ALL)
    background = promo.files["background.png"]
    statuses = set()

    def still_writing():  # Dropbox is still delivering the file, through a few checks
        with background.open("ab") as handle:
            handle.write(b"\0" * 100)

    def seen(job):
        if job.project.get("footage"):
            statuses.add(footage(job)["background.png"]["status"])
        return job.validation_attempts >= 3

    job = tick_until(submit(user, promo.path), seen, meanwhile=still_writing)
    assert job.status == Status.VALIDATING
    assert statuses == {"syncing"}
    assert "footage 'background.png': file is still changing" in job.validation_message
    assert footage(job)["logo.png"]["status"] == "found"
    job = settle(job)
    assert job.status == Status.QUEUED
    assert footage(job)["background.png"]["status"] == "found"
    # Read once: the project file itself did not change.
    assert job.events.filter(kind="preflight").count() == 1


def test_footage_older_than_the_version_the_project_saw_waits(fast_checks, dropbox, user):
    fast_checks.VALIDATION_ATTEMPTS = 100
    promo = promo_project(dropbox, present=ALL)
    logo = promo.files["logo.png"]
    saved_mtime = logo.stat().st_mtime
    os.utime(logo, (saved_mtime - 3600, saved_mtime - 3600))  # last week's copy
    job = retried(submit(user, promo.path))
    assert job.status == Status.VALIDATING
    assert footage(job)["logo.png"]["status"] == "syncing"
    assert "footage 'logo.png': file is older than the saved version" in job.validation_message
    os.utime(logo, (saved_mtime, saved_mtime))  # Dropbox delivers the version AE saw
    job = settle(job)
    assert job.status == Status.QUEUED


def test_a_changed_project_file_is_read_again(fast_checks, dropbox, user):
    fast_checks.VALIDATION_ATTEMPTS = 100
    promo = promo_project(dropbox, present=ALL)
    background = promo.files["background.png"]

    def keep_waiting():
        with background.open("ab") as handle:
            handle.write(b"\0")

    job = tick_until(submit(user, promo.path), lambda job: job.project.get("footage"),
                     meanwhile=keep_waiting)
    # The artist saves again, with the composition's work area changed.
    import py_aep

    app = py_aep.parse(promo.path)
    comp = next(c for c in app.project.compositions if c.name == "main")
    comp.work_area_duration = 4.0
    saved = promo.path.with_name("promo-2.aep")
    app.project.save(saved)
    os.replace(saved, promo.path)
    job = settle(job)
    assert job.status == Status.QUEUED
    assert job.frames_total == 100
    assert job.events.filter(kind="preflight").count() == 2


# --- Assets replace footage ----------------------------------------------------------------


def test_footage_replaced_by_assets_is_not_needed(fast_checks, dropbox, user):
    promo = promo_project(dropbox, present={"background.png"})
    image = write_png(dropbox / "assets/new.png")
    assets = [
        # nexrender's default composition is every composition ("*").
        {"type": "image", "src": image.as_uri(), "layerName": "Logo"},
        {"type": "image", "src": image.as_uri(), "layerName": "Logo small",
         "composition": "main->intro"},
        {"type": "image", "src": image.as_uri(), "layerName": "Card", "composition": "main"},
        {"type": "image", "src": image.as_uri(), "layerIndex": 6, "composition": "main"},
        # Data assets replace no footage.
        {"type": "data", "layerName": "Background", "property": "Opacity", "value": 50},
    ]
    job = settle(submit(user, promo.path, assets=assets))
    assert job.status == Status.QUEUED, job.error
    items = footage(job)
    assert {name: item["status"] for name, item in items.items()} == {
        "logo.png": "replaced", "card.png": "replaced", "plate.png": "replaced",
        "background.png": "found"}
    assert job.frames_total == 50


def test_footage_still_used_by_a_layer_no_asset_replaces_is_needed(fast_checks, dropbox, user):
    promo = promo_project(dropbox, present={"background.png", "card.png", "plate.png"})
    image = write_png(dropbox / "assets/new.png")
    # "Logo" is replaced in main, but intro's "Logo small" still shows logo.png.
    job = settle(submit(user, promo.path, assets=[
        {"type": "image", "src": image.as_uri(), "layerName": "Logo", "composition": "main"}]))
    assert job.status == Status.FAILED
    assert job.error_code == "missing_footage"
    assert "'logo.png'" in job.error


# --- Projects that cannot be read ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["cs6", "garbage", "json"])
def test_an_unreadable_project_renders_as_before_and_says_why(fast_checks, dropbox, user, kind):
    path = dropbox / "projects" / "old.aep"
    if kind == "cs6":
        path.write_bytes(real_sample("cs6").read_bytes())
        reason = "OSError: opti body too short"
    elif kind == "garbage":
        # Fixed bytes: some random ones declare chunk sizes that make py-aep reach
        # for gigabytes, which the memory cap stops (another test covers the caps).
        path.write_bytes(b"RIFX" + random.Random(20261201).randbytes(5000))
        reason = "not a readable After Effects project"
    else:
        path = make_project(dropbox, "old.aep")  # the simulator's JSON stand-in
        reason = "does not start with RIFX"
    job = settle(submit(user, path))
    assert job.status == Status.QUEUED
    assert reason in job.project["error"]
    assert job.frames_total is None
    assert job.error == "" and job.error_code == ""
    if kind == "json":
        # The simulator's projects get no timeline entry about it.
        assert not job.events.filter(kind="preflight").exists()
        return
    message = job.events.get(kind="preflight").message
    assert message.startswith("Could not read the project (")
    assert "it renders without these checks" in message


def reader_processes() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "jobs.node.aep_reader" in child.cmdline() and \
                    child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_the_reader_is_stopped_past_its_time(settings, dropbox):
    promo = promo_project(dropbox, present=ALL)
    started = time.monotonic()
    result = preflight.run_reader(promo.path, "main", timeout=0.05, max_mb=1024)
    assert result["error"] == "reading the project took longer than 0.05 s"
    assert time.monotonic() - started < 5
    assert reader_processes() == []


def test_the_reader_is_stopped_past_its_memory(settings, dropbox):
    promo = promo_project(dropbox, present=ALL)
    # Python with py-aep imported alone takes about 40 MB.
    result = preflight.run_reader(promo.path, "main", timeout=60, max_mb=20)
    assert result["error"].startswith("reading the project needed more than 20 MB")
    assert reader_processes() == []


def test_a_reader_that_is_stopped_lets_the_job_render(fast_checks, dropbox, user):
    fast_checks.PROJECT_READ_MAX_MB = 20
    promo = promo_project(dropbox, present={"logo.png"})  # footage would fail it
    job = settle(submit(user, promo.path))
    assert job.status == Status.QUEUED
    assert job.project["error"].startswith("reading the project needed more than 20 MB")


# --- Real projects saved by After Effects ----------------------------------------------------


def test_real_ae2023_mac_project_with_footage_outside_dropbox(fast_checks, dropbox, user):
    # @nexrender/action-mogrt@1.57.1, test/assets/ae/test.aep (AE 2023, macOS).
    path = dropbox / "projects" / "mogrt" / "test.aep"
    path.parent.mkdir(parents=True)
    path.write_bytes(real_sample("mogrt").read_bytes())
    job = settle(submit(user, path, composition="Comp 1"))
    assert job.project["saved_with"] == "23.5x52"
    assert job.project["composition"]["width"] == 1080
    assert job.project["composition"]["frames"] == 500
    assert job.project["fonts"] == ["TV2SansDisplay-Bold"]
    # The artist's ~/Downloads is not in Dropbox: AE would miss the file here too.
    assert job.status == Status.FAILED
    assert job.error_code == "missing_footage"
    assert "'square.jpg'" in job.error
    item = footage(job)["square.jpg"]
    assert item["path"] == "/Users/inlife/Downloads/square.jpg"
    assert item["status"] == "missing"
    assert job.frames_total == 500


def test_real_collected_project_finds_its_footage_by_the_relative_path(fast_checks, dropbox, user):
    # @nexrender/action-mogrt@1.57.1, test/assets/ae.mogrt > project.aegraphic: a project
    # AE collected with its footage; the absolute path is the collecting Mac's temp folder.
    path = collected_mogrt(dropbox / "projects" / "collected")
    job = settle(submit(user, path, composition="Comp 1"))
    assert job.status == Status.QUEUED, job.error
    item = footage(job)["square.jpg"]
    assert item["path"].startswith("/var/folders/")
    assert item["relative_path"] == "(Footage)/square.jpg"
    assert item["resolved"] == str(path.parent / "(Footage)" / "square.jpg")
    assert item["status"] == "found"
    assert job.frames_total == 500


def test_real_windows_projects(fast_checks, dropbox, user):
    # @nexrender/action-lottie@1.62.9, lib/assets/templates/ (AE 2020 and CC 2018, Windows).
    for name, comp, frames, fps in (("lottie_ae2020", "__bodymovin_Audio", 94, 60.0),
                                    ("lottie_ae2018", "Audio1", None, None)):
        path = dropbox / "projects" / f"{name}.aep"
        path.write_bytes(real_sample(name).read_bytes())
        job = settle(submit(user, path, composition=comp, continueOnMissing=True))
        assert job.status == Status.QUEUED, job.error
        assert job.project["error"] is None
        if frames is not None:
            assert job.project["composition"]["frames"] == frames
            assert job.project["composition"]["fps"] == fps
            # C:\Users\tropi\... is not in this Dropbox folder.
            assert footage(job)["Audio1.mp3"]["status"] == "missing"
            assert [w["code"] for w in job.warnings] == ["missing_footage"]


def test_footage_paths_map_onto_a_windows_render_node(settings):
    # Production: a Mac saved the project, a Windows node renders it.
    settings.DROPBOX_PATH = "D:\\Dropbox"
    project = "D:\\Dropbox\\projects\\promo\\promo.aep"

    def candidates(path, relative):
        return locate(project, {"path": path, "relative_path": relative})[1]

    assert candidates("/Users/alice/Dropbox/projects/promo/footage/logo.png",
                      "footage/logo.png") == ["D:\\Dropbox\\projects\\promo\\footage\\logo.png"]
    assert candidates("/Users/alice/Library/CloudStorage/Dropbox/stock/bg.png",
                      "../../stock/bg.png") == ["D:\\Dropbox\\stock\\bg.png"]
    # Not in anyone's Dropbox: only the path relative to the project is left.
    assert candidates("/Volumes/Work/promo/footage/card.png", "footage/card.png") == \
        ["D:\\Dropbox\\projects\\promo\\footage\\card.png"]
    assert candidates("C:\\Users\\tropi\\Desktop\\Audio1.mp3", "Audio1.mp3") == \
        ["D:\\Dropbox\\projects\\promo\\Audio1.mp3"]
    # A relative path that climbs out of the Dropbox folder is not looked at.
    assert candidates("/Users/editor/Library/Stock/bg.png",
                      "../../../../Library/Stock/bg.png") == []
    assert candidates(None, None) == []  # a placeholder
