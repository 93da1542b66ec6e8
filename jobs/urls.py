from django.urls import path

from jobs.web import batches, review, submit, views

app_name = "jobs"

urlpatterns = [
    path("", views.job_list, name="list"),
    path("jobs/bulk", views.bulk_action, name="bulk"),
    path("jobs/new", submit.new_job, name="new"),
    path("jobs/new/compositions", submit.compositions, name="compositions"),
    path("jobs/<uuid:job_id>", views.job_detail, name="detail"),
    path("jobs/<uuid:job_id>/log", views.job_log_full, name="log"),
    path("jobs/<uuid:job_id>/log.txt", views.job_log_download, name="log-download"),
    path("jobs/<uuid:job_id>/log/tail", views.job_log_tail, name="log-tail"),
    path("jobs/<uuid:job_id>/file", views.job_file, name="file"),
    path("jobs/<uuid:job_id>/actions", views.job_actions, name="actions"),
    path("jobs/<uuid:job_id>/review", review.review_panel, name="review-panel"),
    path("jobs/<uuid:job_id>/decide", review.decide, name="decide"),
    path("jobs/<uuid:job_id>/<str:action>", views.job_action, name="action"),
    path("review", review.review_list, name="review"),
    path("review/approve", review.bulk_approve, name="review-bulk"),
    path("batches", batches.batch_list, name="batches"),
    path("batches/new", batches.batch_new, name="batch-new"),
    path("batches/<uuid:batch_id>", batches.batch_detail, name="batch"),
    path("batches/<uuid:batch_id>/<str:action>", batches.batch_action, name="batch-action"),
]
