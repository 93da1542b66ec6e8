"""Render nodes whose Dropbox folders differ, and symlinks Dropbox delivers late.

Real worker processes on the test database. A job stores its files relative
to the Dropbox folder, so a node that keeps Dropbox somewhere else
(``C:\\Users\\<user>\\Dropbox``) finds them in its own; and a file that turns
into a symlink out of Dropbox after it was checked is refused right before
the engine opens it, never rendered.
"""

from __future__ import annotations

import shutil

import pytest

from jobs.models import Job, Status
from jobs.node import validation
from jobs.submission.paths import output_file
from tests.helpers.common import make_project, wait_for
from tests.helpers.farm import status_of, submit, use_aerender, wait_status

pytestmark = pytest.mark.slow


def test_a_node_with_its_dropbox_elsewhere_renders_a_job_submitted_on_the_server(
        farm, user, api_client, tmp_path):
    use_aerender(farm)
    make_project(farm.dropbox, "launch.aep", frames=5)
    response = api_client.post("/api/jobs", {
        "project_path": "/Users/alice/Dropbox/projects/launch.aep",
        "saved_at": "2020-01-01T00:00:00Z", "mac_username": "alice",
        "nexrender": {"template": {"composition": "main"}}}, format="json")
    assert response.status_code == 202, response.content

    # The render node's own copy of the same Dropbox, in another place.
    node_dropbox = tmp_path / "node-b" / "Dropbox"
    shutil.copytree(farm.dropbox, node_dropbox)
    farm.start_worker("node-b", DROPBOX_PATH=node_dropbox,
                      RENDER_OUTPUT_DIR=node_dropbox / "renders")
    job = Job.objects.get(pk=response.json()["id"])
    wait_status(job, Status.COMPLETED, Status.FAILED)

    assert job.status == Status.COMPLETED, job.error
    assert job.project_path == "projects/launch.aep"
    # Published into the node's output folder, recorded relative to it.
    assert (node_dropbox / "renders" / job.output_path).stat().st_size == job.output_size
    assert not output_file(job.output_path).exists()  # this machine's copy: Dropbox's job


def test_a_project_that_becomes_a_symlink_after_validation_is_never_rendered(
        farm, user, tmp_path):
    use_aerender(farm)
    # The outside file would render fine: only the containment check can stop it.
    secret = make_project(tmp_path / "outside", "secret.aep", frames=3)
    job = submit(farm, user, "spot.aep", frames=3)

    def validated():
        validation.tick()
        return status_of(job) not in (Status.PENDING, Status.VALIDATING)

    wait_for(validated, timeout=30)
    assert job.status == Status.QUEUED

    project = farm.dropbox / "projects" / "spot.aep"
    project.unlink()
    project.symlink_to(secret)
    farm.start_worker()
    wait_status(job, Status.COMPLETED, Status.FAILED)

    assert job.status == Status.FAILED
    assert "outside the Dropbox folder" in job.error
    assert job.attempts == 1  # refused for good, not retried
    assert not (farm.dropbox / "renders").exists() or \
        not any((farm.dropbox / "renders").iterdir())
