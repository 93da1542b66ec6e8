"""POST /api/jobs: what the bravo service and the AE plugin see when they submit."""

import json

import pytest
from rest_framework.test import APIClient

from jobs.models import Job, JobEvent, Status
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)
from tests.helpers.common import at_once

pytestmark = pytest.mark.django_db


@pytest.fixture
def body(dropbox, user):
    return {
        "project_path": "/Users/alice/Dropbox/projects/spot.aep",
        "saved_at": "2025-03-01T12:00:00Z",
        "mac_username": "alice",
        "nexrender": {"template": {"composition": "Main", "outputModule": "H.264",
                                   "outputExt": "mp4"}},
    }


def submit(client, data, **extra):
    return client.post("/api/jobs", data, format="json", **extra)


def test_a_submission_is_accepted_at_once(api_client, body, dropbox, user, settings):
    settings.PUBLIC_URL = "https://render.studio.test"

    response = submit(api_client, {**body, "name": "Spot 30s",
                                   "callback_url": "https://bravo.test/hook"})

    assert response.status_code == 202
    data = response.json()
    assert data["status"] == "PENDING"
    assert data["status_url"] == f"https://render.studio.test/api/jobs/{data['id']}"
    assert data["superseded"] == []
    job = Job.objects.get(pk=data["id"])
    assert job.user == user
    assert job.client == "bravo"
    # Stored relative to the Dropbox folder (every render node has its own), shown in
    # the API as this server finds it.
    assert job.project_path == "projects/spot.aep"
    assert job.submitted_path == body["project_path"]
    project = dropbox / "projects" / "spot.aep"
    assert job.path_key == str(project.resolve()).casefold()
    assert api_client.get(f"/api/jobs/{job.pk}").json()["project_path"] == str(project)
    assert job.engine == settings.RENDER_ENGINE
    assert job.name == "Spot 30s"
    assert job.callback_url == "https://bravo.test/hook"
    assert job.config == {"template": {"composition": "Main", "outputModule": "H.264",
                                       "outputExt": "mp4"}, "assets": []}
    assert job.events.get().actor == "api:bravo"


def test_the_status_url_answers(api_client, body):
    data = submit(api_client, body).json()

    response = api_client.get(data["status_url"].split("localhost:8000", 1)[-1])

    assert response.status_code == 200
    assert response.json()["id"] == data["id"]


def test_a_new_submission_supersedes_the_unfinished_one(api_client, body):
    first = submit(api_client, body).json()
    same_file = {**body, "project_path": "/Users/alice/Dropbox/Projects/SPOT.aep"}

    second = submit(api_client, same_file)

    assert second.status_code == 202
    assert second.json()["superseded"] == [first["id"]]
    old = Job.objects.get(pk=first["id"])
    assert old.status == Status.CANCELLED
    assert "Superseded" in old.error
    assert Job.objects.exclude(status__in=["CANCELLED"]).count() == 1


def test_finished_jobs_are_not_superseded(api_client, body):
    first = submit(api_client, body).json()
    Job.objects.filter(pk=first["id"]).update(status=Status.COMPLETED)

    second = submit(api_client, body).json()

    assert second["superseded"] == []
    assert Job.objects.get(pk=first["id"]).status == Status.COMPLETED


@pytest.mark.parametrize("engine", ["nexrender", "aerender"])
def test_the_engine_can_be_chosen(api_client, body, engine):
    response = submit(api_client, {**body, "engine": engine})

    assert response.status_code == 202
    assert Job.objects.get().engine == engine


def test_media_assets_are_stored_relative_to_dropbox(api_client, body, dropbox):
    body["nexrender"]["assets"] = [
        {"type": "image", "src": "/Users/alice/Dropbox/brand/logo.png", "layerName": "Logo"},
        {"type": "audio", "src": (dropbox / "brand" / "jingle 1.wav").as_uri(),
         "layerName": "Music"}]

    assert submit(api_client, body).status_code == 202

    assets = Job.objects.get().config["assets"]
    assert [a["src"] for a in assets] == ["brand/logo.png", "brand/jingle 1.wav"]


# --- Refusals: 400 with the field named, nothing created -------------------------------------


def refused(client, data, field, **extra):
    before = (Job.objects.count(), JobEvent.objects.count())
    response = submit(client, data, **extra)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["detail"].startswith("Invalid input")
    assert field in payload["errors"], payload
    assert (Job.objects.count(), JobEvent.objects.count()) == before
    return payload


def test_priority_is_for_admins(api_client, body):
    payload = refused(api_client, {**body, "priority": 100}, "priority")

    assert "priority is set by admins" in payload["errors"]["priority"][0]


def test_unknown_fields_are_refused(api_client, body):
    payload = refused(api_client, {**body, "output": "C:\\evil.mp4", "uid": "x"}, "output")

    assert "uid" in payload["errors"]


def test_an_unknown_mac_username_is_refused(api_client, body):
    payload = refused(api_client, {**body, "mac_username": "mallory"}, "mac_username")

    assert "Unknown macOS username 'mallory'" in payload["detail"]


def test_mac_usernames_match_without_case(api_client, body, user):
    assert submit(api_client, {**body, "mac_username": "ALICE"}).status_code == 202
    assert Job.objects.get().user == user


@pytest.mark.parametrize("path", [
    "/Users/alice/Documents/spot.aep",
    "/Users/alice/Dropbox/../../etc/passwd",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\spot.aep",
    "projects/spot.aep",
    "",
    "/Users/alice/Dropbox/x\u0000.aep",
])
def test_paths_outside_dropbox_are_refused(api_client, body, path):
    refused(api_client, {**body, "project_path": path}, "project_path")


def test_disallowed_nexrender_keys_are_refused(api_client, body):
    body["nexrender"]["actions"] = {"postrender": [{"module": "/tmp/evil.js"}]}
    body["nexrender"]["template"]["composition"] = "Main'); system.callSystem('calc"

    payload = refused(api_client, body, "nexrender")

    assert set(payload["errors"]["nexrender"]) == {"actions", "template.composition"}


def test_the_ffmpeg_engine_takes_a_timeline_not_a_project(api_client, body):
    payload = refused(api_client, {**body, "engine": "ffmpeg"}, "timeline")

    assert {"project_path", "saved_at", "nexrender"} <= set(payload["errors"])


def test_the_aerender_engine_takes_no_assets(api_client, body):
    body["nexrender"]["assets"] = [{"type": "data", "layerName": "Title",
                                    "property": "Source Text", "value": "x"}]

    refused(api_client, {**body, "engine": "aerender"}, "nexrender")


@pytest.mark.parametrize("url", ["ftp://bravo.test/hook", "file:///etc/passwd",
                                 "javascript:alert(1)", "not a url"])
def test_callback_urls_are_http(api_client, body, url):
    refused(api_client, {**body, "callback_url": url}, "callback_url")


@pytest.mark.parametrize(("field", "value"), [
    ("saved_at", "yesterday"),
    ("saved_at", 1700000000),
    ("saved_at", "2999-01-01T00:00:00Z"),
    ("saved_at", "0001-01-01T00:00:00+01:00"),
    ("saved_at", "9999-12-31T23:59:59-12:00"),
    ("saved_at", "2025-02-30T12:00:00Z"),
    ("project_path", 42),
    ("project_path", ["a"]),
    ("mac_username", None),
    ("nexrender", "template"),
    ("nexrender", None),
    ("name", "a" * 201),
    ("name", "../../evil"),
    ("engine", "blender"),
])
def test_wrong_types_are_400(api_client, body, field, value):
    refused(api_client, {**body, field: value}, field)


@pytest.mark.parametrize("saved_at", ["2025-03-01T12:00:00", "2025-03-01 12:00:00",
                                      "2025-03-01T12:00:00.123456", "2025-03-01T12:00"])
def test_a_saved_at_without_a_utc_offset_is_refused(api_client, body, saved_at):
    # Taken as UTC it would be hours off for most studios: a client in Europe sending its
    # local time would fail every check, one in America would disable it.
    payload = refused(api_client, {**body, "saved_at": saved_at}, "saved_at")

    assert "UTC offset" in payload["errors"]["saved_at"][0]
    assert "UTC offset" in payload["detail"]


@pytest.mark.parametrize(("saved_at", "utc"), [
    ("2025-03-01T12:00:00Z", "2025-03-01T12:00:00+00:00"),
    ("2025-03-01T13:00:00+01:00", "2025-03-01T12:00:00+00:00"),
    ("2025-03-01T07:00:00-05:00", "2025-03-01T12:00:00+00:00"),
])
def test_a_saved_at_with_an_offset_is_taken_as_that_moment(api_client, body, saved_at, utc):
    assert submit(api_client, {**body, "saved_at": saved_at}).status_code == 202

    assert Job.objects.get().saved_at.isoformat() == utc


@pytest.mark.parametrize("field", ["project_path", "saved_at", "mac_username", "nexrender"])
def test_required_fields(api_client, body, field):
    del body[field]

    refused(api_client, body, field)


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"a": NaN}', b"\xff\xfe",
                                 b"[" * 100_000, b'{"project_path": "\\ud800"}'])
def test_malformed_json_is_400(api_client, raw):
    response = api_client.post("/api/jobs", raw, content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"3", b"null", b"true"])
def test_bodies_that_are_not_objects_are_400(api_client, raw):
    response = api_client.post("/api/jobs", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"]


def test_other_content_types_are_415(api_client, body):
    response = api_client.post("/api/jobs", "project_path=x", content_type="text/plain")

    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]


def test_bodies_over_one_mebibyte_are_413(api_client, body):
    body["name"] = "x" * (1024 * 1024)

    response = api_client.post("/api/jobs", json.dumps(body), content_type="application/json")

    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]
    assert Job.objects.count() == 0


# --- Who may submit -----------------------------------------------------------------------


def test_no_token_is_401(body):
    response = submit(APIClient(), body)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'X-API-Token realm="api"'
    assert Job.objects.count() == 0


def test_a_wrong_token_is_401(body):
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN="rm_0000000000nope")

    assert submit(client, body).status_code == 401


def test_a_signed_in_user_may_not_submit(user_client, admin_client, body):
    for client in (user_client, admin_client):
        response = submit(client, body)
        assert response.status_code == 403
        assert "X-API-Token" in response.json()["detail"]
    assert Job.objects.count() == 0


# --- Races ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_racing_submissions_leave_exactly_one_job_running(api_token, body):
    count = 10

    def post(_):
        client = APIClient()
        client.credentials(HTTP_X_API_TOKEN=api_token)
        return submit(client, body).status_code

    answers, errors = at_once(count, post)

    assert errors == []
    assert answers == [202] * count
    assert Job.objects.count() == count
    assert Job.objects.exclude(status=Status.CANCELLED).count() == 1
