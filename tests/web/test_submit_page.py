"""Submitting a render from the dashboard: the API's rules, as the signed-in person;
the compositions read from the project in the background."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from jobs.models import Job, JobEvent, Status
from jobs.web import submit
from tests.helpers.aep import promo_project, real_sample
from tests.helpers.common import make_project, signed_in, wait_for

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.fixture(autouse=True)
def fresh_reads(monkeypatch):
    # Reads are kept per process: every test starts without any.
    monkeypatch.setattr(submit, "reads", submit.ProjectReads())


def test_the_form_submits_a_render_for_the_signed_in_person(browser_user, user, dropbox):
    make_project(dropbox, "spring.aep")

    response = browser_user.post("/jobs/new", {
        "project_path": "/Users/alice/Library/CloudStorage/Dropbox/projects/spring.aep",
        "composition": "Main 16x9", "frame_start": "10", "frame_end": "59",
        "preset": "web", "review": "on", "name": ""})

    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}"
    assert (job.user, job.client, job.mac_username) == (user, "", "")
    assert job.status == Status.PENDING and job.project_path == "projects/spring.aep"
    assert job.config["template"] == {"composition": "Main 16x9", "frameStart": 10,
                                      "frameEnd": 59}
    assert job.composition == "Main 16x9" and job.review and job.preset["name"] == "web"
    assert job.saved_at is None  # rendered once synced and stable, like a batch from the page
    assert JobEvent.objects.get(job=job, kind="submitted").actor == "alice@studio.test"


def test_windows_paths_with_quotes_from_copy_as_path_are_taken(browser_user, dropbox, settings):
    make_project(dropbox, "spot.aep")
    path = str(dropbox / "projects" / "spot.aep")

    response = browser_user.post("/jobs/new", {"project_path": f'"{path}"',
                                               "composition": "main"})

    assert response.status_code == 302
    assert Job.objects.get().project_path == "projects/spot.aep"


def test_every_problem_is_shown_at_its_field_and_nothing_is_created(browser_user, dropbox):
    response = browser_user.post("/jobs/new", {"project_path": "/Users/alice/Documents/x.aep",
                                               "composition": "", "frame_start": "ten"})

    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="project_path"' in page and 'aria-invalid="true"' in page
    assert "not inside the Dropbox folder" in text(response)
    invalid = set(re.findall(r'id="(\w+)"[^>]*aria-invalid="true"', page))
    assert {"project_path", "composition", "frame_start"} <= invalid
    assert not Job.objects.exists()


@pytest.mark.parametrize("frame", ["²", "¹²", "٣", "1e3", "9" * 12])
def test_a_frame_number_that_is_no_number_is_a_field_error(browser_user, dropbox, frame):
    make_project(dropbox, "spot.aep")
    response = browser_user.post("/jobs/new", {
        "project_path": str(dropbox / "projects" / "spot.aep"), "composition": "main",
        "frame_end": frame})

    assert response.status_code == 400
    assert re.search(r'id="frame_end"[^>]*aria-invalid="true"', response.content.decode())
    assert not Job.objects.exists()


def test_the_rules_are_the_apis(browser_user, other_user, dropbox):
    make_project(dropbox, "spot.aep")
    taken = browser_user.post("/jobs/new", {"project_path": "/Users/alice/Dropbox/projects/"
                                                            "spot.aep",
                                            "composition": "main", "mac_username": "bob"})
    bad_name = browser_user.post("/jobs/new", {"project_path": "/Users/alice/Dropbox/projects/"
                                                               "spot.aep",
                                               "composition": "main')//", "name": "a/b"})

    assert taken.status_code == 400 and "belongs to someone else" in text(taken)
    assert bad_name.status_code == 400
    assert "May not contain slashes" in text(bad_name)
    assert not Job.objects.exists()


def test_an_admin_may_submit_for_an_artist(admin, user, dropbox):
    make_project(dropbox, "spot.aep")
    page = signed_in(Client(), admin)

    page.post("/jobs/new", {"project_path": "/Users/alice/Dropbox/projects/spot.aep",
                            "composition": "main", "mac_username": "alice"})

    assert Job.objects.get().user == user


def compositions(client, path):
    return client.get("/jobs/new/compositions", {"project_path": path})


def test_the_compositions_are_read_from_the_project_in_the_background(browser_user, dropbox):
    promo = promo_project(dropbox)

    first = compositions(browser_user, promo.mac_path)
    assert 'data-state="reading"' in first.content.decode()
    assert 'hx-trigger="load delay:700ms"' in first.content.decode()  # the page asks again

    read = wait_for(lambda: (page := compositions(browser_user, promo.mac_path).content.decode())
                    and 'data-state="read"' in page and page, timeout=60, interval=0.2)
    assert re.findall(r'<option value="([^"]+)">', read) == ["intro", "main", "unused"]
    assert "3 compositions in the project" in read


def test_a_real_project_saved_by_after_effects(browser_user, dropbox):
    path = dropbox / "projects" / "mogrt.aep"
    path.write_bytes(real_sample("mogrt").read_bytes())

    read = wait_for(lambda: (page := compositions(browser_user, str(path)).content.decode())
                    and 'data-state="read"' in page and page, timeout=60, interval=0.2)

    assert re.findall(r'<option value="([^"]+)">', read)  # what AE saved in it
    assert "After Effects 2023" in read


def test_what_cannot_be_read_says_so(browser_user, dropbox):
    make_project(dropbox, "sim.aep")
    assert 'data-state="unread"' in compositions(
        browser_user, "/Users/alice/Dropbox/projects/sim.aep").content.decode()
    assert 'data-state="missing"' in compositions(
        browser_user, "/Users/alice/Dropbox/projects/nowhere.aep").content.decode()
    refused = compositions(browser_user, "/etc/passwd").content.decode()
    assert 'data-state="refused"' in refused and "not inside the Dropbox folder" in refused


def test_a_project_that_fails_to_read_is_not_read_again_and_again(dropbox):
    path = dropbox / "projects" / "broken.aep"
    path.write_bytes(b"RIFX" + b"\0" * 100)  # starts like a project, but is none
    reads = submit.ProjectReads()

    assert reads.get(str(path), path.stat()) is None  # being read
    found = wait_for(lambda: reads.get(str(path), path.stat()), timeout=60)
    assert "not a readable After Effects project" in found["error"]
    # Kept while the file stays as it is: answered at once, without a new read.
    assert reads.get(str(path), path.stat()) is found and not reads.running
