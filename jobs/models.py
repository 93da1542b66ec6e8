import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Status(models.TextChoices):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    QUEUED = "QUEUED"
    RENDERING = "RENDERING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
ACTIVE = (Status.PENDING, Status.VALIDATING, Status.QUEUED, Status.RENDERING)


class Engine(models.TextChoices):
    NEXRENDER = "nexrender"
    AERENDER = "aerender"
    FFMPEG = "ffmpeg"


class Phase(models.TextChoices):
    NONE = ""
    WAITING = "waiting"
    SETTING_UP = "setting up"
    RENDERING = "rendering"
    ENCODING = "encoding"
    PUBLISHING = "publishing"


class RenderNode(models.Model):
    name = models.CharField(max_length=100, unique=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Commands from the admin panel ("restart") reach the worker through here.
    command = models.CharField(max_length=32, blank=True)

    def __str__(self):
        return self.name

    def is_alive(self, now=None) -> bool:
        now = now or timezone.now()
        age = (now - self.last_heartbeat).total_seconds()
        return self.stopped_at is None and age < settings.NODE_TIMEOUT_SECONDS


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    engine = models.CharField(max_length=12, choices=Engine.choices, default=Engine.NEXRENDER)
    priority = models.IntegerField(default=0)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="jobs")
    client = models.CharField(max_length=64, blank=True, help_text="API client that submitted")
    mac_username = models.CharField(max_length=64, blank=True)

    submitted_path = models.CharField(max_length=1024, blank=True)
    project_path = models.CharField(max_length=1024, blank=True)
    # Case-folded resolved path: supersede and the one-active-job rule use it.
    path_key = models.CharField(max_length=1024, blank=True)
    saved_at = models.DateTimeField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True, help_text="Cleaned engine config")
    # Cleaned output preset (jobs.submission.presets); empty: the engine's own output.
    preset = models.JSONField(default=dict, blank=True, help_text="Cleaned output preset")
    callback_url = models.URLField(max_length=2000, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Validation state lives on the row so that any node can continue it.
    validation_attempts = models.IntegerField(default=0)
    validation_next_at = models.DateTimeField(null=True, blank=True)
    validation_size = models.BigIntegerField(null=True, blank=True)
    validation_mtime = models.FloatField(null=True, blank=True)
    validation_seen_at = models.DateTimeField(null=True, blank=True)
    validation_message = models.CharField(max_length=500, blank=True)

    attempts = models.IntegerField(default=0)
    node = models.ForeignKey(RenderNode, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="jobs")
    # Identifies one claim; a worker whose lease no longer matches must stop.
    lease = models.UUIDField(null=True, blank=True)
    render_pid = models.IntegerField(null=True, blank=True)
    render_spawned_at = models.DateTimeField(null=True, blank=True)
    # Wall time of the last render process, for metrics and the overhead benchmark.
    render_seconds = models.FloatField(null=True, blank=True)

    progress = models.FloatField(default=0)
    phase = models.CharField(max_length=16, choices=Phase.choices, blank=True)
    frames_done = models.IntegerField(default=0)
    frames_total = models.IntegerField(null=True, blank=True)
    eta_seconds = models.IntegerField(null=True, blank=True)
    last_output_at = models.DateTimeField(null=True, blank=True)

    error = models.TextField(blank=True)
    # Why the job failed, as a stable code for clients (missing_composition,
    # ae_busy, crashed, ...); the words for people are in ``error``.
    error_code = models.CharField(max_length=40, blank=True)
    # Problems that did not stop the render (missing footage or fonts AE
    # reported): a list of {"code", "message"} objects.
    warnings = models.JSONField(default=list, blank=True)
    # What the render node read from the project file before rendering
    # (compositions, the composition's size and length, footage, fonts).
    project = models.JSONField(default=dict, blank=True)
    output_path = models.CharField(max_length=1024, blank=True)
    output_size = models.BigIntegerField(null=True, blank=True)
    # A poster frame of the output is stored in JobThumbnail (jobs.node.engines.thumbnails).
    has_thumbnail = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["-priority", "created_at"], name="job_queue_order",
                         condition=Q(status="QUEUED")),
            models.Index(fields=["status", "-created_at"], name="job_status_created"),
            models.Index(fields=["-created_at"], name="job_created"),
            # The dashboard's "sort by priority" (keyset pagination).
            models.Index(fields=["-priority", "-created_at"], name="job_priority_created"),
            models.Index(fields=["user", "-created_at"], name="job_user_created"),
            models.Index(fields=["client", "-created_at"], name="job_client_created"),
            models.Index(fields=["path_key"], name="job_path_key"),
            models.Index(fields=["finished_at"], name="job_finished"),
        ]
        constraints = [
            # The database itself guarantees that one project has at most one
            # job in flight, however submissions race.
            models.UniqueConstraint(
                fields=["path_key"], name="one_active_job_per_project",
                condition=Q(status__in=["PENDING", "VALIDATING", "QUEUED", "RENDERING"])
                & ~Q(path_key=""),
            ),
        ]

    def __str__(self):
        return f"{self.name or self.project_path} [{self.status}]"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        return self.project_path.replace("\\", "/").rsplit("/", 1)[-1] or str(self.id)


class JobLog(models.Model):
    """A job's render output, kept apart from the job row and capped in size."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True,
                               related_name="log")
    head = models.TextField(blank=True)
    tail = models.TextField(blank=True)
    omitted_bytes = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"log of job {self.job_id}"

    def text(self) -> str:
        if not self.omitted_bytes:
            return self.head + self.tail
        marker = f"\n[... {self.omitted_bytes} bytes of log omitted ...]\n"
        return self.head + marker + self.tail


class JobThumbnail(models.Model):
    """A poster frame (JPEG) of a completed job's video output.

    Kept in the database, not beside the output: the web server that shows it
    may be another machine than the render node that made it, and Dropbox
    should sync renders only.
    """

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True,
                               related_name="thumbnail")
    jpeg = models.BinaryField()
    width = models.IntegerField()
    height = models.IntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"thumbnail of {self.job_id} ({self.width}x{self.height})"


class JobEvent(models.Model):
    """A job's timeline entry, and the outbox that live updates are read from."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=32)
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "id"], name="event_job")]

    def __str__(self):
        return f"{self.kind} {self.from_status}->{self.to_status}"
