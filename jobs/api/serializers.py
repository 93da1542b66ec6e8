from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from jobs import forecast
from jobs.links import (
    signed_download_url,
    signed_preview_thumbnail_url,
    signed_preview_url,
    signed_thumbnail_url,
    signed_video_url,
)
from jobs.models import Engine, Job, JobEvent, JobLog, JobProxy, Status
from jobs.submission.errors import InvalidInput
from jobs.submission.paths import local_path
from jobs.submission.presets import CODECS, NAMES, QUALITY
from jobs.submission.single import JobRequest, clean_job

PRIORITY_MIN, PRIORITY_MAX = -1000, 1000
LOG_TAIL_CHARS = 4096
MAX_COMMENT_CHARS = 2000
DECISIONS = ("approved", "rejected")
REVIEW_HELP = ("Render a preview first (After Effects' \"Draft Settings\" at half "
               "resolution, as a small H.264) and wait in AWAITING_REVIEW until a person "
               "approves it (POST /api/jobs/{id}/approve: the final render is queued) or "
               "rejects it (POST /api/jobs/{id}/reject).")


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming them, instead of ignoring them."""

    refused_fields: dict[str, str] = {}

    def to_internal_value(self, data):
        errors = {}
        if isinstance(data, dict):
            for key in data:
                if key in self.refused_fields:
                    errors[key] = [self.refused_fields[key]]
                elif key not in self.fields:
                    errors[key] = [f"Unknown field; allowed: {', '.join(self.fields)}."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            errors = {**exc.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return value


_NAME = {"type": "string", "maxLength": 255,
         "description": "No quotes, backslashes, '$', '*/' or control characters."}
_LAYER = {"layerName": _NAME, "layerIndex": {"type": "integer", "minimum": 1},
          "composition": _NAME}
NEXRENDER_SCHEMA = {
    "type": "object",
    "required": ["template"],
    "additionalProperties": False,
    "properties": {
        "template": {
            "type": "object",
            "required": ["composition"],
            "additionalProperties": False,
            "properties": {
                "composition": _NAME,
                "outputModule": _NAME,
                "settingsTemplate": _NAME,
                "outputExt": {"type": "string", "pattern": "^[A-Za-z0-9]{1,10}$"},
                "renderSettings": {"type": "string", "description": "name:value;name:value"},
                "outputSettings": {"type": "string", "description": "name:value;name:value"},
                "frameStart": {"type": "integer", "minimum": 0},
                "frameEnd": {"type": "integer", "minimum": 0},
                "frameIncrement": {"type": "integer", "minimum": 1},
                "continueOnMissing": {"type": "boolean"},
                "imageSequence": {"type": "boolean"},
            },
        },
        "assets": {
            "type": "array",
            "maxItems": 200,
            "items": {"oneOf": [
                {"type": "object", "required": ["type", "property", "value"],
                 "additionalProperties": False,
                 "properties": {"type": {"enum": ["data"]}, "property": _NAME,
                                "value": {}, **_LAYER}},
                {"type": "object", "required": ["type", "src"], "additionalProperties": False,
                 "properties": {"type": {"enum": ["image", "video", "audio"]},
                                "src": {"type": "string", "description": "A file inside the "
                                        "Dropbox folder: a path or a file:// URI."},
                                **_LAYER}},
            ]},
        },
    },
}


@extend_schema_field(NEXRENDER_SCHEMA)
class NexrenderField(serializers.JSONField):
    """nexrender's job format, restricted to ``template`` and ``assets``."""


_SRC = {"type": "string", "description": "A file inside the Dropbox folder (a path or a "
        "file:// URI), or an http(s) URL on a host in TIMELINE_ALLOWED_HOSTS."}
TIMELINE_SCHEMA = {
    "type": "object",
    "required": ["width", "height"],
    "additionalProperties": False,
    "properties": {
        "width": {"type": "integer", "minimum": 16, "description": "Even; at most "
                  "TIMELINE_MAX_WIDTH (1920)."},
        "height": {"type": "integer", "minimum": 16, "description": "Even; at most "
                   "TIMELINE_MAX_HEIGHT (1080)."},
        "fps": {"type": "number", "minimum": 1, "maximum": 60, "default": 30},
        "duration": {"type": "number", "nullable": True, "minimum": 0,
                     "exclusiveMinimum": True,
                     "description": "Seconds. Without it: the end of the longest track with "
                     "decides_duration, else of the longest track."},
        "backgrounds": {"type": "array", "maxItems": 4, "items": {
            "type": "object", "required": ["src", "type"], "additionalProperties": False,
            "properties": {
                "src": _SRC,
                "type": {"enum": ["image", "video"]},
                "crossfade": {"type": "number", "minimum": 0, "maximum": 10,
                              "description": "Seconds of fade from the background before."},
                "duration": {"type": "number", "nullable": True, "minimum": 0,
                             "exclusiveMinimum": True,
                             "description": "Seconds shown (stills share the rest without)."},
                "fit": {"enum": ["contain", "cover"], "default": "contain"},
                "decides_duration": {"type": "boolean"},
            }}},
        "audio": {"type": "array", "items": {
            "type": "object", "required": ["src"], "additionalProperties": False,
            "properties": {
                "src": _SRC,
                "fade": {"type": "number", "minimum": 0, "maximum": 30,
                         "description": "Seconds of fade in and out."},
                "decides_duration": {"type": "boolean"},
            }}},
    },
}
PRESET_SCHEMA = {"oneOf": [
    {"type": "string", "enum": list(NAMES)},
    {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
        "name": {"type": "string", "enum": list(NAMES)},
        "quality": {"type": "string", "enum": list(QUALITY)},
        "codec": {"type": "string", "enum": list(CODECS), "description": "custom only"},
        "bitrate": {"oneOf": [{"type": "integer"}, {"type": "string"}],
                    "description": "custom only: bits per second, or '8M', '800k'"},
        "crf": {"type": "integer", "minimum": 0, "maximum": 51, "description": "custom only"},
        "width": {"type": "integer", "description": "custom only; even"},
        "height": {"type": "integer", "description": "custom only; even"},
    }},
]}


@extend_schema_field(TIMELINE_SCHEMA)
class TimelineField(serializers.JSONField):
    """An ffmpeg job's timeline (jobs.submission.timeline)."""


@extend_schema_field(PRESET_SCHEMA)
class PresetField(serializers.JSONField):
    """An output preset (jobs.submission.presets)."""


class SubmitSerializer(serializers.Serializer):
    """``POST /api/jobs``: the fields below describe the body for the schema; the body is
    checked by jobs.submission.single.clean_job, the rules the dashboard's form uses too.

    ``session_user`` in the context: the person a personal token acts for.
    """

    project_path = serializers.CharField(
        max_length=1024, required=False, help_text="Windows path inside the Dropbox folder, "
        "or the macOS path (/Users/<name>/Dropbox/...) of the same file. Required for the "
        "After Effects engines (nexrender, aerender).")
    saved_at = serializers.DateTimeField(
        required=False, help_text="ISO-8601 time the client saved the project, with its UTC "
        "offset (Z or +01:00; a time without one is refused); an older file on this machine "
        "is waited for. Required for the After Effects engines, except with a personal token "
        "(then the file renders once it is synced and stable).")
    mac_username = serializers.CharField(
        max_length=64, required=False,
        help_text="The artist's macOS account name, registered in their profile. Required, "
        "except with a personal token: its person's jobs (a name given must be theirs).")
    nexrender = NexrenderField(
        required=False,
        help_text="Required for the After Effects engines. "
        "nexrender's job format restricted to `template` (composition required; "
        "outputModule, outputExt, settingsTemplate, renderSettings, outputSettings, "
        "frameStart, frameEnd, frameIncrement, continueOnMissing, imageSequence) and "
        "`assets` (data, image, video, audio).")
    callback_url = serializers.URLField(
        max_length=2000, required=False, allow_blank=True, default="",
        help_text="Receives a signed POST when the job completes, fails or is cancelled.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    engine = serializers.ChoiceField(choices=Engine.choices, required=False,
                                     help_text="Defaults to ffmpeg when a `timeline` is given, "
                                     "else to the server's RENDER_ENGINE.")
    timeline = TimelineField(
        required=False, help_text="The ffmpeg engine's render (instead of project_path, "
        "saved_at and nexrender): canvas, fps, duration, up to 4 backgrounds and audio tracks.")
    preset = PresetField(
        required=False, help_text="Output preset for any engine: web (H.264 8 Mbps 1080p), "
        "social (H.264 12 Mbps 1080p), high_quality (ProRes 422 4K) or custom; quality "
        "ultra/high/medium/low. After Effects renders are transcoded afterwards.")
    review = serializers.BooleanField(
        required=False, default=False, help_text=REVIEW_HELP)

    def to_internal_value(self, data) -> JobRequest:
        try:
            return clean_job(data, session_user=self.context.get("session_user"))
        except InvalidInput as exc:
            found = exc.errors if isinstance(exc.errors, dict) else {
                api_settings.NON_FIELD_ERRORS_KEY: exc.errors}
            raise serializers.ValidationError(found) from None


class SubmittedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.choices)
    status_url = serializers.URLField()
    superseded = serializers.ListField(child=serializers.UUIDField(),
                                       help_text="Earlier jobs of this project, now cancelled.")


class OutputSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Where this server finds the file, inside "
                                 "RENDER_OUTPUT_DIR (stored relative to it).")
    size = serializers.IntegerField(allow_null=True)
    download_url = serializers.URLField(help_text="Signed link, valid for one hour.")
    thumbnail_url = serializers.URLField(
        allow_null=True, help_text="A poster frame (JPEG) of the video; signed link, valid "
        "for one hour. Null for image sequences.")
    video_url = serializers.URLField(
        allow_null=True, help_text="A small H.264 MP4 of the video that browsers play, made "
        "after completion; signed link, valid for one hour. Null until it is made, and for "
        "image sequences.")


class PreviewSerializer(serializers.Serializer):
    size = serializers.IntegerField()
    download_url = serializers.URLField(help_text="The preview video (H.264); signed link, "
                                        "valid for one hour.")
    thumbnail_url = serializers.URLField(allow_null=True, help_text="Its poster frame (JPEG); "
                                         "signed link, valid for one hour.")


class BatchLinkSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    row = serializers.IntegerField(help_text="The 1-based data row of the batch's table.")
    url = serializers.URLField()


def has_proxy(job) -> bool:
    """Whether ``job`` has its preview video, without reading the video."""
    relation = Job.proxy.related
    if relation.is_cached(job):
        return relation.get_cached_value(job) is not None
    return JobProxy.objects.filter(job_id=job.pk).exists()


def preview_of(job):
    """The job's JobPreview, or None."""
    return getattr(job, "preview", None)


def preview_body(job) -> dict | None:
    preview = preview_of(job)
    if preview is None:
        return None
    return {"size": preview.size, "download_url": signed_preview_url(job),
            "thumbnail_url": signed_preview_thumbnail_url(job, preview)}


class CostSerializer(serializers.Serializer):
    amount = serializers.FloatField(help_text="Estimated minutes × RENDER_COST_PER_MINUTE.")
    currency = serializers.CharField(help_text="RENDER_COST_CURRENCY, e.g. EUR.")


class EstimateSerializer(serializers.Serializer):
    """When a render will be done, and what it stands on (jobs.estimates)."""

    render_seconds = serializers.FloatField(
        help_text="How long the render takes in all, from the claim until it is "
        "published: seconds per frame from earlier renders (this composition of this "
        "project; the same composition name and frame size; the render node's recent "
        "renders; a configured default) times the frames, plus setup and publishing. "
        "While it renders, blended with the live rate.")
    starts_at = serializers.DateTimeField(
        allow_null=True, help_text="When a render node takes it, walking the queue in claim "
        "order over the nodes that are up. A job not in the queue yet (pending, validating, "
        "or not submitted) as if it joined the queue now. Null when no node is up.")
    finishes_at = serializers.DateTimeField(allow_null=True)
    basis = serializers.CharField(help_text="What the estimate stands on, in words, e.g. "
                                  "'median of 5 renders of this composition'.")
    cost = CostSerializer(allow_null=True, help_text="Null unless the server sets "
                          "RENDER_COST_PER_MINUTE and RENDER_COST_CURRENCY.")
    queue_position = serializers.IntegerField(allow_null=True,
                                              help_text="1: next to render. Queued jobs only.")
    frames = serializers.IntegerField(help_text="The frames the estimate counts.")


_MOMENT = serializers.DateTimeField()


def _moment(value):
    """A date and time as the API writes them (DRF's DateTimeField), None as null."""
    return None if value is None else _MOMENT.to_representation(value)


def estimate_body(estimate) -> dict | None:
    """An estimate as EstimateSerializer writes it (tests/api/test_job_body.py compares
    them), without making one per row: a serializer's fields point back at it, so each
    one left a reference cycle behind, and a page of 50 of them woke the cyclic
    collector every few requests, whose full passes over the web process's forecast
    took 30-90 ms in the middle of a request (bench/job_list.py)."""
    body = forecast.as_dict(estimate)
    if body is None:
        return None
    return {**body, "starts_at": _moment(body["starts_at"]),
            "finishes_at": _moment(body["finishes_at"])}


class JobSerializer(serializers.ModelSerializer):
    user = serializers.SerializerMethodField()
    project_path = serializers.SerializerMethodField()
    output = serializers.SerializerMethodField()
    preview = serializers.SerializerMethodField()
    batch = serializers.SerializerMethodField()
    estimate = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "name", "status", "engine", "client", "progress", "phase",
                  "eta_seconds", "priority", "attempts", "project_path", "mac_username",
                  "user", "created_at", "started_at", "finished_at", "error", "error_code",
                  "warnings", "frames_total", "preset", "output", "review", "preview", "batch",
                  "estimate"]
        read_only_fields = fields
        extra_kwargs = {
            "review": {"help_text": "Submitted with review: a preview is rendered first and "
                       "waits for a person's approval."},
            "error": {"help_text": "Why the job (or its last attempt) failed: the first line in "
                      "After Effects' own words, then what to do about it."},
            "error_code": {"help_text": "The cause as a stable code: missing_composition, "
                           "missing_template, missing_footage, footage_unreadable, "
                           "unsupported_codec, output_not_writable, output_write_failed, "
                           "script_error, bad_arguments, ae_busy, ae_launch_failed, "
                           "ae_exited_silently, ae_error, crashed, stalled, no_output, "
                           "node_lost, encoding_failed, internal_error."},
            "warnings": {"help_text": "Problems After Effects reported that did not stop the "
                         "render, as {\"code\", \"message\"}: missing_font, missing_footage "
                         "(with continueOnMissing), ae_warning."},
        }

    def to_representation(self, job):
        """What the generic ModelSerializer gives (tests/api/test_job_body.py compares
        both for jobs in every state), written out field by field: a page holds up to
        200 jobs, and DRF's per-field machinery cost most of a list request."""
        return {
            "id": str(job.id),
            "name": job.name,
            "status": job.status,
            "engine": job.engine,
            "client": job.client,
            "progress": None if job.progress is None else float(job.progress),
            "phase": job.phase,
            "eta_seconds": job.eta_seconds,
            "priority": job.priority,
            "attempts": job.attempts,
            "project_path": self.get_project_path(job),
            "mac_username": job.mac_username,
            "user": self.get_user(job),
            "created_at": _moment(job.created_at),
            "started_at": _moment(job.started_at),
            "finished_at": _moment(job.finished_at),
            "error": job.error,
            "error_code": job.error_code,
            "warnings": job.warnings,
            "frames_total": job.frames_total,
            "preset": job.preset,
            "output": self.get_output(job),
            "review": job.review,
            "preview": self.get_preview(job),
            "batch": self.get_batch(job),
            "estimate": self.get_estimate(job),
        }

    @extend_schema_field(PreviewSerializer(allow_null=True))
    def get_preview(self, job):
        return preview_body(job)

    @extend_schema_field(BatchLinkSerializer(allow_null=True))
    def get_batch(self, job):
        row = getattr(job, "batch_row", None)
        if row is None:
            return None
        return {"id": row.batch_id, "row": row.number,
                "url": settings.PUBLIC_URL + reverse("api-batch", args=[row.batch_id])}

    @extend_schema_field(serializers.EmailField(allow_null=True))
    def get_user(self, job):
        return job.user.email if job.user_id else None

    @extend_schema_field(serializers.CharField(
        help_text="The project file as this server finds it in its Dropbox folder (jobs "
                  "store it relative to the folder; each render node has its own). Empty "
                  "for timeline (ffmpeg) jobs."))
    def get_project_path(self, job):
        return local_path(job.project_path) if job.project_path else ""

    @extend_schema_field(OutputSerializer(allow_null=True))
    def get_output(self, job):
        if job.status != Status.COMPLETED or not job.output_path:
            return None
        return {"path": local_path(job.output_path, output=True), "size": job.output_size,
                "download_url": signed_download_url(job),
                "thumbnail_url": signed_thumbnail_url(job),
                "video_url": signed_video_url(job) if has_proxy(job) else None}

    @extend_schema_field(EstimateSerializer(allow_null=True))
    def get_estimate(self, job):
        if job.is_final:
            return None
        # One forecast for a whole page of jobs.
        if "forecast" not in self.context:
            self.context["forecast"] = forecast.current()
        return estimate_body(forecast.estimate_for(job, self.context["forecast"]))


FOOTAGE_STATUSES = ["found", "syncing", "missing", "replaced"]


class FootageSerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField(allow_null=True, help_text="As stored in the project: the "
                                 "path on the machine that saved it (null: a placeholder).")
    relative_path = serializers.CharField(allow_null=True, help_text="The path relative to the "
                                          "project's folder that After Effects falls back to.")
    resolved = serializers.CharField(allow_null=True, help_text="Where the file is on the render "
                                     "node, or where it was looked for first.")
    status = serializers.ChoiceField(choices=FOOTAGE_STATUSES,
                                     help_text="replaced: every layer using it is replaced by "
                                     "one of the job's assets.")
    used_by = serializers.ListField(child=serializers.CharField(),
                                    help_text="'composition › layer', at most 10.")
    size = serializers.IntegerField(allow_null=True)


class CompositionSerializer(serializers.Serializer):
    name = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    fps = serializers.FloatField()
    duration_seconds = serializers.FloatField(allow_null=True)
    frames = serializers.IntegerField(help_text="Frames rendered: the work area, or the job's "
                                      "frameStart/frameEnd (and frameIncrement).")
    start_frame = serializers.IntegerField()
    end_frame = serializers.IntegerField()
    range = serializers.ChoiceField(choices=["work area", "frameStart/frameEnd"])


class ProjectSerializer(serializers.Serializer):
    """What the render node read from the .aep before rendering (empty until then)."""

    error = serializers.CharField(allow_null=True, help_text="Why the project could not be "
                                  "read (it then renders without these checks); null if read.")
    compositions = serializers.ListField(child=serializers.CharField())
    composition = CompositionSerializer(allow_null=True, help_text="Null: not in the project.")
    footage = FootageSerializer(many=True, help_text="Files the composition uses, nested "
                                "compositions included.")
    fonts = serializers.ListField(child=serializers.CharField(),
                                  help_text="PostScript names used by its text layers.")
    saved_with = serializers.CharField(help_text="After Effects version, e.g. 23.5x52.")
    saved_with_name = serializers.CharField()


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approved", "rejected"])
    by = serializers.CharField(help_text="Who decided (an email, or api:<client>).")
    at = serializers.DateTimeField()
    comment = serializers.CharField(allow_blank=True)


class JobDetailSerializer(JobSerializer):
    log_tail = serializers.SerializerMethodField()
    project = serializers.SerializerMethodField()
    decisions = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + ["project", "decisions", "log_tail"]
        read_only_fields = fields

    def to_representation(self, job):
        body = super().to_representation(job)
        body.update(project=self.get_project(job), decisions=self.get_decisions(job),
                    log_tail=self.get_log_tail(job))
        return body

    @extend_schema_field(ProjectSerializer)
    def get_project(self, job):
        return job.project

    @extend_schema_field(DecisionSerializer(many=True))
    def get_decisions(self, job):
        """The review decisions on the job's timeline, oldest first."""
        events = JobEvent.objects.filter(job=job, kind__in=DECISIONS).order_by("id")
        return [{"decision": e.kind, "by": e.actor, "at": e.created_at, "comment": e.message}
                for e in events]

    @extend_schema_field(OpenApiTypes.STR)
    def get_log_tail(self, job):
        log = JobLog.objects.filter(job=job).first()
        return log.text()[-LOG_TAIL_CHARS:] if log else ""


class JobLogSerializer(serializers.Serializer):
    log = serializers.CharField()
    omitted_bytes = serializers.IntegerField(
        help_text="Bytes cut from the middle of a long log (its head and tail are kept).")


class CommentSerializer(StrictSerializer):
    comment = serializers.CharField(
        max_length=MAX_COMMENT_CHARS, required=False, allow_blank=True, default="",
        help_text="Shown on the job's timeline with who decided and when.")


class RejectionSerializer(StrictSerializer):
    comment = serializers.CharField(
        max_length=MAX_COMMENT_CHARS, help_text="Why: required, and kept with the job.")


class PrioritySerializer(StrictSerializer):
    priority = serializers.IntegerField(min_value=PRIORITY_MIN, max_value=PRIORITY_MAX,
                                        help_text="Higher renders first.")


def status_url(job) -> str:
    return settings.PUBLIC_URL + reverse("api-job", args=[job.pk])
