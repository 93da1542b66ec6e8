"""Work after completion: recorded with the completion, done by any node, restartable;
and the preview video (JobProxy) it makes of a completed video."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import lifecycle, media
from jobs.models import FollowUp, Job, JobFollowUp, JobProxy, JobThumbnail, RenderNode, Status
from jobs.node import followups, proxy
from jobs.node.retention import purge_jobs
from tests.helpers import media as mh
from tests.helpers.common import wait_for
from tests.helpers.farm import submit, use_aerender, wait_status

pytestmark = pytest.mark.django_db


def node(name="node-a", alive=True) -> RenderNode:
    beat = timezone.now() - (timedelta(0) if alive else timedelta(hours=1))
    made, _ = RenderNode.objects.update_or_create(name=name, defaults={"last_heartbeat": beat})
    return made


def lossless_avi(path, seconds=2.0, size="640x360"):
    """What After Effects writes with its "Lossless" output module: no browser plays it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mh.ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d={seconds}", "-f", "lavfi",
              "-i", f"sine=frequency=440:duration={seconds}", "-c:v", "ffv1", "-c:a",
              "pcm_s16le", "-shortest", str(path))
    return path


def completed(user, dropbox, output, follow_ups=("proxy",), template=None,
              refresh=True) -> Job:
    """A job completed the way a render node completes one (lifecycle.complete).
    ``refresh=False`` where a follow-up thread running beside may delete it at once."""
    lease = uuid.uuid4()
    job = Job.objects.create(user=user, status=Status.RENDERING, lease=lease, name="spot",
                             config={"template": {"composition": "main", **(template or {})}})
    assert lifecycle.complete(job.pk, lease, output_path=output.name,
                              output_size=output.stat().st_size, follow_ups=follow_ups)
    if refresh:
        job.refresh_from_db()
    return job


@pytest.fixture
def output(dropbox):
    return lossless_avi(dropbox / "renders" / "spot_1234abcd.avi")


def test_completion_records_the_follow_up_and_does_not_wait_for_it(user, dropbox, output):
    job = completed(user, dropbox, output)

    assert job.status == Status.COMPLETED
    row = JobFollowUp.objects.get(job=job)
    assert (row.kind, row.status, row.attempts) == ("proxy", FollowUp.PENDING, 0)
    assert not JobProxy.objects.exists()


def test_a_lossless_render_gets_a_small_h264_the_browser_plays(user, dropbox, output):
    job = completed(user, dropbox, output)

    row = followups.run_one(node())

    assert row.status == FollowUp.DONE, row.message
    made = JobProxy.objects.get(job=job)
    path = dropbox / "proxy.mp4"
    path.write_bytes(bytes(made.mp4))
    info = media.probe(path)
    assert info.demuxer == "mov" and info.video.codec == "h264"
    assert info.audio is not None and info.audio.codec == "aac"
    assert (made.width, made.height) == (info.video.width, info.video.height) == (640, 360)
    assert abs(made.duration - 2.0) < 0.2 and not made.partial
    assert made.size == len(bytes(made.mp4)) <= 8 * 1024 * 1024
    # faststart: the index comes first, so a browser starts playing before the end arrives.
    head = bytes(made.mp4)[:4096]
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 4096)
    event = job.events.get(kind="proxy")
    assert event.message.startswith("Preview video ready (360p")
    # Nothing landed in Dropbox beside the render.
    assert sorted(p.name for p in (dropbox / "renders").iterdir()) == [output.name]


def test_the_size_cap_holds_for_a_long_video(user, dropbox, settings):
    settings.PROXY_MAX_BYTES = 150_000
    long = mh.noise(dropbox / "renders" / "long.mp4", seconds=12, size="640x360")
    job = completed(user, dropbox, long)

    row = followups.run_one(node())

    assert row.status == FollowUp.DONE, row.message
    made = JobProxy.objects.get(job=job)
    assert made.size <= 150_000
    # 150 kB hold 12 s only at a bitrate nobody can watch: the proxy is its beginning.
    assert made.partial and 3 <= made.duration < 12
    assert "the first" in row.message


def test_the_plan_fits_the_cap():
    whole = proxy.plan(30.0, True, 8 * 1024 * 1024)
    assert whole[2] is None and whole[0] == proxy.MAX_VIDEO_BPS and whole[1] == 540
    tighter = proxy.plan(120.0, True, 8 * 1024 * 1024)
    assert tighter[2] is None and (tighter[0] + proxy.AUDIO_BPS) * 120 / 8 <= 8 * 1024 * 1024
    part = proxy.plan(3600.0, True, 8 * 1024 * 1024)
    assert part[2] is not None and part[2] < 3600 and part[1] == 360


def test_image_sequences_and_nothing_to_play_get_no_proxy(user, dropbox, settings):
    frames = dropbox / "renders" / "frames.zip"
    frames.parent.mkdir(parents=True, exist_ok=True)
    frames.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    sequence = Job(config={"template": {"composition": "main", "outputExt": "png"}})
    assert not proxy.wanted(sequence, frames)
    assert proxy.wanted(Job(config={"template": {"composition": "main"}}),
                        dropbox / "renders" / "x.mov")
    settings.PROXY_MAX_BYTES = 0
    assert not proxy.wanted(Job(config={}), dropbox / "renders" / "x.mov")

    still = mh.still(dropbox / "renders" / "still.png")
    job = completed(user, dropbox, still)
    row = followups.run_one(node())
    assert row.status == FollowUp.DONE and "no moving picture" in row.message
    assert not JobProxy.objects.filter(job=job).exists()


def test_a_claim_of_a_dead_node_is_taken_over_and_a_restart_takes_its_own_back(
        user, dropbox, output):
    job = completed(user, dropbox, output)
    dead = node("node-dead", alive=False)
    assert followups.claim_next(dead) is not None  # it claimed, then died
    alive = node("node-b")
    # Nobody takes a live node's claim...
    busy = node("node-busy")
    JobFollowUp.objects.filter(job=job).update(node=busy)
    assert followups.claim_next(alive) is None
    # ...a dead node's is anyone's (a second attempt)...
    JobFollowUp.objects.filter(job=job).update(node=dead)
    row = followups.run_one(alive)
    assert (row.status, row.attempts, row.node_id) == (FollowUp.DONE, 2, alive.pk)
    assert JobProxy.objects.filter(job=job).exists()

    # ...and a node that restarts gives back what it held before.
    other = completed(user, dropbox, lossless_avi(dropbox / "renders" / "b.avi"))
    assert followups.claim_next(busy).job_id == other.pk
    assert followups.release_abandoned(busy) == 1
    assert JobFollowUp.objects.get(job=other).status == FollowUp.PENDING


def test_a_shutdown_puts_it_back_without_using_an_attempt(user, dropbox, output):
    job = completed(user, dropbox, output)
    stop = threading.Event()
    stop.set()

    row = followups.run_one(node(), stop)

    assert (row.status, row.attempts, row.node_id) == (FollowUp.PENDING, 0, None)
    assert not JobProxy.objects.filter(job=job).exists()


def test_an_output_not_synced_here_yet_is_tried_again_later_then_given_up(
        user, dropbox, output, settings):
    settings.FOLLOW_UP_ATTEMPTS = 2
    job = completed(user, dropbox, output)
    output.rename(output.with_suffix(".away"))  # published on a node whose copy lags

    first = followups.run_one(node())
    assert first.status == FollowUp.PENDING and "not on this node yet" in first.message
    assert first.run_after > timezone.now()
    assert followups.run_one(node()) is None  # not due yet
    JobFollowUp.objects.filter(pk=first.pk).update(run_after=timezone.now())
    second = followups.run_one(node())
    assert (second.status, second.attempts) == (FollowUp.FAILED, 2)
    assert not JobProxy.objects.filter(job=job).exists()


def test_retention_takes_the_proxy_with_the_job(user, dropbox, output, settings):
    job = completed(user, dropbox, output)
    followups.run_one(node())
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=30))

    purge_jobs(days=7)

    assert not JobProxy.objects.exists() and not JobFollowUp.objects.exists()


@pytest.mark.slow
def test_a_real_worker_makes_the_poster_frame_and_preview_after_completing(farm, user):
    use_aerender(farm)
    farm.start_worker()
    job = submit(farm, user, frames=25, width=320, height=180)

    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.error
    # The video is stored a moment before its follow-up is marked done: wait for the mark.
    wanted = {"thumbnail": FollowUp.DONE, "proxy": FollowUp.DONE}
    wait_for(lambda: dict(JobFollowUp.objects.filter(job=job).values_list("kind", "status"))
             == wanted, timeout=60, message="the poster frame and preview were not both made")
    made = JobProxy.objects.get(job=job)
    assert made.size > 0 and (made.width, made.height) == (320, 180)
    # Nothing of it before COMPLETED: the poster frame comes first, then the video.
    completed_at = job.events.get(to_status=Status.COMPLETED).created_at
    poster_at = job.events.get(kind="thumbnail").created_at
    assert completed_at <= poster_at <= job.events.get(kind="proxy").created_at
    job.refresh_from_db()
    thumbnail = JobThumbnail.objects.get(job=job)
    assert job.has_thumbnail and bytes(thumbnail.jpeg).startswith(b"\xff\xd8")
    assert thumbnail.created_at >= completed_at



def test_the_poster_frame_comes_after_completion_first_and_updates_open_pages(
        user, dropbox, output, browser_user):
    from jobs.web.live import render_messages

    job = completed(user, dropbox, output, follow_ups=("proxy", "thumbnail"))
    # COMPLETED without it: the list and the job page show no picture yet.
    assert job.status == Status.COMPLETED and not job.has_thumbnail
    assert not JobThumbnail.objects.exists()
    page = browser_user.get(f"/jobs/{job.pk}").content.decode()
    assert f"/api/jobs/{job.pk}/thumbnail" not in page

    row = followups.run_one(node())  # the poster frame first, though recorded second

    assert (row.kind, row.status) == ("thumbnail", FollowUp.DONE), row.message
    job.refresh_from_db()
    assert job.has_thumbnail and bytes(JobThumbnail.objects.get(job=job).jpeg)[:2] == b"\xff\xd8"
    assert not JobProxy.objects.exists()
    event = job.events.get(kind="thumbnail")

    class Everyone:
        groups = None  # a layer that cannot tell who listens: render everything

    messages = render_messages([event], Everyone())
    poster = f'src="/api/jobs/{job.pk}/thumbnail?v='
    detail = next(m for group, m in messages if group == f"job-{job.pk}")
    assert f'<img class="poster" {poster}' in detail["html"]
    row_html = next(m for group, m in messages if group == f"user-{user.pk}")
    assert f'<img class="thumb" {poster}' in row_html["html"]
    assert browser_user.get(f"/api/jobs/{job.pk}/thumbnail")["Content-Type"] == "image/jpeg"


def test_no_poster_frame_for_a_job_that_is_no_longer_completed(user, dropbox, output):
    job = completed(user, dropbox, output, follow_ups=("thumbnail",))
    # Its output stays, but the job moved on (being sent back for a retry, say).
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED)

    row = followups.run_one(node())

    assert row.status == FollowUp.DONE and "no longer completed" in row.message
    job.refresh_from_db()
    assert not job.has_thumbnail and not job.events.filter(kind="thumbnail").exists()


def test_the_follow_up_thread_survives_a_job_deleted_mid_run_and_follows_a_new_node_row(
        transactional_db, user, dropbox, output, monkeypatch, caplog):
    runs = []

    def deleting(run):
        runs.append(run.job.pk)
        if len(runs) == 1:
            Job.objects.filter(pk=run.job.pk).delete()  # an admin deletes it mid-run
            # then the work stores what it made, as the preview video's does
            JobProxy.objects.update_or_create(job_id=run.job.pk, defaults={
                "mp4": b"\0", "size": 1, "width": 2, "height": 2, "duration": 1.0,
                "created_at": timezone.now()})
        return "checked"

    monkeypatch.setattr(followups, "KINDS", {"check": (lambda job, out: True, deleting)})
    current = [node()]
    stop = threading.Event()
    thread = followups.start(lambda: current[0], stop)
    try:
        doomed = completed(user, dropbox, output, follow_ups=("check",), refresh=False)
        followups.poke()
        wait_for(lambda: not Job.objects.filter(pk=doomed.pk).exists(), timeout=20)
        # The node's row is deleted, and the node registers again under a new one.
        RenderNode.objects.filter(pk=current[0].pk).delete()
        current[0] = node()
        kept = completed(user, dropbox, output, follow_ups=("check",))
        followups.poke()
        wait_for(lambda: JobFollowUp.objects.filter(job=kept, status=FollowUp.DONE).exists(),
                 timeout=20, message="the follow-up thread stopped following the table")
        assert JobFollowUp.objects.get(job=kept).node_id == current[0].pk
        assert thread.is_alive()
        # A deleted job is an admin's everyday act, not an error of the thread's.
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    finally:
        stop.set()
        followups.poke()
        thread.join(timeout=10)


def test_an_ffmpeg_that_prints_many_errors_fails_at_once_with_its_last_lines(
        user, dropbox, output, tmp_path, monkeypatch):
    # More error text than a pipe holds (64 KB here, 4 KB on Windows), then exit 1:
    # read only after the exit, the pipe filled and ffmpeg waited for the timeout.
    chatty = tmp_path / "ffmpeg"
    chatty.write_text(f"#!{sys.executable}\n"
                      "import sys\n"
                      "for n in range(5000):\n"
                      "    sys.stderr.write(f'[h264 @ 0x55] error while decoding MB {n}\\n')\n"
                      "sys.stderr.write('Conversion failed!\\n')\n"
                      "sys.exit(1)\n")
    chatty.chmod(0o755)
    job = completed(user, dropbox, output)
    info = media.probe(output)
    monkeypatch.setattr(proxy.media, "ffmpeg", lambda: str(chatty))
    monkeypatch.setattr(proxy, "ENCODE_TIMEOUT_SECONDS", 30)
    run = followups.Run(row=None, job=job, stop=threading.Event())
    began = time.monotonic()
    with pytest.raises(RuntimeError) as failed:
        proxy.encode(run, output, tmp_path / "preview.mp4", info, 1_000_000, 360, None)
    assert time.monotonic() - began < 15
    message = str(failed.value)
    assert message.startswith("ffmpeg could not encode the preview: ")
    assert message.endswith("error while decoding MB 4999 | Conversion failed!")
