from django.urls import path

from jobs.api import views

# Job ids are matched as plain strings and parsed in the view, so a malformed
# id gets the API's JSON 404 rather than Django's HTML one.
urlpatterns = [
    path("jobs", views.JobsView.as_view(), name="api-jobs"),
    path("jobs/<str:job_id>", views.JobView.as_view(), name="api-job"),
    path("jobs/<str:job_id>/priority", views.JobPriorityView.as_view(), name="api-job-priority"),
    path("jobs/<str:job_id>/logs", views.JobLogsView.as_view(), name="api-job-logs"),
    path("jobs/<str:job_id>/download", views.JobDownloadView.as_view(),
         name="api-job-download"),
    path("jobs/<str:job_id>/thumbnail", views.JobThumbnailView.as_view(),
         name="api-job-thumbnail"),
]
