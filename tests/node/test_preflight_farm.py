"""The project is read before rendering, with real render_worker processes.

The worker's own validation thread reads the .aep (tests/helpers/aep.py builds
them with py-aep) in its capped child process; renders go through the
installed aerender simulator, which reads the same .aep.
"""

from __future__ import annotations

import pytest

from jobs import lifecycle
from jobs.models import Job, JobLog, Status
from jobs.node import validation
from tests.helpers.aep import promo_project, write_png
from tests.helpers.common import wait_for
from tests.helpers.farm import event_time, render_processes, use_aerender, wait_status

pytestmark = pytest.mark.slow


def submit(farm, user, path, composition="main", assets=None, **template) -> Job:
    config = {"template": {"composition": composition, **template}, "assets": assets or []}
    return lifecycle.submit(actor="api:test", user=user, client="test", project_path=str(path),
                            path_key=str(path).casefold(), name=path.name, config=config,
                            engine=farm.settings.RENDER_ENGINE).job


def assert_never_rendered(job):
    job.refresh_from_db()
    assert job.attempts == 0 and job.started_at is None and job.node_id is None
    assert not job.events.filter(to_status=Status.RENDERING).exists()
    assert not JobLog.objects.filter(job=job).exists()
    assert render_processes(job.pk) == []


def test_a_missing_composition_fails_with_the_list_and_nothing_renders(farm, user):
    use_aerender(farm)
    promo = promo_project(farm.dropbox)
    farm.start_worker()
    job = submit(farm, user, promo.path, composition="Main Comp")
    wait_status(job, Status.FAILED, Status.COMPLETED)
    assert job.status == Status.FAILED
    assert job.error_code == "missing_composition"
    assert job.error == ("Composition 'Main Comp' is not in the project. "
                         "It has: intro, main, unused")
    assert_never_rendered(job)


def test_missing_footage_is_named_before_any_render(farm, user):
    use_aerender(farm)
    # plate.png was missing when the project was saved; card.png did not come either.
    promo = promo_project(farm.dropbox, present={"logo.png", "background.png"})
    farm.start_worker()
    job = submit(farm, user, promo.path)
    wait_status(job, Status.FAILED, Status.COMPLETED)
    assert job.status == Status.FAILED
    assert job.error_code == "missing_footage"
    assert "'card.png'" in job.error and "'plate.png'" in job.error
    assert_never_rendered(job)


def test_footage_still_syncing_holds_the_job_until_it_is_stable(farm, user):
    use_aerender(farm)
    farm.configure(VALIDATION_ATTEMPTS=1000)
    promo = promo_project(farm.dropbox, present={"logo.png", "background.png", "card.png",
                                                 "plate.png"})
    background = promo.files["background.png"]
    farm.start_worker()
    job = submit(farm, user, promo.path)

    def still_writing():
        with background.open("ab") as handle:  # Dropbox is still delivering it
            handle.write(b"\0" * 512)
        job.refresh_from_db()
        items = {f["name"]: f for f in job.project.get("footage", [])}
        return job.validation_attempts >= 3 and items["background.png"]["status"] == "syncing"

    wait_for(still_writing, timeout=90, message="the footage was never seen syncing")
    assert job.status == Status.VALIDATING
    assert "footage 'background.png': file is still changing" in job.validation_message
    # Dropbox is done: the job goes on and renders.
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=90)
    assert job.status == Status.COMPLETED, job.error
    assert {f["status"] for f in job.project["footage"]} == {"found"}
    assert job.frames_total == job.frames_done == 50
    assert event_time(job, Status.QUEUED) > event_time(job, Status.VALIDATING)


def test_replaced_footage_renders_with_frames_total_known_before_rendering(
        farm, user, admin_client, nexrender_cli):
    # plate.png is missing (and was when AE saved), but an asset replaces its layer.
    promo = promo_project(farm.dropbox, present={"logo.png", "background.png", "card.png"})
    image = write_png(farm.dropbox / "assets" / "plate v2.png")
    job = submit(farm, user, promo.path, assets=[
        {"type": "image", "src": image.as_uri(), "layerName": "Plate", "composition": "main"}])
    # Validate here first, so the job is seen QUEUED before any worker could claim it.
    wait_for(lambda: validation.tick() is not None and Job.objects.get(pk=job.pk).status
             in (Status.QUEUED, Status.FAILED), timeout=60)
    job.refresh_from_db()
    assert job.status == Status.QUEUED, job.error
    assert job.frames_total == 50
    assert job.project["composition"]["frames"] == 50
    items = {f["name"]: f["status"] for f in job.project["footage"]}
    assert items == {"plate.png": "replaced", "logo.png": "found", "background.png": "found",
                     "card.png": "found"}

    farm.start_worker()
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=120)
    assert job.status == Status.COMPLETED, job.error
    # The simulator rendered the composition's work area, read from the same .aep,
    # and the progress counted against the total known beforehand.
    assert job.frames_total == 50 and job.frames_done == 50 and job.progress == 100
    assert "(50): " in JobLog.objects.get(job=job).text()

    body = admin_client.get(f"/api/jobs/{job.pk}").json()
    assert body["frames_total"] == 50
    assert body["warnings"] == []
    project = body["project"]
    assert project["composition"] == {
        "name": "main", "width": 1920, "height": 1080, "fps": 25.0, "duration_seconds": 2.0,
        "frames": 50, "start_frame": 25, "end_frame": 74, "range": "work area"}
    assert project["compositions"] == ["intro", "main", "unused"]
    assert sorted(project["fonts"]) == ["Montserrat-Bold", "Roboto-Regular"]
    assert project["saved_with"] == "25.2x21"
    plate = next(f for f in project["footage"] if f["name"] == "plate.png")
    assert plate["path"] == "/Users/alice/Dropbox/projects/promo/footage/plate.png"
    assert plate["status"] == "replaced"
