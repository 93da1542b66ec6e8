"""The whole path a studio tool takes: submit over the API, follow the job, download."""

import time

import pytest

from jobs.models import Job, Status
from tests.helpers.common import make_project, wait_for

pytestmark = pytest.mark.slow


def test_submit_follow_and_download_through_the_api(farm, user, api_client, nexrender_cli):
    farm.start_worker()
    make_project(farm.dropbox, "launch.aep", frames=24)
    # bravo sends the macOS path of the file it saved; the manager converts it.
    response = api_client.post("/api/jobs", {
        "project_path": "/Users/alice/Dropbox/projects/launch.aep",
        "saved_at": "2020-01-01T00:00:00Z",
        "mac_username": "alice",
        "name": "Launch spot",
        "nexrender": {"template": {"composition": "main", "outputExt": "avi"}},
    }, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json()["status"] == "PENDING"
    status_url = response.json()["status_url"]
    assert status_url.endswith(f"/api/jobs/{job_id}")

    seen = []

    def finished():
        body = api_client.get(f"/api/jobs/{job_id}").json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        return body if body["status"] in ("COMPLETED", "FAILED") else None

    body = wait_for(finished, timeout=60, interval=0.02)
    assert body["status"] == "COMPLETED", body["error"]
    assert seen[-1] == "COMPLETED"
    # Follow-ups after completion (poster frame, preview video) add events, not statuses.
    statuses = [status for status in Job.objects.get(pk=job_id).events.exclude(
        kind="progress").values_list("to_status", flat=True) if status]
    assert statuses == ["PENDING", "VALIDATING", "QUEUED", "RENDERING", "COMPLETED"]
    assert body["progress"] == 100
    assert body["user"] == "alice@studio.test"
    assert "Total Time Elapsed:" in body["log_tail"]
    assert (body["error_code"], body["warnings"]) == ("", [])

    output = body["output"]
    assert output["size"] > 0
    download = api_client.get(f"/api/jobs/{job_id}/download")
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert len(content) == output["size"]
    assert content[:4] == b"RIFF"  # the simulator wrote a real AVI

    # The signed link in the answer works without the token, for an hour.
    api_client.credentials()
    signed = output["download_url"].split("://", 1)[1].split("/", 1)[1]
    partial = api_client.get("/" + signed, HTTP_RANGE="bytes=0-3")
    assert partial.status_code == 206
    assert b"".join(partial.streaming_content) == b"RIFF"


def test_progress_is_visible_while_rendering(farm, user, api_client, nexrender_cli):
    farm.start_worker()
    make_project(farm.dropbox, "long.aep", frames=150, frame_seconds=0.03)
    job_id = api_client.post("/api/jobs", {
        "project_path": str(farm.dropbox / "projects" / "long.aep"),
        "saved_at": "2020-01-01T00:00:00Z", "mac_username": "alice",
        "nexrender": {"template": {"composition": "main"}},
    }, format="json").json()["id"]

    def rendering_midway():
        body = api_client.get(f"/api/jobs/{job_id}").json()
        return body if body["phase"] == "rendering" and 0 < body["progress"] < 100 else None

    first = wait_for(rendering_midway, timeout=60, interval=0.05)
    time.sleep(1.0)
    later = api_client.get(f"/api/jobs/{job_id}").json()
    assert later["progress"] > first["progress"]
    assert later["eta_seconds"] is not None
    wait_for(lambda: Job.objects.get(pk=job_id).status == Status.COMPLETED, timeout=60)
