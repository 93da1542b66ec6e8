"""The README's curl commands, run as written against a real server (daphne): the
submission answers 202, and the download of a job that is not done yet fails with
curl's -f instead of saving the 409 as a file named "download"."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from accounts.models import MacUsername, User
from jobs.models import Job, Status
from tests.helpers import browser as browser_helpers
from tests.helpers.common import REPO

daphne = browser_helpers.daphne

pytestmark = [pytest.mark.slow]


def readme_commands() -> dict[str, str]:
    """The README's first shell block: its BASE and TOKEN lines and its three curls."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(BASE=.*?)```", text, re.S)
    assert block, "the README has no shell block starting with BASE="
    # A command starts at the left margin; its indented lines continue it (a quoted
    # body spans lines); comments stand alone.
    commands: list[str] = []
    for line in block.group(1).splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace() and commands:
            commands[-1] += "\n" + line
        else:
            commands.append(line)
    found = {"base": next(c for c in commands if c.startswith("BASE=")),
             "token": next(c for c in commands if c.startswith("TOKEN=")),
             "submit": next(c for c in commands if "POST" in c),
             "status": next(c for c in commands if c.startswith("curl") and "POST" not in c
                            and "download" not in c),
             "download": next(c for c in commands if "/download" in c)}
    return found


def test_the_readme_names_where_the_demo_password_is_kept():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "var/demo-password.txt" in text.split("## How it works")[0]


def test_the_readme_curls_work_as_written(farm, daphne, api_token, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    commands = readme_commands()
    # `make run`'s demo admin owns the macOS username "demo" (demo_setup).
    demo = User.objects.create_user("demo-admin", email="admin@example.com")
    MacUsername.objects.create(user=demo, name="demo")
    # Where `make run` keeps the token, in a folder of our own.
    shell = tmp_path / "shell"
    (shell / "var").mkdir(parents=True)
    (shell / "var" / "demo-token.txt").write_text(api_token)
    assert "-f" in commands["download"].split() or "--fail" in commands["download"]

    def run(*lines: str) -> subprocess.CompletedProcess:
        # BASE as `make run` printed it for this server (the README's own line names
        # the default port).
        script = "\n".join([f"BASE={daphne.base}", commands["token"], *lines])
        return subprocess.run(["bash", "-c", script], cwd=shell, capture_output=True,
                              text=True, timeout=60)

    submitted = run(commands["submit"])
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    assert Job.objects.get(pk=job_id).status in (Status.PENDING, Status.VALIDATING,
                                                 Status.FAILED)

    status = run(commands["status"].replace("<id>", job_id))
    assert status.returncode == 0 and json.loads(status.stdout)["id"] == job_id

    # Not COMPLETED: a 409, and with -f curl says so and saves nothing.
    download = run(commands["download"].replace("<id>", job_id))
    assert download.returncode == 22, (download.returncode, download.stderr)
    assert "409" in download.stderr
    assert sorted(p.name for p in shell.iterdir()) == ["var"]
