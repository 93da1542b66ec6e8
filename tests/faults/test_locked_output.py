"""The previous output is held open while a job publishes (on Windows: Dropbox
or a player; here a folder in the file's place makes the rename fail for
real): the move is retried, and if it keeps failing the attempt fails as a
publish failure, with nothing left behind and nothing foreign deleted."""

from __future__ import annotations

import os
import threading

import pytest

from jobs.models import Job, Phase, Status
from jobs.submission.paths import output_file
from tests.faults.conftest import report
from tests.helpers.common import wait_for
from tests.helpers.farm import wait_status

pytestmark = pytest.mark.slow


def held_target(farm, job) -> str:
    renders = farm.dropbox / "renders"
    renders.mkdir(parents=True, exist_ok=True)
    target = renders / f"{os.path.splitext(job.name)[0]}_{job.pk.hex[:8]}.avi"
    target.mkdir()
    (target / "in-use").write_text("held by another program")
    return target


def test_a_briefly_held_output_is_published_after_retries(farm, queued_jobs):
    [job] = queued_jobs(1, frames=10)
    target = held_target(farm, job)
    farm.start_worker("node-a")
    wait_for(lambda: Job.objects.get(pk=job.pk).phase == Phase.PUBLISHING, timeout=60,
             message="the render never reached its publish")
    release = threading.Timer(1.5, lambda: ((target / "in-use").unlink(), target.rmdir()))
    release.start()
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=60)
    release.join()
    report("held output released", status=job.status, attempts=job.attempts)
    assert (job.status, job.attempts) == (Status.COMPLETED, 1)
    assert output_file(job.output_path).is_file()
    assert os.listdir(farm.dropbox / "renders") == [job.output_path]


def test_an_output_held_too_long_fails_the_attempt_as_a_publish_failure(farm, queued_jobs):
    farm.configure(PUBLISH_RETRY_SECONDS=1, MAX_RENDER_ATTEMPTS=1)
    [job] = queued_jobs(1, frames=10)
    target = held_target(farm, job)
    farm.start_worker("node-a")
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=60)
    report("held output", status=job.status, error_code=job.error_code)
    assert job.status == Status.FAILED
    assert job.error_code == "publish_failed"
    assert "another program" in job.error and target.name in job.error
    # The held file is untouched and no partial file is left for Dropbox.
    assert os.listdir(farm.dropbox / "renders") == [target.name]
    assert (target / "in-use").read_text() == "held by another program"
