from django.db import models
from django.utils import timezone


class QueueSample(models.Model):
    """Jobs per active status at one moment; one a minute, kept for a day."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    pending = models.IntegerField(default=0)
    validating = models.IntegerField(default=0)
    queued = models.IntegerField(default=0)
    rendering = models.IntegerField(default=0)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} queued={self.queued} rendering={self.rendering}"

    @property
    def waiting(self) -> int:
        return self.pending + self.validating + self.queued


class SystemEvent(models.Model):
    """Something that happened to the system rather than to one job: an admin
    action (emergency stop, clear queue, restart, update) or an alert (node
    down, disk nearly full, update failed)."""

    class Level(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=32)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    actor = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)
    # Alerts that several nodes could raise at once carry a key: only one row
    # (and one Slack message) per key.
    key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["level", "-created_at"], name="sysevent_level")]

    def __str__(self):
        return f"{self.kind}: {self.message[:60]}"


class UpdateRun(models.Model):
    """One execution of the self-update, with its progress and log for the panel."""

    class State(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    step = models.CharField(max_length=32, blank=True)
    steps_done = models.IntegerField(default=0)
    steps_total = models.IntegerField(default=0)
    from_commit = models.CharField(max_length=64, blank=True)
    to_commit = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"update {self.created_at:%Y-%m-%d %H:%M} {self.state}"

    @property
    def progress(self) -> float:
        if not self.steps_total:
            return 0.0
        return round(100.0 * self.steps_done / self.steps_total, 1)


class Counter(models.Model):
    """Monotonic counters for /metrics that survive job retention."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.FloatField(default=0)

    def __str__(self):
        return f"{self.name}={self.value:g}"


class UsageDay(models.Model):
    """Render time of one day for one user, API client or project: the usage report.

    Added to when a render ends (systemadmin.usage), one row per (day, group,
    key). These are aggregates, not job rows: job retention never deletes
    them, so the report reaches back past JOB_RETENTION_DAYS.
    """

    class Group(models.TextChoices):
        USER = "user"
        CLIENT = "client"
        PROJECT = "project"

    day = models.DateField()
    group = models.CharField(max_length=8, choices=Group.choices)
    # The user's id, the client's name or a digest of the project's path_key.
    key = models.CharField(max_length=64)
    # What the report shows: an email address, a client name, a project path.
    label = models.CharField(max_length=1024, blank=True)
    renders = models.IntegerField(default=0, help_text="Renders that completed")
    seconds = models.FloatField(default=0, help_text="Render time of completed renders")
    failed_renders = models.IntegerField(
        default=0, help_text="Render attempts that ended otherwise (failed, retried, "
        "cancelled or interrupted)")
    failed_seconds = models.FloatField(default=0)

    class Meta:
        ordering = ["day", "group", "key"]
        constraints = [models.UniqueConstraint(fields=["day", "group", "key"],
                                               name="one_usage_row_per_day_and_key")]

    def __str__(self):
        return f"{self.day} {self.group} {self.label or self.key}: {self.renders} renders"
