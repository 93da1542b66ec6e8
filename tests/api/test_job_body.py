"""A job's body in the API is written out field by field (JobSerializer.to_representation,
issue #14: DRF's generic per-field path cost most of a list request). It must stay what
the generic ModelSerializer gives: both are compared for jobs in every state, with an
output, a preview video, a review preview, a batch row and an estimate, in the list and
on a job's own page."""

from __future__ import annotations

import dataclasses
import gc
import json
from decimal import Decimal

import pytest
from django.core import signing
from django.utils import timezone
from rest_framework import serializers

from jobs import forecast
from jobs.api.serializers import (
    EstimateSerializer,
    JobDetailSerializer,
    JobSerializer,
    estimate_body,
)
from jobs.api.views import with_related
from jobs.models import Batch, BatchRow, Job, JobLog, JobPreview, JobProxy, Status
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)
from tests.helpers.job_variants import variants

pytestmark = pytest.mark.django_db


def with_everything(user) -> list[Job]:
    jobs = variants(user)
    done = [job for job in jobs if job.status == Status.COMPLETED]
    Job.objects.filter(pk__in=[job.pk for job in done]).update(
        output_path="out/spot <1>.mp4", output_size=123456, review=True,
        warnings=[{"code": "missing_font", "message": "Arial <b>"}],
        preset={"name": "custom", "quality": "low"})
    JobProxy.objects.create(job=done[0], mp4=b"\0" * 10, size=10, width=64, height=36,
                            duration=1.0)
    review = next(job for job in jobs if job.status == Status.AWAITING_REVIEW)
    JobPreview.objects.create(job=review, path="previews/p.mp4", size=99, jpeg=b"jpg",
                              width=64, height=36)
    batch = Batch.objects.create(name="Spring <sale>", user=user)
    BatchRow.objects.create(batch=batch, number=7, values={"a": 1}, job=jobs[2])
    JobLog.objects.create(job=jobs[2], head="line 1\n", tail="last <line>\n")
    return list(with_related(Job.objects.all()).select_related("node")
                .order_by("-created_at", "-pk"))


def generic(serializer, job) -> dict:
    return serializers.ModelSerializer.to_representation(serializer, job)


@pytest.mark.parametrize("detail", [False, True])
def test_a_job_body_is_what_the_generic_serializer_gives(user, detail, monkeypatch):
    jobs = with_everything(user)
    # Estimates of jobs that have not started count from now: one now for both.
    moment = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: moment)
    # Signed links carry the second they were signed in: one second for both (the
    # two bodies were built across a second's turn once, and their links differed).
    signed_at = signing.TimestampSigner().timestamp()
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signed_at)
    kind = JobDetailSerializer if detail else JobSerializer
    context = {"forecast": forecast.for_page(jobs)}
    statuses = set()
    for job in jobs:
        serializer = kind(job, context=context)
        fast = serializer.data
        assert fast == generic(serializer, job), job.status
        assert list(fast) == list(kind.Meta.fields)  # the same keys, in the same order
        statuses.add(job.status)
    # The comparison covered what the branches depend on.
    assert statuses == set(Status.values)
    bodies = [kind(job, context=context).data for job in jobs]
    assert any(b["output"] and b["output"]["video_url"] for b in bodies)
    assert any(b["preview"] for b in bodies) and any(b["batch"] for b in bodies)
    assert any(b["estimate"] for b in bodies) and any(b["user"] is None for b in bodies)
    assert any(b["started_at"] and b["finished_at"] for b in bodies)


@pytest.mark.parametrize("priced", [False, True])
def test_an_estimate_is_written_as_its_serializer_writes_it(user, settings, priced):
    if priced:
        settings.RENDER_COST_PER_MINUTE = Decimal("1.25")
        settings.RENDER_COST_CURRENCY = "EUR"
    jobs = with_everything(user)
    page = forecast.for_page(jobs)
    found = [forecast.estimate_for(job, page) for job in jobs if not job.is_final]
    # With no render node up, a new job has no start and no end.
    found += forecast.estimate_new([Job(project_path="p.aep", frames_total=10, user=user)],
                                   forecast=dataclasses.replace(page, free_before=[]))
    for estimate in found:
        body = estimate_body(estimate)
        assert json.loads(json.dumps(body)) == json.loads(json.dumps(
            EstimateSerializer(forecast.as_dict(estimate)).data))
    # Both kinds of moment, and both kinds of cost, were compared.
    assert any(e.starts_at is None for e in found)
    assert any(e.starts_at is not None for e in found)
    assert all((estimate_body(e)["cost"] is not None) == priced for e in found)


def cyclic_garbage_of(request) -> int:
    """What the cyclic collector finds after one request: what refcounting alone did
    not free."""
    gc.collect()
    gc.disable()
    try:
        status = request().status_code  # the response (and all it holds) let go
        assert status == 200
        return gc.collect()
    finally:
        gc.enable()


def test_a_list_of_jobs_leaves_nothing_per_row_for_the_cyclic_collector(api_client, user):
    # A page that left reference cycles per row woke the cyclic collector every few
    # requests, and its full passes over the web process's forecast took 30-90 ms of
    # a request (bench/job_list.py, GET /api/jobs p95 at 100 000 jobs).
    def page_of(n):
        return lambda: api_client.get(f"/api/jobs?status=QUEUED&page_size={n}")

    for n in range(40):
        Job.objects.create(user=user, client="bravo", status=Status.QUEUED,
                           project_path=f"p{n}.aep", frames_total=100)
    page_of(40)()  # warm: what a first request loads for good
    few, many = cyclic_garbage_of(page_of(2)), cyclic_garbage_of(page_of(40))
    # A row's own body (its dict, its warnings) goes with the response, which Django's
    # request and response hold in a cycle of their own: two objects. A serializer
    # per row's estimate left 37; a list serializer over the page, 9.
    assert (many - few) / 38 <= 3, (few, many)
