"""Following jobs over the API: list, detail, logs, and the admin's cancel and priority."""

import datetime as dt
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from jobs.models import Job, JobEvent, JobLog, Status
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

pytestmark = pytest.mark.django_db


def make_job(user=None, client="bravo", status=Status.QUEUED, **fields):
    n = Job.objects.count()
    fields.setdefault("created_at", timezone.now() - dt.timedelta(minutes=100 - n))
    return Job.objects.create(user=user, client=client, status=status,
                              project_path=f"C:\\Dropbox\\p{n}.aep", mac_username="alice",
                              **fields)


@pytest.fixture
def jobs(user, other_user):
    """Alice's two jobs from bravo, Bob's job from the plugin."""
    return {
        "alice_old": make_job(user, status=Status.COMPLETED),
        "alice_new": make_job(user, status=Status.RENDERING),
        "bob": make_job(other_user, client="plugin", status=Status.FAILED),
    }


def ids(response):
    return [item["id"] for item in response.json()["results"]]


# --- List -----------------------------------------------------------------------------------


def test_a_token_lists_its_clients_jobs_newest_first(api_client, jobs):
    response = api_client.get("/api/jobs")

    assert response.status_code == 200
    assert ids(response) == [str(jobs["alice_new"].pk), str(jobs["alice_old"].pk)]
    assert response.json()["count"] == 2


def test_another_clients_token_sees_other_jobs(jobs):
    _, text = ApiToken.issue("plugin")
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN=text)

    assert ids(client.get("/api/jobs")) == [str(jobs["bob"].pk)]


def test_a_user_lists_own_jobs(user_client, jobs):
    assert ids(user_client.get("/api/jobs")) == [str(jobs["alice_new"].pk),
                                                 str(jobs["alice_old"].pk)]


def test_an_admin_lists_everyones_jobs(admin_client, jobs):
    assert len(ids(admin_client.get("/api/jobs"))) == 3


@pytest.mark.parametrize("wanted", ["COMPLETED", "completed"])
def test_the_list_filters_by_status(user_client, jobs, wanted):
    assert ids(user_client.get("/api/jobs", {"status": wanted})) == [str(jobs["alice_old"].pk)]


@pytest.mark.parametrize("wanted", ["DONE", "", "'; DROP TABLE jobs_job; --"])
def test_an_unknown_status_is_400(user_client, jobs, wanted):
    response = user_client.get("/api/jobs", {"status": wanted})

    assert response.status_code == 400
    assert "Unknown status" in response.json()["detail"]


def test_the_list_is_paginated(admin_client, user):
    for _ in range(5):
        make_job(user)

    first = admin_client.get("/api/jobs", {"page_size": 2}).json()
    last = admin_client.get("/api/jobs", {"page_size": 2, "page": 3}).json()

    assert first["count"] == 5 and len(first["results"]) == 2 and first["next"]
    assert len(last["results"]) == 1 and last["next"] is None
    assert admin_client.get("/api/jobs", {"page": 99}).status_code == 404


def test_listing_needs_credentials(jobs):
    response = APIClient().get("/api/jobs")

    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."


# --- Detail ----------------------------------------------------------------------------------


def test_the_detail_has_every_documented_field(api_client, jobs):
    job = jobs["alice_new"]
    JobLog.objects.create(job=job, head="starting\n", tail="PROGRESS: 10\n")

    data = api_client.get(f"/api/jobs/{job.pk}").json()

    assert set(data) == {"id", "name", "status", "engine", "client", "progress", "phase",
                         "eta_seconds", "priority", "attempts", "project_path",
                         "mac_username", "user", "created_at", "started_at", "finished_at",
                         "error", "error_code", "warnings", "frames_total", "project",
                         "preset", "output", "review", "preview", "batch", "decisions",
                         "estimate", "log_tail"}
    assert (data["review"], data["preview"], data["batch"], data["decisions"]) == (
        False, None, None, [])
    assert data["status"] == "RENDERING"
    assert data["user"] == "alice@studio.test"
    assert data["client"] == "bravo"
    assert data["output"] is None
    assert data["log_tail"] == "starting\nPROGRESS: 10\n"


def test_the_log_tail_keeps_the_end(user_client, jobs):
    job = jobs["alice_new"]
    JobLog.objects.create(job=job, head="H" * 3000, tail="T" * 3000, omitted_bytes=50)

    tail = user_client.get(f"/api/jobs/{job.pk}").json()["log_tail"]

    assert len(tail) == 4096 and tail.endswith("T" * 3000)


def test_a_completed_job_has_its_output(user_client, jobs, settings):
    settings.PUBLIC_URL = "https://render.studio.test"
    settings.RENDER_OUTPUT_DIR = "C:\\Users\\Render\\Dropbox\\renders"
    job = jobs["alice_old"]
    Job.objects.filter(pk=job.pk).update(output_path="p0.mp4", output_size=1234)

    output = user_client.get(f"/api/jobs/{job.pk}").json()["output"]

    # Stored relative to the output folder; the API says where this server has it.
    assert output["path"] == "C:\\Users\\Render\\Dropbox\\renders\\p0.mp4"
    assert output["size"] == 1234
    assert output["download_url"].startswith(
        f"https://render.studio.test/api/jobs/{job.pk}/download?signature=")


def test_a_job_without_user_shows_null(admin_client):
    job = make_job(None)

    assert admin_client.get(f"/api/jobs/{job.pk}").json()["user"] is None


@pytest.mark.parametrize("who", ["api_client", "user_client"])
def test_other_peoples_jobs_are_404(request, jobs, who):
    client = request.getfixturevalue(who)

    for suffix in ("", "/logs", "/download"):
        response = client.get(f"/api/jobs/{jobs['bob'].pk}{suffix}")
        assert response.status_code == 404, suffix
        assert response.json()["detail"] == "Job not found."


@pytest.mark.parametrize("junk", [
    "nope", "00000000-0000-0000-0000-00000000000g", "1", "%00", "..",
    "95c20d41-f1bb-4a76-a20e-308812db7cef",  # well-formed, and no job's
    "12345678123456781234567812345678z",
])
def test_junk_ids_are_json_404(admin_client, junk):
    for suffix in ("", "/logs", "/download"):
        response = admin_client.get(f"/api/jobs/{junk}{suffix}")
        assert response.status_code == 404, (junk, suffix)
        assert response.json()["detail"] == "Job not found."


def test_unsupported_methods_are_405(admin_client, jobs):
    response = admin_client.put(f"/api/jobs/{jobs['bob'].pk}", {}, format="json")

    assert response.status_code == 405
    assert response.json()["detail"] == 'Method "PUT" not allowed.'


# --- Logs -----------------------------------------------------------------------------------


def test_the_full_log(user_client, jobs):
    job = jobs["alice_new"]
    JobLog.objects.create(job=job, head="head\n", tail="tail\n", omitted_bytes=99)

    data = user_client.get(f"/api/jobs/{job.pk}/logs").json()

    assert data == {"log": "head\n\n[... 99 bytes of log omitted ...]\ntail\n",
                    "omitted_bytes": 99}


def test_a_job_without_log_has_an_empty_one(api_client, jobs):
    data = api_client.get(f"/api/jobs/{jobs['alice_old'].pk}/logs").json()

    assert data == {"log": "", "omitted_bytes": 0}


# --- Cancel (admin) ---------------------------------------------------------------------------


def test_an_admin_cancels_a_job(admin_client, jobs):
    job = jobs["alice_new"]

    response = admin_client.delete(f"/api/jobs/{job.pk}")

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    event = JobEvent.objects.get(job=job)
    assert event.actor == "admin@studio.test" and event.kind == "cancelled"


def test_a_finished_job_cannot_be_cancelled(admin_client, jobs):
    response = admin_client.delete(f"/api/jobs/{jobs['alice_old'].pk}")

    assert response.status_code == 409
    assert "already COMPLETED" in response.json()["detail"]


@pytest.mark.parametrize("who", ["api_client", "user_client"])
def test_only_admins_cancel(request, jobs, who):
    client = request.getfixturevalue(who)

    response = client.delete(f"/api/jobs/{jobs['alice_new'].pk}")

    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    assert Job.objects.get(pk=jobs["alice_new"].pk).status == Status.RENDERING


def test_cancelling_needs_credentials(jobs):
    assert APIClient().delete(f"/api/jobs/{jobs['alice_new'].pk}").status_code == 401


def test_cancelling_a_missing_job_is_404(admin_client):
    assert admin_client.delete(f"/api/jobs/{uuid.uuid4()}").status_code == 404


# --- Priority (admin) -------------------------------------------------------------------------


def test_an_admin_changes_the_priority(admin_client, jobs):
    job = jobs["alice_new"]

    response = admin_client.patch(f"/api/jobs/{job.pk}/priority", {"priority": 50},
                                  format="json")

    assert response.status_code == 200
    assert response.json()["priority"] == 50
    assert Job.objects.get(pk=job.pk).priority == 50
    assert JobEvent.objects.get(job=job, kind="priority").actor == "admin@studio.test"


@pytest.mark.parametrize("body", [{"priority": 1001}, {"priority": -1001}, {"priority": "high"},
                                  {"priority": 1.5}, {"priority": None}, {}, {"priority": 10**30},
                                  {"priority": 5, "status": "QUEUED"}, [5]])
def test_priority_must_be_a_bounded_whole_number(admin_client, jobs, body):
    job = jobs["alice_new"]

    response = admin_client.patch(f"/api/jobs/{job.pk}/priority", body, format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid input")
    assert Job.objects.get(pk=job.pk).priority == 0


@pytest.mark.parametrize("who", ["api_client", "user_client"])
def test_only_admins_change_priority(request, jobs, who):
    client = request.getfixturevalue(who)

    response = client.patch(f"/api/jobs/{jobs['alice_new'].pk}/priority", {"priority": 9},
                            format="json")

    assert response.status_code == 403
    assert Job.objects.get(pk=jobs["alice_new"].pk).priority == 0


def test_malformed_priority_json_is_400(admin_client, jobs):
    response = admin_client.patch(f"/api/jobs/{jobs['alice_new'].pk}/priority", b'{"priority":',
                                  content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
