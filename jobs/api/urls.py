from django.urls import path

from jobs.api import batches, estimates, views

# Job ids are matched as plain strings and parsed in the view, so a malformed
# id gets the API's JSON 404 rather than Django's HTML one.
urlpatterns = [
    path("jobs", views.JobsView.as_view(), name="api-jobs"),
    path("estimates", estimates.EstimatesView.as_view(), name="api-estimates"),
    path("jobs/<str:job_id>", views.JobView.as_view(), name="api-job"),
    path("jobs/<str:job_id>/priority", views.JobPriorityView.as_view(), name="api-job-priority"),
    path("jobs/<str:job_id>/logs", views.JobLogsView.as_view(), name="api-job-logs"),
    path("jobs/<str:job_id>/download", views.JobDownloadView.as_view(),
         name="api-job-download"),
    path("jobs/<str:job_id>/thumbnail", views.JobThumbnailView.as_view(),
         name="api-job-thumbnail"),
    path("jobs/<str:job_id>/video", views.JobVideoView.as_view(), name="api-job-video"),
    path("jobs/<str:job_id>/frame", views.JobFrameView.as_view(), name="api-job-frame"),
    path("jobs/<str:job_id>/preview", views.JobPreviewView.as_view(), name="api-job-preview"),
    path("jobs/<str:job_id>/preview/thumbnail", views.JobPreviewThumbnailView.as_view(),
         name="api-job-preview-thumbnail"),
    path("jobs/<str:job_id>/approve", views.JobApproveView.as_view(), name="api-job-approve"),
    path("jobs/<str:job_id>/reject", views.JobRejectView.as_view(), name="api-job-reject"),
    path("batches", batches.BatchesView.as_view(), name="api-batches"),
    path("batches/<str:batch_id>", batches.BatchView.as_view(), name="api-batch"),
    path("batches/<str:batch_id>/results.csv", batches.BatchResultsView.as_view(),
         name="api-batch-results"),
    path("batches/<str:batch_id>/cancel", batches.BatchCancelView.as_view(),
         name="api-batch-cancel"),
    path("batches/<str:batch_id>/retry", batches.BatchRetryView.as_view(),
         name="api-batch-retry"),
]
