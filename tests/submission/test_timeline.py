"""POST /api/jobs with a timeline: what is accepted, and every way to get a 400.

Every refusal names the field (a dotted path into the timeline) and creates
nothing.
"""

from __future__ import annotations

import json

import pytest

from jobs.models import Job, JobEvent
from jobs.submission.timeline import resolve_duration
from tests.helpers import media as mh
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sources(dropbox):
    folder = dropbox / "media"
    return {"still": mh.still(folder / "bg.png"),
            "clip": mh.pattern(folder / "clip.mp4", seconds=1.0),
            "music": mh.tone(folder / "music.wav", 440, 2.0)}


@pytest.fixture
def body(user, sources):
    return {
        "engine": "ffmpeg",
        "mac_username": "alice",
        "name": "Launch teaser",
        "timeline": {
            "width": 1920, "height": 1080, "fps": 30, "duration": None,
            "backgrounds": [{"src": str(sources["still"]), "type": "image"},
                            {"src": str(sources["clip"]), "type": "video", "crossfade": 1.0}],
            "audio": [{"src": str(sources["music"]), "fade": 2.0, "decides_duration": True}],
        },
    }


def submit(client, data):
    return client.post("/api/jobs", data, format="json")


def refused(client, data, field: str) -> dict:
    response = submit(client, data)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert field in payload["errors"], payload
    assert payload["detail"].startswith("Invalid input: ")
    assert Job.objects.count() == 0 and JobEvent.objects.count() == 0
    return payload


def timeline_errors(client, data) -> dict:
    return refused(client, data, "timeline")["errors"]["timeline"]


# --- Accepted ------------------------------------------------------------------------


def test_a_timeline_job_is_accepted(api_client, body, sources, dropbox):
    response = submit(api_client, {**body, "preset": "web",
                                   "callback_url": "https://bravo.test/hook"})

    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.engine, job.name, job.project_path, job.path_key) == (
        "ffmpeg", "Launch teaser", "", "")
    assert job.saved_at is None and job.callback_url == "https://bravo.test/hook"
    assert job.preset == {"name": "web"}
    # Sources are stored relative to the Dropbox folder, like projects.
    assert job.config["backgrounds"][1] == {
        "src": "media/clip.mp4", "type": "video", "crossfade": 1.0, "duration": None,
        "fit": "contain", "decides_duration": False}
    assert job.config["audio"] == [{"src": "media/music.wav", "fade": 2.0,
                                    "decides_duration": True}]
    detail = api_client.get(f"/api/jobs/{job.pk}").json()
    assert detail["engine"] == "ffmpeg" and detail["preset"] == {"name": "web"}


def test_the_engine_follows_from_the_timeline(api_client, body):
    del body["engine"]
    response = submit(api_client, body)
    assert response.status_code == 202
    assert Job.objects.get().engine == "ffmpeg"


def test_mac_paths_and_file_uris_are_converted(api_client, body, sources, dropbox):
    body["timeline"]["backgrounds"] = [
        {"src": "/Users/alice/Dropbox/media/bg.png", "type": "image"},
        {"src": sources["clip"].as_uri(), "type": "video"}]
    response = submit(api_client, body)
    assert response.status_code == 202, response.content
    srcs = [bg["src"] for bg in Job.objects.get().config["backgrounds"]]
    assert srcs == ["media/bg.png", "media/clip.mp4"]


def test_timeline_jobs_never_supersede_each_other(api_client, body):
    assert submit(api_client, body).status_code == 202
    second = submit(api_client, body)
    assert second.status_code == 202 and second.json()["superseded"] == []
    assert Job.objects.filter(status="PENDING").count() == 2


def test_sources_not_synced_yet_are_left_to_the_file_checks(api_client, body, dropbox):
    body["timeline"]["audio"] = [{"src": str(dropbox / "media" / "later.wav")}]
    assert submit(api_client, body).status_code == 202


def test_http_sources_from_allowed_hosts_are_accepted(api_client, body, settings):
    settings.TIMELINE_ALLOWED_HOSTS = ["media.studio.test"]
    body["timeline"]["audio"] = [{"src": "https://MEDIA.studio.test/tracks/a.mp3?v=2"}]
    assert submit(api_client, body).status_code == 202


# --- Malformed timelines and limits ------------------------------------------------------


def _set(data: dict, dotted: str, value):
    *path, last = dotted.split(".")
    for part in path:
        data = data[int(part)] if isinstance(data, list) else data[part]
    if value is KeyError:
        del data[last]
    elif isinstance(data, list):
        data[int(last)] = value
    else:
        data[last] = value


@pytest.mark.parametrize(("where", "value", "field"), [
    ("width", KeyError, "width"),
    ("width", "1920", "width"),
    ("width", 1921, "width"),  # odd
    ("width", 3840, "width"),  # over TIMELINE_MAX_WIDTH
    ("height", 2160, "height"),  # over TIMELINE_MAX_HEIGHT
    ("height", 8, "height"),
    ("height", True, "height"),
    ("fps", 0, "fps"),
    ("fps", 120, "fps"),
    ("fps", "30", "fps"),
    ("duration", 0, "duration"),
    ("duration", -5, "duration"),
    ("duration", "10s", "duration"),
    ("duration", 10**400, "duration"),
    ("duration", 10801, "duration"),  # over TIMELINE_MAX_SECONDS
    ("backgrounds", {"src": "x"}, "backgrounds"),
    ("backgrounds.0", "bg.png", "backgrounds.0"),
    ("backgrounds.0.src", KeyError, "backgrounds.0.src"),
    ("backgrounds.0.src", "", "backgrounds.0.src"),
    ("backgrounds.0.src", 42, "backgrounds.0.src"),
    ("backgrounds.0.type", "gif", "backgrounds.0.type"),
    ("backgrounds.0.type", KeyError, "backgrounds.0.type"),
    ("backgrounds.1.crossfade", -1, "backgrounds.1.crossfade"),
    ("backgrounds.1.crossfade", 11, "backgrounds.1.crossfade"),
    ("backgrounds.1.crossfade", None, "backgrounds.1.crossfade"),
    ("backgrounds.1.duration", 0, "backgrounds.1.duration"),
    ("backgrounds.1.fit", "stretch", "backgrounds.1.fit"),
    ("backgrounds.1.decides_duration", "yes", "backgrounds.1.decides_duration"),
    ("backgrounds.0.decides_duration", True, "backgrounds.0.decides_duration"),  # a still
    ("backgrounds.1.volume", 0.5, "backgrounds.1.volume"),
    ("audio", "music.wav", "audio"),
    ("audio.0.fade", "long", "audio.0.fade"),
    ("audio.0.fade", 31, "audio.0.fade"),
    ("audio.0.start", 3, "audio.0.start"),
    ("audio.0.decides_duration", 1, "audio.0.decides_duration"),
    ("transitions", [], "transitions"),
])
def test_malformed_timelines_are_400(api_client, body, where, value, field):
    _set(body["timeline"], where, value)

    errors = timeline_errors(api_client, body)

    assert field in errors, errors


@pytest.mark.parametrize("raw", ["timeline", 42, None, [], True])
def test_a_timeline_that_is_not_an_object_is_400(api_client, body, raw):
    body["timeline"] = raw
    refused(api_client, body, "timeline")


def test_at_most_four_backgrounds(api_client, body, sources):
    body["timeline"]["backgrounds"] = [{"src": str(sources["still"]), "type": "image"}] * 5
    assert "At most 4" in timeline_errors(api_client, body)["backgrounds"][0]


def test_at_most_32_tracks_in_all(api_client, body, sources):
    body["timeline"]["audio"] = [{"src": str(sources["music"])}] * 31  # + 2 backgrounds
    errors = timeline_errors(api_client, body)
    assert "TIMELINE_MAX_TRACKS" in errors["audio"][0]


def test_the_track_limit_is_a_setting(api_client, body, settings):
    settings.TIMELINE_MAX_TRACKS = 2
    assert "At most 2 tracks" in timeline_errors(api_client, body)["audio"][0]


def test_the_resolution_limit_is_a_setting(api_client, body, settings):
    settings.TIMELINE_MAX_WIDTH, settings.TIMELINE_MAX_HEIGHT = 1280, 720
    errors = timeline_errors(api_client, body)
    assert "TIMELINE_MAX_WIDTH" in errors["width"][0]
    assert "TIMELINE_MAX_HEIGHT" in errors["height"][0]


def test_stills_alone_need_a_duration(api_client, body, sources):
    body["timeline"].update(audio=[], backgrounds=[{"src": str(sources["still"]),
                                                    "type": "image"}])
    assert "Required" in timeline_errors(api_client, body)["duration"][0]


# Lengths and kinds of files are read by the background file checks, not in the request
# (reading sources took up to ~80 s there): tests/node/test_validation.py.


def test_a_submission_reads_no_source(api_client, body, monkeypatch):
    def no_probe(*args, **kwargs):
        raise AssertionError("a submission must not read media files")

    monkeypatch.setattr("jobs.media.probe", no_probe)
    monkeypatch.setattr("jobs.media.measure", no_probe)

    assert submit(api_client, body).status_code == 202


def test_the_body_size_limit_is_413(api_client, body, settings):
    settings.API_MAX_BODY_BYTES = 2048
    body["timeline"]["audio"] = [{"src": "/Users/alice/Dropbox/" + "a" * 300 + ".wav"}] * 8
    response = api_client.post("/api/jobs", json.dumps(body), content_type="application/json")
    assert response.status_code == 413 and "2048 bytes" in response.json()["detail"]
    assert Job.objects.count() == 0


# --- Where sources may come from -----------------------------------------------------------


@pytest.mark.parametrize("src", [
    "/etc/passwd.png",
    "/Users/alice/Documents/bg.png",
    "/Users/alice/Dropbox/../secret.png",
    "file://otherhost/Dropbox/bg.png",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\bg.png",
    "ftp://media.studio.test/bg.png",
    "https://evil.test/bg.png",
    "https://user:pw@media.studio.test/bg.png",
    "https://media.studio.test:99999/bg.png",
    "http://[::1/bg.png",
])
def test_sources_outside_dropbox_or_from_unlisted_hosts_are_refused(api_client, body, src,
                                                                    settings):
    settings.TIMELINE_ALLOWED_HOSTS = ["media.studio.test"]
    body["timeline"]["backgrounds"][0]["src"] = src
    assert "backgrounds.0.src" in timeline_errors(api_client, body)


def test_no_host_is_allowed_by_default(api_client, body):
    body["timeline"]["audio"][0]["src"] = "https://cdn.example.com/music.mp3"
    message = timeline_errors(api_client, body)["audio.0.src"][0]
    assert "TIMELINE_ALLOWED_HOSTS is empty" in message


def test_a_symlink_out_of_dropbox_is_refused(api_client, body, dropbox, tmp_path):
    outside = mh.still(tmp_path / "outside.png")
    (dropbox / "media" / "link.png").symlink_to(outside)
    body["timeline"]["backgrounds"][0]["src"] = str(dropbox / "media" / "link.png")
    assert "symlink" in timeline_errors(api_client, body)["backgrounds.0.src"][0]


def test_a_still_must_be_an_image_file(api_client, body, sources):
    body["timeline"]["backgrounds"][0]["src"] = str(sources["clip"])
    assert "backgrounds.0.src" in timeline_errors(api_client, body)


# --- The rest of the body --------------------------------------------------------------------


def test_ffmpeg_jobs_take_no_project(api_client, body):
    body.update(project_path="/Users/alice/Dropbox/p.aep", saved_at="2025-01-01T00:00:00Z",
                nexrender={"template": {"composition": "main"}})
    payload = refused(api_client, body, "project_path")
    assert {"saved_at", "nexrender"} <= set(payload["errors"])


def test_the_ffmpeg_engine_needs_a_timeline(api_client, body):
    del body["timeline"]
    refused(api_client, body, "timeline")


def test_ae_engines_take_no_timeline(api_client, body):
    body.update(engine="aerender", project_path="/Users/alice/Dropbox/p.aep",
                saved_at="2025-01-01T00:00:00Z", nexrender={"template": {"composition": "m"}})
    refused(api_client, body, "timeline")


def test_unknown_macos_users_are_refused(api_client, body):
    body["mac_username"] = "mallory"
    refused(api_client, body, "mac_username")


@pytest.mark.parametrize("preset", [
    "ultra_hd", 42, ["web"], {"name": "custom", "crf": 99}, {"name": "web", "codec": "h265"},
    {"name": "custom", "width": 1921}, {"name": "custom", "bitrate": "fast"},
    {"name": "custom", "codec": "prores", "crf": 20}, {"name": "social", "quality": "max"},
    {"quality": "low"}, {"name": "custom", "width": 4096, "height": 4096},
])
def test_malformed_presets_are_400(api_client, body, preset):
    body["preset"] = preset
    refused(api_client, body, "preset")


# --- The duration rule -------------------------------------------------------------------


def _timeline(backgrounds=(), audio=(), duration=None):
    return {"duration": duration, "backgrounds": [
        {"type": kind, "duration": None, "crossfade": fade, "decides_duration": decides}
        for kind, fade, decides in backgrounds],
        "audio": [{"decides_duration": decides} for decides in audio]}


def test_an_explicit_duration_wins():
    timeline = _timeline(audio=[True], duration=7)
    assert resolve_duration(timeline, {("audio", 0): 100}) == 7


def test_the_longest_deciding_track_decides():
    timeline = _timeline(backgrounds=[("video", 0, False)], audio=[True, False])
    lengths = {("backgrounds", 0): 30, ("audio", 0): 5, ("audio", 1): 60}
    assert resolve_duration(timeline, lengths) == 5


def test_else_the_longest_track_with_sequential_tracks_ending_late():
    timeline = _timeline(backgrounds=[("video", 0, False), ("video", 2, False)],
                         audio=[False, False])
    lengths = {("backgrounds", 0): 10, ("backgrounds", 1): 10, ("audio", 0): 4,
               ("audio", 1): 5}
    assert resolve_duration(timeline, lengths) == 18  # 10 + 10 - 2 s crossfade


def test_unknown_lengths_leave_the_duration_open():
    timeline = _timeline(audio=[False, False])
    assert resolve_duration(timeline, {("audio", 0): 4}) is None
    assert resolve_duration(_timeline(backgrounds=[("image", 0, False)]), {}) is None
