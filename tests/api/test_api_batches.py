"""POST /api/batches and what follows: the row checks, dry runs, accept "valid",
the batch's answer, its results CSV, cancel and retry, and who supersedes whom."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from rest_framework.test import APIClient

from jobs import lifecycle
from jobs.models import Batch, BatchRow, Job, JobEvent, RenderNode, Status
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)
from tests.helpers.common import at_once, make_project

pytestmark = pytest.mark.django_db

COLUMNS = {"title": {"type": "data", "layerName": "Title", "property": "Source Text"},
           "photo": {"type": "image", "layerName": "Photo"}}


@pytest.fixture
def media(dropbox):
    folder = dropbox / "media"
    folder.mkdir()
    for name in ("ana.png", "ben.png", "cleo.png", "dev.png", "eve.png"):
        (folder / name).write_bytes(b"\x89PNG stand-in")
    return folder


@pytest.fixture
def body(dropbox, media, user):
    make_project(dropbox, "lower-third.aep")
    return {
        "project_path": "/Users/alice/Dropbox/projects/lower-third.aep",
        "saved_at": "2025-03-01T12:00:00Z",
        "mac_username": "alice",
        "nexrender": {"template": {"composition": "Main", "outputExt": "mov"},
                      "assets": [{"type": "data", "layerName": "Legal", "property": "Source Text",
                                  "value": "© Studio"}]},
        "columns": COLUMNS,
        "output_name": "{title}-{row}",
        "rows": [{"title": name.capitalize(), "photo": f"/Users/alice/Dropbox/media/{name}.png"}
                 for name in ("ana", "ben", "cleo", "dev", "eve")],
    }


def post(client, data):
    return client.post("/api/batches", data, format="json")


def nothing_created():
    return (Batch.objects.count(), Job.objects.count(), JobEvent.objects.count()) == (0, 0, 0)


# --- Submitting ------------------------------------------------------------------------


def test_each_row_becomes_a_job_of_the_batch(api_client, body, dropbox, media, user):
    response = post(api_client, body)

    assert response.status_code == 201, response.content
    data = response.json()
    assert [row["row"] for row in data["rows"]] == [1, 2, 3, 4, 5]
    assert [row["output_name"] for row in data["rows"]] == ["Ana-1", "Ben-2", "Cleo-3",
                                                           "Dev-4", "Eve-5"]
    assert all(row["errors"] == {} for row in data["rows"])
    assert data["status_url"].endswith(f"/api/batches/{data['id']}")
    job = Job.objects.get(pk=data["rows"][1]["job_id"])
    assert (job.status, job.user, job.client, job.engine) == (Status.PENDING, user, "bravo",
                                                              "nexrender")
    assert (job.name, job.output_name) == ("Ben-2", "Ben-2")
    assert job.project_path == "projects/lower-third.aep"  # relative to the Dropbox folder
    assert job.config == {
        "template": {"composition": "Main", "outputExt": "mov"},
        "assets": [{"type": "data", "layerName": "Legal", "property": "Source Text",
                    "value": "© Studio"},
                   {"type": "data", "layerName": "Title", "property": "Source Text",
                    "value": "Ben"},
                   {"type": "image", "src": "media/ben.png",  # relative, like the project
                    "layerName": "Photo"}]}
    # A normal job, linked to its batch both ways.
    detail = api_client.get(f"/api/jobs/{job.pk}").json()
    assert detail["batch"]["id"] == data["id"] and detail["batch"]["row"] == 2
    assert job.batch_row.batch_id == Batch.objects.get().pk


def test_a_csv_with_a_bom_semicolons_and_padded_headers(api_client, body):
    del body["rows"]
    body["csv"] = ("\ufeff title ; photo \r\n"
                   "Ana;/Users/alice/Dropbox/media/ana.png\r\n"
                   "\r\n"
                   "\"Ben; Jr.\";/Users/alice/Dropbox/media/ben.png\r\n")

    response = post(api_client, body)

    assert response.status_code == 201, response.content
    assert [row["output_name"] for row in response.json()["rows"]] == ["Ana-1", "Ben; Jr.-2"]
    assert BatchRow.objects.get(number=2).values == {
        "title": "Ben; Jr.", "photo": "/Users/alice/Dropbox/media/ben.png"}


def test_a_missing_image_refuses_the_whole_batch_naming_row_and_file(api_client, body, media):
    body["rows"][3]["photo"] = "/Users/alice/Dropbox/media/missing.png"

    response = post(api_client, body)

    assert response.status_code == 400
    data = response.json()
    assert data["rows"] == [{"row": 4, "errors": {"photo": [
        f"File not found in Dropbox: {media / 'missing.png'}"]}}]
    assert "row 4: photo: File not found" in data["detail"]
    assert nothing_created()


def test_every_bad_row_is_listed(api_client, body):
    body["rows"][0]["photo"] = ""
    body["rows"][2]["title"] = "Bell\u0007"
    body["rows"][4] = {"title": "Eve", "colour": "red"}

    data = post(api_client, body).json()

    assert [row["row"] for row in data["rows"]] == [1, 3, 5]
    first, third, fifth = (row["errors"] for row in data["rows"])
    assert first == {"photo": ["Missing: give the file for this row (a path inside the "
                               "Dropbox folder)."]}
    # What would break nexrender's generated ExtendScript is refused by the job whitelist.
    assert third == {"title": ["May not contain control characters other than line breaks "
                               "and tabs."]}
    assert set(fifth) == {"colour", "photo"}
    assert "Unknown column" in fifth["colour"][0] and "Missing" in fifth["photo"][0]
    assert nothing_created()


def test_output_names_that_repeat_are_refused_in_each_row(api_client, body):
    body["output_name"] = "{title}"
    body["rows"][4]["title"] = "ANA"

    data = post(api_client, body).json()

    assert [row["row"] for row in data["rows"]] == [1, 5]
    assert "repeats (rows 1, 5)" in data["rows"][0]["errors"]["output_name"][0]


def test_output_names_are_made_safe_for_every_file_system(api_client, body):
    body["rows"] = body["rows"][:3]
    body["rows"][0]["title"] = 'Q3: "Big" sale/ad?'
    body["rows"][1]["title"] = "Grüße aus Köln"
    body["rows"][2]["title"] = "CON"
    body["output_name"] = "{title}"

    data = post(api_client, body).json()

    assert [row["output_name"] for row in data["rows"]] == [
        "Q3_ _Big_ sale_ad_", "Grüße aus Köln", "_CON"]


def test_a_dry_run_shows_the_check_and_the_nexrender_jobs_and_creates_nothing(
        api_client, body, media):
    body["dry_run"] = True
    body["rows"][3]["photo"] = "/Users/alice/Dropbox/media/missing.png"

    response = post(api_client, body)

    assert response.status_code == 200
    data = response.json()
    assert (data["valid"], data["invalid"]) == (4, 1)
    bad = data["rows"][3]
    assert bad["nexrender"] is None and "missing.png" in bad["errors"]["photo"][0]
    nexrender = data["rows"][0]["nexrender"]
    assert nexrender["template"]["composition"] == "Main"
    assert nexrender["template"]["src"].endswith("/projects/lower-third.aep")
    assert [(a["type"], a.get("value"), a.get("src")) for a in nexrender["assets"]] == [
        ("data", "© Studio", None), ("data", "Ana", None),
        ("image", None, (media / "ana.png").as_uri())]
    assert nexrender["actions"] == {}
    assert nothing_created()


def test_accept_valid_queues_the_good_rows_and_lists_the_bad_one(api_client, body):
    body["accept"] = "valid"
    body["rows"][3]["photo"] = "/Users/alice/Dropbox/media/missing.png"

    response = post(api_client, body)

    assert response.status_code == 201
    rows = response.json()["rows"]
    assert [row["job_id"] is not None for row in rows] == [True, True, True, False, True]
    assert "missing.png" in rows[3]["errors"]["photo"][0]
    assert Job.objects.count() == 4
    skipped = BatchRow.objects.get(number=4)
    assert (skipped.job, skipped.status) == (None, "SKIPPED")


def test_a_batch_with_no_valid_row_creates_nothing(api_client, body):
    body["accept"] = "valid"
    body["rows"] = [{"title": "x", "photo": "/Users/alice/Dropbox/media/nope.png"}]

    response = post(api_client, body)

    assert response.status_code == 400
    assert "every row has problems" in response.json()["detail"]
    assert nothing_created()


@pytest.mark.parametrize(("change", "field"), [
    ({"priority": 5}, "priority"),
    ({"engine": "aerender"}, "engine"),
    ({"output": "C:\\x.mov"}, "output"),
    ({"project_path": "/etc/passwd"}, "project_path"),
    ({"mac_username": "mallory"}, "mac_username"),
    ({"saved_at": "yesterday"}, "saved_at"),
    ({"columns": {}}, "columns"),
    ({"columns": {"title": {"type": "data", "layerName": "T'); x(); ('",
                            "property": "Source Text"}}}, "columns"),
    ({"columns": {"title": {"type": "data", "layerName": "T", "property": "Source Text",
                            "value": "fixed"}}}, "columns"),
    ({"columns": {"row": {"type": "data", "layerName": "T", "property": "Source Text"}}},
     "columns"),
    ({"output_name": "{title"}, "output_name"),
    ({"accept": "some"}, "accept"),
    ({"review": "yes"}, "review"),
    ({"rows": []}, "rows"),
    ({"csv": "title,photo\nA,b"}, "rows"),
    ({"nexrender": {"template": {"composition": "Main"}, "actions": {}}}, "nexrender"),
    ({"preset": "gif"}, "preset"),
])
def test_bad_requests_are_refused_by_field(api_client, body, change, field):
    response = post(api_client, {**body, **change})

    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert nothing_created()


@pytest.mark.parametrize("where", ["mac_username", "value", "key", "csv"])
def test_nul_characters_are_refused_anywhere(api_client, body, where):
    # PostgreSQL cannot store them, in text or JSON: a 400, never a 500.
    if where == "mac_username":
        body["mac_username"] = "ali\x00ce"
    elif where == "value":
        body["rows"][1]["title"] = "B\x00en"
    elif where == "key":
        body["rows"][1]["ti\x00tle"] = "x"
    else:
        del body["rows"]
        body["csv"] = "title,photo\nA\x00,/Users/alice/Dropbox/media/ana.png\n"
    body["accept"] = "valid"

    response = post(api_client, body)

    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert nothing_created()


def test_a_csv_whose_columns_do_not_match_the_mapping_is_refused(api_client, body):
    del body["rows"]
    body["csv"] = "title,notes\nAna,call back\n"

    errors = post(api_client, body).json()["errors"]["csv"]

    assert any("'notes' is neither mapped" in e for e in errors)
    assert any("'photo' (mapped in 'columns') is missing" in e for e in errors)


def test_a_signed_in_user_submits_as_themselves(user_client, body, user, other_user):
    del body["mac_username"], body["saved_at"]
    assert post(user_client, body).status_code == 201
    assert set(Job.objects.values_list("user", flat=True)) == {user.pk}

    body["mac_username"] = "bob"
    response = post(user_client, body)
    assert response.status_code == 400
    assert "belongs to someone else" in response.json()["errors"]["mac_username"][0]


def test_a_token_needs_saved_at_and_mac_username(api_client, body):
    del body["mac_username"], body["saved_at"]

    assert set(post(api_client, body).json()["errors"]) == {"mac_username", "saved_at"}


# --- Following a batch -------------------------------------------------------------------


@pytest.fixture
def batch(api_client, body):
    body["accept"] = "valid"
    body["rows"][3]["photo"] = "/Users/alice/Dropbox/media/missing.png"
    data = post(api_client, body).json()
    return Batch.objects.get(pk=data["id"])


def job_of(batch, number) -> Job:
    return BatchRow.objects.get(batch=batch, number=number).job


def test_the_batch_counts_its_rows_by_status(api_client, batch):
    Job.objects.filter(pk=job_of(batch, 1).pk).update(
        status=Status.COMPLETED, output_path="/r/Ana-1.mov", output_size=10)
    Job.objects.filter(pk=job_of(batch, 2).pk).update(status=Status.FAILED, error="boom")

    data = api_client.get(f"/api/batches/{batch.pk}").json()

    assert data["total"] == 5 and data["finished"] is False
    assert {k: v for k, v in data["counts"].items() if v} == {
        "COMPLETED": 1, "FAILED": 1, "PENDING": 2, "SKIPPED": 1}
    first, second, _, fourth, _ = data["rows"]
    assert first["status"] == "COMPLETED" and "/download?signature=" in \
        first["output"]["download_url"]
    assert (second["status"], second["error"]) == ("FAILED", "boom")
    assert (fourth["status"], fourth["job_id"]) == ("SKIPPED", None)
    assert fourth["values"]["photo"].endswith("missing.png")


def test_the_results_csv_has_every_row(api_client, batch):
    Job.objects.filter(pk=job_of(batch, 1).pk).update(
        status=Status.COMPLETED, output_path="/r/Ana-1.mov", output_size=10)
    Job.objects.filter(pk=job_of(batch, 3).pk).update(
        status=Status.REJECTED, error="Rejected by alice@studio.test: too dark")

    response = api_client.get(f"/api/batches/{batch.pk}/results.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    lines = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [line["row"] for line in lines] == ["1", "2", "3", "4", "5"]
    assert list(lines[0]) == ["row", "title", "photo", "output_name", "status", "output_file",
                              "download_url", "error"]
    assert (lines[0]["status"], lines[0]["output_file"]) == ("COMPLETED", "/r/Ana-1.mov")
    assert "/download?signature=" in lines[0]["download_url"]
    assert (lines[2]["status"], lines[2]["error"]) == (
        "REJECTED", "Rejected by alice@studio.test: too dark")
    assert lines[3]["status"] == "SKIPPED" and "photo: File not found" in lines[3]["error"]
    assert lines[1]["download_url"] == ""


def test_spreadsheet_formulas_in_the_results_stay_text(api_client, body):
    body["rows"] = [{"title": "=HYPERLINK(\"http://x\")", "photo": body["rows"][0]["photo"]}]
    body["output_name"] = "row-{row}"
    batch_id = post(api_client, body).json()["id"]

    text = api_client.get(f"/api/batches/{batch_id}/results.csv").content.decode()

    assert "'=HYPERLINK" in text


def test_cancel_and_retry_a_batch(api_client, batch):
    completed = job_of(batch, 1)
    Job.objects.filter(pk=completed.pk).update(status=Status.COMPLETED)

    cancelled = api_client.post(f"/api/batches/{batch.pk}/cancel").json()

    assert len(cancelled["cancelled"]) == 3
    assert cancelled["batch"]["counts"]["CANCELLED"] == 3
    assert Job.objects.get(pk=completed.pk).status == Status.COMPLETED
    Job.objects.filter(pk=job_of(batch, 2).pk).update(status=Status.FAILED)

    retried = api_client.post(f"/api/batches/{batch.pk}/retry").json()

    assert retried["retried"] == [str(job_of(batch, 2).pk)]
    assert job_of(batch, 2).status == Status.PENDING
    assert job_of(batch, 3).status == Status.CANCELLED
    assert api_client.post(f"/api/batches/{batch.pk}/retry").json()["retried"] == []
    # A row whose output a newer job renders stays failed.
    again = job_of(batch, 2)
    Job.objects.filter(pk=again.pk).update(status=Status.FAILED)
    Job.objects.create(status=Status.QUEUED, path_key=again.path_key, config=again.config,
                       output_name=again.output_name)
    response = api_client.post(f"/api/batches/{batch.pk}/retry")
    assert response.status_code == 409
    assert "newer job" in response.json()["detail"]


def test_batches_are_visible_like_jobs(batch, api_client, user_client, admin_client):
    assert user_client.get(f"/api/batches/{batch.pk}").status_code == 200
    assert admin_client.get(f"/api/batches/{batch.pk}").status_code == 200
    assert APIClient().get(f"/api/batches/{batch.pk}").status_code == 401
    assert api_client.get("/api/batches/not-a-uuid").status_code == 404


def test_another_user_cannot_see_or_cancel_it(batch, other_user):
    client = APIClient()
    client.force_login(other_user)

    assert client.get(f"/api/batches/{batch.pk}").status_code == 404
    assert client.post(f"/api/batches/{batch.pk}/cancel").status_code == 404
    assert client.get(f"/api/batches/{batch.pk}/results.csv").status_code == 404
    assert Job.objects.filter(status=Status.CANCELLED).count() == 0


# --- Who supersedes whom -------------------------------------------------------------------


def test_rows_of_one_batch_never_supersede_each_other(api_client, body):
    data = post(api_client, body).json()

    assert data["superseded"] == []
    assert Job.objects.filter(status=Status.PENDING).count() == 5


def test_a_new_batch_supersedes_only_the_rows_with_the_same_output_name(api_client, body):
    first = post(api_client, body).json()
    Job.objects.filter(pk=first["rows"][0]["job_id"]).update(status=Status.COMPLETED)
    body["rows"] = body["rows"][:3]
    body["rows"][2]["title"] = "Someone else"

    second = post(api_client, body).json()

    # Ana-1 was finished; Ben-2 is replaced; Cleo-3, Dev-4 and Eve-5 are not in the new batch.
    assert second["superseded"] == [first["rows"][1]["job_id"]]
    statuses = {row["output_name"]: Job.objects.get(pk=row["job_id"]).status
                for row in first["rows"]}
    assert statuses == {"Ana-1": "COMPLETED", "Ben-2": "CANCELLED", "Cleo-3": "PENDING",
                        "Dev-4": "PENDING", "Eve-5": "PENDING"}


def test_a_batch_of_another_composition_supersedes_nothing(api_client, body):
    post(api_client, body)
    body["nexrender"]["template"]["composition"] = "Vertical 9x16"

    assert post(api_client, body).json()["superseded"] == []
    assert Job.objects.filter(status=Status.PENDING).count() == 10


def test_a_single_job_leaves_the_batch_rows_alone(api_client, body):
    post(api_client, body)

    lifecycle.submit(actor="api:t", project_path="x", path_key=Batch.objects.get().path_key,
                     config={"template": {"composition": "Main"}})

    assert Job.objects.filter(status=Status.PENDING).count() == 6


@pytest.mark.django_db(transaction=True)
def test_racing_batches_of_one_template_leave_one_job_per_output(api_token, body):
    count = 4

    def send(_):
        client = APIClient()
        client.credentials(HTTP_X_API_TOKEN=api_token)
        return post(client, body).status_code

    answers, errors = at_once(count, send)

    assert errors == []
    assert answers == [201] * count
    assert Job.objects.count() == 5 * count
    alive = Job.objects.exclude(status=Status.CANCELLED)
    assert sorted(alive.values_list("output_name", flat=True)) == [
        "Ana-1", "Ben-2", "Cleo-3", "Dev-4", "Eve-5"]
    # The survivors are one whole batch: the last to commit.
    assert alive.values("batch_row__batch").distinct().count() == 1


def test_batches_are_listed_newest_first_with_their_counts(api_client, batch, body,
                                                           other_user):
    body["output_name"] = "second-{row}"
    newer = post(api_client, body).json()["id"]

    data = api_client.get("/api/batches").json()

    assert [item["id"] for item in data["results"]] == [newer, str(batch.pk)]
    older = data["results"][1]
    assert (older["total"], older["finished"], older["composition"]) == (5, False, "Main")
    assert {k: v for k, v in older["counts"].items() if v} == {"PENDING": 4, "SKIPPED": 1}
    bob = APIClient()
    bob.force_login(other_user)
    assert bob.get("/api/batches").json()["count"] == 0


# --- Mapped layers against the project (read with py-aep, like the preflight) -----------------


def layer_body(project_path, composition, columns):
    return {"project_path": str(project_path), "saved_at": "2020-01-01T00:00:00Z",
            "mac_username": "alice", "nexrender": {"template": {"composition": composition}},
            "columns": columns, "rows": [{name: "x" for name in columns}], "dry_run": True}


def test_mapped_layers_must_be_in_a_real_after_effects_project(api_client, dropbox, user):
    import shutil

    from tests.helpers.aep import real_sample

    # Saved by After Effects 23.5 on macOS: "Comp 1" holds square.jpg, Null 1 and "foo!".
    project = dropbox / "projects" / "test.aep"
    shutil.copyfile(real_sample("mogrt"), project)
    text = {"type": "data", "property": "Source Text"}

    good = post(api_client, layer_body(project, "Comp 1", {"caption": {**text,
                                                                       "layerName": "foo!"}}))
    bad = post(api_client, layer_body(project, "Comp 1", {"caption": {**text,
                                                                      "layerName": "Title"}}))
    missing = post(api_client, layer_body(project, "Main", {"caption": {**text,
                                                                        "layerName": "foo!"}}))

    assert good.status_code == 200, good.content
    assert bad.json()["errors"]["columns"] == {"caption.layerName": [
        "No layer named 'Title' in the composition 'Comp 1' or the compositions nested in it."]}
    assert missing.json()["errors"]["nexrender"] == {"template.composition": [
        "The project has no composition 'Main' (it has: Comp 1)."]}
    assert nothing_created()


def test_layers_of_nested_compositions_count(api_client, dropbox, user):
    from tests.helpers.aep import promo_project

    promo = promo_project(dropbox)  # main: Title, Logo, ... and "intro" nested: Tagline
    text = {"type": "data", "property": "Source Text"}

    ok = post(api_client, layer_body(promo.path, "main", {
        "title": {**text, "layerName": "Title"}, "tagline": {**text, "layerName": "Tagline"},
        "small": {"type": "image", "layerName": "Logo small", "composition": "main->intro"},
        "third": {**text, "layerIndex": 6}}))
    refused = post(api_client, layer_body(promo.path, "main", {
        "other": {**text, "layerName": "Unused", "composition": "unused"},
        "photo": {"type": "image", "layerName": "Photo"},
        "far": {**text, "layerIndex": 7}}))

    assert ok.status_code == 200, ok.content
    assert refused.json()["errors"]["columns"] == {
        "other.composition": ["'unused' is not 'main' nor a composition nested in it."],
        "photo.layerName": ["No layer named 'Photo' in the composition 'main' or the "
                            "compositions nested in it."],
        "far.layerIndex": ["No layer 7 in the composition 'main' or the compositions nested "
                           "in it."]}


def test_a_saved_at_without_an_offset_is_refused_for_a_batch_too(api_client, body):
    response = post(api_client, {**body, "saved_at": "2025-03-01T12:00:00"})

    assert response.status_code == 400
    assert "UTC offset" in response.json()["detail"]
    assert nothing_created()


def test_a_column_may_not_set_an_expression(api_client, body):
    columns = {**COLUMNS, "title": {"type": "data", "layerName": "Title",
                                    "property": "Source Text.expression"}}

    response = post(api_client, {**body, "columns": columns})

    assert response.status_code == 400
    assert "expressions are evaluated as code" in response.content.decode()
    assert nothing_created()


# --- Estimating a batch (POST /api/estimates with a batch body) ----------------------------


def estimate(client, data):
    return client.post("/api/estimates", data, format="json")


def test_a_batch_is_estimated_row_by_row_one_after_another(api_client, body):
    RenderNode.objects.create(name="render-01")
    body["nexrender"]["template"].update(frameStart=0, frameEnd=49)

    response = estimate(api_client, body)

    assert response.status_code == 200, response.content
    data = response.json()
    assert nothing_created()
    assert [(row["row"], row["output_name"], row["errors"]) for row in data["rows"]] == [
        (1, "Ana-1", {}), (2, "Ben-2", {}), (3, "Cleo-3", {}), (4, "Dev-4", {}),
        (5, "Eve-5", {})]
    rows = [row["estimate"] for row in data["rows"]]
    assert all(row["render_seconds"] == 50 and row["frames"] == 50 for row in rows)
    # One node: each row starts when the one before it is done.
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["starts_at"] == before["finishes_at"]
    total = data["total"]
    assert (total["renders"], total["render_seconds"]) == (5, 250)
    assert total["starts_at"] == rows[0]["starts_at"]
    assert total["finishes_at"] == rows[-1]["finishes_at"]
    span = datetime.fromisoformat(total["finishes_at"]) - datetime.fromisoformat(
        total["starts_at"])
    assert span.total_seconds() == pytest.approx(250, abs=0.01)
    assert total["cost"] is None


def test_bad_rows_have_errors_and_no_estimate(api_client, body):
    body["rows"][1]["photo"] = "/Users/alice/Dropbox/media/missing.png"
    data = estimate(api_client, body).json()
    second = data["rows"][1]
    assert second["estimate"] is None and "photo" in second["errors"]
    assert data["total"]["renders"] == 4
    assert nothing_created()


def test_a_review_batch_is_estimated_by_its_previews(api_client, body):
    body["review"] = True
    row = estimate(api_client, body).json()["rows"][0]["estimate"]
    assert "; the review preview (the final render follows approval)" in row["basis"]


def test_a_bad_batch_body_is_a_400_like_the_batch_endpoint(api_client, body):
    body["columns"] = {"title": {"type": "data"}}
    response = estimate(api_client, body)
    assert response.status_code == 400
    assert response.json() == api_client.post("/api/batches", body, format="json").json()
    assert nothing_created()


def test_a_batch_lands_behind_the_queue(api_client, body, user):
    node = RenderNode.objects.create(name="render-01")
    ahead = Job.objects.create(user=user, status=Status.QUEUED, frames_total=30,
                               project_path="D:\\Dropbox\\x.aep", path_key="d:\\x.aep")
    lifecycle.claim_next(node)  # rendering now: 30 s by the default rate
    data = estimate(api_client, body).json()
    first = datetime.fromisoformat(data["rows"][0]["estimate"]["starts_at"])
    started = Job.objects.get(pk=ahead.pk).started_at
    assert (first - started).total_seconds() == pytest.approx(30, abs=1)
