"""/api/batches: one template rendered once per row of a table (jobs.submission.batches).

Every row is checked before anything is queued. A bad row refuses the whole
batch (``accept: "all"``, 400 listing every bad row) or is skipped
(``accept: "valid"``); ``dry_run`` only answers the check. Each valid row
becomes a normal job (same lifecycle, notifications and webhooks) linked to
its row; the batch answers for all of them: counts, rows, a results CSV,
cancel and retry of its failed rows.
"""

from __future__ import annotations

import csv
import io
import uuid

from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from jobs import lifecycle
from jobs.access import visible_batches
from jobs.api.errors import ConflictError
from jobs.api.pagination import JobPagination
from jobs.api.permissions import is_api_client, session_user
from jobs.api.serializers import preview_body
from jobs.api.views import ERROR, AnyAccept, JsonApiView, actor_of, errors
from jobs.links import signed_download_url, signed_thumbnail_url
from jobs.models import UNFINISHED, Batch, Job, Status
from jobs.node.engines.base import is_image_sequence
from jobs.node.engines.nexrender import build_job
from jobs.node.layers import composition_layers
from jobs.submission.batches import check_rows, clean_batch, plan_batch
from jobs.submission.errors import InvalidInput
from jobs.submission.paths import local_path

BATCH_ID = OpenApiParameter("batch_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def batch_url(batch_id) -> str:
    return settings.PUBLIC_URL + reverse("api-batch", args=[batch_id])


def get_visible_batch(request, batch_id: str) -> Batch:
    try:
        pk = uuid.UUID(batch_id)
    except (ValueError, TypeError, AttributeError):
        raise NotFound("Batch not found.") from None
    batch = visible_batches(request.user).select_related("user").filter(pk=pk).first()
    if batch is None:
        raise NotFound("Batch not found.")
    return batch


# --- Bodies ---------------------------------------------------------------------------


def row_body(row) -> dict:
    """One row as the batch shows it: its values, check and job."""
    job = row.job if row.job_id else None
    body = {"row": row.number, "values": row.values, "output_name": row.output_name,
            "errors": row.errors, "status": row.status,
            "job_id": job.pk if job else None, "progress": job.progress if job else None,
            "phase": job.phase if job else None, "error": (job.error if job else "") or None,
            "output": None, "preview": preview_body(job) if job else None}
    if job and job.status == Status.COMPLETED and job.output_path:
        body["output"] = {"path": local_path(job.output_path, output=True),
                          "size": job.output_size,
                          "download_url": signed_download_url(job),
                          "thumbnail_url": signed_thumbnail_url(job)}
    return body


def batch_body(batch: Batch) -> dict:
    rows = list(batch.rows_with_jobs())
    counts = Batch.counts(rows)
    unfinished = sum(counts[status] for status in UNFINISHED)
    return {
        "id": batch.pk, "name": batch.name, "status_url": batch_url(batch.pk),
        "results_url": settings.PUBLIC_URL + reverse("api-batch-results", args=[batch.pk]),
        "created_at": batch.created_at, "user": batch.user.email if batch.user_id else None,
        "client": batch.client, "project_path": local_path(batch.project_path),
        "composition": batch.composition, "output_name": batch.output_name,
        "review": batch.review, "columns": batch.columns, "total": len(rows),
        "finished": unfinished == 0, "counts": counts, "rows": [row_body(r) for r in rows],
    }


ROW_CHECKS = inline_serializer("BatchRowCheck", {
    "row": serializers.IntegerField(help_text="The 1-based data row."),
    "errors": serializers.DictField(help_text="Messages by column (output_name, "
                                    "non_field_errors: the row as a whole)."),
}, many=True)
CREATED = inline_serializer("BatchCreated", {
    "id": serializers.UUIDField(),
    "status_url": serializers.URLField(),
    "results_url": serializers.URLField(),
    "superseded": serializers.ListField(child=serializers.UUIDField(), help_text="Unfinished "
                                        "jobs of earlier batches (same template and output "
                                        "name), now cancelled."),
    "rows": inline_serializer("BatchRowCreated", {
        "row": serializers.IntegerField(),
        "job_id": serializers.UUIDField(allow_null=True, help_text="Null: the row was skipped."),
        "output_name": serializers.CharField(),
        "errors": serializers.DictField(),
    }, many=True),
})
DRY_RUN = inline_serializer("BatchDryRun", {
    "dry_run": serializers.BooleanField(),
    "valid": serializers.IntegerField(),
    "invalid": serializers.IntegerField(),
    "rows": inline_serializer("BatchRowDryRun", {
        "row": serializers.IntegerField(),
        "output_name": serializers.CharField(),
        "errors": serializers.DictField(),
        "nexrender": serializers.JSONField(allow_null=True, help_text="The nexrender job this "
                                           "row would render (null for a bad row)."),
    }, many=True),
})
REFUSED_ROWS = inline_serializer("BatchRefused", {
    "detail": serializers.CharField(),
    "rows": ROW_CHECKS,
})
BATCH = inline_serializer("Batch", {
    "id": serializers.UUIDField(), "name": serializers.CharField(),
    "status_url": serializers.URLField(), "results_url": serializers.URLField(),
    "created_at": serializers.DateTimeField(), "user": serializers.EmailField(allow_null=True),
    "client": serializers.CharField(), "project_path": serializers.CharField(),
    "composition": serializers.CharField(), "output_name": serializers.CharField(),
    "review": serializers.BooleanField(), "columns": serializers.DictField(),
    "total": serializers.IntegerField(),
    "finished": serializers.BooleanField(help_text="No row is waiting, rendering or awaiting "
                                         "review."),
    "counts": serializers.DictField(child=serializers.IntegerField(), help_text="Rows by "
                                    "status, plus SKIPPED (refused by the check) and DELETED "
                                    "(its job was purged)."),
    "rows": serializers.ListField(child=serializers.DictField(), help_text="row, values, "
                                  "output_name, errors, status, job_id, progress, phase, "
                                  "error, output {path size download_url thumbnail_url}, "
                                  "preview {size download_url thumbnail_url}."),
})


class BatchRequestSerializer(serializers.Serializer):
    """The documented body; jobs.submission.batches.clean_batch checks it."""

    project_path = serializers.CharField(help_text="The project (template) inside Dropbox; "
                                         "Windows or macOS path, as for a job.")
    saved_at = serializers.DateTimeField(required=False, help_text="Required with a token.")
    mac_username = serializers.CharField(required=False, help_text="Required with a token; "
                                         "a signed-in user defaults to themselves.")
    nexrender = serializers.JSONField(help_text="As for a job: `template` (composition "
                                      "required) and the `assets` every row shares.")
    columns = serializers.JSONField(help_text="Each column of the table and the nexrender "
                                    "asset it fills, without its value: {\"title\": {\"type\": "
                                    "\"data\", \"layerName\": \"Title\", \"property\": "
                                    "\"Source Text\"}, \"photo\": {\"type\": \"image\", "
                                    "\"layerName\": \"Photo\"}}. Media values are file paths "
                                    "inside Dropbox.")
    rows = serializers.ListField(child=serializers.DictField(), required=False,
                                 help_text="The table as objects, {column: value}; or `csv`.")
    csv = serializers.CharField(required=False, help_text="The table as CSV text (UTF-8, "
                                "with or without BOM; comma or semicolon; a header line).")
    output_name = serializers.CharField(required=False, default="row-{row}", help_text=(
        "Each output's file name: {column} and {row} (the 1-based data row) placeholders. "
        "Names must be unique in the batch; outputs go into the batch's own folder."))
    review = serializers.BooleanField(required=False, default=False, help_text="Each row "
                                      "renders a preview first and waits for approval.")
    dry_run = serializers.BooleanField(required=False, default=False, help_text="Only check: "
                                       "each row's errors and the nexrender job it would "
                                       "render; nothing is created.")
    accept = serializers.ChoiceField(choices=["all", "valid"], required=False, default="all",
                                     help_text="all: any bad row refuses the batch (400). "
                                     "valid: bad rows are skipped and listed.")
    name = serializers.CharField(required=False)
    preset = serializers.JSONField(required=False, help_text="An output preset, as for a job.")
    callback_url = serializers.URLField(required=False, help_text="Each row's job calls it, "
                                        "as for a job.")


# --- Views ----------------------------------------------------------------------------


def checked_batch(request):
    """The body of a batch request, checked (400 if it cannot be), and each row's check."""
    try:
        batch_request = clean_batch(request.data, session_user=session_user(request),
                                    read_layers=composition_layers)
    except InvalidInput as exc:
        raise ValidationError(exc.errors) from None
    if batch_request.preset and is_image_sequence(batch_request.nexrender["template"]):
        raise ValidationError({"preset": ["A preset encodes a video; this template "
                                          "renders an image sequence."]})
    return batch_request, check_rows(batch_request)


def _dry_run_body(batch_request, checks) -> dict:
    rows = []
    for check in checks:
        nexrender = None
        if check.config is not None:
            job = Job(id=uuid.uuid4(), project_path=batch_request.resolved.relative,
                      config=check.config)
            nexrender = build_job(job)
            nexrender.pop("uid", None)  # assigned when the row is queued
        rows.append({"row": check.number, "output_name": check.output_name,
                     "errors": check.errors, "nexrender": nexrender})
    invalid = sum(1 for check in checks if check.errors)
    return {"dry_run": True, "valid": len(checks) - invalid, "invalid": invalid, "rows": rows}


def _refused(detail: str, bad) -> Response:
    return Response({"detail": detail,
                     "rows": [{"row": check.number, "errors": check.errors} for check in bad]},
                    status=status.HTTP_400_BAD_REQUEST)


def _first_problem(check) -> str:
    column, messages = next(iter(check.errors.items()))
    where = "" if column == "non_field_errors" else f"{column}: "
    return f"row {check.number}: {where}{messages[0]}"


BATCH_PAGE = inline_serializer("PaginatedBatchList", {
    "count": serializers.IntegerField(),
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": inline_serializer("BatchSummary", {
        "id": serializers.UUIDField(), "name": serializers.CharField(),
        "status_url": serializers.URLField(), "created_at": serializers.DateTimeField(),
        "composition": serializers.CharField(), "total": serializers.IntegerField(),
        "finished": serializers.BooleanField(),
        "counts": serializers.DictField(child=serializers.IntegerField()),
    }, many=True),
})


class BatchesView(JsonApiView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="batches_list", summary="List batches",
        description="Newest first: a token's own batches, a signed-in user's, or (admins) all.",
        parameters=[OpenApiParameter("page", OpenApiTypes.INT),
                    OpenApiParameter("page_size", OpenApiTypes.INT)],
        responses={200: BATCH_PAGE, **errors(401, 404)})
    def get(self, request):
        batches = visible_batches(request.user).order_by("-created_at", "-pk")
        paginator = JobPagination()
        page = paginator.paginate_queryset(batches, request, view=self)
        counts = Batch.counts_of([batch.pk for batch in page])
        results = []
        for batch in page:
            mine = counts[batch.pk]
            results.append({
                "id": batch.pk, "name": batch.display_name, "status_url": batch_url(batch.pk),
                "created_at": batch.created_at, "composition": batch.composition,
                "total": sum(mine.values()), "counts": mine,
                "finished": not any(mine[status] for status in UNFINISHED)})
        return paginator.get_paginated_response(results)

    @extend_schema(
        operation_id="batches_submit",
        summary="Submit a batch: one render per row of a table",
        description="Token or session. Every row is checked first (the rules of a single job, "
                    "plus unknown or missing columns, media files missing from Dropbox, output "
                    "names that repeat). A newer batch of the same template cancels the "
                    "unfinished rows of earlier ones with the same output name.",
        request=BatchRequestSerializer,
        responses={201: CREATED, 200: DRY_RUN,
                   400: OpenApiResponse(REFUSED_ROWS, description="Bad rows (accept: all), or "
                                        "field errors of the request (detail, errors)."),
                   **errors(401, 409, 413, 415)},
    )
    def post(self, request):
        api = is_api_client(request)
        batch_request, checks = checked_batch(request)
        if batch_request.dry_run:
            return Response(_dry_run_body(batch_request, checks))
        bad = [check for check in checks if check.errors]
        if bad and (batch_request.accept == "all" or len(bad) == len(checks)):
            why = ("every row has problems" if len(bad) == len(checks)
                   else f"{len(bad)} of {len(checks)} rows have problems")
            return _refused(f"Nothing was queued: {why} (first: {_first_problem(bad[0])}). "
                            "Fix them, or send accept: \"valid\" to queue only the good rows.",
                            bad)
        client = request.user.name[:64] if api else ""
        fields, plans, shared = plan_batch(batch_request, checks, client=client,
                                           batch_id=uuid.uuid4())
        submitted = lifecycle.submit_batch(actor=actor_of(request), batch=fields, rows=plans,
                                           job_fields=shared)
        batch = submitted.batch
        body = {"id": batch.pk, "status_url": batch_url(batch.pk),
                "results_url": settings.PUBLIC_URL + reverse("api-batch-results",
                                                             args=[batch.pk]),
                "superseded": submitted.superseded,
                "rows": [{"row": row.number, "job_id": row.job_id,
                          "output_name": row.output_name, "errors": row.errors}
                         for row in submitted.rows]}
        return Response(body, status=status.HTTP_201_CREATED)


class BatchView(JsonApiView):
    @extend_schema(operation_id="batches_detail", summary="A batch: counts and every row",
                   parameters=[BATCH_ID], responses={200: BATCH, **errors(401, 404)})
    def get(self, request, batch_id):
        return Response(batch_body(get_visible_batch(request, batch_id)))


class BatchCancelView(JsonApiView):
    @extend_schema(
        operation_id="batches_cancel", summary="Cancel a batch's unfinished rows",
        description="The batch's user, an admin, or the API client that submitted it. Running "
                    "renders are killed; finished rows stay as they are.",
        parameters=[BATCH_ID], request=None,
        responses={200: inline_serializer("BatchCancelled", {
            "cancelled": serializers.ListField(child=serializers.UUIDField()),
            "batch": BATCH}), **errors(401, 404)})
    def post(self, request, batch_id):
        batch = get_visible_batch(request, batch_id)
        cancelled = lifecycle.cancel_batch(batch.pk, actor=actor_of(request))
        return Response({"cancelled": cancelled, "batch": batch_body(batch)})


class BatchRetryView(JsonApiView):
    @extend_schema(
        operation_id="batches_retry", summary="Retry a batch's failed rows",
        description="Each FAILED row goes through validation and rendering again. A row whose "
                    "output a newer batch is rendering is left alone (listed in `refused`).",
        parameters=[BATCH_ID], request=None,
        responses={200: inline_serializer("BatchRetried", {
            "retried": serializers.ListField(child=serializers.UUIDField()),
            "refused": serializers.DictField(child=serializers.CharField()),
            "batch": BATCH}), **errors(401, 404, 409)})
    def post(self, request, batch_id):
        batch = get_visible_batch(request, batch_id)
        retried, refused = lifecycle.retry_failed_rows(batch.pk, actor=actor_of(request))
        if refused and not retried:
            raise ConflictError("No failed row could be retried: "
                                + "; ".join(sorted(set(refused.values()))))
        return Response({"retried": retried, "refused": {str(k): v for k, v in refused.items()},
                         "batch": batch_body(batch)})


# --- The results CSV ---------------------------------------------------------------------

# A spreadsheet runs a cell that starts like a formula; such text is kept as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        return str(value)
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text


def results_csv(batch: Batch) -> str:
    """The table as it came, plus each row's status, output file, download link and error."""
    rows = list(batch.rows_with_jobs())
    columns = list(batch.headers)
    for row in rows:
        columns += [key for key in row.values if key not in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["row", *[_cell(c) for c in columns], "output_name", "status",
                     "output_file", "download_url", "error"])
    for row in rows:
        job = row.job if row.job_id else None
        done = job is not None and job.status == Status.COMPLETED and bool(job.output_path)
        if job is not None:
            error = job.error
        else:
            error = "; ".join(f"{column}: {message}" for column, messages in row.errors.items()
                              for message in messages)
        writer.writerow([row.number, *[_cell(row.values.get(c)) for c in columns],
                         _cell(row.output_name), row.status,
                         _cell(local_path(job.output_path, output=True)) if done else "",
                         signed_download_url(job) if done else "", _cell(error)])
    # With a BOM, spreadsheet programs read the file as UTF-8.
    return "\ufeff" + out.getvalue()


class BatchResultsView(JsonApiView):
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="batches_results", summary="A batch's results as CSV",
        description="One line per row of the table, skipped rows included: the input columns, "
                    "then output_name, status, output_file, download_url (signed, valid one "
                    "hour) and error.",
        parameters=[BATCH_ID],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR), 401: ERROR,
                   404: ERROR})
    def get(self, request, batch_id):
        batch = get_visible_batch(request, batch_id)
        response = HttpResponse(results_csv(batch), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk.hex[:8]}.csv"'
        return response
