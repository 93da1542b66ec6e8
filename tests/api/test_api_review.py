"""Review over the API: submitting with review, the preview links, and who may
approve or reject (the job's user, admins, the API client that submitted it)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken
from jobs.models import Job, JobPreview, Status
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)
from tests.helpers.media import still

pytestmark = pytest.mark.django_db


def awaiting_job(user, tmp_path, client="bravo"):
    from django.conf import settings

    job = Job.objects.create(user=user, client=client, status=Status.AWAITING_REVIEW,
                             review=True, needs_preview=True, project_path="C:\\p.aep")
    # In the previews folder of RENDER_OUTPUT_DIR, recorded relative to it.
    video = Path(settings.RENDER_OUTPUT_DIR) / "previews" / f"{job.pk.hex}.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    poster = still(tmp_path / "poster.jpg", size="160x90").read_bytes()
    JobPreview.objects.create(job=job, path=f"previews/{video.name}", size=video.stat().st_size,
                              jpeg=poster, width=160, height=90)
    return job


def test_a_job_can_ask_for_review(api_client, dropbox, user):
    response = api_client.post("/api/jobs", {
        "project_path": "/Users/alice/Dropbox/projects/spot.aep",
        "saved_at": "2025-01-01T00:00:00Z", "mac_username": "alice", "review": True,
        "nexrender": {"template": {"composition": "Main"}}}, format="json")

    assert response.status_code == 202
    job = Job.objects.get()
    assert (job.review, job.needs_preview) == (True, True)
    assert api_client.get(f"/api/jobs/{job.pk}").json()["review"] is True


def test_timeline_jobs_cannot_ask_for_review(api_client, user):
    response = api_client.post("/api/jobs", {
        "mac_username": "alice", "review": True,
        "timeline": {"width": 320, "height": 180, "duration": 1}}, format="json")

    assert response.status_code == 400
    assert "review" in response.json()["errors"]


def test_the_preview_links_play_without_credentials_and_seek(api_client, user, tmp_path):
    job = awaiting_job(user, tmp_path)

    preview = api_client.get(f"/api/jobs/{job.pk}").json()["preview"]

    assert preview["size"] == JobPreview.objects.get().size
    link = urlsplit(preview["download_url"])
    anonymous = APIClient()
    partial = anonymous.get(f"{link.path}?{link.query}", HTTP_RANGE="bytes=4-11")
    assert partial.status_code == 206
    assert partial["Content-Type"] == "video/mp4"
    assert b"".join(partial.streaming_content) == b"ftypmp42"
    thumb = urlsplit(preview["thumbnail_url"])
    poster = anonymous.get(f"{thumb.path}?{thumb.query}")
    assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"
    # Each link opens only what it was made for.
    assert anonymous.get(f"{thumb.path}?{link.query}").status_code == 403
    assert anonymous.get(f"/api/jobs/{job.pk}/download?{link.query}").status_code == 403
    assert anonymous.get(link.path).status_code == 401


def test_a_job_without_a_preview_says_so(api_client, user):
    job = Job.objects.create(user=user, client="bravo", status=Status.QUEUED)

    response = api_client.get(f"/api/jobs/{job.pk}/preview")

    assert response.status_code == 404
    assert "no preview" in response.json()["detail"]


def test_a_preview_file_gone_from_dropbox_is_410(api_client, user, tmp_path):
    job = awaiting_job(user, tmp_path)
    JobPreview.objects.filter(job=job).update(path=str(tmp_path / "gone.mp4"))

    assert api_client.get(f"/api/jobs/{job.pk}/preview").status_code == 410


def test_the_submitting_client_approves_with_a_comment(api_client, user, tmp_path):
    job = awaiting_job(user, tmp_path)

    response = api_client.post(f"/api/jobs/{job.pk}/approve", {"comment": " Ship it "},
                               format="json")

    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "QUEUED"
    [decision] = data["decisions"]
    assert (decision["decision"], decision["by"], decision["comment"]) == (
        "approved", "api:bravo", "Ship it")
    assert data["preview"] is not None  # still watchable while the final renders
    again = api_client.post(f"/api/jobs/{job.pk}/approve", {}, format="json")
    assert again.status_code == 409
    assert "only a job AWAITING_REVIEW" in again.json()["detail"]


def test_rejecting_needs_a_comment(api_client, user, tmp_path):
    job = awaiting_job(user, tmp_path)

    for body in ({}, {"comment": ""}, {"comment": "   "}):
        response = api_client.post(f"/api/jobs/{job.pk}/reject", body, format="json")
        assert response.status_code == 400, body
        assert "comment" in response.json()["errors"]
    assert Job.objects.get(pk=job.pk).status == Status.AWAITING_REVIEW

    response = api_client.post(f"/api/jobs/{job.pk}/reject", {"comment": "Logo is blurry"},
                               format="json")
    assert response.status_code == 200
    assert response.json()["error"] == "Rejected by api:bravo: Logo is blurry"


def test_the_owner_and_admins_decide_others_do_not(user, other_user, admin, tmp_path,
                                                   user_client, admin_client):
    mine, another = awaiting_job(user, tmp_path), awaiting_job(user, tmp_path)
    bob = APIClient()
    bob.force_login(other_user)
    _, plugin_token = ApiToken.issue("plugin")
    plugin = APIClient()
    plugin.credentials(HTTP_X_API_TOKEN=plugin_token)

    for stranger in (bob, plugin):
        assert stranger.post(f"/api/jobs/{mine.pk}/approve", {}, format="json"
                             ).status_code == 404
    assert APIClient().post(f"/api/jobs/{mine.pk}/approve", {}, format="json"
                            ).status_code == 401
    assert Job.objects.get(pk=mine.pk).status == Status.AWAITING_REVIEW

    assert user_client.post(f"/api/jobs/{mine.pk}/approve", {}, format="json"
                            ).json()["decisions"][0]["by"] == "alice@studio.test"
    assert admin_client.post(f"/api/jobs/{another.pk}/reject", {"comment": "no"},
                             format="json").json()["status"] == "REJECTED"


def test_unknown_fields_and_long_comments_are_refused(api_client, user, tmp_path):
    job = awaiting_job(user, tmp_path)

    assert api_client.post(f"/api/jobs/{job.pk}/approve", {"priority": 5},
                           format="json").status_code == 400
    assert api_client.post(f"/api/jobs/{job.pk}/approve", {"comment": "x" * 2001},
                           format="json").status_code == 400
    assert api_client.post(f"/api/jobs/{job.pk}/approve", {"comment": "a\x00b"},
                           format="json").status_code == 400
    assert Job.objects.get(pk=job.pk).status == Status.AWAITING_REVIEW
