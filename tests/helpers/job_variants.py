"""Jobs in every state a list shows (statuses, phases, errors, estimates, no user,
no project), for the tests that compare a fast rendering with its reference."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from jobs.models import Job, RenderNode, Status


def variants(user) -> list[Job]:
    node = RenderNode.objects.create(name="node-<1>")
    now = timezone.now()
    base = {"user": user, "mac_username": "alice", "project_path": "clients/a&b/spot <1>.aep"}
    specs = [
        {"status": Status.COMPLETED, "progress": 100, "has_thumbnail": True,
         "started_at": now - dt.timedelta(minutes=75), "finished_at": now - dt.timedelta(minutes=3),
         "composition": "Main & \"Intro\"", "created_at": now - dt.timedelta(seconds=20)},
        {"status": Status.COMPLETED, "progress": 100, "created_at": now - dt.timedelta(days=400)},
        {"status": Status.RENDERING, "progress": 42.6, "node": node, "phase": "rendering",
         "started_at": now - dt.timedelta(seconds=95), "eta_seconds": 300,
         "created_at": now - dt.timedelta(minutes=5)},
        {"status": Status.RENDERING, "progress": 0, "node": node, "phase": "",
         "created_at": now - dt.timedelta(hours=3)},
        {"status": Status.RENDERING, "progress": 5, "node": node, "phase": "rendering",
         "error": "Attempt 1 of 3 failed: aerender Error: <crash>\nsecond line",
         "error_code": "AE_CRASH", "attempts": 2, "started_at": now,
         "created_at": now - dt.timedelta(hours=30)},
        {"status": Status.QUEUED, "priority": 10, "created_at": now - dt.timedelta(days=3)},
        {"status": Status.QUEUED, "error": "Attempt 1 of 3 failed: node lost", "attempts": 1},
        {"status": Status.PENDING, "name": "Named <job>"},
        {"status": Status.VALIDATING, "validation_message": "waiting for footage/<a>.mov"},
        {"status": Status.VALIDATING},
        {"status": Status.FAILED, "error": "aerender Error: missing footage\nRelink it",
         "error_code": "MISSING_FOOTAGE", "progress": 30},
        {"status": Status.FAILED, "error": "Failed after 3 attempt(s): boom & <b>"},
        {"status": Status.FAILED, "error": ""},
        {"status": Status.CANCELLED, "error": "Cancelled by <admin>"},
        {"status": Status.CANCELLED, "error": ""},
        {"status": Status.CANCELLED, "superseded_by": "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"},
        {"status": Status.REJECTED, "error": "Rejected: " + "too dark & noisy " * 20},
        {"status": Status.AWAITING_REVIEW, "progress": 100,
         "started_at": now - dt.timedelta(minutes=10), "finished_at": now},
        {"status": Status.COMPLETED, "user": None, "mac_username": "", "client": "bravo <api>",
         "project_path": "", "engine": "nexrender"},
        {"status": Status.COMPLETED, "user": None, "mac_username": "", "client": ""},
    ]
    jobs = []
    for i, spec in enumerate(specs):
        fields = {**base, "path_key": f"p{i}", **spec}
        created = fields.pop("created_at", now - dt.timedelta(minutes=i))
        job = Job.objects.create(**fields)
        Job.objects.filter(pk=job.pk).update(created_at=created)
        jobs.append(job)
    return list(Job.objects.select_related("user", "node").order_by("-created_at"))
