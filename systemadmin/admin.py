from django.contrib import admin

from systemadmin.models import Counter, QueueSample, SystemEvent, UpdateRun


@admin.register(SystemEvent)
class SystemEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "level", "actor", "message")
    list_filter = ("kind", "level")
    search_fields = ("message", "actor")


@admin.register(UpdateRun)
class UpdateRunAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor", "state", "step", "from_commit", "to_commit",
                    "finished_at")
    list_filter = ("state",)
    readonly_fields = ("log",)


@admin.register(QueueSample)
class QueueSampleAdmin(admin.ModelAdmin):
    list_display = ("created_at", "pending", "validating", "queued", "rendering")
    date_hierarchy = "created_at"


@admin.register(Counter)
class CounterAdmin(admin.ModelAdmin):
    list_display = ("name", "value")
