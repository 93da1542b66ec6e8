"""The ffmpeg engine with the real ffmpeg, on media the tests make.

Each render goes the way the worker takes it (engine.command, the guard,
progress from ``-progress``, engine.find_output); the output is probed and
its frames and sound are measured.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import psutil
import pytest

from jobs import media
from jobs.models import Job, Phase, Status
from jobs.node.engines import RenderError, get_engine
from tests.helpers import media as mh
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)
from tests.helpers.common import wait_for
from tests.helpers.farm import render_processes
from tests.helpers.media import render, timeline_job


@pytest.fixture
def workdir(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def frames_of(path: Path) -> int:
    return media.measure(path).frames


def test_a_timeline_renders_with_the_size_rate_duration_and_streams_it_asks_for(
        dropbox, workdir):
    bg = mh.still(dropbox / "media" / "bars.png", "0x3366cc", "640x480")
    clip = mh.pattern(dropbox / "media" / "clip.mp4", seconds=1.0)
    music = mh.tone(dropbox / "media" / "music.wav", 440, 1.0)
    job = timeline_job({"width": 320, "height": 180, "fps": 25, "duration": 3,
                        "backgrounds": [{"src": str(bg), "type": "image"},
                                        {"src": str(clip), "type": "video", "crossfade": 0.5}],
                        "audio": [{"src": str(music), "fade": 0.2}]})

    output, progress, phases = render(job, workdir)

    info = media.probe(output)
    assert info.demuxer == "mov" and output.suffix == ".mp4"
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert [(s.kind, s.codec) for s in info.streams] == [("video", "h264"), ("audio", "aac")]
    assert (info.video.width, info.video.height, info.video.fps) == (320, 180, 25)
    assert info.audio.sample_rate == 48000 and info.audio.channels == "stereo"
    assert frames_of(output) == 75
    assert media.measure(output, "a:0").seconds == pytest.approx(3.0, abs=0.05)
    # Progress against the resolved duration: all the way, with a phase like AE renders.
    assert (progress.percent, progress.frames_done, progress.frames_total) == (100, 75, 75)
    assert phases[0] == Phase.SETTING_UP and Phase.RENDERING in phases
    assert progress.eta_seconds() == 0


def test_stills_loop_and_crossfade_over_the_whole_duration(dropbox, workdir):
    red = mh.still(dropbox / "media" / "red.png", "red")
    blue = mh.still(dropbox / "media" / "blue.png", "blue", "180x320")  # portrait: padded
    job = timeline_job({"width": 320, "height": 180, "fps": 10, "duration": 4,
                        "backgrounds": [{"src": str(red), "type": "image"},
                                        {"src": str(blue), "type": "image", "crossfade": 1.0,
                                         "fit": "cover"}]})

    output, _, _ = render(job, workdir)

    colours = mh.frame_colours(output)
    assert len(colours) == 40  # 4 s at 10 fps: no frame missing, none extra
    # Two stills share 4 s plus the 1 s they overlap: 2.5 s each, the fade from 1.5 s.
    for r, _g, b in colours[:14]:
        assert r > 200 and b < 40
    for r, _g, b in colours[26:]:
        assert b > 200 and r < 40
    fading = [r for r, _g, _b in colours[15:25]]
    assert fading == sorted(fading, reverse=True) and fading[0] > fading[-1] + 150
    assert all(max(c) > 100 for c in colours), "a black frame: the stills left a gap"


def test_a_short_video_background_loops_to_the_end(dropbox, workdir):
    clip = mh.pattern(dropbox / "media" / "short.mp4", seconds=1.0, fps=25)
    job = timeline_job({"width": 320, "height": 180, "fps": 25, "duration": 2.6,
                        "backgrounds": [{"src": str(clip), "type": "video"}]})

    output, _, _ = render(job, workdir)

    colours = mh.frame_colours(output)
    assert len(colours) == 65
    assert all(max(c) > 40 for c in colours), "black frames after the video ran out"
    # Looped: the last second shows the clip's first second again.
    assert colours[50] == pytest.approx(colours[0], abs=12)


def test_audio_tracks_play_one_after_another_with_fades(dropbox, workdir):
    low = mh.tone(dropbox / "media" / "low.wav", 440, 1.0)
    high = mh.tone(dropbox / "media" / "high.mp3", 880, 1.5)
    job = timeline_job({"width": 160, "height": 90, "fps": 10,
                        "audio": [{"src": str(low), "fade": 0.2},
                                  {"src": str(high), "fade": 0.2}]})

    output, progress, _ = render(job, workdir)

    # No duration: the longest track ends last, after the first: 1.0 + 1.5 s.
    assert progress.duration == pytest.approx(2.5)
    assert media.probe(output).duration == pytest.approx(2.5, abs=0.06)
    sound = mh.samples(output)
    full = mh.tone_level(sound, 440, 0.3, 0.7)  # ffmpeg's sine: amplitude 1/8
    assert full > 0.05
    assert mh.tone_level(sound, 880, 0.3, 0.7) < full / 20  # the second has not started
    assert mh.tone_level(sound, 880, 1.3, 2.2) > full / 2
    assert mh.tone_level(sound, 440, 1.3, 2.2) < full / 20  # the first ended: no overlap
    # Faded in and out: quiet at the very start and around the joint.
    assert mh.tone_level(sound, 440, 0.0, 0.04) < full / 3
    assert mh.tone_level(sound, 440, 0.96, 1.0) < full / 3
    assert mh.tone_level(sound, 880, 1.0, 1.04) < full / 3
    # A black canvas under the sound (no backgrounds).
    assert max(max(c) for c in mh.frame_colours(output)) < 20


def test_the_deciding_track_sets_the_duration(dropbox, workdir):
    clip = mh.pattern(dropbox / "media" / "clip.mp4", seconds=2.0, fps=10)
    voice = mh.tone(dropbox / "media" / "voice.wav", 440, 1.2)
    job = timeline_job({"width": 160, "height": 90, "fps": 10,
                        "backgrounds": [{"src": str(clip), "type": "video"}],
                        "audio": [{"src": str(voice), "decides_duration": True}]})

    output, _, _ = render(job, workdir)

    assert frames_of(output) == 12  # the 1.2 s voice decides, not the 2 s video
    assert media.probe(output).duration == pytest.approx(1.2, abs=0.05)


def test_ntsc_rates_are_exact(dropbox, workdir):
    still = mh.still(dropbox / "media" / "s.png")
    job = timeline_job({"width": 160, "height": 90, "fps": 29.97, "duration": 1.0,
                        "backgrounds": [{"src": str(still), "type": "image"}]})

    output, _, _ = render(job, workdir)

    assert media.probe(output).video.fps == pytest.approx(29.97)
    assert frames_of(output) == 30


def test_a_source_missing_at_render_time_is_retried_later(dropbox, workdir):
    still = mh.still(dropbox / "media" / "gone.png")
    job = timeline_job({"width": 160, "height": 90, "duration": 1,
                        "backgrounds": [{"src": str(still), "type": "image"}]})
    still.unlink()

    with pytest.raises(RenderError) as failure:
        get_engine("ffmpeg").command(job, workdir)

    assert "not in Dropbox" in str(failure.value) and not failure.value.permanent


@pytest.mark.parametrize(("name", "content"), [
    ("clip.mp4", "#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n"),  # an HLS playlist
    ("clip.mov", "ffconcat version 1.0\nfile /etc/passwd\n"),  # a concat list
])
def test_files_that_would_open_other_files_are_never_rendered(dropbox, workdir, name,
                                                               content):
    still = mh.still(dropbox / "media" / "s.png")
    job = timeline_job({"width": 160, "height": 90, "duration": 1,
                        "backgrounds": [{"src": str(still), "type": "image"}]})
    playlist = dropbox / "media" / name
    playlist.write_text(content)
    job.config["backgrounds"] = [{**job.config["backgrounds"][0], "type": "video",
                                  "src": str(playlist)}]

    with pytest.raises(RenderError, match="backgrounds.0.src"):
        get_engine("ffmpeg").command(job, workdir)


def test_a_timeline_over_the_limit_found_at_render_time_fails_for_good(dropbox, workdir,
                                                                      settings):
    voice = mh.tone(dropbox / "media" / "voice.wav", 440, 2.0)
    job = timeline_job({"width": 160, "height": 90,
                        "audio": [{"src": str(voice)}]})
    settings.TIMELINE_MAX_SECONDS = 1  # lowered after submission

    with pytest.raises(RenderError) as failure:
        get_engine("ffmpeg").command(job, workdir)

    assert failure.value.permanent and "TIMELINE_MAX_SECONDS" in str(failure.value)


# --- Sources over http(s) ---------------------------------------------------------


@pytest.fixture
def media_server(tmp_path):
    """A local web server for files in tmp_path/www, on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", "http://elsewhere.test/x.png")
                self.end_headers()
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sources_from_an_allowed_host_are_downloaded(dropbox, workdir, media_server, settings):
    root, base = media_server
    settings.TIMELINE_ALLOWED_HOSTS = ["127.0.0.1"]
    mh.still(root / "green.png", "lime")
    mh.tone(root / "beep.wav", 660, 1.0)
    job = timeline_job({"width": 160, "height": 90, "fps": 10,
                        "backgrounds": [{"src": f"{base}/green.png", "type": "image"}],
                        "audio": [{"src": f"{base}/beep.wav"}]})

    output, _, _ = render(job, workdir)

    assert frames_of(output) == 10
    assert all(g > 200 and r < 50 for r, g, _b in mh.frame_colours(output))
    assert (workdir / "source-backgrounds-0.png").is_file()  # fetched into the work folder


def test_downloads_are_capped_and_stay_on_allowed_hosts(dropbox, workdir, media_server,
                                                        settings):
    root, base = media_server
    settings.TIMELINE_ALLOWED_HOSTS = ["127.0.0.1"]
    (root / "big.png").write_bytes(b"x" * 5000)
    settings.TIMELINE_DOWNLOAD_MAX_BYTES = 4096
    job = timeline_job({"width": 160, "height": 90, "duration": 1,
                        "backgrounds": [{"src": f"{base}/big.png", "type": "image"}]})
    with pytest.raises(RenderError, match="TIMELINE_DOWNLOAD_MAX_BYTES") as failure:
        get_engine("ffmpeg").command(job, workdir)
    assert failure.value.permanent
    assert not (workdir / "source-backgrounds-0.png").exists()

    job = timeline_job({"width": 160, "height": 90, "duration": 1,
                        "backgrounds": [{"src": f"{base}/redirect.png", "type": "image"}]})
    with pytest.raises(RenderError, match="elsewhere.test is not allowed|redirects elsewhere"):
        get_engine("ffmpeg").command(job, workdir)

    settings.TIMELINE_ALLOWED_HOSTS = []  # the host was removed after submission
    with pytest.raises(RenderError, match="not allowed"):
        get_engine("ffmpeg").command(job, workdir)


# --- Through the API and a real worker --------------------------------------------------


def ffmpeg_processes(job_id) -> list:
    found = []
    for proc in render_processes(job_id):
        try:
            if "ffmpeg" in Path(proc.cmdline()[0]).name:
                found.append(proc)
        except (OSError, IndexError, psutil.Error):  # gone meanwhile
            continue
    return found


def alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def all_gone(procs, job_id) -> bool:
    # Both views: a process in the middle of exiting has already lost its environment
    # (so its marker) but is not yet a zombie; only the processes seen earlier show it.
    return not ffmpeg_processes(job_id) and not any(alive(p) for p in procs)


def submit_timeline(api_client, timeline: dict, **extra) -> str:
    response = api_client.post("/api/jobs", {"engine": "ffmpeg", "mac_username": "alice",
                                             "name": "Teaser", "timeline": timeline, **extra},
                               format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


@pytest.mark.slow
def test_a_timeline_job_renders_end_to_end_with_progress_and_a_thumbnail(farm, user,
                                                                         api_client):
    farm.start_worker()
    folder = farm.dropbox / "media"
    bg = mh.pattern(folder / "bg.mp4", seconds=1.0)
    music = mh.tone(folder / "music.wav", 440, 2.0)
    job_id = submit_timeline(api_client, {
        "width": 320, "height": 180, "fps": 25,
        "backgrounds": [{"src": str(bg), "type": "video"}],
        "audio": [{"src": str(music), "fade": 0.5, "decides_duration": True}]})

    def finished():
        body = api_client.get(f"/api/jobs/{job_id}").json()
        return body if body["status"] in ("COMPLETED", "FAILED") else None

    body = wait_for(finished, timeout=60, interval=0.05)
    assert body["status"] == "COMPLETED", body["error"]
    job = Job.objects.get(pk=job_id)
    # (The poster frame's and preview video's events, which may come meanwhile, have
    # no status.)
    statuses = list(job.events.exclude(kind="progress").exclude(to_status="")
                    .values_list("to_status", flat=True))
    assert statuses == ["PENDING", "VALIDATING", "QUEUED", "RENDERING", "COMPLETED"]
    assert (job.progress, job.frames_done, job.frames_total) == (100, 50, 50)
    assert job.render_seconds > 0
    output = Path(body["output"]["path"])
    assert output.parent == farm.dropbox / "renders" and output.name.startswith("Teaser_")
    info = media.probe(output)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert [s.kind for s in info.streams] == ["video", "audio"]
    # The log keeps ffmpeg's messages and a few positions, not every progress block.
    log = job.log.text()
    assert "out_time=" in log and log.count("progress=") <= 2
    # A poster frame (made after completion), behind a signed link that works
    # without credentials.
    url = wait_for(lambda: api_client.get(f"/api/jobs/{job_id}").json()["output"][
        "thumbnail_url"], timeout=60, message="no poster frame after completion")
    assert url and "/thumbnail?signature=" in url
    api_client.credentials()
    picture = api_client.get("/" + url.split("://", 1)[1].split("/", 1)[1])
    assert picture.status_code == 200 and picture["Content-Type"] == "image/jpeg"
    assert picture.content[:2] == b"\xff\xd8"
    assert api_client.get(f"/api/jobs/{job_id}/thumbnail").status_code == 401
    assert api_client.get(f"/api/jobs/{job_id}/thumbnail?signature=x").status_code == 403


@pytest.mark.slow
def test_the_file_checks_wait_for_sources_to_arrive(farm, user, api_client):
    farm.start_worker()
    late = farm.dropbox / "media" / "late.png"
    job_id = submit_timeline(api_client, {"width": 160, "height": 90, "duration": 0.5,
                                          "backgrounds": [{"src": str(late),
                                                           "type": "image"}]})
    job = Job.objects.get(pk=job_id)
    wait_for(lambda: job.events.filter(kind="validation").exists(), timeout=30)
    job.refresh_from_db()
    assert job.status == Status.VALIDATING and "late.png" in job.validation_message
    mh.still(late)
    wait_for(lambda: Job.objects.get(pk=job_id).status == Status.COMPLETED, timeout=60)


@pytest.fixture
def long_timeline(farm):
    still = mh.still(farm.dropbox / "media" / "long.png", "red", "640x360")
    return {"width": 640, "height": 360, "fps": 30, "duration": 3600,
            "backgrounds": [{"src": str(still), "type": "image"}]}


# x264's fastest quality level: output (and so progress) starts at once, even on a
# busy machine.
QUICK = {"name": "custom", "quality": "low"}


@pytest.mark.slow
def test_cancel_kills_the_ffmpeg_render_within_two_seconds(farm, user, api_client,
                                                           long_timeline):
    from jobs import lifecycle

    farm.start_worker()
    job_id = submit_timeline(api_client, long_timeline, preset=QUICK)
    procs = wait_for(lambda: ffmpeg_processes(job_id), timeout=60,
                     message="ffmpeg never started")
    wait_for(lambda: Job.objects.get(pk=job_id).eta_seconds is not None, timeout=30)
    job = Job.objects.get(pk=job_id)
    assert job.phase == Phase.RENDERING and 0 < job.progress < 100

    lifecycle.cancel(job_id, actor="admin@studio.test")
    wait_for(lambda: all_gone(procs, job_id), timeout=2, message="ffmpeg survived the cancel")
    assert Job.objects.get(pk=job_id).status == Status.CANCELLED


@pytest.mark.slow
def test_a_stalled_ffmpeg_render_is_killed(farm, user, api_client, long_timeline):
    # A frozen ffmpeg (suspended here) shows no progress; the watchdog kills it.
    farm.configure(RENDER_STALL_SECONDS=4, MAX_RENDER_ATTEMPTS=1)
    farm.start_worker()
    job_id = submit_timeline(api_client, long_timeline, preset=QUICK)
    procs = wait_for(lambda: ffmpeg_processes(job_id), timeout=60,
                     message="ffmpeg never started")
    wait_for(lambda: Job.objects.get(pk=job_id).progress > 0, timeout=30)
    assert Job.objects.get(pk=job_id).status == Status.RENDERING
    for proc in procs:
        proc.suspend()

    wait_for(lambda: Job.objects.get(pk=job_id).status == Status.FAILED, timeout=20)
    job = Job.objects.get(pk=job_id)
    assert "made no progress for 4 s" in job.error
    wait_for(lambda: all_gone(procs, job_id), timeout=2, message="ffmpeg survived the stall")
