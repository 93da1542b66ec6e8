"""The classes of bad input that once answered 500, thrown at every way in.

Schemathesis (test_fuzz.py) explores the API by its schema; these values
are the ones a schema calls valid strings or integers but the code choked
on: numbers beyond 64 bits or hundreds of digits long, digits that are not
ASCII ("²" passes ``str.isdigit``), the ends of the calendar (9999-12-31 has
no next day; a time near year 1 or 9999 with an offset leaves the range in
UTC), times without an offset, NULs and other control characters (PostgreSQL
refuses a NUL), and very long text. Each is sent to the dashboard's list and
fragments, the admin panel, the Django admin, the websocket, and the API's
query strings and JSON bodies. Nothing may answer 500 (the test client
re-raises what the view raised); the PostgreSQL pass of `make test` runs
them against PostgreSQL too.
"""

from __future__ import annotations

import copy
from urllib.parse import urlencode

import pytest
from django.contrib import admin as django_admin
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from accounts.models import MacUsername
from jobs.models import Job, Status
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

BIG_NUMBERS = st.one_of(
    st.sampled_from(["9" * 20, "18446744073709551616", "-9223372036854775809",
                     "9223372036854775808", "1" * 400, "9" * 5000, "0" * 30 + "1"]),
    st.integers(min_value=2**63).map(str), st.integers(max_value=-(2**63) - 1).map(str))
ODD_DIGITS = st.one_of(
    st.sampled_from(["²", "٣", "１２", "߁", "𝟗", "½", "Ⅻ", "1e400", "inf", "nan", "0x10",
                     "-0", "+1", " 1 ", "1_000"]),
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=6))
CALENDAR = st.one_of(
    st.sampled_from(["9999-12-31", "0001-01-01", "0000-01-01", "2024-02-30", "10000-01-01",
                     "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
                     "2025-01-01T00:00:00", "2025-01-01 12:00", "9999-12-31T23:59:59.999999Z",
                     "0001-01-01T00:00:00Z", "2025-13-01T00:00:00Z", "2025-01-01T24:00:00Z"]),
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()))
CONTROL = st.one_of(
    st.sampled_from(["\x00", "a\x00b", "\x00" * 10, "\x1b[31m", "\r\n", "\x7f"]),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=8))
LONG = st.one_of(st.just("x" * 5000), st.text(min_size=300, max_size=3000))
NASTY = st.one_of(BIG_NUMBERS, ODD_DIGITS, CALENDAR, CONTROL, LONG, st.text(max_size=30))
# Text that can travel in a URL query (the HTTP layer refuses lone surrogates itself).
QUERY = NASTY.map(lambda s: s.encode("utf-8", "replace").decode("utf-8"))


@pytest.fixture
def some_jobs(user, other_user):
    for n, status in enumerate(Status.values):
        Job.objects.create(user=user if n % 2 else other_user, status=status,
                           project_path=f"projects/p{n}.aep", mac_username="alice",
                           client="bravo", output_path="p.mp4" if status == "COMPLETED" else "")
    return Job.objects.first()


def ok(response, *allowed):
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if allowed:
        assert response.status_code in allowed, response.status_code


# --- The dashboard and the admin panel ------------------------------------------------------

LIST_KEYS = ["status", "sort", "q", "from", "to", "user", "after", "page"]


# The inputs that answered 500 once are always among the examples.
KNOWN_QUERIES = [{"to": "9999-12-31"}, {"user": "²"}, {"user": "9" * 20},
                 {"from": "0001-01-01", "q": "\x00"}]


def with_known(test, name="params"):
    for known in KNOWN_QUERIES:
        test = example(**{name: known})(test)
    return test


@with_known
@given(params=st.dictionaries(st.sampled_from(LIST_KEYS), QUERY, min_size=1, max_size=4))
@FUZZ
def test_the_job_list_takes_any_query(browser_admin, browser_user, some_jobs, params):
    for client in (browser_admin, browser_user):
        ok(client.get("/?" + urlencode(params)), 200)


@given(size=QUERY, mtime=QUERY)
@FUZZ
def test_the_file_fragment_takes_any_query(browser_user, some_jobs, user, size, mtime):
    job = Job.objects.filter(user=user).first()
    ok(browser_user.get(f"/jobs/{job.pk}/file?" + urlencode({"size": size, "mtime": mtime})),
       200)


@given(value=QUERY)
@FUZZ
def test_admin_panel_parameters(browser_admin, some_jobs, value):
    ok(browser_admin.get("/system/restart-engine?" + urlencode({"node": value})))
    ok(browser_admin.post("/system/restart-engine", {"node": value}))
    ok(browser_admin.post("/jobs/bulk", {"action": "boost", "job": [value]}))
    ok(browser_admin.post(f"/jobs/{some_jobs.pk}/priority", {"priority": value}))
    for decision in ("approve", "refuse"):
        path = reverse(f"systemadmin:claim-{decision}", args=["1"]).replace("/1/", "/{}/")
        ok(browser_admin.get(path.format(value.replace("/", "")[:200] or "x")), 404)


# --- The Django admin -----------------------------------------------------------------------


def changelists():
    for model, model_admin in django_admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        keys = ["p", "o", "q", "e", "id", "id__gt", "pk"]
        for item in model_admin.list_filter:
            name = item if isinstance(item, str) else ""
            if name:
                keys += [name, f"{name}__exact", f"{name}__id__exact", f"{name}__gte"]
        yield url, keys


CHANGELISTS = list(changelists())


@given(index=st.integers(0, len(CHANGELISTS) - 1), data=st.data())
@FUZZ
def test_the_django_admin_takes_any_query(admin, some_jobs, index, data):
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)
    url, keys = CHANGELISTS[index]
    params = data.draw(st.dictionaries(st.sampled_from(keys), QUERY, min_size=1, max_size=3))
    ok(client.get(f"{url}?{urlencode(params)}"), 200, 302, 400)
    ok(client.get(f"{url}{data.draw(QUERY).replace('/', '')[:300] or 'x'}/change/"))


# --- The API: query strings and bodies -------------------------------------------------------


@given(params=st.dictionaries(st.sampled_from(["status", "page", "page_size", "signature"]),
                              QUERY, min_size=1, max_size=3))
@FUZZ
def test_api_query_strings(admin_client, api_client, some_jobs, params):
    query = urlencode(params)
    for client in (admin_client, api_client):
        ok(client.get(f"/api/jobs?{query}"))
        ok(client.get(f"/api/jobs/{some_jobs.pk}/download?{query}"))
    for path in ("update/status", "errors", "events", "queue-history"):
        ok(admin_client.get(f"/api/system/{path}?" + urlencode(
            {key: value for key, value in zip(["id", "offset", "limit", "hours"],
                                              list(params.values()) * 4, strict=False)})))


VALID = {
    "project_path": "/Users/alice/Dropbox/projects/spot.aep",
    "saved_at": "2025-03-01T12:00:00Z",
    "mac_username": "alice",
    "name": "Spot",
    "callback_url": "https://bravo.test/hook",
    "preset": {"name": "custom", "bitrate": "8M", "width": 1280},
    "nexrender": {"template": {"composition": "Main", "frameStart": 0, "frameEnd": 10,
                               "outputExt": "mp4"},
                  "assets": [{"type": "data", "layerName": "T", "property": "Source Text",
                              "value": "x"},
                             {"type": "image", "src": "/Users/alice/Dropbox/a.png",
                              "layerIndex": 1}]},
}
TIMELINE = {
    "engine": "ffmpeg", "mac_username": "alice", "name": "T",
    "preset": {"name": "web", "quality": "low"},
    "timeline": {"width": 640, "height": 360, "fps": 25, "duration": 2,
                 "backgrounds": [{"src": "/Users/alice/Dropbox/bg.png", "type": "image",
                                  "crossfade": 1}],
                 "audio": [{"src": "/Users/alice/Dropbox/a.wav", "fade": 1}]},
}
# Where a value can be replaced: (body, path of keys).
PLACES = [(VALID, path) for path in (
    ("project_path",), ("saved_at",), ("mac_username",), ("name",), ("callback_url",),
    ("preset",), ("preset", "bitrate"), ("preset", "width"), ("nexrender", "template",
    "frameStart"), ("nexrender", "template", "composition"), ("nexrender", "assets", 0,
    "property"), ("nexrender", "assets", 0, "value"), ("nexrender", "assets", 1, "src"),
    ("nexrender", "assets", 1, "layerIndex"))] + [(TIMELINE, path) for path in (
    ("timeline", "width"), ("timeline", "fps"), ("timeline", "duration"),
    ("timeline", "backgrounds", 0, "src"), ("timeline", "backgrounds", 0, "crossfade"),
    ("timeline", "audio", 0, "fade"), ("preset", "quality"))]
JSON_VALUES = st.one_of(NASTY, st.integers(), st.integers(min_value=2**63),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.integers(min_value=10**300).map(lambda n: n * 10**50))


@example(place=(VALID, ("preset", "bitrate")), value="1" * 400)
@example(place=(VALID, ("saved_at",)), value="2025-03-01T12:00:00")
@example(place=(VALID, ("saved_at",)), value="9999-12-31T23:59:59-12:00")
@example(place=(VALID, ("nexrender", "assets", 0, "property")),
         value="transform.position.expression")
@given(place=st.sampled_from(PLACES), value=JSON_VALUES)
@FUZZ
def test_submissions_with_any_value_anywhere(api_client, dropbox, user, place, value):
    base, path = place
    body = copy.deepcopy(base)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    response = api_client.post("/api/jobs", body, format="json")
    ok(response)
    if response.status_code >= 400:
        assert response.json()["detail"]


@given(names=st.lists(NASTY, max_size=3), slack=NASTY)
@FUZZ
def test_profile_values(user_client, user, names, slack):
    ok(user_client.put("/api/user/mac-usernames", {"mac_usernames": names}, format="json"))
    ok(user_client.put("/api/user/slack-id", {"slack_user_id": slack}, format="json"))
    ok(Client().get("/health"))
    assert MacUsername.objects.filter(user=user).count() <= 20


# --- The list's websocket ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@with_known
@given(params=st.dictionaries(st.sampled_from(LIST_KEYS), QUERY, min_size=1, max_size=4))
@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_list_socket_takes_any_query(admin, params):
    import asyncio

    from channels.testing import WebsocketCommunicator

    from rendermanager.routing import application
    from tests.web.test_live import run, session_cookie

    async def scenario():
        headers = [(b"origin", b"http://localhost"),
                   (b"cookie", f"sessionid={session_cookie(admin)}".encode())]
        communicator = WebsocketCommunicator(application, "/ws/jobs?" + urlencode(params),
                                             headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        await communicator.disconnect()
        await asyncio.sleep(0)

    run(scenario)
