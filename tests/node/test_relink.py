"""Relinking footage for After Effects: a project a Mac saved, rendered here.

After Effects would look for the Mac's paths (and, failing that, beside the
temp copy the engines render), so every footage file preflight found in this
machine's Dropbox is handed to AE by a script. The script is ExtendScript
(ES3): it is run here with node.js against a stand-in ``app`` to see which
items it relinks to which files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from jobs.models import Job, Status
from jobs.node.engines import get_engine, relink
from jobs.node.engines.base import RenderError
from jobs.node.procs import RenderProcess
from tests.helpers.aep import promo_project, settle, submit
from tests.helpers.farm import patch_like_nexrender

# What the script may use of After Effects' object model, recording what it does.
STAND_IN = """
var calls = [];
function FootageItem(id) { this.id = id; }
FootageItem.prototype.replace = function (file) { calls.push([this.id, file.path, false]); };
FootageItem.prototype.replaceWithSequence = function (file, force) {
    calls.push([this.id, file.path, true]); };
function File(path) { this.path = path; this.exists = EXISTING.indexOf(path) >= 0; }
var app = {project: {itemByID: function (id) {
    return ITEMS.indexOf(id) >= 0 ? new FootageItem(id) : null; }}};
"""


def run_script(script: str, items: list[int], existing: list[str]) -> list:
    node = shutil.which(django_settings.NODE_BINARY)
    if node is None:
        pytest.fail("node.js is needed to run the relinking script (make setup installs it)")
    program = (f"var ITEMS = {json.dumps(items)}; var EXISTING = {json.dumps(existing)};"
               + STAND_IN + script + "\nprocess.stdout.write(JSON.stringify(calls));")
    done = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def mac_project(fast_checks, dropbox, user):
    """The promo project as an artist's Mac saved it, its footage synced into Dropbox."""
    promo = promo_project(dropbox, present={"logo.png", "background.png", "card.png"})
    job = settle(submit(user, promo.path, continueOnMissing=True))
    assert job.status == Status.QUEUED, job.error
    return promo, job


def ids_by_name(job) -> dict[str, int]:
    return {entry["name"]: entry["id"] for entry in job.project["footage"]}


def test_every_footage_file_found_here_is_relinked_and_nothing_else(mac_project):
    promo, job = mac_project
    ids = ids_by_name(job)

    found = relink.links(job)

    assert sorted(found) == sorted([
        (ids["logo.png"], str(promo.files["logo.png"].resolve()), False),
        (ids["background.png"], str(promo.files["background.png"].resolve()), False),
        (ids["card.png"], str(promo.files["card.png"].resolve()), False),
    ])  # plate.png is missing: After Effects reports it, nothing to relink


def test_the_script_points_each_item_at_its_file_in_after_effects(mac_project):
    promo, job = mac_project
    ids = ids_by_name(job)
    here = [str(path.resolve()) for path in promo.files.values()]

    calls = run_script(relink.script(job), items=list(ids.values()), existing=here)

    assert sorted(calls) == sorted([[ids[name], str(promo.files[name].resolve()), False]
                                    for name in ("logo.png", "background.png", "card.png")])


def test_a_file_that_vanished_before_the_render_is_left_to_after_effects(mac_project):
    promo, job = mac_project
    ids = ids_by_name(job)
    gone = str(promo.files["card.png"].resolve())
    script = relink.script(job)
    promo.files["card.png"].unlink()
    # Found by preflight, gone when AE runs the script: AE keeps its own path (and
    # reports the file missing), the script does not relink to nothing.
    here = [str(promo.files[name].resolve()) for name in ("logo.png", "background.png")]

    calls = run_script(script, items=list(ids.values()), existing=here)

    assert gone not in [path for _, path, _ in calls]
    assert len(calls) == 2


def test_names_that_would_break_a_script_stay_data(fast_checks, dropbox, user):
    # Quotes, a comment end, a dollar, accents and U+2028 (a line end in ES3) in a folder name.
    odd = 'it\'s "final" cut */ $v2 été \u2028'

    promo = promo_project(dropbox, folder=f"projects/{odd}",
                          present={"logo.png", "background.png", "card.png"})
    job = settle(submit(user, promo.path, continueOnMissing=True))
    ids = ids_by_name(job)
    here = [str(path.resolve()) for path in promo.files.values()]

    calls = run_script(relink.script(job), items=list(ids.values()), existing=here)

    assert [ids["logo.png"], str(promo.files["logo.png"].resolve()), False] in calls
    assert odd in str(promo.files["logo.png"])


def test_footage_saved_on_this_machine_needs_no_script(fast_checks, dropbox, user):
    promo = promo_project(dropbox, present={"logo.png", "background.png", "card.png"})
    job = settle(submit(user, promo.path, continueOnMissing=True))
    for entry in job.project["footage"]:
        # As if this machine had saved it: the stored paths open the files here.
        local = promo.files.get(entry["name"])
        entry["path"] = str(local) if local else entry["path"]
    entry_names = {e["name"] for e in job.project["footage"] if e["status"] == "found"}
    assert entry_names == {"logo.png", "background.png", "card.png"}

    assert relink.links(job) == []
    assert relink.script(job) is None


def test_footage_that_became_a_symlink_out_of_dropbox_is_not_relinked(mac_project, tmp_path):
    promo, job = mac_project
    outside = tmp_path / "outside.png"
    outside.write_bytes(promo.files["logo.png"].read_bytes())
    promo.files["logo.png"].unlink()
    os.symlink(outside, promo.files["logo.png"])

    assert str(outside) not in [path for _, path, _ in relink.links(job)]
    assert len(relink.links(job)) == 2


def test_the_aerender_engine_runs_the_script_before_rendering(mac_project, simulator,
                                                               tmp_path):
    _, job = mac_project
    workdir = tmp_path / "work"
    workdir.mkdir()
    patch_like_nexrender(simulator)

    argv = get_engine("aerender").command(job, workdir).argv

    script = Path(argv[argv.index("-r") + 1])
    assert script.parent == workdir and script.read_text() == relink.script(job)


def test_stock_after_effects_cannot_run_the_script_and_the_job_says_why(
        mac_project, simulator, tmp_path):
    _, job = mac_project
    workdir = tmp_path / "work"
    workdir.mkdir()

    with pytest.raises(RenderError, match="needs nexrender's patch"):
        get_engine("aerender").command(job, workdir)
    # What stock aerender itself answers (tests/data/aelogs/06a_*: an illegal flag).
    refused = subprocess.run([str(simulator), "-project", "x.aep", "-r", "x.jsx"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "Illegal argument flag: -r" in refused.stdout + refused.stderr


def test_nexrender_puts_the_script_in_the_one_it_runs_in_after_effects(
        mac_project, simulator, nexrender_cli, tmp_path):
    # Through the real nexrender CLI: the script asset must end up in the script
    # nexrender hands to aerender (-r), ahead of the job's own asset scripts.
    _, job = mac_project
    job = Job.objects.get(pk=job.pk)
    workdir = tmp_path / "work"
    workdir.mkdir()
    command = get_engine("nexrender").command(job, workdir)
    with RenderProcess(command.argv, command.env, command.cwd,
                       marker=f"test/{uuid.uuid4()}/lease") as process:
        while process.poll() is None:
            process.read(timeout=1)

    [generated] = (workdir / job.id.hex).glob("nexrender-*-script.jsx")
    text = generated.read_text()
    assert relink.MARKER in text
    data = json.dumps([list(link) for link in relink.links(job)], ensure_ascii=True)
    assert f"var links = {data};" in text
