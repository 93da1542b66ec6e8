"""A completed job's page plays its preview video (streamed from the database, with
ranges, signed for the API); an image sequence shows its newest frame; the output's
path is given as the artist's Mac has it."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobFrame, JobProxy, Status

pytestmark = pytest.mark.django_db

MP4 = bytes(range(256)) * 40  # the bytes are served as they are stored


def completed(user, **fields) -> Job:
    fields.setdefault("submitted_path", "/Users/alice/Library/CloudStorage/Dropbox/a/spot.aep")
    return Job.objects.create(user=user, status=Status.COMPLETED, mac_username="alice",
                              output_path="spot_1a2b3c4d.mov", output_size=10_000,
                              started_at=timezone.now(), finished_at=timezone.now(),
                              **fields)


@pytest.fixture
def in_dropbox(settings, tmp_path):
    settings.DROPBOX_PATH = str(tmp_path / "Dropbox")
    settings.RENDER_OUTPUT_DIR = str(tmp_path / "Dropbox" / "renders")


def test_the_page_plays_the_preview_video(browser_user, user, in_dropbox):
    job = completed(user)
    before = browser_user.get(f"/jobs/{job.pk}").content.decode()
    assert "<video" not in before
    JobProxy.objects.create(job=job, mp4=MP4, size=len(MP4), width=640, height=360,
                            duration=2.0)

    page = browser_user.get(f"/jobs/{job.pk}").content.decode()

    video = re.search(r'<video class="player" id="job-video" src="([^"]+)"', page)
    assert video and video.group(1).startswith(f"/api/jobs/{job.pk}/video?v=")
    whole = browser_user.get(video.group(1))
    assert whole.status_code == 200 and whole["Content-Type"] == "video/mp4"
    assert whole.content == MP4 and whole["Accept-Ranges"] == "bytes"
    part = browser_user.get(video.group(1), HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part.content == MP4[100:200]
    assert part["Content-Range"] == f"bytes 100-199/{len(MP4)}"
    assert browser_user.get(video.group(1), HTTP_RANGE="bytes=99999-").status_code == 416


def test_the_output_is_named_as_the_artists_mac_has_it(browser_user, user, in_dropbox):
    job = completed(user)

    page = browser_user.get(f"/jobs/{job.pk}").content.decode()

    mac = "/Users/alice/Library/CloudStorage/Dropbox/renders/spot_1a2b3c4d.mov"
    assert f'<span class="mono" id="mac-output">{mac}</span>' in page
    assert 'data-copy="mac-output"' in page


def test_outputs_outside_dropbox_have_no_mac_path(browser_user, user, settings, tmp_path):
    settings.DROPBOX_PATH = str(tmp_path / "Dropbox")
    settings.RENDER_OUTPUT_DIR = str(tmp_path / "elsewhere")
    job = completed(user)
    assert 'id="mac-output"' not in browser_user.get(f"/jobs/{job.pk}").content.decode()


def test_the_api_links_the_video_signed_for_an_hour(api_client, user, in_dropbox):
    job = completed(user, client="bravo")
    assert api_client.get(f"/api/jobs/{job.pk}").json()["output"]["video_url"] is None
    JobProxy.objects.create(job=job, mp4=MP4, size=len(MP4), width=640, height=360)

    url = api_client.get(f"/api/jobs/{job.pk}").json()["output"]["video_url"]

    path = url.split("localhost:8000", 1)[1]
    assert Client().get(path).content == MP4  # no session, no token: the signature
    other = completed(user)
    assert Client().get(path.replace(str(job.pk), str(other.pk))).status_code == 403
    assert Client().get(f"/api/jobs/{job.pk}/video").status_code == 401


def test_a_stranger_gets_no_video(browser_user, other_user, in_dropbox):
    job = completed(other_user)
    JobProxy.objects.create(job=job, mp4=MP4, size=len(MP4), width=640, height=360)
    assert browser_user.get(f"/api/jobs/{job.pk}/video").status_code == 404


def test_a_running_sequence_shows_its_newest_frame(browser_user, user):
    job = Job.objects.create(user=user, status=Status.RENDERING, progress=30,
                             started_at=timezone.now(),
                             config={"template": {"composition": "main", "outputExt": "png"}})
    JobFrame.objects.create(job=job, jpeg=b"\xff\xd8jpeg", width=480, height=270, number=42)

    page = browser_user.get(f"/jobs/{job.pk}").content.decode()

    img = re.search(r'<figure class="live-frame" id="live-frame">\s*<img src="([^"]+)"', page)
    assert img and "Newest frame: 42" in page
    frame = browser_user.get(img.group(1))
    assert frame["Content-Type"] == "image/jpeg" and frame.content == b"\xff\xd8jpeg"


def test_the_live_fragment_draws_the_player_once_the_video_is_made(user, in_dropbox):
    from jobs.web.live import render_messages

    job = completed(user)
    JobProxy.objects.create(job=job, mp4=MP4, size=len(MP4), width=640, height=360)
    event = lifecycle.record(job.pk, "proxy", message="Preview video ready")

    class Everyone:
        groups = None  # a layer that cannot tell who listens: render everything

    messages = render_messages([event], Everyone())
    detail = next(m for group, m in messages if group == f"job-{job.pk}")
    assert 'id="job-video"' in detail["html"] and "Preview video ready" in detail["html"]


def test_a_job_page_of_someone_else_is_a_plain_404(browser_user, other_user):
    job = Job.objects.create(user=other_user, status=Status.QUEUED)
    response = browser_user.get(f"/jobs/{job.pk}")
    assert response.status_code == 404
    assert "No such job, or it is not yours." in response.content.decode()
    assert "URLconf" not in response.content.decode()  # not Django's debug page


