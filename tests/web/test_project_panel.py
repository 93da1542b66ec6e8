"""The Project panel of a job's page: what was read from the .aep before rendering."""

from __future__ import annotations

import re
import time

import pytest

from jobs import lifecycle
from jobs.models import Job, JobEvent, Status
from jobs.node import validation
from jobs.web.live import render_messages
from tests.helpers.aep import promo_project
from tests.helpers.common import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def quick(settings, dropbox):
    settings.MIN_FILE_AGE_SECONDS = 0
    settings.STABILITY_CHECK_SECONDS = 0.1
    settings.VALIDATION_INTERVAL_SECONDS = 0.05
    return settings


def validated(user, path, **template) -> Job:
    job = lifecycle.submit(actor="api:test", user=user, client="test", project_path=str(path),
                           path_key=str(path).casefold(),
                           config={"template": {"composition": "main", **template}}).job
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        validation.tick()
        job.refresh_from_db()
        if job.status in (Status.QUEUED, Status.FAILED):
            return job
        time.sleep(0.05)
    raise AssertionError(job.validation_message)


def panel(response) -> str:
    match = re.search(r'<section class="panel" id="job-project".*?</section>',
                      response.content.decode(), re.S)
    assert match, "no Project panel"
    return match.group(0)


def visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_panel_shows_composition_footage_with_a_dot_each_and_fonts(
        quick, dropbox, user, browser_user):
    # plate.png is missing, and the job renders anyway (continueOnMissing).
    promo = promo_project(dropbox)
    job = validated(user, promo.path, continueOnMissing=True)
    assert job.status == Status.QUEUED

    html = panel(browser_user.get(f"/jobs/{job.pk}"))
    text = visible(html)
    assert "Composition main" in text
    assert "Size 1920 × 1080" in text
    assert "Frame rate 25 fps" in text
    assert re.search(r"Frames 50 \(25–74, work area, 2 s\)", text)
    assert "Fonts Montserrat-Bold, Roboto-Regular" in text
    assert "Saved with After Effects 2025 (25.2)" in text
    dots = dict(re.findall(r'data-footage="([^"]+)" data-status="(\w+)">\s*'
                           r'<span class="dot dot-\2"', html))
    assert dots == {"logo.png": "found", "background.png": "found", "card.png": "found",
                    "plate.png": "missing"}
    assert str(dropbox / "projects/promo/footage/plate.png") in html
    assert "plate.png missing" in text


def test_an_unread_project_says_why(quick, dropbox, user, browser_user):
    job = validated(user, make_project(dropbox))  # the simulator's JSON stand-in
    text = visible(panel(browser_user.get(f"/jobs/{job.pk}")))
    assert "Not read Not an After Effects project file (it does not start with RIFX)." in text
    assert "It renders without these checks." in text


def test_a_job_not_yet_validated_says_when_it_will_be_read(dropbox, user, browser_user):
    job = lifecycle.submit(actor="api:test", user=user, client="test",
                           project_path=str(dropbox / "projects" / "x.aep"),
                           config={"template": {"composition": "main"}}).job
    text = visible(panel(browser_user.get(f"/jobs/{job.pk}")))
    assert "Read once the project file has synced." in text


def test_the_panel_is_pushed_live_when_the_project_was_read(quick, dropbox, user):
    promo = promo_project(dropbox, present={"logo.png", "background.png", "card.png",
                                            "plate.png"})
    job = validated(user, promo.path)
    events = list(JobEvent.objects.filter(job=job, kind="preflight"))
    messages = render_messages(events, layer=None)
    detail = next(message["html"] for group, message in messages
                  if group == f"job-{job.pk}")
    assert re.search(r'<section class="panel" id="job-project" hx-swap-oob="true">', detail)
    assert 'data-frames="50"' in detail
