"""Batches in the dashboard: building one from a CSV (template, upload, mapping,
check, submit), a batch's grid of rows, and its actions."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobs.models import Batch, BatchRow, Job, Status
from tests.helpers.common import make_project
from tests.web.test_dashboard import make_job, text

pytestmark = pytest.mark.django_db

CSV = ("title;photo;notes\r\n"
       "Ana;/Users/alice/Dropbox/media/ana.png;first\r\n"
       "Ben;/Users/alice/Dropbox/media/missing.png;second\r\n"
       "Cleo;/Users/alice/Dropbox/media/cleo.png;third\r\n")

# What the page's mapping step sends: title is text, photo an image, notes left out.
MAPPING = {"kind-0": "data", "layer-0": "Title", "property-0": "Source Text",
           "kind-1": "image", "layer-1": "Photo", "kind-2": "ignore"}


@pytest.fixture
def template(dropbox):
    make_project(dropbox, "lower-third.aep")
    (dropbox / "media").mkdir()
    for name in ("ana.png", "cleo.png"):
        (dropbox / "media" / name).write_bytes(b"png")
    return {"project_path": "/Users/alice/Dropbox/projects/lower-third.aep",
            "composition": "Main", "output_name": "{title}-{row}"}


def upload(client, template, **extra):
    return client.post("/batches/new", {
        **template, "action": "check",
        "csv_file": SimpleUploadedFile("rows.csv", CSV.encode(), "text/csv"), **extra})


def test_the_page_offers_recent_templates(browser_user, user):
    make_job(user, project_path="D:\\Dropbox\\promo.aep",
             config={"template": {"composition": "16x9"}})

    response = browser_user.get("/batches/new")

    assert response.status_code == 200
    assert "promo.aep · 16x9" in text(response)
    assert 'href="?project_path=D%3A%5CDropbox%5Cpromo.aep&amp;composition=16x9"' in \
        response.content.decode()


def test_a_csv_is_mapped_and_checked_before_anything_is_queued(browser_user, template, dropbox):
    response = upload(browser_user, template)

    assert response.status_code == 200
    html = response.content.decode()
    # First guesses: text for titles, image footage for file paths; the layer is the header.
    assert '<option value="data" selected>' in html.split('id="mapping-0"')[1][:800]
    assert '<option value="image" selected>' in html.split('id="mapping-1"')[1][:800]
    assert 'name="layer-1" value="photo"' in html
    # The notes column is mapped as text too: it is "a text" until the user leaves it out.
    assert 'data-ok="no"' in html.split('id="check-2"')[1][:40]
    assert f"File not found in Dropbox: {dropbox / 'media' / 'missing.png'}" in text(response)
    assert Batch.objects.count() == 0 and Job.objects.count() == 0


def test_submitting_the_checked_batch(browser_user, template, user):
    checked = upload(browser_user, template)
    csv_text = checked.context["csv"]

    refused = browser_user.post("/batches/new", {**template, **MAPPING, "csv": csv_text,
                                                 "action": "submit"})
    assert refused.status_code == 400
    assert "1 row(s) have problems" in text(refused)
    assert Batch.objects.count() == 0

    response = browser_user.post("/batches/new", {**template, **MAPPING, "csv": csv_text,
                                                  "accept": "valid", "review": "on",
                                                  "action": "submit"}, follow=True)

    batch = Batch.objects.get()
    assert response.redirect_chain[-1][0] == f"/batches/{batch.pk}"
    assert "Batch submitted: 2 rows queued, 1 skipped." in text(response)
    assert (batch.user, batch.review, batch.columns["photo"]) == (
        user, True, {"type": "image", "layerName": "Photo"})
    jobs = Job.objects.order_by("output_name")
    assert [(j.output_name, j.review, j.needs_preview) for j in jobs] == [
        ("Ana-1", True, True), ("Cleo-3", True, True)]
    assert BatchRow.objects.get(number=1).values == {"title": "Ana",
                                                     "photo": "/Users/alice/Dropbox/media/ana.png"}
    assert {j.mac_username for j in jobs} == {"alice"}
    # Each job's page links back to its batch.
    page = browser_user.get(f"/jobs/{jobs[0].pk}").content.decode()
    assert f'href="/batches/{batch.pk}" id="batch-link">' in page and "row 1" in page


def submitted(client, template) -> Batch:
    checked = upload(client, template)
    client.post("/batches/new", {**template, **MAPPING, "csv": checked.context["csv"],
                                 "accept": "valid", "action": "submit"})
    return Batch.objects.get()


def test_the_batch_page_shows_a_card_per_row_with_counts(browser_user, template):
    batch = submitted(browser_user, template)
    Job.objects.filter(output_name="Ana-1").update(status=Status.RENDERING, progress=40)

    response = browser_user.get(f"/batches/{batch.pk}")

    html = response.content.decode()
    rows = list(BatchRow.objects.order_by("number"))
    assert [f'id="row-{row.pk}"' in html for row in rows] == [True, True, True]
    assert 'data-status="SKIPPED"' in html and 'aria-valuenow="40"' in html
    assert f'ws-connect="/ws/batches/{batch.pk}"' in html
    assert f'href="/api/batches/{batch.pk}/results.csv"' in html
    counts = text(response).split("Results CSV")[1]
    assert "RENDERING 1" in counts and "PENDING 1" in counts and "SKIPPED 1" in counts

    cancelled = browser_user.post(f"/batches/{batch.pk}/cancel", follow=True)
    assert "Cancelled 2 unfinished rows." in text(cancelled)
    assert set(Job.objects.values_list("status", flat=True)) == {Status.CANCELLED}


def test_other_users_do_not_see_the_batch(browser_user, template, other_user):
    batch = submitted(browser_user, template)
    bob = Client()
    bob.force_login(other_user)

    assert bob.get(f"/batches/{batch.pk}").status_code == 404
    assert bob.post(f"/batches/{batch.pk}/cancel").status_code == 404
    assert str(batch.pk) not in bob.get("/batches").content.decode()


def test_a_file_that_is_not_utf8_is_refused_with_a_hint(browser_user, template):
    response = browser_user.post("/batches/new", {
        **template, "action": "check",
        "csv_file": SimpleUploadedFile("rows.csv", "título\nAña".encode("latin-1"))})

    assert response.status_code == 400
    assert "CSV UTF-8" in text(response)
