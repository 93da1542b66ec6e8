"""Poster frames: made from a finished video, shown in the dashboard, linked from the API."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobThumbnail, Status
from jobs.node.engines import thumbnails
from jobs.node.retention import purge_jobs
from tests.helpers import media as mh
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

pytestmark = pytest.mark.django_db


@pytest.fixture
def video(tmp_path):
    return mh.pattern(tmp_path / "out.mp4", seconds=2.0, size="640x360")


def completed_job(user, video, client="bravo", **fields) -> Job:
    job = Job.objects.create(user=user, client=client, status=Status.COMPLETED, name="spot",
                             engine="ffmpeg", output_path=str(video),
                             output_size=video.stat().st_size, finished_at=timezone.now(),
                             **fields)
    job.has_thumbnail = thumbnails.capture(job, video)
    job.save(update_fields=["has_thumbnail"])
    return job


def test_a_poster_frame_is_a_small_jpeg_of_the_video(user, video):
    job = completed_job(user, video)

    stored = JobThumbnail.objects.get(job=job)
    assert job.has_thumbnail
    assert bytes(stored.jpeg)[:2] == b"\xff\xd8"
    assert (stored.width, stored.height) == (480, 270)
    assert 1000 < len(stored.jpeg) < 100_000


def test_outputs_without_a_picture_get_no_thumbnail(user, tmp_path):
    job = Job.objects.create(user=user, status=Status.COMPLETED)
    frames = tmp_path / "frames.zip"
    frames.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    broken = tmp_path / "broken.mov"
    broken.write_bytes(b"not a video")
    sound = mh.tone(tmp_path / "sound.wav", 440, 0.5)

    assert not thumbnails.capture(job, frames)
    assert not thumbnails.capture(job, broken)
    assert not thumbnails.capture(job, sound)
    assert not JobThumbnail.objects.exists()


def test_the_api_links_the_thumbnail_with_a_signed_url(user, video, api_client, settings):
    settings.PUBLIC_URL = "https://render.studio.test"
    job = completed_job(user, video)

    output = api_client.get(f"/api/jobs/{job.pk}").json()["output"]

    url = output["thumbnail_url"]
    assert url.startswith(f"https://render.studio.test/api/jobs/{job.pk}/thumbnail?signature=")
    stranger = Client()
    picture = stranger.get(url.removeprefix("https://render.studio.test"))
    assert picture.status_code == 200 and picture["Content-Type"] == "image/jpeg"
    assert picture.content == bytes(JobThumbnail.objects.get(job=job).jpeg)
    # Signed for this job only.
    other = completed_job(user, video)
    forged = url.replace(str(job.pk), str(other.pk)).removeprefix("https://render.studio.test")
    assert stranger.get(forged).status_code == 403
    # A download signature does not open the thumbnail.
    download = output["download_url"].split("?", 1)[1]
    assert stranger.get(f"/api/jobs/{job.pk}/thumbnail?{download}").status_code == 403


def test_no_thumbnail_no_url(user, api_client):
    job = Job.objects.create(user=user, client="bravo", status=Status.COMPLETED,
                             output_path="/x/frames.zip", output_size=10)
    assert api_client.get(f"/api/jobs/{job.pk}").json()["output"]["thumbnail_url"] is None
    assert api_client.get(f"/api/jobs/{job.pk}/thumbnail").status_code == 404


def test_tokens_and_sessions_see_only_their_jobs_thumbnails(user, other_user, video,
                                                            api_client):
    mine = completed_job(user, video)
    theirs = completed_job(other_user, video, client="plugin")
    session = Client()
    session.force_login(user)

    assert session.get(f"/api/jobs/{mine.pk}/thumbnail").status_code == 200
    assert session.get(f"/api/jobs/{theirs.pk}/thumbnail").status_code == 404
    assert api_client.get(f"/api/jobs/{theirs.pk}/thumbnail").status_code == 404
    assert api_client.get(f"/api/jobs/{uuid.uuid4()}/thumbnail").status_code == 404


def test_the_dashboard_shows_thumbnails_in_the_list_and_on_the_job_page(user, video):
    job = completed_job(user, video, preset={"name": "social", "quality": "high"})
    plain = Job.objects.create(user=user, status=Status.QUEUED, name="waiting")
    browser = Client()
    browser.force_login(user)

    listing = browser.get("/").content.decode()
    src = f'src="/api/jobs/{job.pk}/thumbnail?v='
    assert f'<img class="thumb" {src}' in listing
    assert f"/api/jobs/{plain.pk}/thumbnail" not in listing

    page = browser.get(f"/jobs/{job.pk}").content.decode()
    assert f'<img class="poster" {src}' in page
    assert "social (H.264 12 Mbps, 1080p, quality high)" in page


def test_a_retried_job_loses_its_old_thumbnail(user, video):
    job = completed_job(user, video)
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED)

    lifecycle.retry(job.pk, actor="admin@studio.test")

    job.refresh_from_db()
    assert not job.has_thumbnail


def test_retention_deletes_thumbnails_with_their_jobs(user, video):
    job = completed_job(user, video)
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - dt.timedelta(days=30))

    purge_jobs(days=7)

    assert not Job.objects.exists() and not JobThumbnail.objects.exists()
