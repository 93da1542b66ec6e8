"""The dashboard in a real browser, live, against real processes.

daphne serves the app (websockets included) from a subprocess on the test
database, a real ``render_worker`` renders with the aerender simulator, and
Chromium (Debian's, driven by Playwright) watches. Nothing is faked: jobs are
submitted over HTTP with an API token, and every change the browser shows
travelled worker → JobEvent outbox → daphne's bridge → websocket → htmx.

Screenshots of the list and a job's page are saved to artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest
import requests
from django.db import connections

from jobs.models import Job, JobLog, Status
from tests.helpers.browser import LIVE, shoot_at_widths
from tests.helpers.common import make_project, wait_for

pytestmark = [pytest.mark.slow]


def submit(base, token, dropbox, name, **behaviour) -> str:
    """What bravo does: POST /api/jobs with its token. Returns the job id."""
    make_project(dropbox, name, **behaviour)
    response = requests.post(f"{base}/api/jobs", headers={"X-API-Token": token}, json={
        "project_path": f"/Users/alice/Dropbox/projects/{name}",
        "saved_at": "2000-01-01T00:00:00Z",
        "mac_username": "alice",
        "engine": "aerender",
        "nexrender": {"template": {"composition": "main", "outputExt": "avi"}},
    }, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def row_status(page, job_id):
    return page.locator(f"#job-{job_id} .status")


def test_watching_renders_live(farm, server, chromium, user, api_token, settings):
    try:
        watch_renders(farm, server, chromium, user, api_token, settings)
    finally:
        # Under Playwright's sync API this test's ORM calls run in their own context
        # with their own connection; close it before the test database is dropped.
        connections.close_all()


def watch_renders(farm, server, chromium, user, api_token, settings):
    from playwright.sync_api import expect

    farm.configure(MAX_RENDER_ATTEMPTS=1)
    # The tests hash passwords with MD5 for speed; daphne only knows the real hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user.set_password("pw")
    user.save()
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.on("page", lambda p: p.on("dialog", lambda d: d.accept()))
    jobs_page = context.new_page()
    jobs_page.on("dialog", lambda d: d.accept())

    # --- Sign in (password sign-in is on for this server, as in `make run`).
    jobs_page.goto(f"{server}/")
    expect(jobs_page).to_have_url(f"{server}/accounts/login/?next=/")
    jobs_page.fill("#id_login", "alice")
    jobs_page.fill("#id_password", "pw")
    jobs_page.click("#password-login button[type=submit]")
    expect(jobs_page.locator("h1")).to_have_text("Your jobs")
    expect(jobs_page.locator("#live")).to_have_text("Live", timeout=LIVE)
    # Anything that reloads the page would lose this.
    jobs_page.evaluate("window.__sameDocument = true")

    # --- A long render keeps the only node busy...
    farm.start_worker("node-a")
    blocker = submit(server, api_token, farm.dropbox, "blocker.aep", frames=2000,
                     frame_seconds=0.02)
    expect(row_status(jobs_page, blocker)).to_have_text("RENDERING", timeout=LIVE)

    # --- ...so the job we watch waits in the queue, then renders when it is cancelled.
    watched = submit(server, api_token, farm.dropbox, "spot.aep", frames=100,
                     frame_seconds=0.08)
    expect(row_status(jobs_page, watched)).to_have_text("QUEUED", timeout=LIVE)
    # Its place in the queue and its times, from the queue forecast.
    expect(jobs_page.locator(f"#eta-{watched}")).to_contain_text("#1 in queue · starts ~",
                                                                  timeout=LIVE)
    later = submit(server, api_token, farm.dropbox, "later.aep", frames=5, frame_seconds=0.02)
    expect(jobs_page.locator(f"#eta-{later}")).to_contain_text("#2 in queue", timeout=LIVE)
    shoot_at_widths(jobs_page, "job-list-queue")
    # Its own page stays open too, and will follow it to the end without a reload.
    watched_page = context.new_page()
    watched_page.goto(f"{server}/jobs/{watched}")
    expect(watched_page.locator("#job-status .status")).to_have_text("QUEUED")
    expect(watched_page.locator("#job-estimate")).to_contain_text("#1 in queue")
    expect(watched_page.locator("#live")).to_have_text("Live", timeout=LIVE)
    watched_page.evaluate("window.__sameDocument = true")

    # --- The blocker's page: the log tail grows while it renders; cancel it there.
    detail = context.new_page()
    detail.goto(f"{server}/jobs/{blocker}")
    expect(detail.locator("#job-status .status")).to_have_text("RENDERING")
    log_text = detail.locator("#log-text")
    # A frame line (aerender's "  0:00:00:12 (13): 0 Seconds"): the tail keeps only
    # the end of a long log, so the start ("PROGRESS: Launching...") may be gone.
    expect(log_text).to_contain_text(re.compile(r"\(\d+\): \d+ Seconds"), timeout=LIVE)
    # It moves on (its length alone stops growing once it is only the end of the log).
    first_text = log_text.inner_text()
    wait_for(lambda: log_text.inner_text() != first_text, timeout=LIVE / 1000,
             interval=0.2, message="the log tail did not move on")
    expect(detail.locator("#job-progress [role=progressbar]")).not_to_have_attribute(
        "aria-valuenow", "0", timeout=LIVE)
    shoot_at_widths(detail, "job-rendering-log")
    # Every value the watched row's progress bar shows, as the page changes (polling
    # from here would miss some on a busy machine).
    jobs_page.evaluate("""id => { window.__bar = [];
        const note = () => { const bar = document.querySelector(`#job-${id} [role=progressbar]`);
            const value = bar && Number(bar.getAttribute('aria-valuenow'));
            if (bar && value !== window.__bar[window.__bar.length - 1]) window.__bar.push(value); };
        new MutationObserver(note).observe(document.body, {subtree: true, childList: true,
            attributes: true, attributeFilter: ['aria-valuenow']}); }""", watched)
    detail.click("#cancel-button")
    expect(detail.locator("#job-status .status")).to_have_text("CANCELLED", timeout=LIVE)
    expect(detail.locator(".messages")).to_contain_text("Cancelled: blocker.aep")
    assert Job.objects.get(pk=blocker).status == Status.CANCELLED

    # --- Back on the list, never reloaded: QUEUED → RENDERING, a moving bar → COMPLETED.
    expect(row_status(jobs_page, blocker)).to_have_text("CANCELLED", timeout=LIVE)
    expect(row_status(jobs_page, watched)).to_have_text("RENDERING", timeout=LIVE)
    expect(jobs_page.locator(f"#eta-{watched}")).to_contain_text("done ~", timeout=LIVE)
    # The job behind it moved up, though nothing happened to it: the queue ETAs are
    # pushed when the queue moves (on a busy machine, when the forecast's background
    # rebuild is in: within the watched render, not with a periodic push after it).
    expect(jobs_page.locator(f"#eta-{later}")).to_contain_text("#1 in queue", timeout=LIVE)
    expect(row_status(jobs_page, watched)).to_have_text("COMPLETED", timeout=LIVE)
    seen = jobs_page.evaluate("window.__bar")
    partial = [v for v in seen if 0 < v < 100]
    assert len(set(partial)) >= 2 and partial == sorted(partial), seen
    assert jobs_page.evaluate("window.__sameDocument") is True

    # --- The watched job's page followed along: status, timeline, its log, and the
    # actions that fit a finished render (the download).
    expect(watched_page.locator("#job-status .status")).to_have_text("COMPLETED", timeout=LIVE)
    expect(watched_page.locator("#timeline")).to_contain_text("RENDERING → COMPLETED")
    expect(watched_page.locator("#log-text")).to_contain_text("Total Time Elapsed", timeout=LIVE)
    expect(watched_page.locator("#job-actions a", has_text="Download")).to_be_visible(
        timeout=LIVE)
    expect(watched_page.locator("#cancel-button")).to_have_count(0)
    assert watched_page.evaluate("window.__sameDocument") is True
    assert JobLog.objects.filter(job_id=watched).exists()

    # --- Two renders fail; select both on the list and retry them.
    failing = [submit(server, api_token, farm.dropbox, f"broken{n}.aep",
                      fail="Missing footage: hero.mov") for n in (1, 2)]
    for job_id in failing:
        expect(row_status(jobs_page, job_id)).to_have_text("FAILED", timeout=LIVE)
    assert jobs_page.evaluate("window.__sameDocument") is True
    for job_id in failing:
        jobs_page.check(f"#job-{job_id} input[name=job]")
    expect(jobs_page.locator("#bulk-count")).to_have_text("2 selected")
    jobs_page.click("#bulk-retry")
    expect(jobs_page.locator(".messages")).to_contain_text("Retried 2 jobs.")
    for job_id in failing:
        assert Job.objects.get(pk=job_id).events.filter(kind="retried").exists()
    context.close()
