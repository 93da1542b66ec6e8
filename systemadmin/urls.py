from django.urls import path

from systemadmin import api

# Mounted at /api/system/ (no trailing slashes, like the rest of the API).
urlpatterns = [
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
