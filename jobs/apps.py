from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self):
        from jobs.lifecycle import job_transitioned
        from jobs.node import followups, proxy
        from jobs.notify import slack, webhooks

        # Work a render node does for a job after it completed.
        followups.register("proxy", proxy.wanted, proxy.make)

        # Both receivers only queue work for background threads.
        job_transitioned.connect(slack.on_transition, dispatch_uid="jobs.slack")
        job_transitioned.connect(webhooks.on_transition, dispatch_uid="jobs.webhooks")
