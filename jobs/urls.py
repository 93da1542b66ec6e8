from django.urls import path

from jobs.web import views

app_name = "jobs"

urlpatterns = [
    path("", views.job_list, name="list"),
    path("jobs/bulk", views.bulk_action, name="bulk"),
    path("jobs/<uuid:job_id>", views.job_detail, name="detail"),
    path("jobs/<uuid:job_id>/log", views.job_log_full, name="log"),
    path("jobs/<uuid:job_id>/log/tail", views.job_log_tail, name="log-tail"),
    path("jobs/<uuid:job_id>/file", views.job_file, name="file"),
    path("jobs/<uuid:job_id>/actions", views.job_actions, name="actions"),
    path("jobs/<uuid:job_id>/<str:action>", views.job_action, name="action"),
]
