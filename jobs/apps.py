from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self):
        from jobs import notifications, webhooks
        from jobs.lifecycle import job_transitioned

        # Both receivers only queue work for background threads.
        job_transitioned.connect(notifications.on_transition, dispatch_uid="jobs.slack")
        job_transitioned.connect(webhooks.on_transition, dispatch_uid="jobs.webhooks")
