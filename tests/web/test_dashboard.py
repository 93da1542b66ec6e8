"""The dashboard as a user sees it: the job list, a job's page, and acting on jobs."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import time
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobEvent, JobLog, Status

pytestmark = pytest.mark.django_db


_counter = iter(range(1_000_000))


def make_job(user=None, status=Status.QUEUED, minutes_ago=None, **fields):
    n = next(_counter)
    created = timezone.now() - dt.timedelta(minutes=minutes_ago if minutes_ago is not None
                                            else 1000 - n % 1000)
    fields.setdefault("project_path", f"D:\\Dropbox\\projects\\spot_{n}.aep")
    fields.setdefault("client", "bravo")
    fields.setdefault("mac_username", user.username if user else "")
    return Job.objects.create(user=user, status=status, created_at=created, **fields)


def job_ids_on(page) -> list[str]:
    return re.findall(r'<tr id="job-([0-9a-f-]{36})"', page.content.decode())


def text(response) -> str:
    """The visible text of a page, roughly: tags removed, whitespace collapsed."""
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", response.content.decode(),
                  flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


# --- Signing in -------------------------------------------------------------------------------


def test_the_dashboard_asks_strangers_to_sign_in(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_sign_in_page_offers_google_and_no_password_form(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {"google": {
        "APPS": [{"client_id": "cid", "secret": "s", "key": ""}]}}
    settings.ALLOWED_EMAIL_DOMAIN = "studio.test"

    page = client.get("/accounts/login/")

    assert page.status_code == 200
    assert "Sign in with Google" in text(page)
    assert "Use your @studio.test account" in text(page)
    # The tests run without ALLOW_PASSWORD_LOGIN: no password sign-in at all.
    assert 'name="password"' not in page.content.decode()


def test_without_allow_password_login_a_password_cannot_sign_in(client, user):
    client.post("/accounts/login/", {"login": "alice", "password": "pw"})

    assert client.get("/").status_code == 302


def test_pages_load_nothing_from_other_sites(browser_user):
    page = browser_user.get("/").content.decode()

    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("htmx" in s for s in sources)
    assert all(not s.startswith(("http:", "https:", "//")) for s in sources), sources


# --- The list ---------------------------------------------------------------------------------


def test_a_user_sees_their_own_jobs_and_not_others(browser_user, user, other_user):
    mine = make_job(user, name="Alice promo")
    theirs = make_job(other_user, name="Bob promo")

    page = browser_user.get("/")

    assert job_ids_on(page) == [str(mine.pk)]
    assert "Alice promo" in text(page)
    assert "Bob promo" not in text(page)
    assert "Your jobs" in text(page)
    assert browser_user.get(f"/jobs/{theirs.pk}").status_code == 404


def test_an_admin_sees_everyones_jobs_with_their_owner(browser_admin, user, other_user):
    make_job(user, name="Alice promo", minutes_ago=2)
    make_job(other_user, name="Bob promo", minutes_ago=1)

    page = browser_admin.get("/")

    assert "All jobs" in text(page)
    assert len(job_ids_on(page)) == 2
    assert "Alice Artist" in text(page) and "Bob Builder" in text(page)
    assert 'value="boost"' in page.content.decode()


def test_rows_show_colour_coded_status_and_progress(browser_user, user):
    rendering = make_job(user, status=Status.RENDERING, progress=42.4, phase="rendering",
                         frames_done=42, frames_total=100, eta_seconds=75,
                         started_at=timezone.now() - dt.timedelta(seconds=130))
    make_job(user, status=Status.FAILED, error="aerender: missing footage")

    page = browser_user.get("/").content.decode()

    assert 'class="status status-rendering"' in page
    assert 'class="status status-failed"' in page
    assert 'aria-valuenow="42"' in page
    assert "42%" in page and "Rendering · " in page and " · ETA 1 min 15 s" in page
    # How long it has been rendering, ticking in the page from when it started.
    # (130 s before the request; a busy machine may take a second or more to answer.)
    assert 'class="elapsed" data-since="' in page and re.search(r">2 min 1\d s<", page)
    assert "aerender: missing footage" in page
    assert "42/100 frames" in browser_user.get(f"/jobs/{rendering.pk}").content.decode()


def test_an_empty_list_says_how_jobs_get_here(browser_user):
    page = text(browser_user.get("/"))

    assert "No renders yet" in page
    html = browser_user.get("/").content.decode()
    # Where jobs come from, with the way there: the submit form, the plugin, the API.
    assert 'href="/jobs/new">submit it here</a>' in html
    assert 'href="/api/docs">API</a>' in html and "bravo" not in page


def test_users_without_a_mac_username_are_asked_for_one(browser_admin, browser_user):
    # Alice has one (the persona); the admin has none.
    assert "Add your macOS username" not in text(browser_user.get("/"))
    assert "Add your macOS username" in text(browser_admin.get("/"))


def test_filter_by_status_group(browser_user, user):
    rendering = make_job(user, status=Status.RENDERING)
    queued = make_job(user, status=Status.QUEUED)
    done = make_job(user, status=Status.COMPLETED)
    failed = make_job(user, status=Status.FAILED)

    assert set(job_ids_on(browser_user.get("/?status=active"))) == {str(rendering.pk),
                                                                     str(queued.pk)}
    assert job_ids_on(browser_user.get("/?status=completed")) == [str(done.pk)]
    assert job_ids_on(browser_user.get("/?status=failed")) == [str(failed.pk)]
    assert len(job_ids_on(browser_user.get("/?status=bogus"))) == 4


def test_filter_by_text_in_path_or_name(browser_user, user):
    by_path = make_job(user, project_path="D:\\Dropbox\\Clients\\Acme\\launch.aep")
    by_name = make_job(user, name="ACME teaser")
    make_job(user, project_path="D:\\Dropbox\\Other\\x.aep")

    found = browser_user.get("/?q=acme")

    assert set(job_ids_on(found)) == {str(by_path.pk), str(by_name.pk)}
    assert "match these filters" in text(found)


def test_filter_by_date_range(browser_user, user):
    today = make_job(user, minutes_ago=1)
    old = make_job(user, minutes_ago=60 * 24 * 10)
    start = (timezone.localdate() - dt.timedelta(days=11)).isoformat()
    end = (timezone.localdate() - dt.timedelta(days=9)).isoformat()

    assert job_ids_on(browser_user.get(f"/?from={start}&to={end}")) == [str(old.pk)]
    assert job_ids_on(browser_user.get(f"/?from={timezone.localdate()}")) == [str(today.pk)]
    # Nonsense dates are ignored rather than failing.
    assert browser_user.get("/?from=yesterday&to=2024-13-45").status_code == 200


def test_the_ends_of_the_calendar_are_open_ranges(browser_user, user, settings):
    job = make_job(user, minutes_ago=1)
    # The day after 9999-12-31 does not exist: no end.
    assert job_ids_on(browser_user.get("/?to=9999-12-31")) == [str(job.pk)]
    assert job_ids_on(browser_user.get("/?from=0001-01-01&to=9999-12-31")) == [str(job.pk)]
    assert job_ids_on(browser_user.get("/?from=9999-12-31")) == []
    assert job_ids_on(browser_user.get("/?to=0001-01-01")) == []
    # Midnight of 0001-01-01 at UTC+14 is before the year 1 in UTC: ignored.
    settings.TIME_ZONE = "Pacific/Kiritimati"
    assert job_ids_on(browser_user.get("/?from=0001-01-01")) == [str(job.pk)]
    settings.TIME_ZONE = "America/Adak"  # UTC-10: the end of 9999-12-31 is past 9999 in UTC
    assert job_ids_on(browser_user.get("/?to=9999-12-30")) == [str(job.pk)]


@pytest.mark.parametrize("value", ["²", "٣", "9" * 20, "18446744073709551616", "-1", "0",
                                   "1e3", "1\x00", "0x10"])
def test_a_user_filter_that_names_no_possible_user_is_ignored(browser_admin, user, value):
    job = make_job(user)

    page = browser_admin.get("/", {"user": value})

    assert page.status_code == 200
    assert job_ids_on(page) == [str(job.pk)]


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "x" * 5000])
def test_search_text_with_control_characters_or_any_length(browser_user, user, value):
    assert browser_user.get("/", {"q": value}).status_code == 200


@pytest.mark.parametrize("values", [
    ["0001-01-01T00:00:00+05:00", "00000000-0000-0000-0000-000000000000"],
    ["9999-12-31T23:59:59-05:00", "00000000-0000-0000-0000-000000000000"],
    ["2025-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"],
    [10**30, "2025-01-01T00:00:00+00:00", "00000000-0000-0000-0000-000000000000"],
])
def test_forged_cursors_mean_the_first_page(browser_user, user, values):
    job = make_job(user)
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    sort = "priority" if len(values) == 3 else "newest"

    page = browser_user.get("/", {"after": cursor, "sort": sort})

    assert page.status_code == 200
    assert job_ids_on(page) == [str(job.pk)]


def test_admins_filter_by_user_and_users_cannot(browser_admin, browser_user, user, other_user):
    alice = make_job(user)
    bob = make_job(other_user)

    assert job_ids_on(browser_admin.get(f"/?user={other_user.pk}")) == [str(bob.pk)]
    assert job_ids_on(browser_user.get(f"/?user={other_user.pk}")) == [str(alice.pk)]


def test_sorting(browser_user, user):
    old = make_job(user, minutes_ago=30, status=Status.COMPLETED)
    new = make_job(user, minutes_ago=1, status=Status.QUEUED)
    urgent = make_job(user, minutes_ago=20, priority=50, status=Status.RENDERING)

    assert job_ids_on(browser_user.get("/")) == [str(new.pk), str(urgent.pk), str(old.pk)]
    assert job_ids_on(browser_user.get("/?sort=oldest")) == [str(old.pk), str(urgent.pk),
                                                             str(new.pk)]
    assert job_ids_on(browser_user.get("/?sort=priority"))[0] == str(urgent.pk)
    assert job_ids_on(browser_user.get("/?sort=status")) == [str(urgent.pk), str(new.pk),
                                                             str(old.pk)]


@pytest.mark.parametrize("sort", ["newest", "oldest", "priority", "status"])
def test_paging_visits_every_job_once(browser_user, user, sort):
    # Many jobs share a creation time and a priority: the keyset must still be exact.
    moment = timezone.now() - dt.timedelta(hours=1)
    statuses = [Status.COMPLETED, Status.FAILED, Status.QUEUED]
    Job.objects.bulk_create([
        Job(user=user, status=statuses[i % 3], priority=i % 2, project_path=f"p{i}.aep",
            created_at=moment + dt.timedelta(seconds=i // 7))
        for i in range(123)])

    seen, url, pages = [], f"/?sort={sort}", 0
    while url:
        page = browser_user.get(url)
        seen += job_ids_on(page)
        pages += 1
        found = re.search(r'href="(\?[^"]*after=[^"]+)" rel="next"', page.content.decode())
        url = "/" + found.group(1).replace("&amp;", "&") if found else None

    assert pages == 3
    assert len(seen) == len(set(seen)) == 123


def test_the_count_is_capped_instead_of_counting_the_whole_table(browser_user, user,
                                                                  monkeypatch):
    from jobs.web import filters

    monkeypatch.setattr(filters, "COUNT_CAP", 5)
    Job.objects.bulk_create([Job(user=user, project_path=f"p{i}.aep") for i in range(8)])

    assert "More than 5 jobs" in text(browser_user.get("/"))


def test_a_bad_page_cursor_shows_the_first_page(browser_user, user):
    job = make_job(user)

    assert job_ids_on(browser_user.get("/?after=not-a-cursor")) == [str(job.pk)]


# --- Bulk actions -----------------------------------------------------------------------------


def test_bulk_cancel_and_retry(browser_user, user):
    running = make_job(user, status=Status.RENDERING)
    queued = make_job(user, status=Status.QUEUED)
    failed = make_job(user, status=Status.FAILED, path_key="a")
    cancelled = make_job(user, status=Status.CANCELLED, path_key="b")

    response = browser_user.post("/jobs/bulk", {"action": "cancel",
                                                "job": [running.pk, queued.pk, failed.pk]},
                                 follow=True)

    assert "Cancelled 2 jobs." in text(response)
    assert "Skipped 1" in text(response)
    running.refresh_from_db()
    assert running.status == Status.CANCELLED
    assert JobEvent.objects.filter(job=running, kind="cancelled", actor=user.email).exists()

    response = browser_user.post("/jobs/bulk", {"action": "retry",
                                                "job": [failed.pk, cancelled.pk]}, follow=True)

    assert "Retried 2 jobs." in text(response)
    assert Job.objects.get(pk=failed.pk).status == Status.PENDING
    assert Job.objects.get(pk=cancelled.pk).status == Status.PENDING


def test_bulk_actions_skip_other_peoples_jobs(browser_user, other_user):
    theirs = make_job(other_user, status=Status.QUEUED)

    browser_user.post("/jobs/bulk", {"action": "cancel", "job": [theirs.pk]})

    assert Job.objects.get(pk=theirs.pk).status == Status.QUEUED


def test_only_admins_boost(browser_admin, browser_user, user):
    job = make_job(user, status=Status.QUEUED, priority=0)

    assert browser_user.post("/jobs/bulk", {"action": "boost", "job": [job.pk]}
                             ).status_code == 403
    browser_admin.post("/jobs/bulk", {"action": "boost", "job": [job.pk]})

    assert Job.objects.get(pk=job.pk).priority == 10
    assert JobEvent.objects.filter(job=job, kind="priority").exists()


def test_bulk_without_selection_explains(browser_user):
    response = browser_user.post("/jobs/bulk", {"action": "cancel"}, follow=True)

    assert "Select some jobs first" in text(response)


def test_bulk_returns_to_the_filtered_list_but_never_elsewhere(browser_user, user):
    job = make_job(user, status=Status.QUEUED)

    back = browser_user.post("/jobs/bulk", {"action": "cancel", "job": [job.pk],
                                            "next": "/?status=active"})
    away = browser_user.post("/jobs/bulk", {"action": "cancel", "job": [job.pk],
                                            "next": "https://evil.example/"})

    assert back["Location"] == "/?status=active"
    assert away["Location"] == "/"


def test_forms_need_the_csrf_token(user):
    job = make_job(user, status=Status.QUEUED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    assert client.post(f"/jobs/{job.pk}/cancel").status_code == 403
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


# --- A job's page -----------------------------------------------------------------------------


def test_the_detail_page_shows_the_submission(browser_user, user, dropbox, settings):
    settings.STABILITY_CHECK_SECONDS = 0  # the file was just written
    project = dropbox / "spot.aep"
    project.write_bytes(b"x" * 2048)
    old = time.time() - 600
    os.utime(project, (old, old))
    job = make_job(user, status=Status.QUEUED, project_path="spot.aep", client="bravo",
                   mac_username="alice", submitted_path="/Users/alice/Dropbox/spot.aep",
                   config={"template": {"composition": "Main", "outputExt": "mp4"}})
    lifecycle.record(job.pk, "submitted", actor="api:bravo", to_status=Status.PENDING,
                     message="Submitted by api:bravo")
    lifecycle.record(job.pk, "progress", to_status=Status.RENDERING)

    page = browser_user.get(f"/jobs/{job.pk}")
    body = text(page)

    assert page.status_code == 200
    assert "bravo" in body and "alice" in body and "Alice Artist" in body
    assert "/Users/alice/Dropbox/spot.aep" in body
    # Stored relative to the Dropbox folder, shown where this server finds it.
    assert str(project) in body
    assert "2.0 KB" in body
    assert "Synced and stable" in body
    # The nexrender config, formatted, with a copy button.
    assert '"composition": "Main"' in page.content.decode().replace("&quot;", '"')
    assert 'data-copy="job-config"' in page.content.decode()
    # The timeline lists history but not progress ticks.
    timeline = page.content.decode().split('id="timeline"')[1]
    assert "Submitted by api:bravo" in timeline
    assert timeline.count("<li") == 1
    # Live: the page opens its own websocket.
    assert f'ws-connect="/ws/jobs/{job.pk}"' in page.content.decode()


def test_dropbox_sync_status(browser_user, user, dropbox, settings):
    settings.STABILITY_CHECK_SECONDS = 30
    project = dropbox / "spot.aep"
    job = make_job(user, status=Status.VALIDATING, project_path="spot.aep")

    assert "Missing on this server" in text(browser_user.get(f"/jobs/{job.pk}/file"))

    # Just landed: too recent to call stable.
    project.write_bytes(b"1234")
    assert "Still changing" in text(browser_user.get(f"/jobs/{job.pk}/file"))

    # Unchanged since the page's last look, and older than the window.
    settings.STABILITY_CHECK_SECONDS = 0
    mtime = project.stat().st_mtime
    fragment = browser_user.get(f"/jobs/{job.pk}/file?size=4&mtime={mtime}")
    assert "Synced and stable" in text(fragment)
    # While the job waits for the file, the fragment polls itself.
    assert 'hx-trigger="every 3s"' in fragment.content.decode()

    # Its size moved since the last look.
    moved = browser_user.get(f"/jobs/{job.pk}/file?size=3&mtime={mtime}")
    assert "Still changing" in text(moved)

    # A finished job's file that has gone since is no alarm, and nothing polls.
    project.unlink()
    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    gone = browser_user.get(f"/jobs/{job.pk}/file")
    assert "Not on this server any more" in text(gone)
    assert "hx-trigger" not in gone.content.decode()


def test_a_project_that_became_a_symlink_out_of_dropbox_is_not_read(browser_user, user,
                                                                   dropbox, tmp_path):
    secret = tmp_path / "secret.aep"
    secret.write_bytes(b"x" * 4096)
    (dropbox / "spot.aep").symlink_to(secret)
    job = make_job(user, status=Status.VALIDATING, project_path="spot.aep")

    fragment = text(browser_user.get(f"/jobs/{job.pk}/file"))

    assert "Leads outside the Dropbox folder" in fragment
    assert "4.0 KB" not in fragment


def test_the_log_loads_lazily_and_follows_a_render(browser_user, user):
    job = make_job(user, status=Status.RENDERING)
    JobLog.objects.create(job=job, head="starting aerender\n", tail="PROGRESS: 10 frames\n")

    page = browser_user.get(f"/jobs/{job.pk}").content.decode()
    assert "PROGRESS: 10 frames" not in page  # not in the page itself: fetched after load
    assert f'hx-get="/jobs/{job.pk}/log/tail"' in page

    tail = browser_user.get(f"/jobs/{job.pk}/log/tail")
    assert "starting aerender" in text(tail) and "PROGRESS: 10 frames" in text(tail)
    assert 'hx-trigger="every 2s"' in tail.content.decode()

    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    assert 'hx-trigger="every 2s"' not in browser_user.get(
        f"/jobs/{job.pk}/log/tail").content.decode()


def test_a_long_log_shows_its_end_and_links_the_whole(browser_user, user):
    job = make_job(user, status=Status.FAILED)
    JobLog.objects.create(job=job, head="FIRST LINE\n" + "a" * 30_000, tail="b" * 30_000
                          + "\nLAST LINE\n", omitted_bytes=123)

    tail = text(browser_user.get(f"/jobs/{job.pk}/log/tail"))
    viewer = text(browser_user.get(f"/jobs/{job.pk}/log"))
    full = browser_user.get(f"/jobs/{job.pk}/log.txt")

    assert "LAST LINE" in tail and "FIRST LINE" not in tail
    assert "Open the full log" in tail
    assert "FIRST LINE" in viewer and "LAST LINE" in viewer
    assert full["Content-Type"].startswith("text/plain")
    assert full["Content-Disposition"].startswith("attachment;")
    assert "FIRST LINE" in full.content.decode() and "123 bytes of log omitted" in \
        full.content.decode()


def test_a_completed_job_offers_its_download(browser_user, user, settings):
    settings.RENDER_OUTPUT_DIR = "D:\\Dropbox\\renders"
    job = make_job(user, status=Status.COMPLETED, output_path="spot.mp4",
                   output_size=5_000_000, started_at=timezone.now() - dt.timedelta(minutes=2),
                   finished_at=timezone.now())

    page = browser_user.get(f"/jobs/{job.pk}")

    assert "D:\\Dropbox\\renders\\spot.mp4" in text(page)
    assert "4.8 MB" in text(page)
    assert f'href="/api/jobs/{job.pk}/download"' in page.content.decode()
    assert "2 min 00 s" in text(page)


@pytest.mark.parametrize("status, actions", [
    (Status.RENDERING, {"Cancel job"}),
    (Status.QUEUED, {"Cancel job"}),
    (Status.FAILED, {"Retry"}),
    (Status.COMPLETED, {"Download"}),
])
def test_the_owner_sees_the_actions_that_fit(browser_user, user, status, actions):
    job = make_job(user, status=status, output_path="x.mp4" if status == Status.COMPLETED
                   else "")
    body = text(browser_user.get(f"/jobs/{job.pk}/actions"))

    for label in {"Cancel job", "Retry", "Download", "Boost priority"}:
        assert (label in body) == (label in actions), label


def test_admins_also_see_boost_and_priority(browser_admin, user):
    job = make_job(user, status=Status.QUEUED)

    body = text(browser_admin.get(f"/jobs/{job.pk}/actions"))

    assert "Boost priority" in body and "Set priority" in body


def test_cancel_from_the_detail_page(browser_user, user):
    job = make_job(user, status=Status.RENDERING)

    response = browser_user.post(f"/jobs/{job.pk}/cancel", follow=True)

    assert "Cancelled:" in text(response)
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


def test_cancelling_a_finished_job_says_why_not(browser_user, user):
    job = make_job(user, status=Status.COMPLETED)

    response = browser_user.post(f"/jobs/{job.pk}/cancel", follow=True)

    assert "Could not cancel" in text(response)
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED


def test_retry_refuses_when_a_newer_job_of_the_project_runs(browser_user, user):
    old = make_job(user, status=Status.FAILED, path_key="d:/dropbox/spot.aep")
    make_job(user, status=Status.RENDERING, path_key="d:/dropbox/spot.aep")

    response = browser_user.post(f"/jobs/{old.pk}/retry", follow=True)

    assert "newer job for this project is still in progress" in text(response)


def test_set_priority_is_for_admins(browser_admin, browser_user, user):
    job = make_job(user, status=Status.QUEUED)

    assert browser_user.post(f"/jobs/{job.pk}/priority", {"priority": 99}).status_code == 403
    browser_admin.post(f"/jobs/{job.pk}/priority", {"priority": 99})
    assert Job.objects.get(pk=job.pk).priority == 99
    bad = browser_admin.post(f"/jobs/{job.pk}/priority", {"priority": "lots"}, follow=True)
    assert "Priority must be a whole number" in text(bad)


def test_unknown_actions_and_jobs_are_not_found(browser_user, user):
    job = make_job(user)

    assert browser_user.post(f"/jobs/{job.pk}/explode").status_code == 404
    assert browser_user.get(f"/jobs/{uuid.uuid4()}").status_code == 404


def test_the_config_is_valid_json_on_the_page(browser_user, user):
    config = {"template": {"composition": "Main <b>", "outputExt": "mov"}, "assets": []}
    job = make_job(user, config=config)

    page = browser_user.get(f"/jobs/{job.pk}").content.decode()
    shown = re.search(r'<pre class="code" id="job-config">(.*?)</pre>', page, re.S).group(1)
    import html

    assert json.loads(html.unescape(shown)) == config
