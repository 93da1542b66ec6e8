"""The review preview as a render node makes it: the same composition with After
Effects' "Draft Settings" template (half resolution), through the real engines
and the aerender simulator, then the small H.264 a reviewer watches."""

from __future__ import annotations

import pytest

from jobs import media
from jobs.node.engines import get_engine
from jobs.node.engines.base import DRAFT_SETTINGS, preview_template
from jobs.node.engines.ffmpeg import transcode
from jobs.submission import presets
from jobs.submission.errors import InvalidInput
from tests.helpers.common import make_project
from tests.node.test_engines import make_job, render


def make_project_file(dropbox, **behaviour):
    return make_project(dropbox, "spot.aep", frames=8, width=320, height=180, **behaviour)


def test_the_preview_template_is_the_draft_of_the_same_frames():
    template = {"composition": "Main", "settingsTemplate": "Best Settings",
                "renderSettings": "Quality:Best;Resolution:Full", "outputModule": "H.264",
                "outputExt": "mp4", "frameStart": 10, "frameEnd": 40}

    assert preview_template(template) == {
        "composition": "Main", "settingsTemplate": DRAFT_SETTINGS, "outputModule": "H.264",
        "outputExt": "mp4", "frameStart": 10, "frameEnd": 40}
    assert template["settingsTemplate"] == "Best Settings"  # the final render's is untouched


def test_an_image_sequence_previews_as_a_movie():
    template = {"composition": "Main", "outputModule": "PNG Sequence", "outputExt": "png",
                "outputSettings": "Format:PNG", "imageSequence": True}

    assert preview_template(template) == {"composition": "Main",
                                          "settingsTemplate": DRAFT_SETTINGS}


@pytest.mark.parametrize("needs_preview", [True, False])
def test_aerender_gets_draft_settings_only_for_the_preview(dropbox, simulator, tmp_path,
                                                           needs_preview):
    job = make_job(make_project_file(dropbox), engine="aerender",
                   settingsTemplate="Best Settings")
    job.needs_preview = needs_preview
    (tmp_path / "work").mkdir()

    argv = get_engine("aerender").command(job, tmp_path / "work").argv

    wanted = DRAFT_SETTINGS if needs_preview else "Best Settings"
    assert argv[argv.index("-RStemplate") + 1] == wanted


@pytest.mark.slow
def test_nexrender_renders_the_preview_at_half_size(dropbox, simulator, nexrender_cli,
                                                    tmp_path):
    job = make_job(make_project_file(dropbox), outputExt="avi",
                   settingsTemplate="Best Settings")
    job.needs_preview = True
    code, lines, progress, _ = render("nexrender", job, tmp_path / "preview")
    assert code == 0, "\n".join(lines)
    log = "\n".join(lines)
    assert "-RStemplate Draft Settings" in log  # what nexrender passed to aerender
    assert "Render Settings: Draft Settings" in log
    draft = media.probe(get_engine("nexrender").find_output(job, tmp_path / "preview"))
    assert (draft.video.width, draft.video.height) == (160, 90)

    job.needs_preview = False
    code, lines, _, _ = render("nexrender", job, tmp_path / "final")
    assert code == 0, "\n".join(lines)
    assert "-RStemplate Best Settings" in "\n".join(lines)
    final = media.probe(get_engine("nexrender").find_output(job, tmp_path / "final"))
    assert (final.video.width, final.video.height) == (320, 180)


def test_the_preview_encoding_is_a_small_h264(tmp_path):
    from tests.helpers.media import pattern

    source = pattern(tmp_path / "draft.mp4", seconds=0.4, size="1920x1080")
    step = transcode(source, tmp_path, presets.PREVIEW)
    assert step.output.suffix == ".mp4"
    argv = step.command.argv
    assert argv[argv.index("-c:v") + 1] == "libx264"
    assert "scale=960:540" in argv[argv.index("-vf") + 1]
    small = transcode(pattern(tmp_path / "small.mp4", seconds=0.4, size="320x180"), tmp_path,
                      presets.PREVIEW)
    assert "scale=320:180" in small.command.argv[small.command.argv.index("-vf") + 1]


def test_clients_cannot_ask_for_the_internal_preview_size():
    with pytest.raises(InvalidInput) as refused:
        presets.clean_preset({"name": "custom", "max_short_side": 10})
    assert "max_short_side" in refused.value.errors
