"""Prepare the first-run demo: an admin, an API token and a simulator project.

Safe to run any number of times (``make run`` runs it on every start): the
admin is created once, the token is kept in DATA_DIR/demo-token.txt and
reused while it still verifies, and the sample project is rewritten only when
its content differs, so its modification time (the ``saved_at`` printed in
the curl) stays put.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import ApiToken, MacUsername, User
from jobs import lifecycle
from jobs.models import Engine, Job
from jobs.submission.timeline import clean_timeline

ADMIN_EMAIL = "admin@example.com"
ADMIN_USERNAME = "admin"
MAC_USERNAME = "demo"
CLIENT = "demo"
SAMPLE = {"frames": 48, "fps": 24, "frame_seconds": 0.05}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


class Command(BaseCommand):
    help = ("Create the demo admin, an API token for client 'demo' and a sample simulator "
            "project, then print the URL, the login and a curl that submits a job.")

    def add_arguments(self, parser):
        parser.add_argument("--reset-password", action="store_true",
                            help="Give the demo admin a new password even if it was changed")

    def handle(self, *args, reset_password=False, **options):
        data_dir = Path(settings.DATA_DIR)
        with transaction.atomic():
            password, password_note = self.admin(data_dir / "demo-password.txt", reset_password)
            self.token(data_dir / "demo-token.txt")
        project = self.sample_project()
        self.report(password, password_note, project)
        self.timeline_demo()

    # --- The pieces ---------------------------------------------------------------

    def admin(self, password_file: Path, reset: bool) -> tuple[str | None, str]:
        user = (User.objects.filter(email__iexact=ADMIN_EMAIL).first()
                or User.objects.filter(username=ADMIN_USERNAME).first())
        stored = _read(password_file)
        note = ""
        if user is None:
            user = User(username=ADMIN_USERNAME, email=ADMIN_EMAIL, first_name="Demo",
                        last_name="Admin")
            reset = True
        if reset or not stored:
            if not reset and user.has_usable_password():
                # The admin exists but we lost the password file: do not guess.
                stored, note = None, "unknown (run `manage.py demo_setup --reset-password`)"
            else:
                stored = secrets.token_urlsafe(12)
                user.set_password(stored)
                _write_private(password_file, stored)
        elif not user.check_password(stored):
            stored, note = None, ("changed since the demo set it "
                                  "(`manage.py demo_setup --reset-password` sets a new one)")
        user.role = User.Role.ADMIN
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.save()
        owner = MacUsername.find_user(MAC_USERNAME)
        if owner is None:
            MacUsername.objects.create(user=user, name=MAC_USERNAME)
        elif owner.pk != user.pk:
            self.stderr.write(f"The macOS username {MAC_USERNAME!r} belongs to {owner.email}; "
                              "demo jobs will be theirs.")
        return stored, note

    def token(self, token_file: Path) -> str:
        text = _read(token_file)
        if text:
            client = ApiToken.verify(text)
            if client is not None and client.token is not None and client.name == CLIENT:
                return text
        _, text = ApiToken.issue(CLIENT)
        _write_private(token_file, text)
        return text

    def sample_project(self) -> Path:
        project = Path(settings.DROPBOX_PATH) / "demo" / "sample.aep"
        content = json.dumps(SAMPLE) + "\n"
        if _read(project) != content.strip():
            project.parent.mkdir(parents=True, exist_ok=True)
            project.write_text(content, encoding="utf-8")
        return project

    # --- What to do next ------------------------------------------------------------

    def report(self, password: str | None, password_note: str, project: Path) -> None:
        url = settings.PUBLIC_URL
        saved_at = datetime.fromtimestamp(project.stat().st_mtime, tz=UTC)
        body = json.dumps({
            "project_path": str(project),
            "saved_at": saved_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "mac_username": MAC_USERNAME,
            "nexrender": {"template": {"composition": "main"}},
        })
        mac_path = f"/Users/{MAC_USERNAME}/Dropbox/demo/sample.aep"
        get_id = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])'"
        write = self.stdout.write
        write("")
        write(self.style.SUCCESS("AE Render Manager demo is ready."))
        write(f"  Dashboard:  {url}/   (API docs: {url}/api/docs)")
        if settings.ALLOW_PASSWORD_LOGIN:
            password_file = Path(settings.DATA_DIR).resolve() / "demo-password.txt"
            write(f"  Login:      {ADMIN_EMAIL} (username {ADMIN_USERNAME}) / "
                  f"{password or password_note}" + (f" (kept in {password_file})"
                                                    if password else ""))
        else:
            write("  Login:      password login is off (ALLOW_PASSWORD_LOGIN=false); "
                  "sign in with Google")
        token_file = Path(settings.DATA_DIR).resolve() / "demo-token.txt"
        write(f"  API token:  client '{CLIENT}', kept in {token_file}")
        write(f"  Project:    {project} (aerender simulator: {settings.AERENDER_PATH})")
        write("")
        write("Submit a render, follow it and download the result:")
        # The token itself stays out of the terminal (and any log of it).
        write(f"  TOKEN=$(cat {shlex.quote(str(token_file))})")
        write(f"  JOB=$(curl -sS --fail-with-body -X POST {url}/api/jobs "
              f"-H \"X-API-Token: $TOKEN\" -H 'Content-Type: application/json' \\")
        write(f"    -d {shlex.quote(body)} | {get_id})")
        write(f"  curl -sS --fail-with-body -H \"X-API-Token: $TOKEN\" {url}/api/jobs/$JOB")
        write(f"  curl -sS -fOJ -H \"X-API-Token: $TOKEN\" {url}/api/jobs/$JOB/download")
        write(f"(The macOS form of the path, {mac_path}, works too: the API converts it.)")
        write("")

    # --- A timeline (ffmpeg engine) job: a real video without After Effects ----------

    def timeline_demo(self) -> None:
        """Make a test-pattern still, a colour-bars clip and a sine tone in Dropbox/demo
        with ffmpeg, and submit one timeline job (once), so the first run renders a
        real video; then print how to submit another."""
        folder = Path(settings.DROPBOX_PATH) / "demo" / "timeline"
        media = {
            "pattern.png": ["-f", "lavfi", "-i", "testsrc2=s=1280x720", "-frames:v", "1"],
            "bars.mp4": ["-f", "lavfi", "-i", "smptehdbars=s=1280x720:r=30:d=4", "-c:v",
                         "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
            "tone.wav": ["-f", "lavfi", "-i", "sine=frequency=440:duration=8"],
        }
        folder.mkdir(parents=True, exist_ok=True)
        for name, args in media.items():
            if (folder / name).is_file():
                continue
            try:
                subprocess.run([str(settings.FFMPEG_PATH), "-hide_banner", "-nostdin", "-v",
                                "error", "-y", *args, str(folder / name)],
                               check=True, capture_output=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as exc:
                self.stderr.write(f"No timeline demo: ffmpeg ({settings.FFMPEG_PATH}) could "
                                  f"not make {name}: {exc}")
                return
        timeline = {"width": 1280, "height": 720, "fps": 30,
                    "backgrounds": [{"src": str(folder / "pattern.png"), "type": "image"},
                                    {"src": str(folder / "bars.mp4"), "type": "video",
                                     "crossfade": 1.0}],
                    "audio": [{"src": str(folder / "tone.wav"), "fade": 1.0,
                               "decides_duration": True}]}
        job = Job.objects.filter(client=CLIENT, engine=Engine.FFMPEG).order_by("created_at") \
            .first()
        if job is None:
            job = lifecycle.submit(
                actor="demo_setup", user=MacUsername.find_user(MAC_USERNAME), client=CLIENT,
                mac_username=MAC_USERNAME, engine=Engine.FFMPEG, name="Demo timeline",
                config=clean_timeline(timeline), preset={"name": "web"}).job
        url = settings.PUBLIC_URL
        write = self.stdout.write
        write(f"A timeline job renders a real video with ffmpeg (no After Effects needed): "
              f"{url}/jobs/{job.pk}")
        body = json.dumps({"engine": "ffmpeg", "mac_username": MAC_USERNAME,
                           "name": "My timeline", "preset": "web", "timeline": timeline})
        write("Submit another one:")
        write(f"  curl -sS -X POST {url}/api/jobs -H \"X-API-Token: $TOKEN\" "
              f"-H 'Content-Type: application/json' \\")
        write(f"    -d {shlex.quote(body)}")
        write("")
