"""Reviewing previews in a real browser, against real processes.

A batch with review is submitted over HTTP with an API token; a real
``render_worker`` renders each row's draft preview through nexrender and the
aerender simulator. In Chromium the reviewer opens "To review": the preview
plays in the page (the <video> decodes frames and its time advances), one row
is approved with a comment and turns COMPLETED live over the websocket without
a reload, the other is rejected with its reason. The batch page shows both
rows' outcome. Screenshots: artifacts/screenshots/review.png and batch.png.
"""

from __future__ import annotations

import pytest
import requests
from django.db import connections

from jobs.models import Batch, Job, JobEvent, Status
from tests.helpers.browser import LIVE, set_password, shoot_at_widths, sign_in
from tests.helpers.common import make_project, wait_for
from tests.helpers.media import still

pytestmark = [pytest.mark.slow]


def test_review_a_preview_in_the_page_and_watch_the_final_render_live(
        farm, server, chromium, user, api_token, settings, nexrender_cli):
    try:
        review_in_the_browser(farm, server, chromium, user, api_token, settings)
    finally:
        # Playwright's sync API runs this test's ORM calls in their own context;
        # close that connection before the test database is dropped.
        connections.close_all()


def review_in_the_browser(farm, server, chromium, user, api_token, settings):
    from playwright.sync_api import expect

    set_password(user, settings)
    # 60 frames at 0.05 s: the final render takes a few seconds, long enough to be seen.
    make_project(farm.dropbox, "promo.aep", frames=60, fps=25, frame_seconds=0.05, width=320,
                 height=180)
    for name in ("ana", "ben"):
        still(farm.dropbox / "media" / f"{name}.png", color="orange", size="64x36")
    farm.start_worker()
    response = requests.post(f"{server}/api/batches", headers={"X-API-Token": api_token}, json={
        "project_path": "/Users/alice/Dropbox/projects/promo.aep",
        "saved_at": "2000-01-01T00:00:00Z", "mac_username": "alice", "name": "Promo",
        "nexrender": {"template": {"composition": "Main", "outputExt": "avi"}},
        "columns": {"title": {"type": "data", "layerName": "Title", "property": "Source Text"},
                    "photo": {"type": "image", "layerName": "Photo"}},
        "csv": "title,photo\nAna,/Users/alice/Dropbox/media/ana.png\n"
               "Ben,/Users/alice/Dropbox/media/ben.png\n",
        "output_name": "{title}-{row}", "review": True}, timeout=30)
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    approved, rejected = (row["job_id"] for row in response.json()["rows"])
    wait_for(lambda: Job.objects.filter(status=Status.AWAITING_REVIEW).count() == 2,
             timeout=LIVE / 1000 * 4, interval=0.2, message="the previews never got ready: "
             + str(list(Job.objects.values_list("status", "error"))))

    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in(page, server, "alice", next_url="/review")
    expect(page.locator("h1")).to_have_text("To review")
    expect(page.locator("#live")).to_have_text("Live", timeout=LIVE)
    page.evaluate("window.__sameDocument = true")

    # --- The preview plays in the page: frames decode and time advances.
    video = page.locator(f"#preview-{approved}")
    expect(video).to_be_visible()
    video.evaluate("v => v.play()")
    page.wait_for_function(
        "id => { const v = document.getElementById(id);"
        " return v.readyState >= 2 && v.currentTime > 0.2 && !v.paused; }",
        arg=f"preview-{approved}", timeout=LIVE)
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [160, 90]
    assert video.evaluate("v => v.error") is None
    shoot_at_widths(page, "review-previews")

    # --- Approve with a comment: decided in place; the row follows the final render live.
    page.fill(f"#comment-{approved}", "Great, ship it")
    page.click(f"#approve-{approved}")
    decision = page.locator(f"#decision-{approved}")
    expect(decision).to_contain_text("Approved", timeout=LIVE)
    expect(decision).to_contain_text("Great, ship it")
    status = page.locator(f"#job-{approved} .status")
    expect(status).to_have_text("RENDERING", timeout=LIVE)
    expect(status).to_have_text("COMPLETED", timeout=LIVE)
    assert page.evaluate("window.__sameDocument") is True
    event = JobEvent.objects.get(job_id=approved, kind="approved")
    assert (event.actor, event.message) == ("alice@studio.test", "Great, ship it")

    # --- Reject the other: a reason is required, and kept.
    page.click(f"#reject-{rejected}")
    expect(page.locator(f"#decision-{rejected} [role=alert]")).to_contain_text(
        "comment is required", timeout=LIVE)
    assert Job.objects.get(pk=rejected).status == Status.AWAITING_REVIEW
    page.fill(f"#comment-{rejected}", "Wrong photo")
    page.click(f"#reject-{rejected}")
    expect(page.locator(f"#decision-{rejected}")).to_contain_text("Rejected", timeout=LIVE)
    expect(page.locator(f"#job-{rejected} .status")).to_have_text("REJECTED", timeout=LIVE)
    assert Job.objects.get(pk=rejected).error == "Rejected by alice@studio.test: Wrong photo"
    assert page.evaluate("window.__sameDocument") is True

    # --- The batch page: a card per row with its outcome, and the results CSV.
    page.goto(f"{server}/batches/{batch_id}")
    expect(page.locator("h1")).to_have_text("Promo")
    rows = {row.number: row.pk for row in Batch.objects.get(pk=batch_id).rows.all()}
    expect(page.locator(f"#row-{rows[1]}")).to_have_attribute("data-status", "COMPLETED")
    expect(page.locator(f"#row-{rows[2]}")).to_have_attribute("data-status", "REJECTED")
    expect(page.locator(f"#row-{rows[1]} img")).to_be_visible()
    expect(page.locator("#batch-counts")).to_contain_text("COMPLETED 1")
    shoot_at_widths(page, "batch")
    csv_text = page.evaluate("url => fetch(url).then(r => r.text())",
                             page.locator("#results-csv").get_attribute("href"))
    assert "Ana-1.avi" in csv_text and "Wrong photo" in csv_text
    context.close()
