"""A batch from a spreadsheet with review, end to end through a real render worker and
nexrender: the check refuses a missing image, a dry run creates nothing, the valid
rows render a draft preview each and wait; approved rows render their final with
the row's values in nexrender's generated script, the rejected one keeps its
comment, and the results CSV accounts for every row."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import requests
from rest_framework.test import APIClient

from jobs import media
from jobs.models import Batch, Job, JobLog, Status
from jobs.submission.paths import output_file
from tests.helpers.common import make_project, wait_for
from tests.helpers.media import still

pytestmark = pytest.mark.slow

NAMES = ("Ana", "Ben", "Cleo", "Dev", "Eve")


def scripts_of(folder: Path, job_id) -> list[str]:
    """nexrender's generated ExtendScript of each render of a job, oldest first
    (the simulator keeps them: project key ``keep_scripts``)."""
    found = sorted(folder.glob(f"*-nexrender-{job_id.hex}-script.jsx")) if folder.is_dir() \
        else []
    return [path.read_text(encoding="utf-8") for path in found]


def test_a_reviewed_batch_from_a_csv(farm, user, api_client, nexrender_cli, settings):
    scripts = farm.tmp_path / "scripts"
    make_project(farm.dropbox, "lower-third.aep", frames=12, width=320, height=180,
                 keep_scripts=str(scripts))
    for name in NAMES:
        if name != "Dev":
            still(farm.dropbox / "media" / f"{name.lower()}.png", color="blue", size="64x36")
    lines = ["title,photo"] + [f"{name},/Users/alice/Dropbox/media/{name.lower()}.png"
                               for name in NAMES]
    body = {
        "project_path": "/Users/alice/Dropbox/projects/lower-third.aep",
        "saved_at": "2020-01-01T00:00:00Z", "mac_username": "alice",
        "nexrender": {"template": {"composition": "Main", "outputExt": "avi"}},
        "columns": {"title": {"type": "data", "layerName": "Title",
                              "property": "Source Text"},
                    "photo": {"type": "image", "layerName": "Photo"}},
        "csv": "\n".join(lines) + "\n", "output_name": "{title}-{row}", "review": True,
    }

    # --- The check: row 4's image is not in Dropbox; nothing is created.
    refused = api_client.post("/api/batches", body, format="json")
    assert refused.status_code == 400
    [bad] = refused.json()["rows"]
    assert bad["row"] == 4
    assert bad["errors"]["photo"] == [
        f"File not found in Dropbox: {farm.dropbox / 'media' / 'dev.png'}"]
    dry = api_client.post("/api/batches", {**body, "dry_run": True}, format="json")
    assert dry.status_code == 200 and (dry.json()["valid"], dry.json()["invalid"]) == (4, 1)
    assert (Batch.objects.count(), Job.objects.count()) == (0, 0)

    # --- Queue the valid rows.
    created = api_client.post("/api/batches", {**body, "accept": "valid"}, format="json")
    assert created.status_code == 201, created.content
    rows = {row["row"]: row for row in created.json()["rows"]}
    assert rows[4]["job_id"] is None
    jobs = {number: Job.objects.get(pk=rows[number]["job_id"]) for number in (1, 2, 3, 5)}
    farm.start_worker()

    # --- Each renders a draft preview and waits for a person.
    def all_waiting():
        return all(job.__class__.objects.get(pk=job.pk).status == Status.AWAITING_REVIEW
                   for job in jobs.values())
    wait_for(all_waiting, timeout=240, interval=0.2, message=str(
        {n: (j.status, j.error) for n, j in ((n, Job.objects.get(pk=j.pk))
                                            for n, j in jobs.items())}))
    for number, job in jobs.items():
        detail = api_client.get(f"/api/jobs/{job.pk}").json()
        assert detail["status"] == "AWAITING_REVIEW" and detail["review"] is True
        preview = detail["preview"]
        assert preview["thumbnail_url"]
        # The signed link plays without credentials: half size, H.264.
        local = preview["download_url"].split("/api/", 1)[1]
        response = APIClient().get(f"/api/{local}")
        assert response.status_code == 200
        path = farm.tmp_path / f"preview-{number}.mp4"
        path.write_bytes(b"".join(response.streaming_content))
        info = media.probe(path)
        assert (info.video.codec, info.video.width, info.video.height) == ("h264", 160, 90)
        [draft] = scripts_of(scripts, job.pk)
        assert f"'{NAMES[number - 1]}'" in draft  # the row's title reached the script
        assert "Draft Settings" in JobLog.objects.get(job=job).text()

    # --- Three approved (token and session), one rejected with a reason.
    for number in (1, 2):
        approved = api_client.post(f"/api/jobs/{jobs[number].pk}/approve",
                                   {"comment": f"ok {number}"}, format="json")
        assert approved.status_code == 200 and approved.json()["status"] == "QUEUED"
    session = APIClient()
    session.force_login(user)
    assert session.post(f"/api/jobs/{jobs[5].pk}/approve", {}, format="json").status_code == 200
    rejected = session.post(f"/api/jobs/{jobs[3].pk}/reject",
                            {"comment": "Wrong photo, use the 2024 one"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["status"] == "REJECTED"

    def finals_done():
        return all(Job.objects.get(pk=jobs[n].pk).status in (Status.COMPLETED, Status.FAILED)
                   for n in (1, 2, 5))
    wait_for(finals_done, timeout=240, interval=0.2)
    for number in (1, 2, 5):
        job = Job.objects.get(pk=jobs[number].pk)
        assert job.status == Status.COMPLETED, job.error
        # A second render, of the full composition, with the row's values.
        draft, final = scripts_of(scripts, job.pk)
        title = NAMES[number - 1]
        assert f"'{title}'" in final and "'Photo'" in final and "'Title'" in final
        log = JobLog.objects.get(job=job).text()
        assert "Render Settings: Best Settings" in log and "Draft Settings" not in log
        output = output_file(job.output_path)
        assert output.name == f"{title}-{number}.avi"
        assert output.parent.parent == Path(settings.RENDER_OUTPUT_DIR)
        info = media.probe(output)
        assert (info.video.width, info.video.height) == (320, 180)
        # Status changes only: follow-ups after completion (poster frame, preview video)
        # add events too.
        statuses = list(job.events.exclude(kind="progress").exclude(to_status="")
                        .values_list("to_status", flat=True))
        assert statuses == ["PENDING", "VALIDATING", "QUEUED", "RENDERING", "AWAITING_REVIEW",
                            "QUEUED", "RENDERING", "COMPLETED"]

    # --- The rejected row keeps its reason, and never rendered a final.
    detail = api_client.get(f"/api/jobs/{jobs[3].pk}").json()
    assert detail["error"] == "Rejected by alice@studio.test: Wrong photo, use the 2024 one"
    assert [(d["decision"], d["by"], d["comment"]) for d in detail["decisions"]] == [
        ("rejected", "alice@studio.test", "Wrong photo, use the 2024 one")]
    assert len(scripts_of(scripts, jobs[3].pk)) == 1
    approvals = api_client.get(f"/api/jobs/{jobs[1].pk}").json()["decisions"]
    assert [(d["decision"], d["by"], d["comment"]) for d in approvals] == [
        ("approved", "api:bravo", "ok 1")]

    # --- The results CSV: every row of the table.
    batch_id = created.json()["id"]
    text = api_client.get(f"/api/batches/{batch_id}/results.csv").content.decode()
    results = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [(r["row"], r["title"], r["status"]) for r in results] == [
        ("1", "Ana", "COMPLETED"), ("2", "Ben", "COMPLETED"), ("3", "Cleo", "REJECTED"),
        ("4", "Dev", "SKIPPED"), ("5", "Eve", "COMPLETED")]
    assert results[0]["output_file"] == str(output_file(Job.objects.get(pk=jobs[1].pk)
                                                        .output_path))
    assert "Wrong photo" in results[2]["error"] and "dev.png" in results[3]["error"]
    download = requests.utils.urlparse(results[4]["download_url"])
    fetched = APIClient().get(f"{download.path}?{download.query}")
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content)[:4] == b"RIFF"
    counts = api_client.get(f"/api/batches/{batch_id}").json()
    assert counts["finished"] is True
    assert {k: v for k, v in counts["counts"].items() if v} == {
        "COMPLETED": 3, "REJECTED": 1, "SKIPPED": 1}
