"""Data migrations: rows written before a change read right after it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("jobs", "0010_review_batches")]
AFTER = [("jobs", "0009_relative_paths")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    """Every app's newest migration: later ones than AFTER depend on it too."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def old_jobs(settings, tmp_path):
    settings.DROPBOX_PATH = "/srv/Dropbox"
    settings.RENDER_OUTPUT_DIR = "/srv/Dropbox/renders"
    apps = migrate(BEFORE)
    Job = apps.get_model("jobs", "Job")
    rows = {
        "here": Job.objects.create(
            status="COMPLETED", project_path="/srv/Dropbox/projects/spot.aep",
            output_path="/srv/Dropbox/renders/spot_1.mov",
            config={"template": {"composition": "Main"}, "assets": [
                {"type": "image", "src": "file:///srv/Dropbox/brand/logo%201.png"},
                {"type": "data", "property": "Source Text", "value": "x"}]}),
        "other_node": Job.objects.create(
            status="FAILED", project_path="C:\\Users\\bob\\Dropbox (Team)\\a\\b.aep",
            config={"template": {"composition": "Main"}, "assets": [
                {"type": "video", "src": "file:///C:/Users/bob/Dropbox/clips/c.mov"}]}),
        "timeline": Job.objects.create(
            status="QUEUED", engine="ffmpeg", config={
                "width": 640, "height": 360,
                "backgrounds": [{"src": "/srv/Dropbox/media/bg.png", "type": "image"},
                                {"src": "https://cdn.studio.test/x.mp4", "type": "video"}],
                "audio": [{"src": "/srv/Dropbox/media/a.wav"}]}),
        "stranger": Job.objects.create(status="FAILED", project_path="/etc/passwd.aep"),
    }
    apps.get_model("jobs", "JobPreview").objects.create(
        job_id=rows["here"].pk, path="/srv/Dropbox/renders/previews/abc.mp4", size=1)
    batch = apps.get_model("jobs", "Batch").objects.create(
        project_path="/srv/Dropbox/templates/lower third.aep", path_key="k",
        output_name="{row}", folder="b")
    rows["batch"] = batch
    yield Job, {name: row.pk for name, row in rows.items()}
    migrate(latest())  # leave the test database as the other tests expect it


def test_absolute_paths_become_relative_to_the_roots(old_jobs):
    _, ids = old_jobs
    Job = migrate(AFTER).get_model("jobs", "Job")

    here = Job.objects.get(pk=ids["here"])
    assert (here.project_path, here.output_path) == ("projects/spot.aep", "spot_1.mov")
    assert here.config["assets"][0]["src"] == "brand/logo 1.png"
    assert "src" not in here.config["assets"][1]
    # Another machine's Dropbox folder: cut after the folder.
    other = Job.objects.get(pk=ids["other_node"])
    assert other.project_path == "a/b.aep"
    assert other.config["assets"][0]["src"] == "clips/c.mov"
    timeline = Job.objects.get(pk=ids["timeline"])
    assert [bg["src"] for bg in timeline.config["backgrounds"]] == [
        "media/bg.png", "https://cdn.studio.test/x.mp4"]
    assert timeline.config["audio"][0]["src"] == "media/a.wav"
    # Nothing to place it by: left as it was (its file is "not inside the Dropbox folder").
    assert Job.objects.get(pk=ids["stranger"]).project_path == "/etc/passwd.aep"
    apps = migrate(AFTER)
    assert apps.get_model("jobs", "JobPreview").objects.get().path == "previews/abc.mp4"
    assert apps.get_model("jobs", "Batch").objects.get().project_path == \
        "templates/lower third.aep"


def test_the_migration_goes_back(old_jobs):
    _, ids = old_jobs
    migrate(AFTER)
    Job = migrate(BEFORE).get_model("jobs", "Job")

    here = Job.objects.get(pk=ids["here"])
    assert here.project_path == "/srv/Dropbox/projects/spot.aep"
    assert here.output_path == "/srv/Dropbox/renders/spot_1.mov"
    assert here.config["assets"][0]["src"] == "file:///srv/Dropbox/brand/logo%201.png"
    apps = migrate(BEFORE)
    assert apps.get_model("jobs", "JobPreview").objects.get().path == \
        "/srv/Dropbox/renders/previews/abc.mp4"


DASHBOARD_BEFORE = [("jobs", "0012_render_stats")]
DASHBOARD = [("jobs", "0014_dashboard")]


def test_jobs_get_their_composition_from_their_config():
    Job = migrate(DASHBOARD_BEFORE).get_model("jobs", "Job")
    ids = {
        "ae": Job.objects.create(status="COMPLETED", config={"template": {
            "composition": "Main 16x9"}}).pk,
        "timeline": Job.objects.create(status="QUEUED", engine="ffmpeg",
                                       config={"width": 640, "height": 360}).pk,
        "odd": Job.objects.create(status="FAILED", config={"template": "main"}).pk,
    }
    try:
        Job = migrate(DASHBOARD).get_model("jobs", "Job")
        assert Job.objects.get(pk=ids["ae"]).composition == "Main 16x9"
        assert Job.objects.get(pk=ids["timeline"]).composition == ""
        assert Job.objects.get(pk=ids["odd"]).composition == ""
    finally:
        migrate(latest())
