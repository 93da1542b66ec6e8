"""Before a render: read the project file, and check what it links to.

jobs.node.validation calls ``check`` once the project file itself is synced
and stable. It reads the .aep with py-aep in a child process
(jobs.node.aep_reader), capped in time and memory, and keeps what it learned
in ``Job.project`` (shown by the API and the job page):

- the composition must exist, or the job fails now (``missing_composition``);
- ``frames_total`` is the work area, or the job's frameStart/frameEnd;
- every footage file the composition uses (nested compositions included) is
  looked for as After Effects does: its absolute path through the same
  macOS -> Dropbox mapping as ``project_path``, failing that the path
  relative to the project's folder. Found files must pass the project's own
  sync rules (jobs.node.filesync.judge), and must not be older than the
  modification time the project recorded for them. Missing files fail the
  job (``missing_footage``), unless the template sets ``continueOnMissing``:
  then they become warnings. Footage whose every layer one of the job's
  assets replaces is ``replaced`` and not needed.

A project py-aep cannot read is not a failure: the job renders as before and
``project.error`` says why. The read is cached on the job for as long as the
project file keeps its size and modification time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from django.conf import settings
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, Status
from jobs.node.engines.base import base_env
from jobs.node.filesync import Verdict, judge
from jobs.node.footage import locate
from jobs.node.procs import kill_tree
from jobs.submission.paths import (
    PathError,
    checked_dropbox_file,
    dropbox_file,
)

log = logging.getLogger(__name__)

READER = "jobs.node.aep_reader"
POLL_SECONDS = 0.05
MEDIA_ASSETS = ("image", "video", "audio")
MAX_USED_BY = 10
MAX_PROBLEMS = 10  # files named in one "still syncing" message (missing ones: all)


# --- the check ----------------------------------------------------------------


def check(job: Job, now: datetime) -> Verdict:
    """One preflight look at ``job`` (VALIDATING, its project file synced)."""
    try:
        # The project is stored relative to the Dropbox folder: this machine's real file.
        stat = checked_dropbox_file(job.project_path).stat()
    except PathError as exc:
        return Verdict(final=True, code="outside_dropbox",
                       problem=f"Project file refused: {exc.message}")
    except OSError as exc:
        return Verdict(problem=f"file cannot be read ({exc.strerror or exc})")
    project = job.project or {}
    if project.get("file") != {"size": stat.st_size, "mtime": stat.st_mtime}:
        try:
            project = read(job, stat, now)
        except PathError as exc:  # became a link out of Dropbox since the line above
            return Verdict(final=True, code="outside_dropbox",
                           problem=f"Project file refused: {exc.message}")
        except OSError as exc:
            return Verdict(problem=f"file cannot be read ({exc.strerror or exc})")
        now = timezone.now()  # a read takes time: footage is observed after it
    if project.get("error"):
        _save(job, project)
        return Verdict(ready=True)  # rendered as before, without these checks
    if project.get("composition") is None:
        _save(job, project)
        return Verdict(final=True, code="missing_composition", problem=(
            f"Composition '{_template(job).get('composition')}' is not in the project. "
            f"It has: {', '.join(project.get('compositions') or []) or 'no compositions'}"))
    return _check_footage(job, project, now)


def _check_footage(job: Job, project: dict, now: datetime) -> Verdict:
    template = _template(job)
    continue_on_missing = bool(template.get("continueOnMissing"))
    last_try = job.validation_attempts + 1 >= settings.VALIDATION_ATTEMPTS
    problems, waits, missing = [], [], []
    for entry in project["footage"]:
        if entry["status"] == "replaced":
            continue
        verdict = _check_file(job, entry, now)
        if entry["status"] == "missing":
            missing.append(entry)
        elif verdict.problem:
            problems.append(f"footage '{entry['name']}': {verdict.problem}")
        elif verdict.wait_until is not None:
            waits.append(verdict.wait_until)

    warnings = []
    if missing:
        listed = "; ".join(f"'{e['name']}' ({_where(e)})" for e in missing)
        # A file AE already missed when it saved the project will not arrive;
        # the others may still be on their way through Dropbox.
        pending = [e for e in missing if not e["missing_at_save"]]
        if not continue_on_missing and (last_try or len(pending) < len(missing)):
            _save(job, project)
            return Verdict(final=True, code="missing_footage",
                           problem=f"Footage is missing: {listed}")
        if pending and not last_try:
            problems.insert(0, "footage not found: " + "; ".join(
                f"'{e['name']}' ({_where(e)})" for e in pending))
        else:
            warnings = [{"code": "missing_footage",
                         "message": f"Footage '{e['name']}' is missing ({_where(e)}): "
                                    "rendered with placeholders (continueOnMissing)"}
                        for e in missing]
    if problems:
        _save(job, project)
        more = f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        return Verdict(problem="; ".join(problems[:MAX_PROBLEMS]) + more)
    if waits:
        _save(job, project)
        return Verdict(wait_until=min(waits))
    _save(job, project, warnings=warnings)
    return Verdict(ready=True)


def _check_file(job: Job, entry: dict, now: datetime) -> Verdict:
    """Where ``entry``'s file is now, and whether it is synced (updates ``entry``)."""
    found, candidates = locate(str(dropbox_file(job.project_path)), entry)
    if found != entry.get("resolved"):
        entry.update(size=None, mtime=None, seen_at=None)  # another file: look afresh
    entry["resolved"] = found or (candidates[0] if candidates else None)
    stat = None
    if found is not None:
        with contextlib.suppress(OSError):
            stat = Path(found).stat()
    if stat is None:
        entry.update(status="missing", size=None, mtime=None, seen_at=None)
        return Verdict()
    seen_at = datetime.fromisoformat(entry["seen_at"]) if entry.get("seen_at") else None
    recorded = entry.get("saved_mtime")
    verdict, observed = judge(
        stat, now, (entry.get("size"), entry.get("mtime"), seen_at),
        saved_at=datetime.fromtimestamp(recorded, tz=UTC) if recorded else None,
        saved_label="the project has it from")
    if observed is not None and not verdict.ready:  # a ready file keeps its stable look
        entry.update(size=observed.st_size, mtime=observed.st_mtime, seen_at=now.isoformat())
    elif verdict.problem:
        entry.update(size=None, mtime=None, seen_at=None)
    entry["status"] = "found" if verdict.ready else "syncing"
    return verdict


def _where(entry: dict) -> str:
    return entry["resolved"] or entry["path"] or "no file: a placeholder"


def _save(job: Job, project: dict, warnings: list | None = None) -> None:
    fields = {"project": project}
    composition = project.get("composition")
    if composition:
        fields["frames_total"] = composition["frames"] or None
    if warnings is not None:
        kept = [w for w in job.warnings or [] if w.get("code") != "missing_footage"]
        fields["warnings"] = kept + warnings
    Job.objects.filter(pk=job.pk, status=Status.VALIDATING).update(**fields)
    job.project = project


# --- reading the project ---------------------------------------------------------


def read(job: Job, stat, now: datetime) -> dict:
    """Read the project file into ``Job.project`` form (not saved yet)."""
    template = _template(job)
    file = {"size": stat.st_size, "mtime": stat.st_mtime}
    real = checked_dropbox_file(job.project_path)  # PathError: refused by the caller's check
    with real.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"RIFX":
        # JSON (the simulator's stand-in projects), an .aepx, a zip...: no child
        # process needed to know py-aep cannot read it.
        raw = {"error": "not an After Effects project file (it does not start with RIFX)"}
    else:
        # Keep other nodes' validators off this job while the reader runs.
        Job.objects.filter(pk=job.pk, status=Status.VALIDATING).update(
            validation_next_at=now + timedelta(seconds=settings.PROJECT_READ_TIMEOUT_SECONDS + 10))
        raw = run_reader(str(real), str(template.get("composition") or ""))
    project = describe(raw, template, (job.config or {}).get("assets") or [])
    project.update(file=file, read_at=now.isoformat())
    if magic == b"RIFX":  # the timeline of a simulator job needs no "not an .aep" entry
        lifecycle.record(job.pk, "preflight", message=summary(project))
    return project


def describe(raw: dict, template: dict, assets: list) -> dict:
    """The reader's output as ``Job.project``: what the render will use."""
    base = {"read_seconds": raw.get("read_seconds"), "peak_mb": raw.get("peak_mb")}
    if raw.get("error"):
        return {**base, "error": raw["error"]}
    project = {**base, "error": None, "saved_with": raw["saved_with"],
               "saved_with_name": raw["saved_with_name"],
               # Sorted, as AE's Project panel lists them.
               "compositions": sorted(raw["compositions"], key=str.casefold),
               "composition": None, "footage": [], "fonts": raw["fonts"]}
    comp = raw["composition"]
    if comp is None:
        return project
    fps = comp["fps"] or 0
    first = comp["work_area_start_frame"]
    start = _int(template.get("frameStart"), first)
    end = _int(template.get("frameEnd"), first + comp["work_area_frames"] - 1)
    step = max(1, _int(template.get("frameIncrement"), 1))
    project["composition"] = {
        "name": comp["name"], "width": comp["width"], "height": comp["height"],
        "fps": round(fps, 3),
        "duration_seconds": round((end - start + 1) / fps, 3) if fps else None,
        "frames": (end - start) // step + 1 if end >= start else 0,
        "start_frame": start, "end_frame": end,
        "range": "frameStart/frameEnd" if template.get("frameStart") is not None
        or template.get("frameEnd") is not None else "work area",
    }
    replaced = replaced_layers(raw["comps"], assets)
    usage: dict[int, list[tuple[str, int, str]]] = {}
    for comp_id, entry in raw["comps"].items():
        for layer in entry["layers"]:
            if layer["footage"] is not None:
                usage.setdefault(layer["footage"], []).append(
                    (comp_id, layer["index"], f"{entry['name']} › {layer['name']}"))
    for item in raw["footage"]:
        uses = usage.get(item["id"], [])
        is_replaced = bool(uses) and all((c, i) in replaced for c, i, _ in uses)
        project["footage"].append({
            "name": item["name"], "kind": item["kind"], "path": item["path"],
            "id": item["id"], "is_sequence": item["is_sequence"],
            "relative_path": item["relative_path"], "resolved": None,
            "status": "replaced" if is_replaced else "missing",
            "missing_at_save": item["missing_at_save"], "saved_mtime": item["saved_mtime"],
            "used_by": [label for _, _, label in uses[:MAX_USED_BY]],
            "size": None, "mtime": None, "seen_at": None,
        })
    return project


def replaced_layers(comps: dict, assets: list) -> set[tuple[str, int]]:
    """(composition id, layer index) of every layer whose source an asset replaces.

    As nexrender selects them: by ``layerName`` (every layer of that name) or
    ``layerIndex`` (from 1), in the compositions named ``composition``
    ("parent->child" names the last one), or in every composition when the
    asset names none (nexrender's default, "*").
    """
    found = set()
    for asset in assets:
        if not isinstance(asset, dict) or asset.get("type") not in MEDIA_ASSETS:
            continue
        wanted = str(asset.get("composition") or "*").split("->")[-1]
        for comp_id, comp in comps.items():
            if wanted != "*" and comp["name"] != wanted:
                continue
            for layer in comp["layers"]:
                if (asset.get("layerName") is not None and layer["name"] == asset["layerName"]) \
                        or (asset.get("layerIndex") is not None
                            and layer["index"] == asset["layerIndex"]):
                    found.add((comp_id, layer["index"]))
    return found


def summary(project: dict) -> str:
    if project.get("error"):
        return f"Could not read the project ({project['error']}): it renders without these checks"
    comp = project.get("composition")
    took = f" in {project['read_seconds']:.2f} s" if project.get("read_seconds") else ""
    head = f"Read the project ({project['saved_with_name']}){took}"
    if comp is None:
        return f"{head}: compositions {', '.join(project['compositions']) or '(none)'}"
    fonts = ", ".join(project["fonts"]) or "none"
    return (f"{head}: composition '{comp['name']}' {comp['width']}×{comp['height']}, "
            f"{comp['fps']:g} fps, {comp['frames']} frames; {len(project['footage'])} "
            f"footage file(s); fonts: {fonts}")


def run_reader(path: str, composition: str, timeout: float | None = None,
               max_mb: int | None = None) -> dict:
    """Run jobs.node.aep_reader on ``path`` in a child process, within the caps.

    The child's resident memory (with any children) is watched with psutil, on
    Windows too, and the tree is killed past ``max_mb`` or ``timeout``; where
    the OS has one, the child also caps its own address space (RLIMIT_AS).
    Returns the reader's dict, or ``{"error": ...}`` saying what went wrong.
    """
    timeout = settings.PROJECT_READ_TIMEOUT_SECONDS if timeout is None else timeout
    max_mb = settings.PROJECT_READ_MAX_MB if max_mb is None else max_mb
    with tempfile.TemporaryDirectory(prefix="aep-read-") as folder:
        out, errors = Path(folder) / "project.json", Path(folder) / "stderr.txt"
        argv = [sys.executable, "-m", READER, "--max-mb", str(max_mb), "--timeout",
                str(timeout), str(path), composition, str(out)]
        extra = {"creationflags": subprocess.CREATE_NO_WINDOW} if sys.platform == "win32" else {}
        started = time.monotonic()
        with errors.open("wb") as stderr:
            proc = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=base_env(),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=stderr, **extra)
        stopped, peak = _watch(proc, timeout, max_mb)
        elapsed = time.monotonic() - started
        if stopped:
            return {"error": stopped, "read_seconds": round(elapsed, 3), "peak_mb": peak}
        try:
            return json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = errors.read_text(encoding="utf-8", errors="replace").strip()[-300:]
            if "MemoryError" in tail:
                why = f"reading the project needed more than {max_mb} MB"
            else:
                why = f"the project reader stopped with exit code {proc.returncode}" + (
                    f": {tail.splitlines()[-1]}" if tail else "")
            return {"error": why, "read_seconds": round(elapsed, 3), "peak_mb": peak}


def _watch(proc: subprocess.Popen, timeout: float, max_mb: int) -> tuple[str, float]:
    """Wait for the reader; kill its tree past the caps. Returns (why it was stopped
    or "", peak resident MB seen)."""
    deadline = time.monotonic() + timeout
    peak = 0.0
    try:
        handle = psutil.Process(proc.pid)
        create_time = handle.create_time()
    except psutil.Error:
        handle = create_time = None
    while True:
        try:
            proc.wait(timeout=POLL_SECONDS)
            return "", round(peak, 1)
        except subprocess.TimeoutExpired:
            pass
        rss = _tree_rss(handle) / 2**20
        peak = max(peak, rss)
        why = ""
        if rss > max_mb:
            why = f"reading the project needed more than {max_mb} MB (stopped at {rss:.0f} MB)"
        elif time.monotonic() > deadline:
            why = f"reading the project took longer than {timeout:g} s"
        if why:
            kill_tree(proc.pid, create_time)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            log.warning("project reader stopped: %s", why)
            return why, round(peak, 1)


def _tree_rss(handle: psutil.Process | None) -> int:
    if handle is None:
        return 0
    total = 0
    try:
        for proc in [handle, *handle.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
    except psutil.Error:
        pass
    return total


def _template(job: Job) -> dict:
    template = (job.config or {}).get("template")
    return template if isinstance(template, dict) else {}


def _int(value, default: int) -> int:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
