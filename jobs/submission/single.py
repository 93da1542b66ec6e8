"""One render: the body of ``POST /api/jobs`` (and of the dashboard's submit form),
checked as a whole.

``clean_job`` is the one definition of what a client may submit: the API's
serializer and the dashboard's form both call it. It reports every problem at
once, by field (a body without its required fields names all of them), and
reads no file: the project's sync state is checked in the background
(jobs.node.validation).

``session_user``: a person submitting for themselves (the dashboard form, or a
personal API token acting for its person) rather than a service. Then
``mac_username`` may be left out (it must be one of theirs if given, unless
they are an admin) and ``saved_at`` too (the file is rendered once it is
synced and stable, whichever version that is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from jobs.models import Engine
from jobs.submission.errors import InvalidInput, body_fields, take
from jobs.submission.nexrender_spec import clean_nexrender_config, is_image_sequence
from jobs.submission.paths import PathError, ResolvedPath, resolve_project_path
from jobs.submission.presets import clean_preset
from jobs.submission.shared import clean_callback_url, clean_name, clean_saved_at, find_mac_user
from jobs.submission.timeline import clean_timeline

FIELDS = ("project_path", "saved_at", "mac_username", "nexrender", "callback_url", "name",
          "engine", "timeline", "preset", "review")
REFUSED = {"priority": "Not accepted: priority is set by admins."}
AE_ONLY = ("project_path", "saved_at", "nexrender")
REQUIRED = "This field is required."


@dataclass
class JobRequest:
    """A checked submission: what ``job_fields`` turns into a job."""

    engine: str
    mac_username: str
    user: object  # the person the job belongs to (None: nobody registered the name)
    name: str = ""
    callback_url: str = ""
    preset: dict = field(default_factory=dict)
    review: bool = False
    timeline: dict | None = None  # ffmpeg jobs
    project_path: str = ""  # as submitted
    resolved: ResolvedPath | None = None
    saved_at: object = None
    nexrender: dict | None = None

    def job_fields(self, client: str) -> dict:
        """The fields jobs.lifecycle.submit creates the job with."""
        fields = {"user": self.user, "client": client, "mac_username": self.mac_username,
                  "engine": self.engine, "name": self.name, "callback_url": self.callback_url,
                  "preset": self.preset, "review": self.review}
        if self.engine == Engine.FFMPEG:
            # A timeline has no project file: no path to supersede, nothing to sync-check
            # but its sources (jobs.node.validation).
            fields["config"] = self.timeline
        else:
            fields.update(submitted_path=self.project_path,
                          # Relative to the Dropbox folder: each machine has its own.
                          project_path=self.resolved.relative, path_key=self.resolved.key,
                          saved_at=self.saved_at, config=self.nexrender)
        return fields


def _who(errors: dict, data: dict, session_user) -> tuple[str, object]:
    """The macOS username and the job's person."""
    value = data.get("mac_username")
    if session_user is not None and value in (None, ""):
        return "", session_user
    if value is None and "mac_username" not in data:
        errors["mac_username"] = [REQUIRED]
        return "", None
    found = take(errors, "mac_username", find_mac_user, value)
    if found is None:
        return "", session_user
    name, user = found
    if session_user is not None and user != session_user \
            and not getattr(session_user, "is_admin", False):
        errors["mac_username"] = ["This macOS username belongs to someone else."]
    return name, user


def _engine(errors: dict, data: dict) -> str | None:
    if "engine" not in data:
        return Engine.FFMPEG if "timeline" in data else settings.RENDER_ENGINE
    value = data["engine"]
    if value not in Engine.values:
        errors["engine"] = [f"{str(value)[:40]!r} is not an engine; one of: "
                            f"{', '.join(Engine.values)}."]
        return None
    return value


def clean_job(data, *, session_user=None) -> JobRequest:
    """The submission as a whole, checked; InvalidInput with every problem by field."""
    errors = body_fields(data, FIELDS, REFUSED)

    engine = _engine(errors, data)
    mac_username, user = _who(errors, data, session_user)
    request = JobRequest(engine=engine or "", mac_username=mac_username, user=user)
    request.name = take(errors, "name", clean_name, data.get("name", "")) or ""
    request.callback_url = take(errors, "callback_url", clean_callback_url,
                                 data.get("callback_url", "")) or ""
    request.preset = take(errors, "preset", clean_preset, data.get("preset")) or {}
    review = data.get("review", False)
    if not isinstance(review, bool):
        errors["review"] = ["Must be true or false."]
    request.review = review is True

    if engine == Engine.FFMPEG:
        _timeline_job(errors, data, request)
    elif engine is not None:
        _after_effects_job(errors, data, request, session_user)
    if errors:
        raise InvalidInput(errors)
    return request


def _timeline_job(errors: dict, data: dict, request: JobRequest) -> None:
    if "timeline" not in data:
        errors["timeline"] = ["This field is required for the ffmpeg engine."]
    else:
        # Reads no file: the sources are measured by the background file checks.
        request.timeline = take(errors, "timeline", clean_timeline, data["timeline"])
    for key in AE_ONLY:
        if key in data:
            errors[key] = ["Not used by the ffmpeg engine: its sources are in `timeline`."]
    if request.review:
        errors["review"] = ["Review renders an After Effects draft first; timeline (ffmpeg) "
                            "jobs render directly."]
    request.name = request.name or "timeline"


def _after_effects_job(errors: dict, data: dict, request: JobRequest, session_user) -> None:
    if "timeline" in data:
        errors["timeline"] = ["Only for the ffmpeg engine (\"engine\": \"ffmpeg\")."]
    if "project_path" not in data:
        errors["project_path"] = [REQUIRED]
    else:
        try:
            request.resolved = resolve_project_path(data["project_path"])
            request.project_path = data["project_path"].strip()
        except PathError as exc:
            errors["project_path"] = [exc.message]
    if data.get("saved_at") is not None or (session_user is None and "saved_at" in data):
        request.saved_at = take(errors, "saved_at", clean_saved_at, data["saved_at"])
    elif session_user is None:
        errors["saved_at"] = [REQUIRED]
    if "nexrender" not in data:
        errors["nexrender"] = [REQUIRED]
        return
    request.nexrender = take(errors, "nexrender", clean_nexrender_config, data["nexrender"])
    if request.nexrender is None:
        return
    if request.engine == Engine.AERENDER and request.nexrender["assets"]:
        errors["nexrender"] = ["The aerender engine renders the project as it is: 'assets' "
                               "need the nexrender engine."]
    if request.preset and is_image_sequence(request.nexrender["template"]):
        errors["preset"] = ["A preset encodes a video; this job renders an image sequence."]
