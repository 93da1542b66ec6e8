"""GET /api/jobs/<id>/download: the file, in ranges, with a token, a session or a signed link."""

import time
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.utils.http import http_date
from rest_framework.test import APIClient

from jobs.links import DOWNLOAD_URL_SECONDS, signed_download_url
from jobs.models import Job, Status
from jobs.web.download import parse_range
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

pytestmark = pytest.mark.django_db

CONTENT = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def output(dropbox):
    path = dropbox / "renders" / "Spot 30s.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(CONTENT)
    return path


@pytest.fixture
def job(user, output):
    return Job.objects.create(user=user, client="bravo", status=Status.COMPLETED,
                              output_path="Spot 30s.mp4", output_size=len(CONTENT))


def url(job):
    return f"/api/jobs/{job.pk}/download"


def signed_path(job):
    parts = urlsplit(signed_download_url(job))
    return f"{parts.path}?{parts.query}"


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_token_downloads_the_whole_file(api_client, job):
    response = api_client.get(url(job))

    assert response.status_code == 200
    assert body(response) == CONTENT
    assert response["Content-Length"] == str(len(CONTENT))
    assert response["Content-Type"] == "video/mp4"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"] == 'attachment; filename="Spot 30s.mp4"'


def test_the_owner_downloads_with_a_session(user_client, job):
    assert body(user_client.get(url(job))) == CONTENT


def test_other_users_get_404(other_user, job):
    client = APIClient()
    client.force_login(other_user)

    assert client.get(url(job)).status_code == 404


def test_any_accept_header_gets_the_file(api_client, job):
    response = api_client.get(url(job), HTTP_ACCEPT="video/mp4")

    assert response.status_code == 200


def test_non_ascii_names_are_encoded(api_client, job, output):
    renamed = output.with_name("Spot ünïcode 30s.mp4")
    output.rename(renamed)
    Job.objects.filter(pk=job.pk).update(output_path=renamed.name)

    response = api_client.get(url(job))

    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''Spot%20%C3%BCn%C3%AFcode%2030s.mp4")


# --- Range ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-9", 0, 9),
    ("bytes=100-", 100, len(CONTENT) - 1),
    ("bytes=-5", len(CONTENT) - 5, len(CONTENT) - 1),
    ("bytes=-99999", 0, len(CONTENT) - 1),
    ("bytes=10000-99999", 10000, len(CONTENT) - 1),
    ("bytes=10239-10239", 10239, 10239),
])
def test_a_single_range_is_206(api_client, job, header, first, last):
    response = api_client.get(url(job), HTTP_RANGE=header)

    assert response.status_code == 206
    assert body(response) == CONTENT[first : last + 1]
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(CONTENT)}"
    assert response["Content-Length"] == str(last - first + 1)


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=99999-100000", "bytes=-0"])
def test_a_range_outside_the_file_is_416(api_client, job, header):
    response = api_client.get(url(job), HTTP_RANGE=header)

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(CONTENT)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=9-3", "items=0-5", "bytes=abc",
                                    "bytes=-", "bytes=" + "9" * 40 + "-"])
def test_ranges_we_do_not_serve_get_the_whole_file(api_client, job, header):
    response = api_client.get(url(job), HTTP_RANGE=header)

    assert response.status_code == 200
    assert body(response) == CONTENT


def test_if_range_restarts_a_download_of_a_changed_file(api_client, job, output):
    stale = http_date(output.stat().st_mtime - 3600)
    current = http_date(output.stat().st_mtime)

    assert api_client.get(url(job), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=stale).status_code \
        == 200
    assert api_client.get(url(job), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=current).status_code \
        == 206


def test_parse_range_on_an_empty_file():
    assert parse_range("bytes=0-", 0) == "unsatisfiable"
    assert parse_range("bytes=-1", 0) == "unsatisfiable"
    assert parse_range(None, 0) is None


# --- Signed links ------------------------------------------------------------------------------


def test_a_signed_link_needs_no_credentials(job, settings):
    settings.PUBLIC_URL = "https://render.studio.test"
    link = signed_download_url(job)

    assert link.startswith(f"https://render.studio.test/api/jobs/{job.pk}/download?signature=")
    response = APIClient().get(signed_path(job))
    assert response.status_code == 200
    assert body(response) == CONTENT


def test_a_signed_link_also_serves_ranges(job):
    response = APIClient().get(signed_path(job), HTTP_RANGE="bytes=0-3")

    assert response.status_code == 206
    assert body(response) == CONTENT[:4]


def test_a_signed_link_expires_after_an_hour(job):
    issued = time.time() - DOWNLOAD_URL_SECONDS - 5
    with mock.patch("time.time", return_value=issued):
        link = signed_path(job)

    response = APIClient().get(link)

    assert response.status_code == 403
    assert "expired" in response.json()["detail"]


def test_a_signed_link_is_good_just_before_the_hour(job):
    with mock.patch("time.time", return_value=time.time() - DOWNLOAD_URL_SECONDS + 60):
        link = signed_path(job)

    assert APIClient().get(link).status_code == 200


def test_a_signature_opens_only_its_own_job(job, other_user, output):
    other = Job.objects.create(user=other_user, status=Status.COMPLETED,
                               output_path=output.name)
    signature = urlsplit(signed_download_url(job)).query

    response = APIClient().get(f"{url(other)}?{signature}")

    assert response.status_code == 403
    assert "invalid" in response.json()["detail"]


@pytest.mark.parametrize("signature", ["", "x", "1:2:3", "a" * 500])
def test_forged_signatures_are_403(job, signature):
    response = APIClient().get(url(job), {"signature": signature})

    assert response.status_code == 403


def test_no_credentials_and_no_signature_is_401(job):
    response = APIClient().get(url(job))

    assert response.status_code == 401


def test_a_bad_signature_does_not_stop_a_valid_session(user_client, job):
    response = user_client.get(url(job), {"signature": "forged"})

    assert response.status_code == 200


# --- Not there (yet) ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.PENDING, Status.RENDERING, Status.FAILED,
                                    Status.CANCELLED])
def test_an_unfinished_job_is_409(api_client, job, status):
    Job.objects.filter(pk=job.pk).update(status=status)

    response = api_client.get(url(job))

    assert response.status_code == 409
    assert f"The job is {status}" in response.json()["detail"]


def test_a_deleted_output_is_410(api_client, job, output):
    output.unlink()

    response = api_client.get(url(job))

    assert response.status_code == 410
    assert "no longer there" in response.json()["detail"]
    assert api_client.get(signed_path(job)).status_code == 410


def test_a_completed_job_without_output_is_410(api_client, job):
    Job.objects.filter(pk=job.pk).update(output_path="")

    assert api_client.get(url(job)).status_code == 410


def test_a_folder_is_not_a_download(api_client, job, dropbox):
    (dropbox / "renders" / "folder.mp4").mkdir()
    Job.objects.filter(pk=job.pk).update(output_path="folder.mp4")

    assert api_client.get(url(job)).status_code == 410


def test_an_output_from_before_relative_paths_still_downloads(api_client, job, output):
    Job.objects.filter(pk=job.pk).update(output_path=str(output))

    assert body(api_client.get(url(job))) == CONTENT


def test_an_output_replaced_by_a_symlink_out_of_the_folder_is_not_served(
        api_client, job, output, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"server secrets")
    output.unlink()
    output.symlink_to(secret)

    response = api_client.get(url(job))

    assert response.status_code == 410
    assert "outside" in response.json()["detail"]
    assert b"server secrets" not in response.content
