from django.apps import AppConfig


class SystemadminConfig(AppConfig):
    name = "systemadmin"

    def ready(self):
        from accounts.claims import claim_waits
        from jobs.lifecycle import job_transitioned, job_warned
        from systemadmin import chores, signals

        job_transitioned.connect(signals.on_transition, dispatch_uid="systemadmin.signals")
        job_warned.connect(signals.on_warning, dispatch_uid="systemadmin.warnings")
        claim_waits.connect(signals.on_claim, dispatch_uid="systemadmin.claims")
        chores.register()
