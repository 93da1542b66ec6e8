import hashlib
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, models
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    Value,
    When,
)
from django.db.models.functions import Now
from django.utils import timezone


class Status(models.TextChoices):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    QUEUED = "QUEUED"
    RENDERING = "RENDERING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    # Its preview is rendered; a person approves it (the final render is queued)
    # or rejects it (REJECTED).
    AWAITING_REVIEW = "AWAITING_REVIEW"
    REJECTED = "REJECTED"


FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.REJECTED)
# On its way through validation, the queue and a render node.
ACTIVE = (Status.PENDING, Status.VALIDATING, Status.QUEUED, Status.RENDERING)
# Not final: what supersede, cancel and the one-unfinished-job rule count.
UNFINISHED = (*ACTIVE, Status.AWAITING_REVIEW)
STATUS_CHARS = 16
# What a batch row without a job shows instead of a status.
SKIPPED, DELETED = "SKIPPED", "DELETED"


COMPOSITION_CHARS = 255


def _template_composition(config):
    template = config.get("template") if isinstance(config, dict) else None
    return template.get("composition", "") if isinstance(template, dict) else ""


def composition_of(config) -> str:
    """The composition a job's nexrender config renders ("" for timelines and bad configs)."""
    composition = _template_composition(config)
    return composition[:COMPOSITION_CHARS] if isinstance(composition, str) else ""


def supersede_key(path_key: str, config: dict | None, output_name: str = "") -> str:
    """What a newer submission replaces: the same project (``path_key``, already
    case-folded) and composition and, for batch rows, the same output name
    (case-insensitively, as Windows compares file names). Empty: nothing."""
    if not path_key:
        return ""
    composition = _template_composition(config)
    text = "\x1f".join([path_key, str(composition), output_name.casefold()])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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


class NodeCommand:
    """What an admin asks of a render node through ``RenderNode.command``.

    PM2 on Windows ends a process outright, so a node is told through the
    database before it is killed: ``drain`` finishes the current render,
    ``stop`` puts it back in the queue without using an attempt; either way
    the node then stops claiming and writes ``parked`` once it renders
    nothing, so the process can be killed at no cost. ``restart`` requeues
    the render and restarts the worker in-process. An empty command (also
    what a freshly started worker writes) means work normally.
    """

    RESTART = "restart"
    DRAIN = "drain"
    STOP = "stop"
    PARKED = "parked"
    PARKING = (DRAIN, STOP)


def heartbeat_cutoff():
    """The one liveness rule: a node is alive while its last heartbeat is younger
    than NODE_TIMEOUT_SECONDS, both read on the DATABASE's clock (heartbeats
    are written with ``Now()``), so node clocks never enter the comparison."""
    return Now() - timedelta(seconds=settings.NODE_TIMEOUT_SECONDS)


def database_now():
    """The database's clock, for comparing with times written with ``Now()`` (a
    render's ``started_at``): PostgreSQL's; SQLite's is this machine's own."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def alive_q(prefix: str = "") -> Q:
    """Q for live nodes (``prefix``: the lookup path from another model, e.g. "node__")."""
    return Q(**{f"{prefix}stopped_at__isnull": True,
                f"{prefix}last_heartbeat__gte": heartbeat_cutoff()})


class RenderNodeQuerySet(models.QuerySet):
    def alive(self):
        return self.filter(alive_q())

    def silent(self):
        """Nodes that stopped, or stopped heartbeating."""
        return self.exclude(alive_q())

    def with_liveness(self):
        """Each node with ``heartbeat_age`` (a timedelta on the database's clock)
        and ``alive`` (the rule above), for pages and alerts."""
        return self.annotate(
            heartbeat_age=ExpressionWrapper(Now() - F("last_heartbeat"),
                                            output_field=DurationField()),
            alive=Case(When(alive_q(), then=Value(True)), default=Value(False),
                       output_field=BooleanField()))


class RenderNode(models.Model):
    name = models.CharField(max_length=100, unique=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    # Written with the database's clock (Now()), never the node's: see heartbeat_cutoff().
    last_heartbeat = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Admin commands reach the worker through here (NodeCommand).
    command = models.CharField(max_length=32, blank=True)

    objects = RenderNodeQuerySet.as_manager()

    def __str__(self):
        return self.name

    def is_alive(self) -> bool:
        """The liveness rule (heartbeat_cutoff) for this node, on the database's clock."""
        known = getattr(self, "alive", None)
        if known is not None:
            return bool(known)
        return RenderNode.objects.alive().filter(pk=self.pk).exists()

    @property
    def parked(self) -> bool:
        return self.command == NodeCommand.PARKED


class ClaimPause(models.Model):
    """While an unexpired pause exists no node claims a job (the self-update
    pauses the farm). It lapses by itself at ``until`` (database clock), so a
    process that died while holding it cannot stop the farm for good."""

    reason = models.CharField(max_length=200)
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField()

    def __str__(self):
        return f"claims paused: {self.reason}"


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=STATUS_CHARS, choices=Status.choices,
                              default=Status.PENDING)
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
    # Submitted with review: a preview is rendered first and a person approves it.
    review = models.BooleanField(default=False)
    # The next render is that preview (cleared by the approval). Previews go
    # ahead of final renders of the same priority.
    needs_preview = models.BooleanField(default=False)
    # A batch row's output file name (jobs.submission.batches.safe_output_name),
    # without extension; empty for single jobs (the name is made from the job).
    output_name = models.CharField(max_length=120, blank=True)
    # Who supersedes whom: a digest of the project, the composition and, for a
    # batch row, its output name (jobs.lifecycle.supersede_key). At most one
    # unfinished job per key.
    supersede_key = models.CharField(max_length=64, blank=True)
    # The newer submission that cancelled this job. A plain id rather than a
    # foreign key: the newer job is younger, so retention never removes it first.
    superseded_by = models.UUIDField(null=True, blank=True)
    # config's template.composition, kept in a column of its own: the job list
    # shows it and searches it without reading the config JSON.
    composition = models.CharField(max_length=COMPOSITION_CHARS, blank=True)

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
    # When a RENDERING job was first seen without a node (its RenderNode row was
    # deleted), on the database's clock. A live worker re-registers and takes it
    # back; otherwise it is requeued NODE_TIMEOUT_SECONDS later.
    node_lost_at = models.DateTimeField(null=True, blank=True)
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
            models.Index(fields=["-priority", "-needs_preview", "created_at"],
                         name="job_queue_order", condition=Q(status="QUEUED")),
            models.Index(fields=["status", "-created_at"], name="job_status_created"),
            models.Index(fields=["-created_at"], name="job_created"),
            # The dashboard's "sort by priority" (keyset pagination).
            models.Index(fields=["-priority", "-created_at"], name="job_priority_created"),
            models.Index(fields=["user", "-created_at"], name="job_user_created"),
            models.Index(fields=["client", "-created_at"], name="job_client_created"),
            # What a user or an API client sees, by status: the list's status tabs and
            # their capped counts, GET /api/jobs?status= (an index-only count).
            models.Index(fields=["user", "status", "-created_at"], name="job_user_status_created"),
            models.Index(fields=["client", "status", "-created_at"],
                         name="job_client_status_created"),
            models.Index(fields=["path_key"], name="job_path_key"),
            models.Index(fields=["finished_at"], name="job_finished"),
        ]
        constraints = [
            # The database itself guarantees that one composition of a project
            # (one output of a batch template) has at most one unfinished job,
            # however submissions race.
            models.UniqueConstraint(
                fields=["supersede_key"], name="one_unfinished_job_per_target",
                condition=Q(status__in=[s.value for s in UNFINISHED]) & ~Q(supersede_key=""),
            ),
        ]

    def __str__(self):
        return f"{self.name or self.project_path} [{self.status}]"

    def save(self, *args, **kwargs):
        if not self.supersede_key and self.path_key:
            self.supersede_key = supersede_key(self.path_key, self.config, self.output_name)
        if not self.composition:
            self.composition = composition_of(self.config)
        super().save(*args, **kwargs)

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


class JobProxy(models.Model):
    """A small H.264 of a completed video, for the player on the job page.

    Made after completion by any render node (jobs.node.proxy, through
    JobFollowUp) and kept in the database, like poster frames: the web server
    that streams it may be another machine than the node that made it, the
    bytes stay out of Dropbox, and retention deletes it with the job. Its size
    is capped by PROXY_MAX_BYTES (a few MB), which keeps a row cheap to store
    and to stream.
    """

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True,
                               related_name="proxy")
    mp4 = models.BinaryField()
    size = models.IntegerField()
    width = models.IntegerField()
    height = models.IntegerField()
    duration = models.FloatField(null=True, blank=True, help_text="Seconds of video it holds")
    # The output was longer than a proxy within the size cap can hold at a
    # watchable quality: the proxy is its first ``duration`` seconds.
    partial = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"proxy of {self.job_id} ({self.width}x{self.height}, {self.size} bytes)"


class JobFrame(models.Model):
    """The last rendered frame of an image-sequence render, as a small JPEG.

    The render node refreshes it while the frames arrive (jobs.node.live_frame);
    the job page shows it live. It stays as the job's picture afterwards (a
    zipped sequence has no poster frame).
    """

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True,
                               related_name="frame")
    jpeg = models.BinaryField()
    width = models.IntegerField()
    height = models.IntegerField()
    number = models.IntegerField(help_text="Which frame of the sequence (from its file name)")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"frame {self.number} of {self.job_id}"


class FollowUp(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobFollowUp(models.Model):
    """Work a render node does for a job after it completed (a preview video, ...).

    Recorded with the completion (jobs.lifecycle.complete), so that any node
    picks it up, and one that dies mid-way leaves it to another
    (jobs.node.followups): a claim is a compare-and-set that names the node,
    and a claim whose node stopped heartbeating counts for nothing.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="follow_ups")
    kind = models.CharField(max_length=32)
    status = models.CharField(max_length=8, choices=FollowUp.choices, default=FollowUp.PENDING)
    attempts = models.IntegerField(default=0)
    node = models.ForeignKey(RenderNode, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    lease = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Not before this time (a failed attempt waits a little before the next).
    run_after = models.DateTimeField(default=timezone.now)
    message = models.TextField(blank=True, help_text="What it made, or why it failed")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "kind"],
                                               name="one_follow_up_per_kind")]
        indexes = [models.Index(fields=["status", "run_after"], name="follow_up_due")]

    def __str__(self):
        return f"{self.kind} of {self.job_id} [{self.status}]"


class JobEvent(models.Model):
    """A job's timeline entry, and the outbox that live updates are read from."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=32)
    from_status = models.CharField(max_length=STATUS_CHARS, blank=True)
    to_status = models.CharField(max_length=STATUS_CHARS, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "id"], name="event_job")]

    def __str__(self):
        return f"{self.kind} {self.from_status}->{self.to_status}"


class JobPreview(models.Model):
    """The preview a reviewer watches: a small H.264 of the draft render, and its poster.

    The video lives in the previews folder of RENDER_OUTPUT_DIR (jobs.node.preview);
    retention deletes it with the job.
    """

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True,
                               related_name="preview")
    path = models.CharField(max_length=1024)
    size = models.BigIntegerField()
    jpeg = models.BinaryField(null=True, blank=True)
    width = models.IntegerField(null=True, blank=True)
    height = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"preview of {self.job_id}"


class Batch(models.Model):
    """Many renders of one template, one per row of a table (seed 004).

    Each valid row is a normal job (BatchRow.job); what the rows share is kept
    here: the project, the nexrender template and fixed assets, what each column
    changes, and how outputs are named.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="batches")
    client = models.CharField(max_length=64, blank=True, help_text="API client that submitted")
    mac_username = models.CharField(max_length=64, blank=True)
    submitted_path = models.CharField(max_length=1024, blank=True)
    project_path = models.CharField(max_length=1024)
    path_key = models.CharField(max_length=1024)
    saved_at = models.DateTimeField(null=True, blank=True)
    # The cleaned nexrender template and the assets every row shares.
    config = models.JSONField(default=dict)
    # Column name -> the nexrender asset it fills, without its value.
    columns = models.JSONField(default=dict)
    # The table's column names in its own order (JSON objects do not keep an order
    # in PostgreSQL): the order of the results CSV and of the values shown.
    headers = models.JSONField(default=list)
    output_name = models.CharField(max_length=500, help_text="Pattern, e.g. {title}-{row}")
    review = models.BooleanField(default=False)
    preset = models.JSONField(default=dict, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)
    # The folder under RENDER_OUTPUT_DIR its rows are published into.
    folder = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at"], name="batch_created"),
            models.Index(fields=["user", "-created_at"], name="batch_user_created"),
            models.Index(fields=["client", "-created_at"], name="batch_client_created"),
        ]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        stem = self.project_path.replace("\\", "/").rsplit("/", 1)[-1]
        composition = (self.config.get("template") or {}).get("composition", "")
        return f"{stem} · {composition}" if composition else stem

    @property
    def composition(self) -> str:
        return (self.config.get("template") or {}).get("composition", "")

    def rows_with_jobs(self):
        """Its rows in table order, each with its job (and the job's preview, without
        the poster bytes) in the same query."""
        return (self.rows.select_related("job", "job__preview").defer("job__preview__jpeg")
                .order_by("number"))

    @staticmethod
    def counts_of(batch_ids) -> dict:
        """{batch id: counts} for many batches, in two queries (list pages)."""
        found = {batch_id: dict.fromkeys([*Status.values, SKIPPED, DELETED], 0)
                 for batch_id in batch_ids}
        rows = BatchRow.objects.filter(batch_id__in=list(found))
        for batch_id, status, n in (rows.filter(job__isnull=False)
                                    .values_list("batch_id", "job__status")
                                    .annotate(n=Count("pk")).order_by()):
            found[batch_id][status] += n
        for batch_id, errors in rows.filter(job__isnull=True).values_list("batch_id", "errors"):
            found[batch_id][SKIPPED if errors else DELETED] += 1
        return found

    @staticmethod
    def counts(rows) -> dict[str, int]:
        """Rows by status: every job status, plus SKIPPED (bad rows) and DELETED."""
        counts = dict.fromkeys([*Status.values, SKIPPED, DELETED], 0)
        for row in rows:
            counts[row.status] += 1
        return counts


class BatchRow(models.Model):
    """One row of a batch's table: its values, its check, and its job (none if skipped)."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="rows")
    number = models.IntegerField(help_text="1-based data row")
    values = models.JSONField(default=dict)
    output_name = models.CharField(max_length=120, blank=True)
    # Field errors of the row's check, by column; a row with errors has no job.
    errors = models.JSONField(default=dict, blank=True)
    job = models.OneToOneField(Job, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="batch_row")

    class Meta:
        ordering = ["batch", "number"]
        constraints = [models.UniqueConstraint(fields=["batch", "number"],
                                               name="one_row_per_number")]

    def __str__(self):
        return f"row {self.number} of {self.batch_id}"

    @property
    def cells(self) -> list[tuple[str, object]]:
        """(column, value) in the table's order."""
        headers = self.batch.headers or list(self.values)
        return [(name, self.values.get(name)) for name in headers if name in self.values]

    @property
    def status(self) -> str:
        """Its job's status; SKIPPED for a row the check refused, DELETED for a row
        whose job retention removed."""
        if self.job_id is not None and self.job is not None:
            return self.job.status
        return SKIPPED if self.errors else DELETED


class RenderStat(models.Model):
    """Recent finished renders of one kind, for render-time estimates (jobs.estimates).

    One row per key: a composition of a project, a composition name at a frame
    size, or a render node. ``samples`` holds the latest completed renders,
    oldest first, each {"spf", "overhead", "frames"} (node rows also "ratio":
    that render's pace against its composition's usual pace). Written when a
    render completes (jobs.forecast); not job rows, so job retention keeps them.
    """

    key = models.CharField(max_length=200, primary_key=True)
    samples = models.JSONField(default=list)
    renders = models.IntegerField(default=0, help_text="Completed renders ever seen")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.key} ({self.renders} renders)"
