from django.urls import path

from systemadmin import api, views

app_name = "systemadmin"

# The admin panel (ADMIN only), mounted at the site root: /system, /system/...
# (not /admin/, which is the Django admin).
urlpatterns = [
    path("system", views.panel, name="panel"),
    path("system/health", views.health_fragment, name="health"),
    path("system/nodes", views.nodes_fragment, name="nodes"),
    path("system/queue", views.queue_fragment, name="queue"),
    path("system/errors", views.errors_fragment, name="errors"),
    path("system/update", views.update_fragment, name="update"),
    path("system/emergency-stop", views.emergency_stop, name="emergency-stop"),
    path("system/clear-queue", views.clear_queue, name="clear-queue"),
    path("system/restart-engine", views.restart_engine, name="restart-engine"),
    path("system/update/check", views.update_check, name="update-check"),
    path("system/update/execute", views.update_execute, name="update-execute"),
    path("system/claims/<str:claim_id>/approve", views.claim_decision, {"decision": "approve"},
         name="claim-approve"),
    path("system/claims/<str:claim_id>/refuse", views.claim_decision, {"decision": "refuse"},
         name="claim-refuse"),
    path("system/usage", views.usage_report, name="usage"),
]

# The JSON API, mounted at /api/system/ (no trailing slashes, like the rest of the API).
api_urlpatterns = [
    path("health", api.HealthView.as_view(), name="system-health"),
    path("queue-history", api.QueueHistoryView.as_view(), name="system-queue-history"),
    path("errors", api.ErrorsView.as_view(), name="system-errors"),
    path("events", api.EventsView.as_view(), name="system-events"),
    path("update/check", api.UpdateCheckView.as_view(), name="system-update-check"),
    path("update/execute", api.UpdateExecuteView.as_view(), name="system-update-execute"),
    path("update/status", api.UpdateStatusView.as_view(), name="system-update-status"),
    path("emergency-stop", api.EmergencyStopView.as_view(), name="system-emergency-stop"),
    path("clear-queue", api.ClearQueueView.as_view(), name="system-clear-queue"),
    path("restart-engine", api.RestartEngineView.as_view(), name="system-restart-engine"),
]

# Reports, mounted at /api/reports/.
report_api_urlpatterns = [
    path("usage", api.UsageReportView.as_view(), name="api-usage-report"),
]
