from django.contrib import admin

from jobs.models import Batch, BatchRow, FollowUp, Job, JobEvent, JobFollowUp, JobLog, RenderNode


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    fields = ("created_at", "kind", "from_status", "to_status", "actor", "message")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Raw data fixes. Status changes belong to the dashboard (they go through
    the lifecycle, which records events and notifies); edit status here only
    to repair a row."""

    list_display = ("id", "display_name", "status", "engine", "priority", "user", "client",
                    "node", "attempts", "progress", "created_at", "finished_at")
    list_filter = ("status", "engine", "client", "node")
    search_fields = ("id", "name", "project_path", "mac_username", "user__email", "client")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    raw_id_fields = ("user", "node")
    readonly_fields = ("id", "lease", "render_pid", "render_spawned_at", "render_seconds",
                       "created_at", "queued_at", "started_at", "finished_at", "path_key")
    inlines = [JobEventInline]


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    """The record of what happened: written by the lifecycle only, never added here."""

    list_display = ("id", "job", "created_at", "kind", "from_status", "to_status", "actor")
    list_filter = ("kind", "to_status")
    search_fields = ("job__id", "actor", "message")
    raw_id_fields = ("job",)
    ordering = ("-id",)

    def has_add_permission(self, request):
        return False


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    """Render output, written by render nodes only."""

    list_display = ("job", "updated_at", "omitted_bytes")
    search_fields = ("job__id",)
    raw_id_fields = ("job",)

    def has_add_permission(self, request):
        return False


@admin.register(JobFollowUp)
class JobFollowUpAdmin(admin.ModelAdmin):
    """Work after completion (preview videos); "Try again" hands one back to the nodes."""

    list_display = ("job", "kind", "status", "attempts", "node", "created_at", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("job__id", "message")
    raw_id_fields = ("job", "node")
    readonly_fields = ("job", "kind", "lease", "created_at", "claimed_at", "finished_at")
    actions = ["again"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Try again")
    def again(self, request, queryset):
        count = queryset.exclude(status=FollowUp.RUNNING).update(
            status=FollowUp.PENDING, attempts=0, node=None, lease=None, finished_at=None)
        self.message_user(request, f"{count} follow-up(s) handed back to the render nodes.")


@admin.register(RenderNode)
class RenderNodeAdmin(admin.ModelAdmin):
    list_display = ("name", "hostname", "pid", "started_at", "last_heartbeat", "stopped_at",
                    "command")
    search_fields = ("name", "hostname")


class BatchRowInline(admin.TabularInline):
    model = BatchRow
    extra = 0
    fields = ("number", "output_name", "values", "errors", "job")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("id", "display_name", "user", "client", "review", "created_at")
    search_fields = ("id", "name", "project_path", "user__email", "client")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    raw_id_fields = ("user",)
    readonly_fields = ("id", "path_key", "folder", "created_at")
    inlines = [BatchRowInline]
