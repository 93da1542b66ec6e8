"""Background file checks: a project is rendered only once Dropbox has fully delivered it."""

import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, Status
from jobs.node import validation
from tests.helpers.common import make_project


def submit(user, path, saved_at=None):
    return lifecycle.submit(actor="api:test", user=user, client="test", project_path=str(path),
                            path_key=str(path).casefold(), saved_at=saved_at,
                            config={"template": {"composition": "main"}}).job


def run_until_settled(timeout=10.0, statuses=(Status.QUEUED, Status.FAILED)):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        validation.tick()
        if not Job.objects.exclude(status__in=statuses).exists():
            return
        time.sleep(0.05)
    raise AssertionError("validation did not settle: "
                         f"{list(Job.objects.values_list('status', 'validation_message'))}")


def test_stable_old_file_is_queued(fast_checks, dropbox, user):
    job = submit(user, make_project(dropbox))
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    kinds = list(job.events.values_list("to_status", flat=True))
    assert kinds[:3] == ["PENDING", "VALIDATING", "QUEUED"]


def test_young_file_waits_for_the_minimum_age(fast_checks, dropbox, user):
    fast_checks.MIN_FILE_AGE_SECONDS = 1.0
    path = make_project(dropbox)  # ctime is now, whatever the mtime says
    job = submit(user, path)
    started = time.monotonic()
    validation.tick()
    job.refresh_from_db()
    assert job.status == Status.VALIDATING
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert time.monotonic() - started >= 0.9
    # Waiting for age is not a failed check.
    assert job.validation_attempts == 0


def test_growing_file_waits_until_it_stops_changing(fast_checks, dropbox, user):
    path = make_project(dropbox)
    job = submit(user, path)
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:  # Dropbox still writing
        with path.open("a") as fh:
            fh.write(" ")
        validation.tick()
        time.sleep(0.05)
    job.refresh_from_db()
    assert job.status == Status.VALIDATING
    assert "still changing" in job.validation_message
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_old_copy_waits_for_the_saved_version(fast_checks, dropbox, user):
    path = make_project(dropbox, age=600)  # the stale copy on this machine
    saved_at = timezone.now() - timedelta(seconds=5)
    job = submit(user, path, saved_at=saved_at)
    for _ in range(5):
        validation.tick()
        time.sleep(0.12)
    job.refresh_from_db()
    assert job.status == Status.VALIDATING
    assert "older than the saved version" in job.validation_message

    # Dropbox delivers the saved version.
    path.write_text('{"frames": 5}')
    stamp = saved_at.timestamp() + 1
    os.utime(path, (stamp, stamp))
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_missing_file_fails_after_the_configured_tries(fast_checks, dropbox, user):
    fast_checks.VALIDATION_ATTEMPTS = 4
    job = submit(user, dropbox / "projects" / "never-synced.aep")
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "after 4 tries" in job.error
    assert "file not found" in job.error


def test_many_files_validate_at_once(fast_checks, dropbox, user):
    jobs = [submit(user, make_project(dropbox, f"p{i}.aep")) for i in range(30)]
    started = time.monotonic()
    run_until_settled()
    # Thirty files take about one stability window, not thirty.
    assert time.monotonic() - started < 3
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.QUEUED).count() == 30


def test_a_due_check_runs_once_even_with_two_validators(fast_checks, dropbox, user):
    job = submit(user, make_project(dropbox))
    validation.tick()  # PENDING -> VALIDATING, first observation
    Job.objects.filter(pk=job.pk).update(validation_next_at=timezone.now())
    assert validation.tick() == 1
    # Another node that read the same row before the claim finds nothing to do.
    assert validation.tick() == 0


# --- Paths: relative to each machine's Dropbox, and never out of it ------------------------


def submit_relative(user, relative, engine="aerender", config=None):
    return lifecycle.submit(actor="api:test", user=user, client="test", engine=engine,
                            project_path=relative, path_key=relative.casefold(),
                            config=config or {"template": {"composition": "main"}}).job


def test_a_relative_project_path_is_found_in_this_machines_dropbox(fast_checks, dropbox,
                                                                  user, settings, tmp_path):
    make_project(dropbox)
    job = submit_relative(user, "projects/spot.aep")
    run_until_settled()
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED

    # Another render node keeps its Dropbox elsewhere (C:\Users\<user>\Dropbox): the
    # same job row finds the file there.
    other = tmp_path / "other-node" / "Dropbox"
    make_project(other)
    settings.DROPBOX_PATH = str(other)
    second = submit_relative(user, "projects/spot.aep")  # supersedes the first
    run_until_settled(statuses=(Status.QUEUED, Status.CANCELLED))
    assert Job.objects.get(pk=second.pk).status == Status.QUEUED


def test_a_symlink_delivered_after_submission_fails_the_job_at_the_next_check(
        fast_checks, dropbox, user, tmp_path):
    project = make_project(dropbox)
    job = submit_relative(user, "projects/spot.aep")
    validation.tick()  # accepted, first look at a real file inside Dropbox
    assert Job.objects.get(pk=job.pk).status == Status.VALIDATING

    # Dropbox now delivers a symlink in its place, pointing out of the folder.
    secret = make_project(tmp_path / "outside", "secret.aep")
    project.unlink()
    project.symlink_to(secret)
    run_until_settled()

    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.error_code == "outside_dropbox"
    assert "leads outside the Dropbox folder" in job.error
    # At once, not after the configured tries: no later check can make it safe.
    assert job.validation_attempts == 0


def test_a_symlinked_folder_out_of_dropbox_is_refused_too(fast_checks, dropbox, user,
                                                          tmp_path):
    make_project(tmp_path / "outside")
    (dropbox / "shared").symlink_to(tmp_path / "outside" / "projects")
    job = submit_relative(user, "shared/spot.aep")
    run_until_settled()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "outside_dropbox")


def test_a_symlink_inside_dropbox_is_fine(fast_checks, dropbox, user):
    make_project(dropbox)
    (dropbox / "current.aep").symlink_to(dropbox / "projects" / "spot.aep")
    job = submit_relative(user, "current.aep")
    run_until_settled()
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_an_asset_that_becomes_a_symlink_out_of_dropbox_fails_the_job(fast_checks, dropbox,
                                                                      user, tmp_path):
    make_project(dropbox)
    (tmp_path / "passwd.png").write_bytes(b"not yours")
    (dropbox / "logo.png").symlink_to(tmp_path / "passwd.png")
    job = submit_relative(user, "projects/spot.aep", engine="nexrender", config={
        "template": {"composition": "main"},
        "assets": [{"type": "image", "src": "logo.png", "layerName": "Logo"}]})
    run_until_settled()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "outside_dropbox")


# --- Timeline sources are read here, not in the request -------------------------------------


@pytest.fixture
def media_sources(dropbox):
    from tests.helpers import media as mh

    folder = dropbox / "media"
    return {"still": mh.still(folder / "bg.png"), "music": mh.tone(folder / "music.wav", 440, 2.0)}


def timeline_job(user, timeline):
    from jobs.submission.timeline import clean_timeline

    return lifecycle.submit(actor="api:test", user=user, client="test", engine="ffmpeg",
                            config=clean_timeline(timeline)).job


def test_usable_timeline_sources_are_queued(fast_checks, media_sources, user):
    job = timeline_job(user, {"width": 640, "height": 360, "backgrounds": [
        {"src": str(media_sources["still"]), "type": "image"}],
        "audio": [{"src": str(media_sources["music"]), "decides_duration": True}]})
    run_until_settled()
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_a_source_of_the_wrong_kind_fails_in_validation(fast_checks, dropbox, media_sources,
                                                        user):
    subtitles = dropbox / "media" / "words.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    job = timeline_job(user, {"width": 640, "height": 360, "duration": 2,
                              "audio": [{"src": str(subtitles)}]})
    run_until_settled()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "invalid_source")
    assert "timeline.audio.0.src" in job.error
    assert "a srt file is not accepted as audio" in job.error


def test_a_resolved_duration_over_the_limit_fails_in_validation(fast_checks, media_sources,
                                                                user, settings):
    settings.TIMELINE_MAX_SECONDS = 1.5  # the 2 s music decides the duration
    job = timeline_job(user, {"width": 640, "height": 360, "audio": [
        {"src": str(media_sources["music"]), "decides_duration": True}]})
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "timeline.duration" in job.error and "TIMELINE_MAX_SECONDS" in job.error


def test_audio_over_three_hours_fails_in_validation(fast_checks, media_sources, user,
                                                    monkeypatch):
    monkeypatch.setattr("jobs.submission.timeline.MAX_AUDIO_SECONDS", 3)  # 3 h, scaled down
    job = timeline_job(user, {"width": 640, "height": 360, "duration": 2, "audio": [
        {"src": str(media_sources["music"])}] * 2})  # 2 s + 2 s
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "timeline.audio: The audio tracks last" in job.error


def test_a_timeline_source_symlinked_out_of_dropbox_fails_at_once(fast_checks, dropbox,
                                                                 media_sources, user,
                                                                 tmp_path):
    job = timeline_job(user, {"width": 640, "height": 360, "duration": 2, "backgrounds": [
        {"src": str(media_sources["still"]), "type": "image"}]})
    media_sources["still"].unlink()
    from tests.helpers import media as mh

    media_sources["still"].symlink_to(mh.still(tmp_path / "elsewhere.png"))
    run_until_settled()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "outside_dropbox")
