"""Batch pages: the list of batches, a batch's grid of rows (live), its actions, and
the page that builds one from a CSV: pick the template, upload the file, map
its columns to layers, see the check, submit.

The page uses the same rules as ``POST /api/batches`` (jobs.submission.batches)
and the same lifecycle call; it works without JavaScript (each step is a
form post that carries the CSV text along).
"""

from __future__ import annotations

import uuid
from pathlib import PurePath

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import lifecycle
from jobs.access import visible_batches, visible_jobs
from jobs.models import UNFINISHED, Batch, Status
from jobs.node.engines.base import is_image_sequence
from jobs.node.layers import composition_layers
from jobs.submission.batches import (
    DEFAULT_OUTPUT_NAME,
    check_rows,
    clean_batch,
    drop_csv_columns,
    parse_csv,
    parse_output_pattern,
    plan_batch,
)
from jobs.submission.errors import InvalidInput
from jobs.submission.paths import local_path
from jobs.web.common import actor, safe_next_url

MAX_CSV_BYTES = 1024 * 1024
KINDS = ("data", "image", "video", "audio", "ignore")
# File extensions that suggest a column holds media (the mapping's first guess).
GUESS = {
    "image": {".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".psd", ".bmp", ".tga",
              ".exr", ".ai", ".svg"},
    "video": {".mov", ".mp4", ".avi", ".mxf", ".m4v", ".webm", ".mkv"},
    "audio": {".wav", ".mp3", ".aac", ".m4a", ".aif", ".aiff", ".flac"},
}
RECENT_TEMPLATES = 12


def get_batch(request, batch_id) -> Batch:
    batch = visible_batches(request.user).select_related("user").filter(pk=batch_id).first()
    if batch is None:
        raise Http404("No such batch, or it is not yours.")
    return batch


# --- The list and one batch ---------------------------------------------------------


@login_required
@require_GET
def batch_list(request):
    batches = list(visible_batches(request.user).select_related("user")
                   .order_by("-created_at")[:100])
    counts = Batch.counts_of([batch.pk for batch in batches])
    summaries = [(batch, counts[batch.pk], sum(counts[batch.pk].values()))
                 for batch in batches]
    return render(request, "jobs/batches.html", {"summaries": summaries,
                                                 "is_admin": request.user.is_admin})


def batch_context(batch: Batch) -> dict:
    rows = list(batch.rows_with_jobs())
    counts = Batch.counts(rows)
    return {"batch": batch, "rows": rows, "counts": counts, "total": len(rows),
            "columns": list(batch.columns) or [],
            "unfinished": sum(counts[status] for status in UNFINISHED),
            "failed": counts[Status.FAILED]}


@login_required
@require_GET
def batch_detail(request, batch_id):
    batch = get_batch(request, batch_id)
    context = batch_context(batch)
    context.update({"ws_url": f"/ws/batches/{batch.pk}",
                    "results_url": reverse("api-batch-results", args=[batch.pk])})
    return render(request, "jobs/batch.html", context)


@login_required
@require_POST
def batch_action(request, batch_id, action):
    if action not in ("cancel", "retry"):
        raise Http404("No such action.")
    batch = get_batch(request, batch_id)
    fallback = reverse("jobs:batch", args=[batch.pk])
    who = actor(request.user)
    if action == "cancel":
        cancelled = lifecycle.cancel_batch(batch.pk, actor=who)
        if cancelled:
            messages.success(request, f"Cancelled {len(cancelled)} unfinished "
                                      f"row{'s' if len(cancelled) != 1 else ''}.")
        else:
            messages.info(request, "Nothing to cancel: every row has finished.")
    else:
        retried, refused = lifecycle.retry_failed_rows(batch.pk, actor=who)
        if retried:
            messages.success(request, f"Retrying {len(retried)} failed "
                                      f"row{'s' if len(retried) != 1 else ''}.")
        elif not refused:
            messages.info(request, "No row has failed: nothing to retry.")
        if refused:
            messages.warning(request, f"Not retried: {'; '.join(sorted(set(refused.values())))}")
    return redirect(safe_next_url(request, fallback))


# --- A new batch from a CSV -------------------------------------------------------------


def guess_kind(values: list[str]) -> str:
    """The asset type a column's values look like: media by their file extensions, else data."""
    filled = [value.strip() for value in values if value and value.strip()]
    if not filled:
        return "data"
    for kind, extensions in GUESS.items():
        if all(PurePath(value.replace("\\", "/")).suffix.lower() in extensions
               for value in filled):
            return kind
    return "data"


def recent_templates(user) -> list[dict]:
    """The projects and compositions this user rendered lately, to pick from."""
    seen, found = set(), []
    jobs = visible_jobs(user).exclude(project_path="").order_by("-created_at") \
        .values_list("project_path", "config")[:300]
    for path, config in jobs:
        template = (config or {}).get("template") if isinstance(config, dict) else None
        composition = template.get("composition") if isinstance(template, dict) else None
        if not isinstance(composition, str) or (path, composition) in seen:
            continue
        seen.add((path, composition))
        # Jobs store it relative to the Dropbox folder: offered as this server has it.
        found.append({"project_path": local_path(path), "composition": composition})
        if len(found) >= RECENT_TEMPLATES:
            break
    return found


def _csv_text(request) -> tuple[str, str]:
    """The CSV of this step: a new upload, or the text carried from the last step."""
    upload = request.FILES.get("csv_file")
    if upload is not None:
        if upload.size > MAX_CSV_BYTES:
            return "", f"The file is larger than {MAX_CSV_BYTES // 1024} KB."
        raw = upload.read()
        try:
            return raw.decode("utf-8"), ""
        except UnicodeDecodeError:
            return "", "The file is not UTF-8 text: export it from the spreadsheet as " \
                       "\"CSV UTF-8\"."
    text = request.POST.get("csv", "")
    if len(text.encode()) > MAX_CSV_BYTES:
        return "", f"The CSV is larger than {MAX_CSV_BYTES // 1024} KB."
    return text, ""


def _mapping(request, headers: list[str], rows) -> list[dict]:
    """Each CSV column and what it fills: as the form says, or a first guess."""
    mapping = []
    for index, name in enumerate(headers):
        kind = request.POST.get(f"kind-{index}")
        if kind not in KINDS:
            kind = guess_kind([row.get(name, "") for _, row in rows])
            layer, prop = name, "Source Text"
        else:
            layer = request.POST.get(f"layer-{index}", "").strip()
            prop = request.POST.get(f"property-{index}", "").strip()
        mapping.append({"index": index, "name": name, "kind": kind, "layer": layer,
                        "property": prop})
    return mapping


def _flatten(errors, prefix: str = "") -> list[str]:
    """Field errors as lines: "columns.photo.layerName: Must be ..."."""
    if isinstance(errors, dict):
        lines = []
        for key, value in errors.items():
            where = f"{prefix}.{key}" if prefix else str(key)
            lines += _flatten(value, where)
        return lines
    if isinstance(errors, list):
        return [line for item in errors for line in _flatten(item, prefix)]
    return [f"{prefix}: {errors}" if prefix else str(errors)]


def _request_data(form, csv_text: str, mapping: list[dict]) -> dict:
    template = {"composition": form["composition"]}
    for key in ("outputModule", "outputExt"):
        if form[key]:
            template[key] = form[key]
    columns = {}
    for column in mapping:
        if column["kind"] == "ignore":
            continue
        target = {"type": column["kind"], "layerName": column["layer"]}
        if column["kind"] == "data":
            target["property"] = column["property"]
        columns[column["name"]] = target
    try:
        used = parse_output_pattern(form["output_name"]).columns
    except InvalidInput:
        used = set()
    dropped = {c["name"] for c in mapping if c["kind"] == "ignore" and c["name"] not in used}
    data = {"project_path": form["project_path"], "nexrender": {"template": template},
            "columns": columns, "csv": drop_csv_columns(csv_text, dropped) if dropped
            else csv_text, "output_name": form["output_name"] or DEFAULT_OUTPUT_NAME,
            "review": form["review"], "accept": form["accept"]}
    for key in ("name", "mac_username"):
        if form[key]:
            data[key] = form[key]
    return data


@login_required
@require_http_methods(["GET", "POST"])
def batch_new(request):
    source = request.POST if request.method == "POST" else request.GET
    form = {key: source.get(key, "").strip() for key in
            ("name", "project_path", "composition", "outputModule", "outputExt",
             "mac_username")}
    form["output_name"] = source.get("output_name", DEFAULT_OUTPUT_NAME).strip()
    form["review"] = source.get("review") == "on"
    form["accept"] = source.get("accept") if source.get("accept") in ("all", "valid") else "all"
    mac_usernames = list(request.user.mac_usernames.values_list("name", flat=True))
    if not form["mac_username"] and len(mac_usernames) == 1:
        form["mac_username"] = mac_usernames[0]
    context = {"form": form, "templates": recent_templates(request.user),
               "mac_usernames": mac_usernames,
               "kinds": KINDS, "problems": [], "mapping": [], "checks": None, "csv": ""}
    if request.method == "GET":
        return render(request, "jobs/batch_new.html", context)

    csv_text, problem = _csv_text(request)
    context["csv"] = csv_text
    if problem or not csv_text.strip():
        context["problems"] = [problem or "Choose the CSV file of the batch's rows."]
        return render(request, "jobs/batch_new.html", context, status=400)
    try:
        table = parse_csv(csv_text)
    except InvalidInput as exc:
        context["problems"] = _flatten({"csv": exc.errors})
        return render(request, "jobs/batch_new.html", context, status=400)
    mapping = _mapping(request, table.headers, table.rows)
    context["mapping"] = mapping
    if not form["project_path"] or not form["composition"]:
        context["problems"] = ["Give the template: the project file in Dropbox and its "
                               "composition."]
        return render(request, "jobs/batch_new.html", context, status=400)
    try:
        batch_request = clean_batch(_request_data(form, csv_text, mapping),
                                    session_user=request.user, read_layers=composition_layers)
    except InvalidInput as exc:
        context["problems"] = _flatten(exc.errors)
        return render(request, "jobs/batch_new.html", context, status=400)
    checks = check_rows(batch_request)
    context["checks"] = checks
    context["bad"] = sum(1 for check in checks if check.errors)
    if request.POST.get("action") != "submit":
        return render(request, "jobs/batch_new.html", context)
    if batch_request.preset and is_image_sequence(batch_request.nexrender["template"]):
        context["problems"] = ["A preset encodes a video; this template renders an image "
                               "sequence."]
        return render(request, "jobs/batch_new.html", context, status=400)
    if context["bad"] and (form["accept"] == "all" or context["bad"] == len(checks)):
        context["problems"] = [f"{context['bad']} row(s) have problems: fix the file or the "
                               "mapping, or choose to queue only the valid rows."]
        return render(request, "jobs/batch_new.html", context, status=400)
    fields, plans, shared = plan_batch(batch_request, checks, client="",
                                       batch_id=uuid.uuid4())
    try:
        submitted = lifecycle.submit_batch(actor=actor(request.user), batch=fields,
                                           rows=plans, job_fields=shared)
    except lifecycle.Conflict as exc:
        context["problems"] = [str(exc)]
        return render(request, "jobs/batch_new.html", context, status=409)
    queued = sum(1 for row in submitted.rows if row.job_id)
    messages.success(request, f"Batch submitted: {queued} row{'s' if queued != 1 else ''} "
                              "queued" + (f", {context['bad']} skipped." if context["bad"]
                                          else "."))
    return redirect("jobs:batch", batch_id=submitted.batch.pk)
