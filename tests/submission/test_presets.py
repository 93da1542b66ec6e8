"""Output presets: each produces the codec, bitrate class and size it names.

Encodes are tiny (a few frames) so the suite stays fast; rate tests use
noise, which no encoder can compress below the rate it is given.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import media
from jobs.models import Job, Phase, Status
from jobs.node.engines.ffmpeg import transcode
from jobs.node.procs import RenderProcess
from jobs.submission.errors import InvalidInput
from jobs.submission.paths import output_file
from jobs.submission.presets import clean_preset, describe, encoding, output_size
from tests.helpers import media as mh
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)
from tests.helpers.common import make_project, wait_for
from tests.helpers.media import render, timeline_job


def encode(source: Path, workdir: Path, preset: dict) -> Path:
    """Transcode ``source`` the way the worker's encoding step does."""
    step = transcode(source, workdir, clean_preset(preset))
    with RenderProcess(step.command.argv, step.command.env, step.command.cwd) as proc:
        while (code := proc.poll()) is None:
            for line in proc.read(0.1):
                step.progress.feed(line)
    assert code == 0, step.progress.errors
    assert step.progress.percent == 100 and step.progress.phase == Phase.ENCODING
    return step.output


def video_bitrate(path: Path) -> float:
    info = media.probe(path)
    return info.video.bitrate or info.bitrate


@pytest.fixture(scope="module")
def noise_clip(tmp_path_factory):
    # 10 s at 2 fps: long enough for the rate control to settle (the encoder's initial
    # buffer is spread over 10 s), and only 20 frames to encode.
    return mh.noise(tmp_path_factory.mktemp("noise") / "noise.mkv", seconds=10, fps=2)


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


# --- Checking presets -------------------------------------------------------------------


@pytest.mark.parametrize(("given", "cleaned"), [
    (None, {}),
    ("web", {"name": "web"}),
    ({"name": "social", "quality": "ultra"}, {"name": "social", "quality": "ultra"}),
    ("high_quality", {"name": "high_quality"}),
    ({"name": "custom", "codec": "h265", "crf": 20, "width": 1280},
     {"name": "custom", "codec": "h265", "crf": 20, "width": 1280}),
    ({"name": "custom", "bitrate": "2.5M", "height": 720},
     {"name": "custom", "codec": "h264", "bitrate": 2_500_000, "height": 720}),
    ({"name": "custom", "quality": "low"}, {"name": "custom", "codec": "h264",
                                            "quality": "low"}),
])
def test_presets_are_cleaned(given, cleaned):
    assert clean_preset(given) == cleaned


@pytest.mark.parametrize(("preset", "field"), [
    ({"name": "custom", "crf": 20, "bitrate": "1M"}, "crf"),
    ({"name": "custom", "codec": "vp9"}, "codec"),
    ({"name": "high_quality", "quality": "low"}, "quality"),
    ({"name": "custom", "bitrate": 50}, "bitrate"),
    ({"name": "custom", "bitrate": "1" * 400}, "bitrate"),
    ({"name": "custom", "bitrate": "1" * 400 + "M"}, "bitrate"),
    ({"name": "custom", "bitrate": "8." + "0" * 400 + "M"}, "bitrate"),
    ({"name": "custom", "bitrate": 10**400}, "bitrate"),
    ({"name": "custom", "bitrate": "8e6"}, "bitrate"),
    ({"name": "custom", "bitrate": "٨M"}, "bitrate"),  # Arabic-Indic 8
    ({"name": "custom", "height": 15}, "height"),
])
def test_wrong_preset_fields_are_named(preset, field):
    with pytest.raises(InvalidInput) as failure:
        clean_preset(preset)
    assert field in failure.value.errors


@pytest.mark.parametrize(("preset", "source", "size"), [
    ({"name": "web"}, (640, 360), (1920, 1080)),
    ({"name": "social"}, (1080, 1920), (1080, 1920)),  # portrait stays portrait
    ({"name": "web"}, (640, 480), (1440, 1080)),
    ({"name": "high_quality"}, (1920, 1080), (3840, 2160)),
    ({"name": "custom", "width": 640}, (1920, 1080), (640, 360)),
    ({"name": "custom", "height": 100}, (1920, 1080), (178, 100)),
    ({"name": "custom", "width": 300, "height": 300}, (1920, 1080), (300, 300)),
    ({}, (1279, 720), (1280, 720)),
])
def test_sizes(preset, source, size):
    assert output_size(preset, source) == size


def test_descriptions():
    assert describe({"name": "web"}) == "web (H.264 8 Mbps, 1080p)"
    assert describe({"name": "custom", "codec": "h265", "crf": 20, "width": 1280}) == \
        "custom (H.265, CRF 20, 1280xauto)"


# --- Real encodes --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "rate"), [("web", 8_000_000), ("social", 12_000_000)])
def test_web_and_social_are_1080p_h264_at_their_bitrate(noise_clip, workdir, name, rate):
    output = encode(noise_clip, workdir, {"name": name, "quality": "low"})

    info = media.probe(output)
    assert output.suffix == ".mp4"
    assert (info.video.codec, info.video.profile, info.video.pix_fmt) == ("h264", "High",
                                                                          "yuv420p")
    assert (info.video.width, info.video.height) == (1920, 1080)
    assert 0.75 * rate <= video_bitrate(output) <= 1.2 * rate, video_bitrate(output)


def test_high_quality_is_4k_prores_422(tmp_path, workdir):
    clip = mh.pattern(tmp_path / "clip.mp4", seconds=0.2, fps=10)

    output = encode(clip, workdir, "high_quality")

    info = media.probe(output)
    assert output.suffix == ".mov"
    assert (info.video.codec, info.video.profile) == ("prores", "Standard")
    assert info.video.pix_fmt.startswith("yuv422p10")
    assert (info.video.width, info.video.height) == (3840, 2160)


def test_custom_sets_codec_crf_and_size(tmp_path, workdir):
    clip = mh.pattern(tmp_path / "clip.mp4", seconds=0.4, fps=10)

    output = encode(clip, workdir, {"name": "custom", "codec": "h265", "crf": 30,
                                    "width": 320})

    info = media.probe(output)
    assert (info.video.codec, info.video.width, info.video.height) == ("hevc", 320, 180)


def test_custom_bitrate(noise_clip, workdir):
    output = encode(noise_clip, workdir, {"name": "custom", "bitrate": "600k", "height": 180})

    assert (media.probe(output).video.width, media.probe(output).video.height) == (320, 180)
    assert 0.75 * 600_000 <= video_bitrate(output) <= 1.2 * 600_000


@pytest.mark.parametrize(("quality", "crf", "subme"), [
    ("ultra", "18.0", "8"), ("high", "23.0", "7"), ("medium", "28.0", "6"),
    ("low", "32.0", "2"),  # subme: x264's slow, medium, fast, veryfast presets
])
def test_quality_levels_set_crf_and_x264_preset(tmp_path, workdir, quality, crf, subme):
    clip = mh.pattern(tmp_path / "clip.mp4", seconds=0.2, fps=10, size="160x90")

    output = encode(clip, workdir, {"name": "custom", "quality": quality})

    x264 = mh.x264_settings(output)
    assert (x264["rc"], x264["crf"], x264["subme"]) == ("crf", crf, subme)


def test_a_timeline_with_a_preset_is_encoded_by_it(dropbox, workdir):
    still = mh.still(dropbox / "media" / "s.png", "red", "640x360")
    job = timeline_job({"width": 640, "height": 360, "fps": 10, "duration": 0.5,
                        "backgrounds": [{"src": str(still), "type": "image"}]},
                       preset=clean_preset({"name": "social", "quality": "low"}))

    output, _, _ = render(job, workdir)

    info = media.probe(output)
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 1920, 1080)
    assert media.measure(output).frames == 5


# --- Presets for After Effects jobs ---------------------------------------------------------


@pytest.mark.django_db
def test_ae_jobs_take_a_preset_but_not_for_image_sequences(api_client, dropbox, user):
    body = {"project_path": "/Users/alice/Dropbox/projects/spot.aep",
            "saved_at": "2025-03-01T12:00:00Z", "mac_username": "alice",
            "nexrender": {"template": {"composition": "Main"}}, "preset": "web"}
    response = api_client.post("/api/jobs", body, format="json")
    assert response.status_code == 202, response.content
    assert Job.objects.get().preset == {"name": "web"}

    body["nexrender"]["template"]["outputExt"] = "png"
    response = api_client.post("/api/jobs", body, format="json")
    assert response.status_code == 400
    assert "image sequence" in response.json()["errors"]["preset"][0]


@pytest.mark.slow
def test_an_ae_render_with_a_preset_is_encoded_after_rendering(farm, user):
    from jobs import lifecycle

    farm.start_worker()
    path = make_project(farm.dropbox, "promo.aep", frames=60, frame_seconds=0.005,
                        width=128, height=72)
    job = lifecycle.submit(actor="api:test", user=user, client="test",
                           project_path="projects/promo.aep",
                           path_key=str(path).casefold(), name="promo",
                           config={"template": {"composition": "main"}}, engine="aerender",
                           preset=clean_preset({"name": "web", "quality": "low"})).job
    phases = set()

    def finished():
        job.refresh_from_db()
        phases.add(job.phase)
        return job.status in (Status.COMPLETED, Status.FAILED)

    wait_for(finished, timeout=120, interval=0.02)
    assert job.status == Status.COMPLETED, job.error
    assert Phase.ENCODING in phases
    assert "=== encoding with preset web (H.264 8 Mbps, 1080p, quality low) ===" \
        in job.log.text()
    output = output_file(job.output_path)
    assert output.suffix == ".mp4" and output.name.startswith("promo_")
    info = media.probe(output)
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 1920, 1080)
    assert media.measure(output).frames == 60
    # Only the encoded file is published: AE's own .avi stays in the (removed) work folder.
    assert [p.suffix for p in output.parent.iterdir()] == [".mp4"]
    # Its poster frame follows the completion (a follow-up of the node).
    wait_for(lambda: Job.objects.filter(pk=job.pk, has_thumbnail=True).exists(), timeout=60,
             message="no poster frame after completion")


def test_the_default_encoding_is_h264_high_quality():
    default = encoding({}, (640, 360))
    assert default.codec == "h264" and default.ext == "mp4" and default.size == (640, 360)
    assert default.video_args[default.video_args.index("-crf") + 1] == "23"
