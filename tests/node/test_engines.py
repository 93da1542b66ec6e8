"""The engines, driving the real pinned nexrender CLI and the installed aerender simulator."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

from jobs.models import Job
from jobs.node.engines import RenderCommand, RenderError, get_engine
from jobs.node.engines.nexrender import PRELOAD, build_job
from jobs.node.procs import RenderProcess
from tests.helpers.aelogs import all_samples, sample_lines
from tests.helpers.common import make_project


def ffmpeg_frames(path: Path) -> list[str]:
    """Decode every frame; return their checksums (fails if ffmpeg cannot decode)."""
    import imageio_ffmpeg

    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "framemd5", "-"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    return [line.rsplit(",", 1)[-1].strip() for line in result.stdout.splitlines()
            if line and not line.startswith("#")]


def make_job(project: Path, engine: str = "nexrender", assets=None, **template) -> Job:
    template.setdefault("composition", "Main")
    return Job(id=uuid.uuid4(), engine=engine, project_path=str(project),
               config={"template": template, "assets": assets or []})


def render(engine_name: str, job: Job, workdir: Path):
    engine = get_engine(engine_name)
    workdir.mkdir(parents=True, exist_ok=True)
    command = engine.command(job, workdir)
    assert isinstance(command, RenderCommand)
    progress = engine.progress(job)
    lines: list[str] = []
    percents = []
    with RenderProcess(command.argv, command.env, command.cwd,
                       marker=f"test/{job.id}/lease") as process:
        while (code := process.poll()) is None:
            for line in process.read(timeout=1):
                lines.append(line)
                if progress.feed(line):
                    percents.append(progress.percent)
    return code, lines, progress, percents


@pytest.fixture
def workdir(tmp_path):
    return tmp_path / "work"


def test_nexrender_renders_with_assets_and_reports_every_frame(
        dropbox, simulator, nexrender_cli, workdir):
    project = make_project(dropbox, "my spot \u00e9.aep", frames=10, fps=25)
    logo = dropbox / "projects" / "logo.png"
    logo.write_bytes(b"\x89PNG not really")
    job = make_job(project, assets=[
        {"type": "image", "src": logo.as_uri(), "layerName": "logo"},
        {"type": "data", "layerName": "title", "property": "Source Text", "value": "Hi"},
    ])
    code, lines, progress, percents = render("nexrender", job, workdir)
    log = "\n".join(lines)
    assert code == 0, log
    assert "> job rendering successfully finished" in log
    assert progress.frames_total == 10
    assert progress.frames_done == 10
    assert progress.percent == 100.0
    assert percents == sorted(percents) and percents[-1] == 100.0
    output = get_engine("nexrender").find_output(job, workdir)
    assert output == workdir / job.id.hex / "result.avi"
    frames = ffmpeg_frames(output)
    assert len(frames) == 10
    assert len(set(frames)) == 10  # a moving picture, not one frame repeated
    # The asset was copied under the name the manager gave it.
    assert (workdir / job.id.hex / "asset000.png").read_bytes() == logo.read_bytes()
    # Nothing was written beside the project in Dropbox.
    assert sorted(p.name for p in (dropbox / "projects").iterdir()) == \
        ["logo.png", "my spot \u00e9.aep"]


def test_nexrender_failure_exits_non_zero_with_the_aerender_error(
        dropbox, simulator, nexrender_cli, workdir):
    project = make_project(dropbox, compositions=["Other"])
    job = make_job(project)
    code, lines, progress, _ = render("nexrender", job, workdir)
    assert code != 0
    # nexrender copies the error, prints aerender's output again and a stack trace.
    assert any("rendering reached an error: No comp was found" in line for line in lines)
    assert any(line.startswith("    at ") for line in lines)
    assert progress.errors == ["No comp was found with the given name."]
    with pytest.raises(RenderError) as failed:
        get_engine("nexrender").check(job, workdir, progress, code)
    assert failed.value.code == "missing_composition" and failed.value.permanent
    assert str(failed.value).startswith("After Effects: No comp was found with the given name."
                                        "\nThe job asks for the composition “Main”")
    with pytest.raises(RenderError, match="Couldn't find a result file"):
        get_engine("nexrender").find_output(job, workdir)


def test_nexrender_job_json_is_built_by_the_manager_only(dropbox, simulator, workdir, settings):
    project = make_project(dropbox)
    clip = dropbox / "projects" / "clip one.mov"
    # Keys a client might try to slip through (the validator refuses them
    # first; the engine must not pass them on even so).
    job = make_job(project, assets=[
        {"type": "video", "src": clip.as_uri(), "layerIndex": 2, "name": "../../evil.mov"},
        {"type": "data", "layerName": "t", "property": "Source Text", "value": "x",
         "expression": "system.callSystem('calc')"},
    ], output="/etc/passwd", frameStart=0, frameEnd=9, frameIncrement=1)
    job.config["uid"] = ".."
    job.config["actions"] = {"postrender": [{"module": "/tmp/evil.js"}]}
    workdir.mkdir()
    get_engine("nexrender").command(job, workdir)
    built = json.loads((workdir / "job.json").read_text())
    assert built["uid"] == job.id.hex
    assert built["actions"] == {}
    assert "output" not in built and "output" not in built["template"]
    assert built["template"]["src"] == project.as_uri()
    assert built["template"]["name"] == "project.aep"
    assert built["template"]["incrementFrame"] == 1
    assert [asset["name"] for asset in built["assets"]] == ["asset000.mov", "asset001"]
    assert "expression" not in built["assets"][1]
    assert all(set(asset) <= {"type", "src", "name", "layerName", "layerIndex", "property",
                              "value", "composition"} for asset in built["assets"])
    for bad in ({"type": "script", "src": "file:///x.jsx"},
                {"type": "static", "src": "data:,x"},
                {"type": "image", "src": "https://example.com/x.png", "layerName": "l"}):
        with pytest.raises(RenderError):
            build_job(make_job(project, assets=[bad]))


def test_nexrender_command_line_and_environment(dropbox, simulator, workdir, settings,
                                                 monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/x")
    monkeypatch.setenv("API_TOKEN_BRAVO", "secret")
    job = make_job(make_project(dropbox))
    workdir.mkdir()
    command = get_engine("nexrender").command(job, workdir)
    assert command.argv == [
        settings.NODE_BINARY, str(settings.NEXRENDER_CLI), "--file", str(workdir / "job.json"),
        "--binary", str(settings.AERENDER_PATH), "--workpath", str(workdir),
        "--skip-cleanup", "--no-analytics", "--debug"]
    assert command.cwd == workdir
    assert "DATABASE_URL" not in command.env and "API_TOKEN_BRAVO" not in command.env
    if sys.platform not in ("win32", "darwin"):
        assert f'--require "{PRELOAD}"' in command.env["NODE_OPTIONS"]


def test_nexrender_frame_range_and_increment_reach_aerender(
        dropbox, simulator, nexrender_cli, workdir):
    project = make_project(dropbox, frames=20)
    job = make_job(project, frameStart=2, frameEnd=11, frameIncrement=2)
    code, lines, progress, _ = render("nexrender", job, workdir)
    assert code == 0, "\n".join(lines)
    assert progress.frames_total == 5
    assert progress.frames_done == 5
    assert progress.percent == 100.0
    assert len(ffmpeg_frames(get_engine("nexrender").find_output(job, workdir))) == 5


def test_nexrender_mp4_output(dropbox, simulator, nexrender_cli, workdir):
    job = make_job(make_project(dropbox, frames=8), outputModule="H.264", outputExt="mp4")
    code, lines, progress, _ = render("nexrender", job, workdir)
    assert code == 0, "\n".join(lines)
    assert not any("SIMULATOR WARNING" in line for line in lines)  # ffmpeg encoded it
    output = get_engine("nexrender").find_output(job, workdir)
    assert output.name == "result.mp4"
    assert len(ffmpeg_frames(output)) == 8


def test_nexrender_image_sequence_is_zipped(dropbox, simulator, nexrender_cli, workdir):
    job = make_job(make_project(dropbox, frames=6), outputExt="png")
    code, lines, progress, _ = render("nexrender", job, workdir)
    assert code == 0, "\n".join(lines)
    output = get_engine("nexrender").find_output(job, workdir)
    assert output == workdir / "result.zip"
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        assert names == [f"result_{i:05d}.png" for i in range(6)]
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
        archive.extract(names[3], workdir / "check")
    assert len(ffmpeg_frames(workdir / "check" / names[3])) == 1


def test_aerender_engine_renders_a_copy_of_the_project(dropbox, simulator, workdir):
    project = make_project(dropbox, frames=7)
    job = make_job(project, engine="aerender", settingsTemplate="Best Settings",
                   continueOnMissing=True)
    code, lines, progress, _ = render("aerender", job, workdir)
    assert code == 0, "\n".join(lines)
    assert progress.frames_done == progress.frames_total == 7
    assert progress.percent == 100.0
    command = get_engine("aerender").command(job, workdir)
    assert command.argv[:3] == [str(simulator), "-project", str(workdir / "project.aep")]
    assert "-continueOnMissingFootage" in command.argv
    assert command.argv[command.argv.index("-RStemplate") + 1] == "Best Settings"
    output = get_engine("aerender").find_output(job, workdir)
    assert output == workdir / "result.avi"
    assert len(ffmpeg_frames(output)) == 7
    assert [p.name for p in (dropbox / "projects").iterdir()] == [project.name]


def test_aerender_engine_refuses_assets_and_reports_missing_output(dropbox, simulator, workdir):
    project = make_project(dropbox)
    workdir.mkdir()
    job = make_job(project, engine="aerender", assets=[
        {"type": "data", "layerName": "t", "property": "Source Text", "value": "x"}])
    with pytest.raises(RenderError, match="nexrender"):
        get_engine("aerender").command(job, workdir)
    with pytest.raises(RenderError, match="Couldn't find a result file"):
        get_engine("aerender").find_output(make_job(project, engine="aerender"), workdir)
    with pytest.raises(RenderError, match="Unknown render engine"):
        get_engine("blender")


def test_a_crashing_render_exits_with_its_code_part_way(dropbox, simulator, workdir):
    project = make_project(dropbox, frames=10, crash={"after_frames": 3, "exit_code": 3})
    code, lines, progress, _ = render("aerender", make_job(project, engine="aerender"), workdir)
    assert code == 3
    assert progress.frames_done == 3
    assert progress.percent == pytest.approx(30.0)
    assert not progress.finished


# --- No way out of Dropbox, right before a file is opened ----------------------------------


@pytest.fixture
def outside(tmp_path):
    """A file outside the Dropbox folder that a symlink delivered later points at."""
    return make_project(tmp_path / "outside", "secret.aep", frames=3)


def test_engines_refuse_a_project_that_became_a_symlink_out_of_dropbox(
        dropbox, simulator, workdir, outside):
    link = dropbox / "projects" / "spot.aep"
    link.symlink_to(outside)
    workdir.mkdir()
    for engine in ("aerender", "nexrender"):
        job = make_job(link, engine=engine)
        job.project_path = "projects/spot.aep"
        with pytest.raises(RenderError, match="outside the Dropbox folder") as refused:
            get_engine(engine).command(job, workdir)
        assert refused.value.permanent
    # Nothing of the outside file reached the render's folder.
    assert list(workdir.iterdir()) == []


def test_nexrender_refuses_an_asset_symlinked_out_of_dropbox(dropbox, simulator, workdir,
                                                             outside):
    project = make_project(dropbox)
    (dropbox / "projects" / "logo.png").symlink_to(outside)
    job = make_job(project, assets=[{"type": "image", "src": "projects/logo.png",
                                     "layerName": "logo"}])
    with pytest.raises(RenderError, match="Asset 0: .*outside the Dropbox folder"):
        build_job(job)


def test_the_engines_open_the_real_file_of_this_machines_dropbox(dropbox, simulator, workdir):
    make_project(dropbox, "real.aep")
    (dropbox / "projects" / "current.aep").symlink_to(dropbox / "projects" / "real.aep")
    (dropbox / "projects" / "logo.png").write_bytes(b"png")
    job = make_job(dropbox / "x.aep", assets=[{"type": "image", "src": "projects/logo.png",
                                               "layerName": "logo"}])
    job.project_path = "projects/current.aep"

    built = build_job(job)

    assert built["template"]["src"] == (dropbox / "projects" / "real.aep").as_uri()
    assert built["assets"][0]["src"] == (dropbox / "projects" / "logo.png").as_uri()


def test_the_line_a_render_is_under_way_at_is_aerenders_version_in_real_logs(
        dropbox, simulator, workdir):
    # Worker.open_ahead waits for it before the render before publishes: in logs
    # users posted it is aerender's version line (indented in some), and nothing
    # printed before it (Qt's, the GPU's, nexrender's own lines) passes for it.
    project = make_project(dropbox / "p.aep")
    commands = []
    for name in ("nexrender", "aerender"):
        (workdir / name).mkdir(parents=True)
        commands.append(get_engine(name).command(make_job(project, name), workdir / name))
    real = [prefix for prefix in all_samples() if not prefix.startswith("9")]  # 9x: constructed
    with_version = 0
    for prefix in real:
        lines = sample_lines(prefix)
        version = next((i for i, line in enumerate(lines)
                        if line.strip().startswith("aerender version")), None)
        with_version += version is not None
        for command in commands:
            seen = [i for i, line in enumerate(lines) if command.under_way(line)]
            assert seen[:1] == ([] if version is None else [version]), (prefix, seen[:3])
    assert with_version >= 15  # the indented one (07_) among them
