import logging
import uuid

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import forecast, lifecycle
from jobs.access import visible_jobs
from jobs.api import schema  # noqa: F401  (registers the X-API-Token security scheme)
from jobs.api.errors import ConflictError, Gone
from jobs.api.pagination import JobPagination
from jobs.api.parsers import JSONParser
from jobs.api.permissions import IsAdminSession, IsApiClient, is_api_client, session_user
from jobs.api.serializers import (
    CommentSerializer,
    JobDetailSerializer,
    JobLogSerializer,
    JobSerializer,
    PrioritySerializer,
    RejectionSerializer,
    SubmitSerializer,
    SubmittedSerializer,
    status_url,
)
from jobs.links import (
    check_download_signature,
    check_preview_signature,
    check_preview_thumbnail_signature,
    check_thumbnail_signature,
    check_video_signature,
)
from jobs.models import Job, JobFrame, JobLog, JobPreview, JobProxy, JobThumbnail, Status
from jobs.submission.paths import (
    PathError,
    checked_output_file,
    local_path,
    open_contained,
    output_file,
)
from jobs.web.download import bytes_response, handle_response

log = logging.getLogger(__name__)


def liveness(request):
    """Unauthenticated: says only ok or error. The database's own message names its
    host and user, so it goes to the server log, not to whoever asks."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        log.exception("health check: the database is not reachable")
        return JsonResponse({"status": "error", "database": "error"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


# --- Who sees which jobs ----------------------------------------------------------


def _job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, TypeError, AttributeError):
        raise NotFound("Job not found.") from None


def with_related(jobs):
    """What the job serializers read: the user, the review preview and the preview video
    (not their bytes) and the batch row."""
    return (jobs.select_related("user", "preview", "proxy", "batch_row")
            .defer("preview__jpeg", "proxy__mp4"))


def get_visible_job(request, job_id: str) -> Job:
    job = with_related(visible_jobs(request.user)).filter(pk=_job_id(job_id)).first()
    if job is None:
        raise NotFound("Job not found.")
    return job


# --- Schema helpers -----------------------------------------------------------------

ERROR = inline_serializer("Error", {
    "detail": serializers.CharField(),
    "errors": serializers.DictField(required=False, help_text="Field errors, by field."),
})
JOB_PAGE = inline_serializer("PaginatedJobList", {
    "count": serializers.IntegerField(),
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": JobSerializer(many=True),
})
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def errors(*codes: int) -> dict:
    return {code: ERROR for code in codes}


RANGE = OpenApiParameter("Range", OpenApiTypes.STR, OpenApiParameter.HEADER,
                         description="bytes=first-last, bytes=first-, bytes=-n")


def ranged_file(media_type: str, *codes: int) -> dict:
    """The responses of a file streamed with Range support, and the ``codes`` errors."""
    return {(200, media_type): OpenApiResponse(OpenApiTypes.BINARY),
            (206, media_type): OpenApiResponse(OpenApiTypes.BINARY,
                                               description="Part of the file"),
            416: OpenApiResponse(description="The range lies outside the file."),
            **errors(*codes)}


class JsonApiView(APIView):
    parser_classes = [JSONParser]


# --- /api/jobs --------------------------------------------------------------------------


class JobsView(JsonApiView):
    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAuthenticated(), IsApiClient()]
        return [IsAuthenticated()]

    @extend_schema(
        operation_id="jobs_list",
        summary="List jobs",
        description="A token sees the jobs its client submitted; a signed-in user their own "
                    "jobs, an admin everyone's. Newest first, numbered pages; `count` is "
                    "the exact number of jobs the filter matches.",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=Status.values,
                                     description="Only jobs in this status."),
                    OpenApiParameter("page", OpenApiTypes.INT),
                    OpenApiParameter("page_size", OpenApiTypes.INT,
                                     description=f"At most {JobPagination.max_page_size}.")],
        responses={200: JOB_PAGE, **errors(400, 401, 404)},
    )
    def get(self, request):
        # The list's serializer reads none of the large columns (a job's page does).
        jobs = (with_related(visible_jobs(request.user)).select_related("node")
                .order_by("-created_at", "-pk")
                .defer("config", "project", "callback_url", "submitted_path"))
        wanted = request.query_params.get("status")
        if wanted is not None:
            wanted = wanted.strip().upper()
            if wanted not in Status.values:
                raise ValidationError({"status": [f"Unknown status; one of: "
                                                  f"{', '.join(Status.values)}."]})
            jobs = jobs.filter(status=wanted)
        paginator = JobPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        # One forecast for the page's estimates, knowing every job on it (jobs.forecast).
        # One serializer for every row: a list serializer and its child point at each
        # other, which left the page's jobs to the cyclic collector (see estimate_body).
        rows = JobSerializer(context={"forecast": forecast.for_page(page)})
        return paginator.get_paginated_response([rows.to_representation(job) for job in page])

    @extend_schema(
        operation_id="jobs_submit",
        summary="Submit a render",
        description="Answers at once; file checks and the render happen in the background. "
                    "Every earlier unfinished job of the same project and composition is "
                    "cancelled.",
        request=SubmitSerializer,
        responses={202: SubmittedSerializer, **errors(400, 401, 403, 409, 413, 415)},
    )
    def post(self, request):
        submission = SubmitSerializer(data=request.data,
                                      context={"session_user": session_user(request)})
        submission.is_valid(raise_exception=True)
        submitted = lifecycle.submit(
            actor=actor_of(request),
            **submission.validated_data.job_fields(client=request.user.name[:64]))
        job = submitted.job
        body = {"id": job.pk, "status": job.status, "status_url": status_url(job),
                "superseded": submitted.superseded}
        return Response(SubmittedSerializer(body).data, status=status.HTTP_202_ACCEPTED)


# --- /api/jobs/<id> ---------------------------------------------------------------------


class JobView(JsonApiView):
    def get_permissions(self):
        if self.request.method == "DELETE":
            return [IsAuthenticated(), IsAdminSession()]
        return [IsAuthenticated()]

    @extend_schema(operation_id="jobs_detail", summary="A job", parameters=[JOB_ID],
                   responses={200: JobDetailSerializer, **errors(401, 404)})
    def get(self, request, job_id):
        return Response(JobDetailSerializer(get_visible_job(request, job_id)).data)

    @extend_schema(operation_id="jobs_cancel", summary="Cancel a job (admin)",
                   description="A running render is killed. Finished jobs answer 409.",
                   parameters=[JOB_ID], request=None,
                   responses={200: JobDetailSerializer, **errors(401, 403, 404, 409)})
    def delete(self, request, job_id):
        job = get_visible_job(request, job_id)
        actor = request.user.email
        if not lifecycle.cancel(job.pk, actor=actor, reason=f"Cancelled by {actor}"):
            job.refresh_from_db()
            raise ConflictError(f"The job is already {job.status}; only unfinished jobs can "
                                "be cancelled.")
        job.refresh_from_db()
        return Response(JobDetailSerializer(job).data)


class JobPriorityView(JsonApiView):
    permission_classes = [IsAuthenticated, IsAdminSession]

    @extend_schema(operation_id="jobs_priority", summary="Change a job's priority (admin)",
                   parameters=[JOB_ID], request=PrioritySerializer,
                   responses={200: JobDetailSerializer, **errors(400, 401, 403, 404, 413, 415)})
    def patch(self, request, job_id):
        job = get_visible_job(request, job_id)
        change = PrioritySerializer(data=request.data)
        change.is_valid(raise_exception=True)
        if not lifecycle.set_priority(job.pk, change.validated_data["priority"],
                                      actor=request.user.email):
            raise NotFound("Job not found.")
        job.refresh_from_db()
        return Response(JobDetailSerializer(job).data)


class JobLogsView(JsonApiView):
    @extend_schema(operation_id="jobs_logs", summary="A job's full render log",
                   parameters=[JOB_ID], responses={200: JobLogSerializer, **errors(401, 404)})
    def get(self, request, job_id):
        job = get_visible_job(request, job_id)
        log = JobLog.objects.filter(job=job).first()
        body = {"log": log.text() if log else "", "omitted_bytes": log.omitted_bytes if log else 0}
        return Response(JobLogSerializer(body).data)


# --- /api/jobs/<id>/download ------------------------------------------------------------


def signed_or_visible_job(request, job_id: str, check_signature) -> Job:
    """The job a signed link names, else the job as the caller may see it."""
    pk = _job_id(job_id)
    signature = request.query_params.get("signature")
    problem = check_signature(pk, signature) if signature is not None else None
    if signature is not None and problem is None:
        job = Job.objects.filter(pk=pk).first()
        if job is None:
            raise NotFound("Job not found.")
        return job
    if request.user.is_authenticated:
        return get_visible_job(request, job_id)
    if problem:
        raise PermissionDenied(problem)
    raise NotAuthenticated()


def serve_output(request, stored: str, what: str):
    """A file recorded relative to RENDER_OUTPUT_DIR, as a (ranged) attachment.

    Its real path must stay inside the folder (a symlink put in its place must
    not serve another file), and the file opened must be the one checked;
    410 when it is gone or refused.
    """
    if not stored:
        raise Gone(f"The {what} is no longer there: none is recorded.")
    try:
        path = checked_output_file(stored)
    except PathError as exc:
        raise Gone(f"The {what} is not served: {exc.message}") from None
    if not path.is_file():
        raise Gone(f"The {what} is no longer there (moved or deleted from Dropbox): "
                   f"{local_path(stored, output=True)}.")
    try:
        handle = open_contained(path, settings.RENDER_OUTPUT_DIR)
    except PathError as exc:
        raise Gone(f"The {what} is not served: {exc.message}") from None
    except OSError as exc:
        raise Gone(f"The {what} cannot be read: {exc.strerror or exc}.") from None
    try:
        # Named as recorded (the real path may be a link's target inside the folder).
        return handle_response(request, handle, output_file(stored).name)
    except OSError as exc:
        handle.close()
        raise Gone(f"The {what} cannot be read: {exc.strerror or exc}.") from None


class AnyAccept(BaseContentNegotiation):
    """A download answers whatever the client accepts: the file, or a JSON error."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class JobDownloadView(JsonApiView):
    permission_classes = [AllowAny]
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="jobs_download",
        summary="Download a completed job's output",
        description="With a token, a session, or the signed `download_url` of the job "
                    "(valid one hour). Supports a single `Range`.",
        parameters=[JOB_ID, OpenApiParameter("signature", OpenApiTypes.STR,
                                             description="From the job's download_url."),
                    RANGE],
        responses=ranged_file("application/octet-stream", 401, 403, 404, 409, 410),
    )
    def get(self, request, job_id):
        job = signed_or_visible_job(request, job_id, check_download_signature)
        if job.status != Status.COMPLETED:
            raise ConflictError(f"The job is {job.status}; its output can be downloaded once "
                                "it is COMPLETED.")
        return serve_output(request, job.output_path, "output file")


class JobPreviewView(JsonApiView):
    permission_classes = [AllowAny]
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="jobs_preview",
        summary="A review job's preview video (H.264)",
        description="With a token, a session, or the signed `preview.download_url` of the "
                    "job (valid one hour). Supports a single `Range` (browsers seek with it).",
        parameters=[JOB_ID, OpenApiParameter("signature", OpenApiTypes.STR,
                                             description="From the job's preview links."),
                    RANGE],
        responses=ranged_file("video/mp4", 401, 403, 404, 410),
    )
    def get(self, request, job_id):
        job = signed_or_visible_job(request, job_id, check_preview_signature)
        preview = JobPreview.objects.filter(job_id=job.pk).only("path").first()
        if preview is None:
            raise NotFound("This job has no preview (yet): it was not submitted with review, "
                           "or its preview is still rendering.")
        return serve_output(request, preview.path, "preview file")


class JobPreviewThumbnailView(JsonApiView):
    permission_classes = [AllowAny]
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="jobs_preview_thumbnail",
        summary="The poster frame (JPEG) of a review job's preview",
        parameters=[JOB_ID, OpenApiParameter("signature", OpenApiTypes.STR,
                                             description="From the job's preview links.")],
        responses={(200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY),
                   **errors(401, 403, 404)},
    )
    def get(self, request, job_id):
        job = signed_or_visible_job(request, job_id, check_preview_thumbnail_signature)
        preview = JobPreview.objects.filter(job_id=job.pk).first()
        if preview is None or not preview.jpeg:
            raise NotFound("This job's preview has no poster frame (yet).")
        return jpeg_response(preview.jpeg)


class JobDecisionView(JsonApiView):
    """``approve`` or ``reject`` a job waiting for review (the view's ``decision``)."""

    decision = ""

    def decide(self, request, job_id, serializer_class, act):
        job = get_visible_job(request, job_id)
        body = serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        comment = body.validated_data["comment"].strip()
        if not act(job.pk, actor=actor_of(request), comment=comment):
            job.refresh_from_db()
            raise ConflictError(f"The job is {job.status}; only a job AWAITING_REVIEW can be "
                                f"{self.decision}.")
        return Response(JobDetailSerializer(get_visible_job(request, job_id)).data)


class JobApproveView(JobDecisionView):
    decision = "approved"

    @extend_schema(
        operation_id="jobs_approve", summary="Approve a preview: queue the final render",
        description="The job's user, an admin, or the API client that submitted it. The final "
                    "render (full settings, the job's preset) joins the queue at once; the "
                    "decision and comment go on the job's timeline.",
        parameters=[JOB_ID], request=CommentSerializer,
        responses={200: JobDetailSerializer, **errors(400, 401, 404, 409, 413, 415)})
    def post(self, request, job_id):
        return self.decide(request, job_id, CommentSerializer, lifecycle.approve)


class JobRejectView(JobDecisionView):
    decision = "rejected"

    @extend_schema(
        operation_id="jobs_reject", summary="Reject a preview: the job ends REJECTED",
        description="The job's user, an admin, or the API client that submitted it. A "
                    "comment is required; it stays with the job (timeline and `error`).",
        parameters=[JOB_ID], request=RejectionSerializer,
        responses={200: JobDetailSerializer, **errors(400, 401, 404, 409, 413, 415)})
    def post(self, request, job_id):
        return self.decide(request, job_id, RejectionSerializer, lifecycle.reject)


def actor_of(request) -> str:
    """Who acts, for the timeline: api:<client> for a client's token, the person (and
    which token) for a personal token, else the person's email."""
    if is_api_client(request):
        return request.user.actor
    return request.user.email or request.user.get_username()


def jpeg_response(jpeg) -> HttpResponse:
    response = HttpResponse(bytes(jpeg), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response


class JobThumbnailView(JsonApiView):
    permission_classes = [AllowAny]
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="jobs_thumbnail",
        summary="A completed job's poster frame (JPEG)",
        description="With a token, a session, or the signed `output.thumbnail_url` of the "
                    "job (valid one hour).",
        parameters=[JOB_ID, OpenApiParameter("signature", OpenApiTypes.STR,
                                             description="From the job's thumbnail_url.")],
        responses={(200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY),
                   **errors(401, 403, 404)},
    )
    def get(self, request, job_id):
        job = signed_or_visible_job(request, job_id, check_thumbnail_signature)
        thumbnail = JobThumbnail.objects.filter(job_id=job.pk).first()
        if not job.has_thumbnail or thumbnail is None:
            raise NotFound("This job has no thumbnail (yet).")
        return jpeg_response(thumbnail.jpeg)


class JobVideoView(JsonApiView):
    permission_classes = [AllowAny]
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="jobs_video",
        summary="A completed job's preview video (small H.264 MP4)",
        description="Made after completion from the output (which may be a format browsers "
                    "cannot play), capped in size; `output.video_url` links it once it is "
                    "made. With a token, a session, or that signed link (valid one hour). "
                    "Supports a single `Range` (players seek with it).",
        parameters=[JOB_ID, OpenApiParameter("signature", OpenApiTypes.STR,
                                             description="From the job's output.video_url."),
                    RANGE],
        responses=ranged_file("video/mp4", 401, 403, 404),
    )
    def get(self, request, job_id):
        job = signed_or_visible_job(request, job_id, check_video_signature)
        proxy = JobProxy.objects.filter(job_id=job.pk).first()
        if proxy is None:
            raise NotFound("This job has no preview video (yet): it is made after the render "
                           "completes, for video outputs.")
        return bytes_response(request, bytes(proxy.mp4), content_type="video/mp4",
                              tag=f'"{job.pk.hex}-{int(proxy.created_at.timestamp())}"',
                              modified=proxy.created_at)


class JobFrameView(JsonApiView):
    @extend_schema(
        operation_id="jobs_frame",
        summary="The newest rendered frame of an image-sequence job (JPEG)",
        description="Sent by the render node while the sequence renders; afterwards the "
                    "last frame.",
        parameters=[JOB_ID],
        responses={(200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY),
                   **errors(401, 404)},
    )
    def get(self, request, job_id):
        job = get_visible_job(request, job_id)
        frame = JobFrame.objects.filter(job_id=job.pk).first()
        if frame is None:
            raise NotFound("This job has no rendered frame to show (yet).")
        return jpeg_response(frame.jpeg)
