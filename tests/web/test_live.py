"""Live updates: the outbox bridge and the websockets of the job list and job pages.

The sockets are driven through the real ASGI application (origin check,
session cookie, routing) with channels' WebsocketCommunicator; events are
written the way workers write them, through jobs.lifecycle.
"""

from __future__ import annotations

import asyncio
import gc
import re
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from jobs import lifecycle
from jobs.models import Job, JobEvent, Status
from jobs.web.live import Outbox, bridge
from rendermanager.routing import application
from tests.helpers.common import end_sessions

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 5  # seconds for an update to arrive (SQLite polls every 0.5 s)
QUIET = 1.5  # seconds of silence that show nothing was sent


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def socket(path: str, user=None, origin: str = "http://localhost") -> WebsocketCommunicator:
    headers = [(b"origin", origin.encode())]
    if user is not None:
        headers.append((b"cookie", f"sessionid={session_cookie(user)}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def refusal(communicator: WebsocketCommunicator) -> int:
    """The close code of a socket the server refuses. It is accepted, then closed with
    its reason before anything is sent: a browser sees that code (a socket refused at
    the handshake reaches it as an HTTP 403, reported as a lost connection)."""
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_output(timeout=WAIT)
    assert message["type"] == "websocket.close", message
    return message["code"]


def run(scenario):
    """Run one async scenario on a fresh event loop (the bridge follows it there)."""
    async def wrapped():
        try:
            await scenario()
        finally:
            await bridge.stop()

    asyncio.run(wrapped())
    # Django keeps connections per async context; those of the finished tasks are
    # closed when collected, which must happen before the test database is dropped.
    gc.collect()


def make_job(user, status=Status.QUEUED, **fields):
    return Job.objects.create(user=user, status=status, project_path="D:\\Dropbox\\a.aep",
                              **fields)


async def progress(job, percent: float):
    """What a render worker does about once a second while it renders."""
    def write():
        Job.objects.filter(pk=job.pk).update(progress=percent, phase="rendering")
        lifecycle.record(job.pk, "progress", to_status=Status.RENDERING,
                         message=f"{percent:.0f}%")
    await database_sync_to_async(write)()


@database_sync_to_async
def submit_new(user) -> Job:
    """A job submitted over the API, as a client's would be."""
    return lifecycle.submit(actor="api:bravo", user=user, client="bravo",
                            project_path="D:\\Dropbox\\new.aep",
                            path_key="d:\\dropbox\\new.aep").job


async def receive_until(communicator, needle: str, timeout: float = WAIT) -> str:
    """Messages until one contains ``needle``; fails on a timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await communicator.receive_from(timeout=max(0.1, deadline - loop.time()))
        if needle in message:
            return message


# --- Who may connect -------------------------------------------------------------------------


def test_anonymous_connections_are_closed():
    async def scenario():
        communicator = socket("/ws/jobs")
        assert await refusal(communicator) == 4401

    run(scenario)


def test_other_sites_cannot_open_a_socket_with_the_users_cookie(user):
    async def scenario():
        communicator = socket("/ws/jobs", user, origin="https://evil.example")
        connected, _ = await communicator.connect()
        assert not connected

    run(scenario)


def test_a_user_cannot_follow_another_users_job(user, other_user):
    bobs = make_job(other_user)

    async def scenario():
        communicator = socket(f"/ws/jobs/{bobs.pk}", user)
        assert await refusal(communicator) == 4404

    run(scenario)


@pytest.fixture
def leave_checked_often(monkeypatch):
    from jobs.web import consumers

    monkeypatch.setattr(consumers, "LEAVE_CHECK_SECONDS", 0.1)


@pytest.mark.parametrize("what, path, then", [
    ("signed out elsewhere", "/ws/jobs", "signed out"),
    ("account switched off", "/ws/jobs", "signed out"),
    ("password changed elsewhere", "/ws/jobs", "signed out"),
    ("session renewed on this page", "/ws/jobs", "back"),
    ("made an admin", "/ws/jobs", "back"),
    ("signed out elsewhere", "/ws/jobs/{job}", "signed out"),
    ("job deleted", "/ws/jobs/{job}", "gone"),
    ("job given to another", "/ws/jobs/{job}", "gone"),
    ("batch deleted", "/ws/batches/{batch}", "gone"),
])
def test_an_open_socket_is_closed_once_its_leave_ends(user, other_user, leave_checked_often,
                                                       what, path, then):
    # Let in at its handshake, a socket used to stay open for as long as the page did,
    # receiving the rows of someone signed out or switched off.
    from django.contrib.sessions.models import Session

    from jobs.models import Batch

    job = make_job(user)
    batch = Batch.objects.create(user=user, project_path="D:\\Dropbox\\a.aep", path_key="k")
    cookie = {"now": session_cookie(user)}

    def renew():
        # What a password changed on this very page does: a new session, the old one gone.
        old, cookie["now"] = cookie["now"], session_cookie(user)
        Session.objects.filter(pk=old).delete()

    change = {
        "signed out elsewhere": lambda: end_sessions(user),
        "account switched off": lambda: type(user).objects.filter(pk=user.pk).update(
            is_active=False),
        "password changed elsewhere": lambda: (user.set_password("changed"), user.save()),
        "session renewed on this page": renew,
        "made an admin": lambda: type(user).objects.filter(pk=user.pk).update(role="ADMIN"),
        "job deleted": lambda: Job.objects.filter(pk=job.pk).delete(),
        "job given to another": lambda: Job.objects.filter(pk=job.pk).update(
            user=other_user),
        "batch deleted": lambda: Batch.objects.filter(pk=batch.pk).delete(),
    }[what]
    where = path.format(job=job.pk, batch=batch.pk)

    def page_socket():
        return WebsocketCommunicator(application, where, headers=[
            (b"origin", b"http://localhost"), (b"cookie", f"sessionid={cookie['now']}".encode())])

    async def closed(communicator) -> dict:
        message = await communicator.receive_output(timeout=WAIT)
        while message["type"] == "websocket.send":
            message = await communicator.receive_output(timeout=WAIT)
        return message

    async def scenario():
        communicator = page_socket()
        connected, _ = await communicator.connect()
        assert connected
        # Checked several times over while nothing changed: it stays open (what it
        # sends meanwhile, the queue estimate, is no matter here).
        loop = asyncio.get_running_loop()
        calm = loop.time() + 0.5
        while (left := calm - loop.time()) > 0:
            if not await communicator.receive_nothing(timeout=left):
                message = await communicator.receive_output()
                assert message["type"] == "websocket.send", message
        await database_sync_to_async(change)()
        if then == "gone":
            assert await closed(communicator) == {"type": "websocket.close", "code": 4404}
            return
        # A session that no longer holds, or a role that changed: the page tries again
        # at once, and the handshake, with the cookie the browser has now, decides.
        assert await closed(communicator) == {"type": "websocket.close", "code": 1012}
        again = page_socket()
        if then == "signed out":
            assert await refusal(again) == 4401
        else:
            connected, _ = await again.connect()
            assert connected
            assert await again.receive_nothing(timeout=0.3)
            await again.disconnect()

    run(scenario)


# --- The job list ------------------------------------------------------------------------------


def test_a_user_receives_updates_of_their_jobs_and_never_of_others(user, other_user):
    mine = make_job(user, status=Status.RENDERING)
    theirs = make_job(other_user, status=Status.RENDERING)

    async def scenario():
        communicator = socket("/ws/jobs", user)
        assert (await communicator.connect())[0]

        await progress(theirs, 50)
        await progress(mine, 42)

        message = await communicator.receive_from(timeout=WAIT)
        # The first thing that arrives is Alice's row, redrawn: Bob's never comes.
        assert f'id="job-{mine.pk}"' in message
        assert 'aria-valuenow="42"' in message
        assert str(theirs.pk) not in message
        await progress(theirs, 60)
        assert await communicator.receive_nothing(timeout=QUIET)
        await communicator.disconnect()

    run(scenario)


def test_a_status_change_redraws_the_row(user):
    job = make_job(user, status=Status.QUEUED)

    async def scenario():
        communicator = socket("/ws/jobs", user)
        assert (await communicator.connect())[0]

        await database_sync_to_async(lifecycle.cancel)(job.pk, actor="alice@studio.test")

        message = await receive_until(communicator, f'id="job-{job.pk}"')
        assert 'class="status status-cancelled"' in message
        await communicator.disconnect()

    run(scenario)


def test_an_admin_receives_everyones_updates(admin, user, other_user):
    alices = make_job(user, status=Status.RENDERING)
    bobs = make_job(other_user, status=Status.RENDERING)

    async def scenario():
        communicator = socket("/ws/jobs", admin)
        assert (await communicator.connect())[0]

        await progress(alices, 10)
        await progress(bobs, 20)

        seen = ""
        while str(alices.pk) not in seen or str(bobs.pk) not in seen:
            seen += await communicator.receive_from(timeout=WAIT)
        # Admin rows name the owner.
        assert "Alice Artist" in seen and "Bob Builder" in seen
        await communicator.disconnect()

    run(scenario)


def test_a_new_job_appears_on_top_of_a_list_it_belongs_to(user, other_user):
    async def scenario():
        newest = socket("/ws/jobs", user)
        failed_only = socket("/ws/jobs?status=failed", user)
        assert (await newest.connect())[0]
        assert (await failed_only.connect())[0]
        job = await submit_new(user)

        message = await receive_until(newest, str(job.pk))
        assert 'hx-swap-oob="afterbegin:#job-rows"' in message
        # Nothing else: the page's empty state hides itself once the table has a row
        # (a swap of an element the page may not have would be an htmx error).
        assert "jobs-empty" not in message
        # A list of failed jobs has no place for a new PENDING one; its tab counts change.
        counts = await failed_only.receive_from(timeout=WAIT)
        assert str(job.pk) not in counts and 'id="status-tabs"' in counts
        assert 'data-tab="active"' in counts and '<span class="count" data-count="1">1' in counts
        assert await failed_only.receive_nothing(timeout=QUIET)
        await newest.disconnect()
        await failed_only.disconnect()

    run(scenario)


def test_an_older_page_of_the_list_gets_no_new_jobs_on_top(user):
    """A new job goes on top of the first page only: the page tells its socket which
    page it is (its ws-connect URL carries the page cursor)."""
    from html import unescape

    Job.objects.bulk_create([Job(user=user, project_path=f"D:\\Dropbox\\p{i}.aep")
                             for i in range(51)])
    client = Client()
    client.force_login(user)
    first = client.get("/").content.decode()
    older = re.search(r'href="(\?[^"]*after=[^"]+)" rel="next"', first).group(1)
    page = client.get("/" + unescape(older)).content.decode()
    ws_url = unescape(re.search(r'ws-connect="([^"]+)"', page).group(1))
    assert "after=" in ws_url

    async def scenario():
        top = socket("/ws/jobs", user)
        second = socket(ws_url, user)
        assert (await top.connect())[0]
        assert (await second.connect())[0]
        job = await submit_new(user)
        await receive_until(top, str(job.pk))
        # Not on top of page 2, and no tab counts (an older page shows none); its rows'
        # queue ETAs may move, as the queue did.
        heard = ""
        while not await second.receive_nothing(timeout=QUIET):
            heard += await second.receive_from(timeout=WAIT)
        assert str(job.pk) not in heard
        assert 'id="status-tabs"' not in heard and 'id="job-count"' not in heard
        await top.disconnect()
        await second.disconnect()

    run(scenario)


def test_a_list_socket_with_impossible_filters_still_places_new_jobs(admin, user):
    """The list socket parses the page's query string (jobs.web.filters): values that
    would have failed in the database are ignored there too."""
    async def scenario():
        sockets = [socket(path, admin) for path in (
            "/ws/jobs?user=%C2%B2", "/ws/jobs?user=" + "9" * 20, "/ws/jobs?to=9999-12-31",
            "/ws/jobs?from=0001-01-01&to=9999-12-31&q=%00")]
        for communicator in sockets:
            assert (await communicator.connect())[0]

        def submit():
            return lifecycle.submit(actor="api:bravo", user=user, client="bravo",
                                    project_path="new.aep", path_key="new.aep").job
        job = await database_sync_to_async(submit)()

        for communicator in sockets:
            message = await receive_until(communicator, str(job.pk))
            assert 'hx-swap-oob="afterbegin:#job-rows"' in message
            await communicator.disconnect()

    run(scenario)


# --- A job's page ----------------------------------------------------------------------------


def test_the_detail_page_receives_progress_and_the_timeline(user):
    job = make_job(user, status=Status.QUEUED)

    async def scenario():
        communicator = socket(f"/ws/jobs/{job.pk}", user)
        assert (await communicator.connect())[0]

        def start():
            Job.objects.filter(pk=job.pk).update(frames_total=100)
            lifecycle.transition(job.pk, Status.RENDERING, allowed_from=Status.QUEUED,
                                 actor="node:a", message="Rendering on a")
        await database_sync_to_async(start)()
        started = await receive_until(communicator, 'id="job-status"')
        assert "RENDERING" in started
        # A status change appends to the timeline and makes the actions and the log
        # fetch themselves again (with the viewer's own session).
        assert 'hx-swap-oob="beforeend:#timeline"' in started
        assert "QUEUED → RENDERING" in started
        assert re.search(r'id="job-actions"[^>]*hx-trigger="load"', started)
        assert re.search(r'id="job-log"[^>]*hx-trigger="load"', started)

        await progress(job, 37)
        ticked = await receive_until(communicator, 'id="job-progress"')
        assert 'aria-valuenow="37"' in ticked
        # Progress ticks are not history.
        assert "#timeline" not in ticked
        await communicator.disconnect()

    run(scenario)


def test_a_queue_move_reaches_the_list_when_a_slow_forecast_is_rebuilt(user, monkeypatch):
    """On a busy farm the forecast is rebuilt in the background (jobs.forecast): the
    move is pushed when that rebuild is in, not a periodic push later."""
    from jobs import forecast
    from jobs.models import RenderNode
    from jobs.web.live import EstimatePush

    build = forecast.build

    def slow_build(*args, **kwargs):
        time.sleep(0.3)  # a long queue: the move's own push finds the rebuild not done
        return build(*args, **kwargs)

    monkeypatch.setattr(forecast, "build", slow_build)
    monkeypatch.setattr(forecast, "SYNC_BUILD_SECONDS", 0.1)
    monkeypatch.setattr(EstimatePush, "REFRESH_SECONDS", 3600.0)  # no periodic push
    node = RenderNode.objects.create(name="render-01")
    first = make_job(user, frames_total=10)
    second = make_job(user, frames_total=10)
    assert forecast.current().get(second.pk).position == 2  # as the page was drawn

    async def scenario():
        communicator = socket("/ws/jobs", user)
        assert (await communicator.connect())[0]
        claim = await database_sync_to_async(lifecycle.claim_next)(node)
        assert claim.pk == first.pk
        place = re.compile(rf'id="eta-{second.pk}"[^>]*>#1 in queue')
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not place.search(await communicator.receive_from(
                timeout=max(0.1, deadline - loop.time()))):
            pass
        await communicator.disconnect()

    run(scenario)


def test_the_detail_socket_ignores_other_jobs(user):
    watched = make_job(user, status=Status.RENDERING)
    other = make_job(user, status=Status.RENDERING)

    async def scenario():
        communicator = socket(f"/ws/jobs/{watched.pk}", user)
        assert (await communicator.connect())[0]
        await progress(other, 30)
        assert await communicator.receive_nothing(timeout=QUIET)
        await communicator.disconnect()

    run(scenario)


def test_a_burst_larger_than_a_batch_is_delivered_at_once(admin, user, monkeypatch):
    from jobs.web import live

    monkeypatch.setattr(live, "BATCH", 2)
    jobs = [make_job(user, status=Status.RENDERING) for _ in range(5)]

    async def scenario():
        communicator = socket("/ws/jobs", admin)
        assert (await communicator.connect())[0]
        for job in jobs:
            await progress(job, 50)
        seen = ""
        while not all(str(job.pk) in seen for job in jobs):
            seen += await communicator.receive_from(timeout=WAIT)
        await communicator.disconnect()

    run(scenario)


def test_without_listen_the_bridge_polls(user, monkeypatch):
    """LISTEN may be impossible (a pooler, a refused connection): pages stay live."""
    from jobs.web import live

    monkeypatch.setattr(live, "_postgres_conninfo",
                        lambda: "host=127.0.0.1 port=1 dbname=nothing connect_timeout=1")
    job = make_job(user, status=Status.RENDERING)

    async def scenario():
        communicator = socket("/ws/jobs", user)
        assert (await communicator.connect())[0]
        assert not bridge.listening
        await progress(job, 12)
        await receive_until(communicator, 'aria-valuenow="12"')
        await communicator.disconnect()

    run(scenario)


# --- The outbox --------------------------------------------------------------------------------


def test_the_outbox_delivers_a_late_event_once(user):
    """An event whose id is below one already read (a transaction that committed
    late, on PostgreSQL) is still delivered, exactly once."""
    job = make_job(user)
    first = lifecycle.record(job.pk, "note")
    late = lifecycle.record(job.pk, "note", message="late")
    last = lifecycle.record(job.pk, "note")
    late_id = late.pk
    JobEvent.objects.filter(pk=late_id).delete()  # "not committed yet"
    outbox = Outbox(last_seen=first.pk - 1)

    assert [e.pk for e in outbox.read()] == [first.pk, last.pk]
    assert late_id in outbox.gaps

    JobEvent.objects.create(pk=late_id, job=job, kind="note", message="late")  # "committed"
    assert [e.pk for e in outbox.read()] == [late_id]
    assert outbox.read() == []
    assert not outbox.gaps


@pytest.mark.postgres
def test_out_of_order_commits_on_postgres_are_not_skipped(user):
    import psycopg

    from tests.helpers.common import database_url

    job = make_job(user)
    outbox = Outbox(last_seen=lifecycle.record(job.pk, "note").pk)
    slow = psycopg.connect(database_url().replace("postgres://", "postgresql://"))
    try:
        # A transaction takes the next id and stays open...
        slow.execute("INSERT INTO jobs_jobevent (job_id, created_at, kind, from_status, "
                     "to_status, actor, message) VALUES (%s, now(), 'note', '', '', '', "
                     "'slow')", [job.pk])
        # ...while a later event commits first.
        fast = lifecycle.record(job.pk, "note", message="fast")
        assert [e.message for e in outbox.read()] == ["fast"]
        slow.commit()
        assert [e.message for e in outbox.read()] == ["slow"]
        assert outbox.last_seen == fast.pk
    finally:
        slow.close()


@pytest.mark.postgres
def test_postgres_wakes_the_bridge_by_notify(user, monkeypatch):
    """With LISTEN, an update arrives long before the safety poll would find it."""
    from jobs.web import live

    monkeypatch.setattr(live, "SAFETY_POLL_SECONDS", 30)
    job = make_job(user, status=Status.RENDERING)

    async def scenario():
        communicator = socket("/ws/jobs", user)
        assert (await communicator.connect())[0]
        assert bridge.listening
        loop = asyncio.get_running_loop()
        started = loop.time()
        await progress(job, 55)
        await receive_until(communicator, 'aria-valuenow="55"', timeout=3)
        assert loop.time() - started < 1.0
        await communicator.disconnect()

    run(scenario)


# --- A batch's page --------------------------------------------------------------------------


def make_batch(user, *statuses):
    from jobs.models import Batch, BatchRow

    batch = Batch.objects.create(user=user, project_path="D:\\Dropbox\\a.aep", path_key="k",
                                 config={"template": {"composition": "Main"}},
                                 output_name="{row}", folder="a_1")
    for number, status in enumerate(statuses, start=1):
        job = make_job(user, status=status, output_name=str(number))
        BatchRow.objects.create(batch=batch, number=number, values={"title": f"T{number}"},
                                output_name=str(number), job=job)
    return batch


def test_a_user_cannot_follow_another_users_batch(user, other_user):
    batch = make_batch(other_user, Status.QUEUED)

    async def scenario():
        communicator = socket(f"/ws/batches/{batch.pk}", user)
        assert await refusal(communicator) == 4404

    run(scenario)


def test_a_batch_page_follows_its_rows_and_counts(user):
    batch = make_batch(user, Status.QUEUED, Status.QUEUED)
    first = batch.rows.get(number=1)
    other = make_job(user, status=Status.QUEUED)

    async def scenario():
        communicator = socket(f"/ws/batches/{batch.pk}", user)
        assert (await communicator.connect())[0]

        await database_sync_to_async(lifecycle.cancel)(other.pk, actor="alice@studio.test")
        await database_sync_to_async(lifecycle.cancel)(first.job_id, actor="alice@studio.test")

        message = await communicator.receive_from(timeout=WAIT)
        # Only the batch's own row comes, with the counts; the other job never does.
        assert f'id="row-{first.pk}"' in message and 'data-status="CANCELLED"' in message
        assert str(other.pk) not in message
        counts = message.split('id="batch-counts"')[1]
        assert re.search(r'data-status="CANCELLED"[^>]*>CANCELLED 1<', counts)
        assert re.search(r'data-status="QUEUED"[^>]*>QUEUED 1<', counts)
        assert await communicator.receive_nothing(timeout=QUIET)
        await communicator.disconnect()

    run(scenario)
