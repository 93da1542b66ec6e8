"""The aerender simulator given real .aep files: it reads them with py-aep like AE would."""

from __future__ import annotations

import re
import subprocess

from tests.helpers.aep import promo_project, real_sample


def run(simulator, project, comp, tmp_path, *extra):
    result = subprocess.run(
        [str(simulator), "-project", str(project), "-comp", comp,
         "-output", str(tmp_path / "out.avi"), *extra],
        capture_output=True, text=True, timeout=120)
    # Frame lines with or without "PROGRESS:" (the simulator prints the newer style).
    frames = re.findall(r"^(?:PROGRESS:)?\s+(\d+:\d\d:\d\d:\d\d) \((\d+)\)", result.stdout,
                        re.M)
    return result, frames


def test_renders_the_work_area_of_the_requested_composition(simulator, dropbox, tmp_path):
    promo = promo_project(dropbox)  # main: 25 fps, work area 1 s + 2 s
    result, frames = run(simulator, promo.path, "main", tmp_path)
    assert result.returncode == 0, result.stdout
    assert len(frames) == 50
    assert frames[0] == ("0:00:01:00", "1") and frames[-1] == ("0:00:02:24", "50")
    assert "Frame Rate: 25.00" in result.stdout
    assert (tmp_path / "out.avi").stat().st_size > 0
    # -s/-e pick from the composition, as with aerender.
    result, frames = run(simulator, promo.path, "intro", tmp_path, "-s", "0", "-e", "9")
    assert result.returncode == 0
    assert len(frames) == 10
    assert "Frame Rate: 30.00" in result.stdout


def test_a_composition_that_is_not_there_fails_like_after_effects(simulator, dropbox,
                                                                   tmp_path):
    promo = promo_project(dropbox)
    result, frames = run(simulator, promo.path, "Main", tmp_path)
    assert result.returncode != 0
    assert frames == []
    # aerender's words (nexrender issue #148, AE 13.5 on Windows).
    assert re.search(r"^aerender error: no comp was found with the given name\.$",
                     result.stdout, re.I | re.M), result.stdout


def test_real_project_saved_by_after_effects(simulator, tmp_path):
    # @nexrender/action-lottie@1.62.9, lib/assets/templates/__bodymovin_sound_template.aep:
    # AE 2020 on Windows, composition "__bodymovin_Audio", 60 fps, 94 frames.
    result, frames = run(simulator, real_sample("lottie_ae2020"), "__bodymovin_Audio",
                         tmp_path)
    assert result.returncode == 0, result.stdout
    assert len(frames) == 94
    assert "Frame Rate: 60.00" in result.stdout


def test_a_project_py_aep_cannot_read_gets_the_defaults(simulator, tmp_path):
    # bodymovin@4.13.0, build/old_parser/helperProject.aep: AE CS6, too old for py-aep.
    result, frames = run(simulator, real_sample("cs6"), "anything", tmp_path)
    assert result.returncode == 0, result.stdout
    assert len(frames) == 10
