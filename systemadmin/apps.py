from django.apps import AppConfig


class SystemadminConfig(AppConfig):
    name = "systemadmin"

    def ready(self):
        from accounts.claims import claim_waits
        from jobs.lifecycle import job_transitioned
        from systemadmin import chores, signals

        job_transitioned.connect(signals.on_transition, dispatch_uid="systemadmin.signals")
        claim_waits.connect(signals.on_claim, dispatch_uid="systemadmin.claims")
        chores.register()
