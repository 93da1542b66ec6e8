from django.apps import AppConfig


class SystemadminConfig(AppConfig):
    name = "systemadmin"

    def ready(self):
        from jobs.lifecycle import job_transitioned
        from systemadmin import chores, signals

        job_transitioned.connect(signals.on_transition, dispatch_uid="systemadmin.signals")
        chores.register()
