"""Fault tests: real worker processes, real faults (a PostgreSQL restart, a
skewed clock, a slow publish, a kill without a signal handler), and a watcher
of the live render processes proving that no job is ever rendered twice at once.
Each prints its figures (pytest -s shows them)."""

from __future__ import annotations

import pytest

from jobs.models import Job, Status
from tests.helpers.common import make_project, wait_for


@pytest.fixture
def queued_jobs(farm, user):
    """``queued_jobs(n, **behaviour)``: n simulator jobs, QUEUED, oldest first."""

    def make(count: int, **behaviour) -> list[Job]:
        jobs = []
        for number in range(count):
            path = make_project(farm.dropbox, f"fault-{number:02}.aep", **behaviour)
            jobs.append(Job.objects.create(
                user=user, status=Status.QUEUED, engine="aerender", name=path.name,
                project_path=str(path), path_key=str(path).casefold(),
                config={"template": {"composition": "main"}}))
        return jobs

    farm.configure(RENDER_ENGINE="aerender")  # no Node start-up per render: quick
    return make


def report(title: str, **figures) -> None:
    print(f"\n[{title}] " + ", ".join(f"{key}={value}" for key, value in figures.items()))


def wait_mid_render(job: Job, frames: int = 3) -> None:
    """Until ``job`` renders and has done more than ``frames`` frames."""
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=Status.RENDERING,
                                        frames_done__gt=frames).exists(),
             timeout=60, message=f"the render of {job.name} never got going")
