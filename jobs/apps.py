from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self):
        from django.conf import settings
        from django.db.backends.signals import connection_created

        from jobs import history
        from jobs.lifecycle import job_transitioned
        from jobs.node import followups, proxy
        from jobs.node.engines import thumbnails
        from jobs.notify import slack, webhooks

        if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
            # Timestamps read at C speed (rendermanager/postgres.py); psycopg is
            # imported only where PostgreSQL is the database.
            from rendermanager import postgres

            connection_created.connect(postgres.use_fast_timestamps,
                                       dispatch_uid="rendermanager.postgres")

        # Work a render node does for a job after it completed, most wanted first
        # (the order in which a node takes them).
        followups.register("thumbnail", thumbnails.wanted, thumbnails.make)
        followups.register("proxy", proxy.wanted, proxy.make)

        # The render history behind estimates, once a render completed.
        job_transitioned.connect(history.on_transition, dispatch_uid="jobs.history")
        # Both receivers only queue work for background threads.
        job_transitioned.connect(slack.on_transition, dispatch_uid="jobs.slack")
        job_transitioned.connect(webhooks.on_transition, dispatch_uid="jobs.webhooks")
