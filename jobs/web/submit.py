"""Submitting a render from the dashboard: the project in Dropbox (its macOS or
Windows path), a composition (offered from the project), frames, an output
preset and review, for an artist without the After Effects plugin.

The form is checked by jobs.submission.single.clean_job, the rules of
``POST /api/jobs``, as the signed-in person (whose job it is). The
compositions are read from the .aep as the render node's preflight reads it
(py-aep in a child process, within PROJECT_READ_TIMEOUT_SECONDS and
PROJECT_READ_MAX_MB), on a background thread: the page asks again until the
read is done, and a request never waits for it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import MacUsername
from jobs import lifecycle
from jobs.node import preflight
from jobs.submission.errors import InvalidInput
from jobs.submission.paths import PathError, checked_dropbox_file, local_path, resolve_project_path
from jobs.submission.presets import NAMES as PRESET_NAMES
from jobs.submission.single import clean_job
from jobs.web.common import actor

AEP_MAGIC = b"RIFX"
MAX_CACHED = 64
MAX_READERS = 2
# Field errors of the body as the form's fields.
FORM_FIELDS = {
    "project_path": "project_path",
    "nexrender.template.composition": "composition",
    "nexrender.template.frameStart": "frame_start",
    "nexrender.template.frameEnd": "frame_end",
    "nexrender": "composition",
    "preset": "preset",
    "review": "review",
    "name": "name",
    "mac_username": "mac_username",
}
PRESETS = [("", "As rendered (no encoding)"), *[(name, name.replace("_", " ").capitalize())
                                                 for name in PRESET_NAMES if name != "custom"]]


# --- Compositions, read in the background ------------------------------------------


class ProjectReads:
    """Reads of projects for their compositions: at most MAX_READERS at a time, each
    kept while the file keeps its size and modification time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.done: OrderedDict[tuple, dict] = OrderedDict()
        self.running: set[tuple] = set()
        self.slots = threading.Semaphore(MAX_READERS)

    def get(self, path: str, stat) -> dict | None:
        """The read of ``path`` (a dict with ``compositions`` or ``error``); None while it
        is being read (a read is started if none is)."""
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self.lock:
            if key in self.done:
                self.done.move_to_end(key)
                return self.done[key]
            if key in self.running:
                return None
            if not self.slots.acquire(blocking=False):
                return None  # others are reading; asked again in a moment
            self.running.add(key)
        try:
            threading.Thread(target=self._read, args=(key,), name="project-read",
                             daemon=True).start()
        except RuntimeError:  # no thread to be had now: asked again in a moment
            with self.lock:
                self.running.discard(key)
            self.slots.release()
        return None

    def _read(self, key: tuple) -> None:
        try:
            raw = preflight.run_reader(key[0], "")
            found = {"error": raw["error"]} if raw.get("error") else {
                "compositions": sorted(raw.get("compositions") or [], key=str.casefold),
                "saved_with": raw.get("saved_with_name", "")}
        except Exception as exc:  # a read must never take the web server down
            found = {"error": f"the project could not be read ({type(exc).__name__})"}
        finally:
            self.slots.release()
        with self.lock:
            self.running.discard(key)
            self.done[key] = found
            while len(self.done) > MAX_CACHED:
                self.done.popitem(last=False)


reads = ProjectReads()


@login_required
@require_GET
def compositions(request):
    """The compositions of the project the form names (a fragment the form polls)."""
    raw = unquoted(request.GET.get("project_path", ""))
    context = {"state": "none", "compositions": [], "message": "", "project_path": raw}
    if not raw:
        return render(request, "jobs/_compositions.html", context)
    try:
        path = checked_dropbox_file(resolve_project_path(raw).relative)
        stat = path.stat()
        with path.open("rb") as handle:
            magic = handle.read(4)
    except PathError as exc:
        context.update(state="refused", message=exc.message)
        return render(request, "jobs/_compositions.html", context)
    except OSError:
        context.update(state="missing", message="Not in the Dropbox folder here (yet): type "
                       "the composition's name.")
        return render(request, "jobs/_compositions.html", context)
    if magic != AEP_MAGIC:
        context.update(state="unread", message="Not an After Effects project file this server "
                       "can read: type the composition's name.")
        return render(request, "jobs/_compositions.html", context)
    found = reads.get(str(path), stat)
    if found is None:
        context.update(state="reading", message="Reading the project…")
    elif found.get("error"):
        context.update(state="unread", message=f"Could not read the project ({found['error']}): "
                       "type the composition's name.")
    else:
        context.update(state="read", compositions=found["compositions"],
                       message=f"{len(found['compositions'])} composition"
                               f"{'s' if len(found['compositions']) != 1 else ''} in the project"
                               + (f" ({found['saved_with']})" if found.get("saved_with") else ""))
    return render(request, "jobs/_compositions.html", context)


# --- The form ----------------------------------------------------------------------


def unquoted(path: str) -> str:
    path = path.strip()
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "\"'":
        return path[1:-1].strip()
    return path


def _number(text: str):
    """A frame number as the API takes it: digits become an int, anything else stays
    text for the rules to refuse."""
    text = text.strip()
    # ASCII digits only: "²" is a digit to str.isdigit, not to int.
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else text


def body(form: dict) -> dict:
    """The form as a ``POST /api/jobs`` body."""
    template = {"composition": form["composition"]}
    for field, key in (("frame_start", "frameStart"), ("frame_end", "frameEnd")):
        if form[field]:
            template[key] = _number(form[field])
    data = {"project_path": form["project_path"], "nexrender": {"template": template},
            "review": form["review"]}
    for key in ("name", "preset", "mac_username"):
        if form[key]:
            data[key] = form[key]
    return data


def form_errors(errors) -> tuple[dict[str, list[str]], list[str]]:
    """(messages by form field, messages for the form as a whole)."""
    fields: dict[str, list[str]] = {}
    general: list[str] = []

    def add(where: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                add(f"{where}.{key}" if where else str(key), inner)
            return
        messages_ = value if isinstance(value, list) else [value]
        target = FORM_FIELDS.get(where)
        if target:
            fields.setdefault(target, []).extend(str(m) for m in messages_)
        else:
            general.extend(f"{where}: {m}" if where else str(m) for m in messages_)

    add("", errors if isinstance(errors, dict) else {"": errors})
    return fields, general


@login_required
@require_http_methods(["GET", "POST"])
def new_job(request):
    source = request.POST if request.method == "POST" else request.GET
    form = {key: source.get(key, "").replace("\x00", "").strip()
            for key in ("project_path", "composition", "frame_start", "frame_end", "preset",
                        "name", "mac_username")}
    # Windows' "Copy as path" puts the path in quotes.
    form["project_path"] = unquoted(form["project_path"])
    form["review"] = source.get("review") in ("on", "true", "1")
    names = list(request.user.mac_usernames.filter(status=MacUsername.Status.APPROVED)
                 .values_list("name", flat=True))
    context = {"form": form, "errors": {}, "problems": [], "presets": PRESETS,
               "mac_usernames": names}
    if request.method == "GET":
        return render(request, "jobs/new.html", context)
    try:
        checked = clean_job(body(form), session_user=request.user)
    except InvalidInput as exc:
        context["errors"], context["problems"] = form_errors(exc.errors)
        return render(request, "jobs/new.html", context, status=400)
    try:
        submitted = lifecycle.submit(actor=actor(request.user), **checked.job_fields(client=""))
    except lifecycle.Conflict as exc:
        context["problems"] = [str(exc)]
        return render(request, "jobs/new.html", context, status=409)
    job = submitted.job
    note = (f" It replaces {len(submitted.superseded)} unfinished job"
            f"{'s' if len(submitted.superseded) != 1 else ''} of this composition."
            if submitted.superseded else "")
    messages.success(request, f"Submitted {job.display_name} ({job.composition}) from "
                              f"{local_path(job.project_path)}.{note}")
    return redirect("jobs:detail", job_id=job.pk)
