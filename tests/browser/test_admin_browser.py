"""The admin panel in a real browser, against real processes.

daphne serves the app from a subprocess on the test database, a real
``render_worker`` renders a long (simulated) aerender job, and Chromium
(Debian's, driven by Playwright) is the admin: the health figures are shown
and refresh without a reload, the render shows under its node with its
process tree, and Emergency stop — confirmed in the panel's dialog — cancels
the job, kills the render and says so. Then, with JavaScript off, the panel
still reads and Clear the queue goes through its own confirmation page.
Screenshots: artifacts/screenshots/admin-panel.png and admin-panel-confirm.png
(the dialog).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from jobs.models import Job, JobEvent, Status
from systemadmin.models import QueueSample, SystemEvent
from tests.helpers.browser import LIVE, SCREENSHOTS, set_password, shoot_at_widths, sign_in
from tests.helpers.common import wait_for
from tests.helpers.farm import render_processes, submit, use_aerender, wait_status

pytestmark = [pytest.mark.slow]

ADMIN_EMAIL = "admin@studio.test"
LONG = {"frames": 6000, "frame_seconds": 0.02, "spawn_child": True}  # about two minutes


def test_admin_panel_live_health_and_emergency_stop(farm, server, chromium, admin, user,
                                                    settings):
    try:
        run_panel(farm, server, chromium, admin, user, settings)
    finally:
        # Playwright's sync API runs this test's ORM calls with their own connection;
        # close it before the test database is dropped.
        connections.close_all()


def run_panel(farm, server, chromium, admin, user, settings):
    from playwright.sync_api import expect

    set_password(admin, settings)
    # A day of stored queue samples for the chart (the workers add one a minute).
    now = timezone.now()
    QueueSample.objects.bulk_create(
        QueueSample(created_at=now - timedelta(minutes=m), queued=(m // 37) % 9,
                    validating=(m // 90) % 3, rendering=1 if (m // 120) % 4 else 0)
        for m in range(24 * 60, 2, -5))

    # A worker renders a long job.
    use_aerender(farm)
    farm.start_worker("node-a")
    job = submit(farm, user, "long.aep", **LONG)
    wait_status(job, Status.RENDERING, timeout=60)
    wait_for(lambda: render_processes(node=farm.node()), timeout=30,
             message="the render process never started")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    # A native confirm() would be a bug here: the panel asks in its own <dialog>.
    native_dialogs = []
    page.on("dialog", lambda d: (native_dialogs.append(d.message), d.dismiss()))
    sign_in(page, server, "admin", next_url="/system")
    expect(page.locator("h1")).to_have_text("Admin panel")
    page.evaluate("window.__sameDocument = true")

    # --- Health figures, rendered on the server...
    for figure in ("#health-cpu", "#health-memory", "#health-disk-dropbox",
                   "#health-disk-temp"):
        expect(page.locator(f"{figure} .metric-value")).to_have_text(
            re.compile(r"^\d+%$"))
    expect(page.locator("#health-disk-dropbox .metric-path")).to_have_text(
        str(settings.DROPBOX_PATH))
    # ...and refreshed in place: the section is re-rendered with a new time, no reload.
    stamp = page.locator("#health-updated")
    first = stamp.get_attribute("datetime")
    expect(stamp).not_to_have_attribute("datetime", first, timeout=LIVE)
    second = stamp.get_attribute("datetime")
    expect(stamp).not_to_have_attribute("datetime", second, timeout=LIVE)
    expect(page.locator("#live")).to_have_text("Live")
    assert page.evaluate("window.__sameDocument") is True

    # --- The render node, its job and its render process tree; the queue chart.
    node_row = page.locator(f'tr.node-row[data-node="{farm.node()}"]')
    expect(node_row.locator(".status")).to_have_text("RENDERING", timeout=LIVE)
    expect(node_row).to_contain_text("long.aep")
    expect(page.locator("#nodes .proc-row").first).to_be_visible(timeout=LIVE)
    expect(node_row.locator("[role=progressbar]")).not_to_have_attribute(
        "aria-valuenow", "0", timeout=LIVE)
    expect(page.locator("#queue-chart svg path.line-waiting")).to_have_count(1)
    expect(page.locator("#queue-rendering .queue-number")).to_have_text("1")
    shoot_at_widths(page, "admin-panel-live")

    # --- Emergency stop: the dialog asks, with the server's count.
    page.click("#emergency-stop")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-question")).to_have_text(
        "Are you sure? 1 job will be cancelled, and 1 render killed.")
    expect(dialog).to_contain_text("long.aep — rendering (Alice Artist)")
    page.screenshot(path=str(SCREENSHOTS / "admin-panel-confirm.png"))
    # Cancel really cancels.
    dialog.locator("#confirm-cancel").click()
    expect(dialog).to_be_hidden()
    assert Job.objects.get(pk=job.pk).status == Status.RENDERING
    assert page.evaluate("window.__sameDocument") is True

    page.click("#emergency-stop")
    expect(dialog).to_be_visible()
    dialog.locator("#confirm-action").click()
    expect(page.locator("#messages")).to_have_text(
        "Emergency stop: cancelled 1 job and stopped 1 render.", timeout=LIVE)
    expect(page).to_have_url(f"{server}/system")
    assert native_dialogs == []

    # The job is cancelled by the admin, and no render process is left.
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    event = JobEvent.objects.get(job_id=job.pk, kind="cancelled")
    assert event.actor == ADMIN_EMAIL and event.message == "Emergency stop by Ada Admin"
    system = SystemEvent.objects.get(kind="emergency_stop")
    assert system.actor == ADMIN_EMAIL and "Ada Admin" in system.message
    wait_for(lambda: not render_processes(node=farm.node()), timeout=3,
             message="render processes survived the emergency stop")
    # The panel says so too: the node goes idle, the action is listed with its admin.
    expect(page.locator("#action-list")).to_contain_text("Emergency stop by Ada Admin")
    expect(node_row.locator(".status")).to_have_text("IDLE", timeout=LIVE)
    expect(page.locator("#nodes .proc-row")).to_have_count(0)
    context.close()

    # --- Without JavaScript the panel still reads, and an action is a page of its own.
    farm.stop()  # no worker: the next job stays waiting
    waiting = submit(farm, user, "later.aep", frames=4)
    plain = chromium.new_context(java_script_enabled=False)
    page = plain.new_page()
    sign_in(page, server, "admin", next_url="/system")
    expect(page.locator("#health-cpu .metric-value")).to_have_text(re.compile(r"^\d+%$"))
    expect(page.locator("#action-list")).to_contain_text("Emergency stop by Ada Admin")
    page.click("#clear-queue")
    expect(page).to_have_url(f"{server}/system/clear-queue")
    expect(page.locator("#confirm-question")).to_contain_text("1 waiting job will be cancelled")
    page.click("#confirm-action")
    expect(page).to_have_url(f"{server}/system")
    expect(page.locator("#messages")).to_have_text("Queue cleared: cancelled 1 waiting job.")
    assert SystemEvent.objects.get(kind="clear_queue").actor == ADMIN_EMAIL
    assert Job.objects.get(pk=waiting.pk).status == Status.CANCELLED
    plain.close()
