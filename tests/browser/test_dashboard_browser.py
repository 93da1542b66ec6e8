"""The dashboard a studio lives in, in a real browser at 390 px (a phone) and 1440 px.

daphne serves the app from a subprocess on the test database, a real render worker
renders with the aerender simulator, and Debian's Chromium (driven by Playwright)
looks: every column of the list (every field of a card on a phone) is on screen, a
completed job's preview video plays, the main text styles have a contrast of 4.5:1 or
more (computed colours), a token made in the profile submits a job and, revoked, is
refused; the list keeps up live, and says so when it cannot. Screenshots of every
page at both widths go to artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests
from django.db import connections
from django.utils import timezone

from jobs.models import FollowUp, Job, JobFollowUp, JobLog, JobProxy, Status
from tests.helpers.aelogs import sample_lines
from tests.helpers.browser import LIVE, SCREENSHOTS, set_password, shoot_at_widths, sign_in
from tests.helpers.common import end_sessions, make_project, wait_for

pytestmark = [pytest.mark.slow]

WIDTHS = (390, 1440)
ZONE = "Europe/Paris"


@pytest.fixture(autouse=True)
def close_connections():
    yield
    # Under Playwright's sync API this test's ORM calls run in their own context with
    # their own connection; close it before the test database is dropped.
    connections.close_all()


def submit(base, token, dropbox, name, composition="main", template=None,
           **behaviour) -> str:
    """What bravo does: POST /api/jobs with its token. Returns the job id."""
    make_project(dropbox, name, **behaviour)
    response = requests.post(f"{base}/api/jobs", headers={"X-API-Token": token}, json={
        "project_path": f"/Users/alice/Dropbox/projects/{name}",
        "saved_at": "2000-01-01T00:00:00Z", "mac_username": "alice", "engine": "aerender",
        "nexrender": {"template": {"composition": composition, **(template or {})}},
    }, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def status_of(job_id) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job_id)


def shoot(page, name: str, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)


WIDER = """width => Array.from(document.querySelectorAll("body *")).filter(el => {
    const r = el.getBoundingClientRect();
    if (r.right <= width + 1 || r.width === 0) return false;
    for (let a = el.parentElement; a; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== 'visible'
            && a.getBoundingClientRect().right <= width + 1) return false;
    }
    return true; }).slice(0, 5).map(el => el.outerHTML.slice(0, 160))"""


def fits(page, width: int) -> None:
    """Nothing makes the page wider than the screen."""
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{page.url} is {wide} px wide: {page.evaluate(WIDER, width)}"


PLACE = """el => {
    if (!el.isConnected) return null;  // replaced by a live update meanwhile
    const r = el.getBoundingClientRect();
    const shown = r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
    let clipped = false;
    for (let a = el.parentElement; a; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== 'visible') {
            const c = a.getBoundingClientRect();
            if (r.right > c.right + 0.5 || r.left < c.left - 0.5) clipped = true;
        }
    }
    return {shown, left: r.left, right: r.right, clipped, width: r.width, height: r.height,
            display: getComputedStyle(el).display, html: el.outerHTML.slice(0, 300)};
}"""


def on_screen(locator, width: int, what: str) -> None:
    """``locator`` is shown and lies within the screen's width (not cut off, not in a
    part of a table that only scrolls into view). Measured in one step in the page:
    live updates replace rows while the test looks at them."""
    place = None
    for _ in range(20):
        place = locator.evaluate(PLACE)
        if place is not None:
            break
    assert place is not None, f"{what} kept being replaced"
    assert place["shown"], f"{what} is not visible: {place}"
    assert place["left"] >= -0.5 and place["right"] <= width + 0.5, \
        f"{what} is off screen at {width} px: {place}"
    assert not place["clipped"], f"{what} is cut off by a scrolling box at {width} px"


# --- Contrast ------------------------------------------------------------------------


def _channel(value: float) -> float:
    value /= 255
    return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4


def luminance(rgb) -> float:
    r, g, b = (_channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg, bg) -> float:
    high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


COLOURS = """sel => Array.from(document.querySelectorAll(sel)).filter(el =>
    el.offsetParent !== null && el.textContent.trim()).slice(0, 6).map(el => {
    const rgb = text => (text.match(/[\\d.]+/g) || []).map(Number);
    let bg = null;
    for (let a = el; a; a = a.parentElement) {
        const c = rgb(getComputedStyle(a).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) { bg = c.slice(0, 3); break; }
    }
    return {text: el.textContent.trim().slice(0, 40),
            color: rgb(getComputedStyle(el).color).slice(0, 3),
            background: bg || [255, 255, 255]};
})"""

# The main text styles: body text, the muted and faint greys, links, labels and help,
# table heads, every status badge, the failure and cancellation texts, times.
TEXT_STYLES = ["main h1", ".job-name", ".muted", ".faint", "a", "label", ".help",
               "table.jobs th", ".job-path", ".comp", ".status", ".problem-failed > summary",
               ".problem-cancelled", ".tabs a", ".tabs .count", ".progress-meta",
               ".nav a", ".live-dot", "time", "dl.facts dt", ".failure-cause", "code",
               ".ln", ".ln-error", ".ln-warning"]
# Every status badge, whether or not a job of that status is on the page.
TONES = ("pending", "validating", "queued", "rendering", "completed", "failed", "cancelled",
         "review", "rejected")
BADGES = """tones => { const box = document.createElement('div');
    document.querySelector('main').append(box);
    const found = tones.map(tone => { const badge = document.createElement('span');
        badge.className = `status status-${tone}`; badge.textContent = tone.toUpperCase();
        box.append(badge);
        const rgb = text => (text.match(/[\\d.]+/g) || []).map(Number).slice(0, 3);
        const style = getComputedStyle(badge);
        return {tone, color: rgb(style.color), background: rgb(style.backgroundColor)}; });
    box.remove(); return found; }"""


def check_badges(page, seen: dict) -> None:
    for found in page.evaluate(BADGES, list(TONES)):
        ratio = contrast(found["color"], found["background"])
        seen[f"badge {found['tone']}"] = ratio
        assert ratio >= 4.5, f"the {found['tone']} badge has a contrast of {ratio:.2f}:1"


def check_contrast(page, seen: dict) -> None:
    for selector in TEXT_STYLES:
        for found in page.evaluate(COLOURS, selector):
            ratio = contrast(found["color"], found["background"])
            seen[selector] = min(ratio, seen.get(selector, 99))
            assert ratio >= 4.5, (f"{selector} “{found['text']}” has a contrast of "
                                  f"{ratio:.2f}:1 on {page.url}")


# --- The pages ------------------------------------------------------------------------


def check_list(page, width: int, admin: bool, rendering: str) -> None:
    fits(page, width)
    rows = page.locator("tr.job-row")
    assert rows.count() >= 4
    if width >= 1000:
        # A table: every column's head, and every cell of every row, on screen.
        for head in page.locator("table.job-table thead th").all():
            on_screen(head, width, f"the column {head.inner_text()!r}")
        for row in rows.all():
            for cell in row.locator("td").all():
                on_screen(cell, width, f"a cell of {row.get_attribute('id')}")
    else:
        # A card per job: name, status, progress (with the ETA while it renders),
        # composition, person (for admins), when; and the problem when there is one.
        assert page.locator("table.job-table thead").is_hidden()
        for row in rows.all():
            job = row.get_attribute("id")
            for field in (".job-name", ".cell-status .status", ".comp", ".cell-time time"):
                on_screen(row.locator(field), width, f"{field} of {job}")
            if admin:
                on_screen(row.locator(".cell-user"), width, f"the user of {job}")
            if row.get_attribute("data-status") in ("RENDERING", "COMPLETED"):
                on_screen(row.locator(".progress-cell"), width, f"the progress of {job}")
            if row.get_attribute("data-status") in ("FAILED", "CANCELLED"):
                on_screen(row.locator(".cell-problem"), width, f"the problem of {job}")
    eta = page.locator(f"#job-{rendering} .progress-cell")
    page.wait_for_function(f"""() => document.querySelector('#job-{rendering} .progress-cell')
        .textContent.includes('ETA')""", timeout=LIVE)
    on_screen(eta, width, "the rendering job's progress and ETA")
    # Its elapsed time counts on in the page.
    elapsed = page.locator(f"#job-{rendering} .elapsed").inner_text()
    page.wait_for_function(f"""() => document.querySelector('#job-{rendering} .elapsed')
        .textContent !== {elapsed!r}""", timeout=LIVE)


def sign_in_at(chromium, base, width, username, permissions=()):
    context = chromium.new_context(viewport={"width": width, "height": 900},
                                   timezone_id=ZONE, permissions=list(permissions))
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, base, username)
    page.wait_for_load_state("load")  # the style sheet too, before anything is measured
    return context, page


def test_every_page_at_phone_and_desktop_widths(farm, daphne, chromium, user, admin,
                                                api_token, settings):
    from playwright.sync_api import expect

    farm.configure(MAX_RENDER_ATTEMPTS=1)
    set_password(user, settings)
    admin.is_staff = admin.is_superuser = True  # as `manage.py add_user --admin` makes them
    set_password(admin, settings)
    base = daphne.base
    farm.start_worker()
    done = submit(base, api_token, farm.dropbox, "spot.aep", frames=25, width=320, height=180)
    failed = submit(base, api_token, farm.dropbox, "broken.aep",
                    fail="Missing footage: hero.mov")
    # The proxy is encoded at low priority beside a render: on a busy 2-core machine
    # (both test passes at once) that can take minutes. So the long render the pages
    # show as rendering starts after it, and outlasts the screenshots whatever it took.
    try:
        wait_for(lambda: JobProxy.objects.filter(job_id=done).exists(), timeout=LIVE / 1000 * 8,
                 message="the completed job got no preview video")
    except AssertionError as exc:
        rows = list(JobFollowUp.objects.filter(job_id=done).values_list(
            "kind", "status", "attempts", "message"))
        raise AssertionError(f"{exc}; its follow-ups: {rows}") from None
    # The render is an uncompressed AVI (aerender's default output module), which no
    # browser plays: the page plays its H.264 proxy.
    assert Job.objects.get(pk=done).output_path.endswith(".avi")
    assert JobProxy.objects.get(job_id=done).size < (
        farm.dropbox / "renders" / Job.objects.get(pk=done).output_path).stat().st_size
    wait_for(lambda: status_of(failed) == Status.FAILED, timeout=LIVE / 1000 * 3)
    old = submit(base, api_token, farm.dropbox, "promo.aep", composition="Story 9x16")
    newer = submit(base, api_token, farm.dropbox, "promo.aep", composition="Story 9x16",
                   frames=3000, frame_seconds=0.04)
    assert status_of(old) == Status.CANCELLED
    wait_for(lambda: status_of(newer) == Status.RENDERING, timeout=LIVE / 1000 * 3)

    # A job tried twice, with a real After Effects log (tests/data/aelogs/03_*: a missing
    # composition and missing fonts, as a user posted it) in each attempt's section.
    real = "\n".join(sample_lines("03_"))
    log = (f"=== attempt 1 on render-01 at 2025-03-01 12:00:00 UTC ===\n{real}\n"
           f"=== attempt 2 on render-02 at 2025-03-01 12:05:00 UTC ===\n{real}\n")
    tried = Job.objects.create(
        user=user, status=Status.FAILED, name="two-tries.aep", composition="Main Comp",
        project_path="/Users/alice/Dropbox/projects/two-tries.aep", attempts=2,
        error="aerender ERROR: No comp was found with the given name.").pk
    JobLog.objects.create(job_id=tried, head=log, tail="")
    problems = sum(1 for line in real.splitlines() if "ERROR" in line or "WARNING" in line)

    contrasts: dict[str, float] = {}
    for width in WIDTHS:
        # Signed out: the sign-in page.
        context = chromium.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.goto(f"{base}/")
        fits(page, width)
        assert "GOOGLE_CLIENT_ID" not in page.content()
        shoot(page, "sign-in", width)
        context.close()

        context, page = sign_in_at(chromium, base, width, "alice",
                                   permissions=["clipboard-read", "clipboard-write"])
        expect(page.locator("#live")).to_have_text("Live", timeout=LIVE)
        check_list(page, width, admin=False, rendering=newer)
        # The superseded job links the job that replaced it.
        link = page.locator(f"#job-{old} .superseded-link")
        assert link.get_attribute("href") == f"/jobs/{newer}"
        if width < 1000:
            # Filters fold away on a phone; the search stays.
            assert page.locator("#more-filters").evaluate("el => el.open") is False
            on_screen(page.locator("#q"), width, "the search box")
            on_screen(page.locator("#sign-out"), width, "Sign out")
        check_contrast(page, contrasts)
        check_badges(page, contrasts)
        if width == WIDTHS[-1]:
            # Dark mode (the system's setting) keeps to 4.5:1 as well.
            page.emulate_media(color_scheme="dark")
            dark: dict[str, float] = {}
            check_contrast(page, dark)
            check_badges(page, dark)
            shoot(page, "job-list-dark", width)
            page.emulate_media(color_scheme="light")
        shoot(page, "job-list", width)

        # The completed job: its preview video plays in the page.
        page.goto(f"{base}/jobs/{done}")
        fits(page, width)
        video = page.locator("#job-video")
        on_screen(video, width, "the player")
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("""() => { const v = document.querySelector('#job-video');
            return v.readyState >= 2 && v.currentTime > 0.2; }""", timeout=LIVE)
        on_screen(page.locator("#mac-output"), width, "the output's Mac path")
        # The path as the artist's Mac has it, to paste into Finder's "Go to Folder".
        mac = page.locator("#mac-output").inner_text()
        assert mac.startswith("/Users/alice/") and "/Dropbox/renders/" in mac, mac
        copy = page.locator("[data-copy=mac-output]")
        on_screen(copy, width, "the Copy button")
        copy.click()
        expect(copy).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == mac
        # Times are the viewer's, with the zone named.
        expect(page.locator("#time-zone-note")).to_contain_text(ZONE)
        assert re.search(r"\d\d:\d\d:\d\d (CET|CEST|GMT\+[12])$",
                         page.locator("#job-facts time.local").first.inner_text())
        check_contrast(page, contrasts)
        shoot(page, "job-completed", width)

        # The failed job: its cause, and the log viewer.
        page.goto(f"{base}/jobs/{failed}")
        fits(page, width)
        on_screen(page.locator("#job-failure"), width, "the failure")
        check_contrast(page, contrasts)
        shoot(page, "job-failed", width)
        page.goto(f"{base}/jobs/{failed}/log")
        fits(page, width)
        expect(page.locator(".ln-error").first).to_be_visible()
        page.fill("#log-search", "hero.mov")
        expect(page.locator("#log-found")).to_contain_text("lines")
        shoot(page, "log-viewer", width)

        # The log viewer: a section per attempt, started at the viewer's time, named.
        page.goto(f"{base}/jobs/{tried}/log")
        fits(page, width)
        expect(page.locator(".log-section")).to_have_count(2)
        expect(page.locator("#attempt-2 h2")).to_contain_text("Attempt 2 on render-02")
        expect(page.locator("#attempt-2 h2 time.local")).to_have_text(
            re.compile(r"^2025-03-01 13:05:00 (CET|GMT\+1)$"))
        expect(page.locator("#time-zone-note")).to_contain_text(ZONE)
        # AE's errors and warnings stand out (their own colours, 4.5:1 or more).
        error = page.locator("#attempt-1 .ln-error").first
        expect(error).to_contain_text("No comp was found")
        plain = page.locator("#attempt-1 .ln:not(.ln-error):not(.ln-warning)").first
        assert error.evaluate("el => getComputedStyle(el).color") != plain.evaluate(
            "el => getComputedStyle(el).color")
        check_contrast(page, contrasts)
        # Wrap: long lines fold within the screen instead of scrolling sideways.
        lines = page.locator("#attempt-1 pre.log-lines")
        assert lines.evaluate("el => getComputedStyle(el).whiteSpace") == "pre"
        page.check("#log-wrap")
        assert lines.evaluate("el => getComputedStyle(el).whiteSpace") == "pre-wrap"
        assert lines.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
        # Errors and warnings only; then a search.
        total = page.locator(".ln").count()
        page.check("#log-problems")
        expect(page.locator("#log-found")).to_have_text(f"{2 * problems} of {total} lines")
        assert page.locator(".ln:visible").evaluate_all(
            "els => els.every(el => /ln-(error|warning)/.test(el.className))")
        page.uncheck("#log-problems")
        page.fill("#log-search", "no comp was found")
        expect(page.locator("#log-found")).to_have_text(f"2 of {total} lines")
        expect(page.locator(".ln.hit")).to_have_count(2)
        shoot(page, "log-viewer-attempts", width)
        # The download is the whole log.
        with page.expect_download() as download:
            page.click("#log-download")
        assert Path(download.value.path()).read_text() == log
        page.uncheck("#log-wrap")  # remembered in this browser

        # The rendering job: actions and ETA at the top of its page.
        page.goto(f"{base}/jobs/{newer}")
        fits(page, width)
        on_screen(page.locator("#cancel-button"), width, "Cancel job")
        page.wait_for_function("""() => document.querySelector('#job-progress')
            .textContent.includes('ETA')""", timeout=LIVE)
        assert page.locator("#job-progress").evaluate(
            "el => el.getBoundingClientRect().top") < 900 * 1.2
        shoot(page, "job-rendering", width)

        for path, name in (("/jobs/new", "submit"), ("/profile", "profile"),
                           ("/review", "review"), ("/batches", "batches"),
                           ("/batches/new", "batch-new"), ("/nothing-here", "not-found")):
            page.goto(f"{base}{path}")
            fits(page, width)
            check_contrast(page, contrasts)
            shoot(page, name, width)
        context.close()

        # An admin: everyone's jobs with their owner, the admin panel, every token.
        context, page = sign_in_at(chromium, base, width, "admin")
        check_list(page, width, admin=True, rendering=newer)
        shoot(page, "job-list-admin", width)
        for path, name in (("/system", "admin-panel"), ("/profile", "profile-admin"),
                           ("/system/usage", "usage")):
            page.goto(f"{base}{path}")
            fits(page, width)
            check_contrast(page, contrasts)
            shoot(page, name, width)
        # The Django admin (its own styles; only looked at), reached from the panel.
        page.goto(f"{base}/system")
        page.click("#django-admin-link")
        expect(page.locator("#site-name")).to_be_visible()
        shoot(page, "django-admin", width)
        context.close()
    # Every main style was found and measured somewhere.
    assert set(TEXT_STYLES) <= set(contrasts), set(TEXT_STYLES) - set(contrasts)
    print("lowest contrast per style:", ", ".join(
        f"{style} {ratio:.2f}" for style, ratio in sorted(contrasts.items(), key=lambda i: i[1])))


def test_a_token_made_in_the_profile_submits_and_revoked_gets_401(farm, daphne, chromium, user,
                                                                  settings):
    from playwright.sync_api import expect

    set_password(user, settings)
    make_project(farm.dropbox, "script.aep")
    context, page = sign_in_at(chromium, daphne.base, 1440, "alice")
    page.goto(f"{daphne.base}/profile")
    page.fill("#token-name", "my render script")
    page.click("#create-token")
    token = page.locator("#new-token-value").inner_text()
    assert token.startswith("rm_")
    body = {"project_path": "/Users/alice/Dropbox/projects/script.aep",
            "saved_at": "2000-01-01T00:00:00Z",
            "nexrender": {"template": {"composition": "main"}}}

    made = requests.post(f"{daphne.base}/api/jobs", headers={"X-API-Token": token}, json=body,
                         timeout=10)
    assert made.status_code == 202, made.text
    assert Job.objects.get(pk=made.json()["id"]).user == user
    # Reloaded, the page lists it by name and when it was last used, never the token.
    page.goto(f"{daphne.base}/profile")
    row = page.locator("#token-list tbody tr", has_text="my render script")
    expect(row).not_to_contain_text("never")
    assert token not in page.content()

    row.locator("button", has_text="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("no longer works")
    refused = requests.post(f"{daphne.base}/api/jobs", headers={"X-API-Token": token},
                            json=body, timeout=10)
    assert refused.status_code == 401

    # Without the plugin: the web form, with the path as the artist's Mac has it,
    # rendered by a render node.
    make_project(farm.dropbox, "from-the-web.aep", frames=30)
    farm.start_worker()
    page.goto(f"{daphne.base}/jobs/new")
    page.fill("#project_path", "/Users/alice/Dropbox/projects/from-the-web.aep")
    page.fill("#composition", "main")
    page.fill("#frame_start", "5")
    page.fill("#frame_end", "24")
    page.select_option("#preset", index=0)
    page.click("#submit-form button[type=submit]")
    expect(page).to_have_url(re.compile(rf"{daphne.base}/jobs/[0-9a-f-]{{36}}$"))
    expect(page.locator(".messages")).to_contain_text("Submitted")
    job = Job.objects.get(pk=page.url.rsplit("/", 1)[1])
    assert (job.user, job.composition, job.project_path) == (user, "main",
                                                             "projects/from-the-web.aep")
    expect(page.locator("#job-status .status")).to_have_text("COMPLETED", timeout=LIVE)
    assert Job.objects.get(pk=job.pk).frames_done == 20
    context.close()


@pytest.mark.both_databases  # PostgreSQL: the bridge LISTENs again after the restart
def test_the_list_keeps_up_live_and_says_when_it_cannot(farm, daphne, chromium, user,
                                                       api_token, settings):
    from playwright.sync_api import expect

    set_password(user, settings)
    base = daphne.base
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, timezone_id=ZONE,
                                   permissions=["notifications"])
    # Notifications are shown by the browser; each one is also noted for the test.
    context.add_init_script("""(() => {
        const Real = window.Notification; window.__notes = [];
        window.Notification = function (title, options) {
            window.__notes.push(title); return new Real(title, options); };
        window.Notification.permission = Real.permission;
        window.Notification.requestPermission = Real.requestPermission.bind(Real);
    })();""")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    sign_in(page, base, "alice", next_url="/profile")
    # Completed renders are announced in this browser.
    page.check("#browser-completed")
    page.click("#notify-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Notification settings saved")

    page.goto(f"{base}/")
    expect(page.locator("#live")).to_have_text("Live", timeout=LIVE)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#jobs-empty")).to_be_visible()
    # The empty list says where a first job comes from, with links.
    expect(page.locator("#jobs-empty a[href='/jobs/new']")).to_be_visible()
    expect(page.locator("#jobs-empty a[href='/api/docs']")).to_be_visible()
    # Bulk actions wait for a selection.
    for button in ("#bulk-retry", "#bulk-cancel"):
        expect(page.locator(button)).to_be_disabled()
    # The skip link is the first stop on the page.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()

    farm.start_worker()
    first = submit(base, api_token, farm.dropbox, "first.aep", frames=10)
    row = page.locator(f"#job-{first}")
    expect(row).to_be_visible(timeout=LIVE)
    expect(page.locator("#jobs-empty")).to_be_hidden()
    expect(row.locator(".status")).to_have_text("COMPLETED", timeout=LIVE)
    expect(page.locator("#job-count")).to_have_text("1 job", timeout=LIVE)
    expect(page.locator('#status-tabs [data-tab="completed"] .count')).to_have_text(
        "1", timeout=LIVE)
    page.wait_for_function("window.__notes.length > 0", timeout=LIVE)
    assert page.evaluate("window.__notes") == ["Render completed: first.aep"]

    second = submit(base, api_token, farm.dropbox, "second.aep", frames=10)
    expect(page.locator(f"#job-{second} .status")).to_have_text("COMPLETED", timeout=LIVE)
    expect(page.locator("#job-count")).to_have_text("2 jobs", timeout=LIVE)
    expect(page.locator(f"#job-{second} time.ago")).to_have_text("just now")
    assert page.locator("tr.job-row").count() == 2  # each once
    page.check(f"#job-{first} input[name=job]")
    expect(page.locator("#bulk-retry")).to_be_enabled()
    page.uncheck(f"#job-{first} input[name=job]")

    # The keyboard: skip link, then the list, then the first job within two stops.
    page.goto(f"{base}/")
    expect(page.locator("#live")).to_have_text("Live", timeout=LIVE)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    stops = []
    for _ in range(4):
        page.keyboard.press("Tab")
        stops.append(page.evaluate("document.activeElement.outerHTML.slice(0, 80)"))
        if page.evaluate(f"document.activeElement.closest('#job-{second}') !== null"):
            break
    assert page.evaluate(f"document.activeElement.closest('#job-{second}') !== null"), stops
    page.evaluate("window.__sameDocument = true")

    # A long render, watched on its page too; then the web server goes away.
    long = submit(base, api_token, farm.dropbox, "long.aep", frames=400, frame_seconds=0.03)
    expect(page.locator(f"#job-{long} .status")).to_have_text("RENDERING", timeout=LIVE)
    expect(page.locator("#job-count")).to_have_text("3 jobs", timeout=LIVE)
    detail = context.new_page()
    detail.goto(f"{base}/jobs/{long}")
    expect(detail.locator("#live")).to_have_text("Live", timeout=LIVE)
    # A push has reached the job's page (its progress moved): the parts it replaced
    # must still be caught up after the reconnect.
    shown_pct = detail.locator("#job-progress .pct").inner_text()
    expect(detail.locator("#job-progress .pct")).not_to_have_text(shown_pct, timeout=LIVE)
    daphne.stop()
    for shown in (page, detail):
        expect(shown.locator("#stale-note")).to_be_visible(timeout=LIVE)
        expect(shown.locator(".live-area")).to_have_class(re.compile(r"\bstale\b"))
    # The rows say no more than what was known: no ETA, no moving stripes.
    assert page.locator(f"#job-{long} .live-only").evaluate_all(
        "els => els.every(el => getComputedStyle(el).display === 'none')")
    shoot_at_widths(page, "job-list-stale")
    wait_for(lambda: status_of(long) == Status.COMPLETED, timeout=LIVE / 1000 * 2)
    # And its follow-ups (poster frame, preview video) too: nothing the server could push
    # after it is back, so only the pages' own catch-up can show the completion. (Parts
    # that a push had replaced were once left out of it: the page kept RENDERING.)
    wait_for(lambda: not JobFollowUp.objects.filter(job_id=long).exclude(
        status__in=[FollowUp.DONE, FollowUp.FAILED]).exists(), timeout=LIVE / 1000 * 4)

    # Back again: the pages catch up with what happened meanwhile, without a reload. The
    # list's first catch-up meets a proxy's 502 (a server still warming up); with its
    # socket open again, no reconnect would come to try once more: the page does.
    refused = []

    def bad_gateway_once(route):
        if not refused and route.request.resource_type == "fetch":
            refused.append(route.request.url)
            route.fulfill(status=502, body="Bad Gateway")
        else:
            route.continue_()

    page.route(f"{base}/", bad_gateway_once)
    waits = page.evaluate("Array.from({length: 12}, (_, n) => htmx.config.wsReconnectDelay(n))")
    assert all(0 < wait <= 5_000 for wait in waits), waits
    daphne.start()
    # Within the longest wait between two tries (5 s) of the server's return, however
    # long it was away (the socket's own back-off reached a minute: a page once stayed
    # stale for 30 s after it), plus a catch-up's fetch.
    for shown in (page, detail):
        expect(shown.locator("#stale-note")).to_be_hidden(timeout=5_000 + 5_000)
    assert refused == [f"{base}/"]
    expect(page.locator(f"#job-{long} .status")).to_have_text("COMPLETED", timeout=LIVE)
    expect(page.locator('#status-tabs [data-tab="completed"] .count')).to_have_text("3")
    expect(detail.locator("#job-status .status")).to_have_text("COMPLETED", timeout=LIVE)
    assert page.evaluate("window.__sameDocument") is True
    assert detail.locator("#timeline li", has_text="RENDERING → COMPLETED").count() == 1
    assert not [p for p in problems if "oobErrorNoTarget" in p or "htmx" in p], problems
    context.close()


def test_a_batch_page_catches_up_with_what_happened_while_the_server_was_away(
        farm, daphne, chromium, user, settings):
    from playwright.sync_api import expect

    from tests.web.test_live import make_batch

    set_password(user, settings)
    batch = make_batch(user, Status.QUEUED, Status.QUEUED)
    first = batch.rows.get(number=1)
    context = chromium.new_context(timezone_id=ZONE)
    page = context.new_page()
    sign_in(page, daphne.base, "alice", next_url=f"/batches/{batch.pk}")
    expect(page.locator("#live")).to_have_text("Live", timeout=LIVE)
    card = page.locator(f"#row-{first.pk}")
    expect(card).to_have_attribute("data-status", "QUEUED")
    page.evaluate("window.__sameDocument = true")

    daphne.stop()
    note = page.locator("#stale-note")
    expect(note).to_contain_text("Connection lost. Cards show what was known at",
                                 use_inner_text=True, timeout=LIVE)
    # The first row's render finishes meanwhile: no push can reach the page.
    Job.objects.filter(pk=first.job_id).update(status=Status.COMPLETED,
                                               finished_at=timezone.now())
    daphne.start()
    expect(note).to_be_hidden(timeout=5_000 + 5_000)
    expect(card).to_have_attribute("data-status", "COMPLETED")
    expect(page.locator("#batch-counts")).to_contain_text("COMPLETED 1")
    assert page.evaluate("window.__sameDocument") is True
    context.close()


def test_a_page_whose_session_ended_says_so_and_stops_knocking(farm, daphne, chromium, user,
                                                              other_user, settings):
    from playwright.sync_api import expect

    set_password(user, settings)
    set_password(other_user, settings)
    bobs = Job.objects.create(user=other_user, status=Status.QUEUED,
                              project_path="D:\\Dropbox\\bob.aep")
    base = daphne.base
    # The sockets each page opens to follow its jobs are counted for the test.
    knocks = """(() => {
        const Socket = window.WebSocket; window.__knocks = 0;
        window.WebSocket = function (url, protocols) {
            if (url.includes("/ws/jobs")) window.__knocks += 1;
            return new Socket(url, protocols); };
    })();"""
    alices = chromium.new_context(timezone_id=ZONE)
    alices.add_init_script(knocks)
    listing = alices.new_page()
    sign_in(listing, base, "alice")
    bobs_context = chromium.new_context(timezone_id=ZONE)
    bobs_context.add_init_script(knocks)
    detail = bobs_context.new_page()
    sign_in(detail, base, "bob", next_url=f"/jobs/{bobs.pk}")
    for shown in (listing, detail):
        expect(shown.locator("#live")).to_have_text("Live", timeout=LIVE)

    daphne.stop()
    for shown in (listing, detail):
        expect(shown.locator("#live")).to_have_text("Reconnecting…", timeout=LIVE)
    # Meanwhile Alice's session ended (signed out elsewhere, or expired) and Bob's job
    # was deleted.
    end_sessions(user)
    bobs.delete()
    daphne.start()

    expect(listing.locator("#live")).to_have_text("Signed out", timeout=5_000 + 5_000)
    note = listing.locator("#stale-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Signed out. Rows show what was known at", use_inner_text=True)
    expect(note).not_to_contain_text("Reconnecting", use_inner_text=True)
    shoot_at_widths(listing, "job-list-signed-out")
    expect(detail.locator("#live")).to_have_text("Not live", timeout=5_000 + 5_000)
    expect(detail.locator("#stale-note")).to_have_text(re.compile(
        r"^\s*This job is no longer here\. It was deleted, or is no longer yours to see\. "
        r"All jobs\s*$"), use_inner_text=True)
    # Neither page knocks again: longer than the longest wait between two tries.
    tried = [shown.evaluate("window.__knocks") for shown in (listing, detail)]
    listing.wait_for_timeout(6_000)
    assert [shown.evaluate("window.__knocks") for shown in (listing, detail)] == tried

    # The note's link signs Alice in again and brings her back to her list, live.
    note.get_by_role("link", name="Sign in again").click()
    expect(listing).to_have_url(f"{base}/accounts/login/?next=/")
    listing.fill("#id_login", "alice")
    listing.fill("#id_password", "pw")
    listing.click("#password-login button[type=submit]")
    expect(listing).to_have_url(f"{base}/")
    expect(listing.locator("#live")).to_have_text("Live", timeout=LIVE)
    expect(listing.locator("#stale-note")).to_be_hidden()
    alices.close()
    bobs_context.close()


def test_a_job_page_whose_own_panel_hears_first_says_so_and_asks_nothing_more(
        farm, daphne, chromium, user, other_user, settings):
    # The socket is not the only one asking: while a job is active its page polls its
    # output file and log tail. With the server up the socket hears nothing of a session
    # that ended or a job deleted, so here a poll is what finds out. Before, the poll
    # swapped the sign-in page into the file panel, or (in debug mode) a 404 page over
    # the whole page, and went on polling.
    from playwright.sync_api import expect

    set_password(user, settings)
    set_password(other_user, settings)
    alices = Job.objects.create(user=user, status=Status.QUEUED,
                                project_path="D:\\Dropbox\\alice.aep")
    bobs = Job.objects.create(user=other_user, status=Status.QUEUED,
                              project_path="D:\\Dropbox\\bob.aep")
    base = daphne.base
    pages, asked = {}, {}
    # The page's sockets, kept to see that they end too.
    sockets = """(() => {
        const Socket = window.WebSocket; window.__sockets = [];
        window.WebSocket = function (url, protocols) {
            const socket = new Socket(url, protocols);
            if (url.includes("/ws/jobs")) window.__sockets.push(socket);
            return socket; };
    })();"""
    for person, job in (("alice", alices.pk), ("bob", bobs.pk)):
        context = chromium.new_context(timezone_id=ZONE)
        context.add_init_script(sockets)
        page = context.new_page()
        sign_in(page, base, person, next_url=f"/jobs/{job}")
        expect(page.locator("#live")).to_have_text("Live", timeout=LIVE)
        asked[person] = seen = []
        page.on("request", lambda request, seen=seen: seen.append(request.url))
        pages[person] = page

    end_sessions(user)
    bob_id = bobs.pk
    bobs.delete()

    alice, bob = pages["alice"], pages["bob"]
    expect(alice.locator("#live")).to_have_text("Signed out", timeout=10_000)
    expect(alice.locator("#stale-note")).to_contain_text(
        "Signed out.", use_inner_text=True)
    expect(bob.locator("#live")).to_have_text("Not live", timeout=10_000)
    expect(bob.locator("#stale-note")).to_contain_text(
        "This job is no longer here.", use_inner_text=True)
    for page, job in ((alice, alices.pk), (bob, bob_id)):
        # The page is still the job's, with no sign-in form or 404 page inside it.
        expect(page.locator("#job-detail")).to_have_attribute("data-job", str(job))
        expect(page.locator("#id_login")).to_have_count(0)
        expect(page.get_by_role("heading", name="Nothing here")).to_have_count(0)
        expect(page.locator("#job-file")).to_be_visible()
        # Its socket, still open when the panel heard, is closed by the page.
        page.wait_for_function("window.__sockets.length > 0 && "
                               "window.__sockets.every((s) => s.readyState === 3)",
                               timeout=5_000)
    # Nothing more is asked: longer than two rounds of the slowest poll (3 s).
    before = {person: len(seen) for person, seen in asked.items()}
    alice.wait_for_timeout(6_500)
    assert {person: len(seen) for person, seen in asked.items()} == before, asked
    for page in pages.values():
        page.context.close()


def test_notifications_follow_the_permission_and_choices_without_a_reload(
        farm, daphne, chromium, user, settings):
    from playwright.sync_api import expect

    from jobs import lifecycle

    set_password(user, settings)
    base = daphne.base
    # The browser grants the permission when asked; until then the page sees "default",
    # as a browser that was never asked does. Notifications and the sockets that open
    # are noted for the test.
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, timezone_id=ZONE,
                                   permissions=["notifications"])
    context.add_init_script("""(() => {
        const Real = window.Notification; window.__notes = []; let asked = "default";
        window.Notification = function (title, options) {
            window.__notes.push(title); return new Real(title, options); };
        Object.defineProperty(window.Notification, "permission", { get: () => asked });
        window.Notification.requestPermission = () =>
            Real.requestPermission().then(answer => (asked = answer));
        const Socket = window.WebSocket; window.__open = [];
        window.WebSocket = function (url) {
            const socket = new Socket(url);
            socket.addEventListener("open", () => window.__open.push(url));
            return socket; };
    })();""")
    page = context.new_page()
    sign_in(page, base, "alice", next_url="/profile")  # nothing chosen for the browser yet
    page.click("#allow-notifications")
    expect(page.locator("#browser-permission-state")).to_contain_text(
        "shows your notifications")
    # Allowed: this page follows at once, not from the next page on.
    page.wait_for_function("window.__open.some(url => url.endsWith('/ws/notify'))",
                           timeout=LIVE)

    def render(name, to):
        job = Job.objects.create(user=user, status=Status.QUEUED, name=name)
        lifecycle.transition(job.pk, Status.RENDERING, allowed_from=Status.QUEUED)
        lifecycle.transition(job.pk, to, allowed_from=Status.RENDERING)

    def choose(*events):
        other = context.new_page()
        other.goto(f"{base}/profile")
        for event in ("started", "completed", "failed", "preview"):
            other.set_checked(f"#browser-{event}", event in events)
        other.click("#notify-form button[type=submit]")
        expect(other.locator(".messages")).to_contain_text("Notification settings saved")
        other.close()

    # Chosen in another tab: the open page announces it without a reload.
    choose("completed")
    render("first", Status.COMPLETED)
    page.wait_for_function("window.__notes.length > 0", timeout=LIVE)
    assert page.evaluate("window.__notes") == ["Render completed: first"]

    # Switched to failures only in another tab: the next completion is not announced.
    choose("failed")
    render("second", Status.COMPLETED)
    render("third", Status.FAILED)
    page.wait_for_function("window.__notes.length > 1", timeout=LIVE)
    assert page.evaluate("window.__notes") == ["Render completed: first", "Render failed: third"]
    assert page.evaluate("window.__open.filter(url => url.endsWith('/ws/notify')).length") == 1
    context.close()


def test_a_sequence_shows_its_newest_frame_and_a_cancellation_shows_once(
        farm, daphne, chromium, user, api_token, settings):
    from playwright.sync_api import expect

    set_password(user, settings)
    farm.configure(LIVE_FRAME_SECONDS=0.5)
    base = daphne.base
    context, page = sign_in_at(chromium, base, 1440, "alice")
    farm.start_worker()
    job = submit(base, api_token, farm.dropbox, "cancel-me.aep", frames=3000,
                 frame_seconds=0.03, width=160, height=90, template={"outputExt": "png"})
    page.goto(f"{base}/jobs/{job}")
    expect(page.locator("#job-status .status")).to_have_text("RENDERING", timeout=LIVE)
    expect(page.locator("#live")).to_have_text("Live", timeout=LIVE)
    # The image sequence's newest frame, refreshed while it renders, in the same page.
    frame = page.locator("#live-frame img")
    expect(frame).to_be_visible(timeout=LIVE)
    first = frame.get_attribute("src")
    page.wait_for_function(f"""() => {{ const img = document.querySelector('#live-frame img');
        return img && img.getAttribute('src') !== {first!r} && img.complete
            && img.naturalWidth > 0; }}""", timeout=LIVE)
    page.click("#cancel-button")
    expect(page.locator("#job-status .status")).to_have_text("CANCELLED", timeout=LIVE)
    expect(page.locator("#live")).to_have_text("Live", timeout=LIVE)
    # Whatever arrives after the cancel (the render node's last words, the page's own
    # reconnect), the cancellation is on the timeline once.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        items = page.locator("#timeline li").evaluate_all(
            "els => els.map(el => el.id + ' ' + el.textContent.replace(/\\s+/g, ' ').trim())")
        cancels = [i for i in items if "→ CANCELLED" in i]
        assert len(cancels) == 1, cancels
        time.sleep(0.25)
    shoot_at_widths(page, "job-cancelled")
    context.close()
