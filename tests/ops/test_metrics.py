"""/metrics: Prometheus text for admins or the metrics token."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status

TOKEN = "metrics-secret-token"
SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+]+)$')


def parse(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text: {line!r}"
        values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.mark.django_db(transaction=True)
def test_metrics_count_queue_depth_renders_and_heartbeats(admin_client, user):
    node = RenderNode.objects.create(name="render-01")
    RenderNode.objects.create(name="render-02",
                              last_heartbeat=timezone.now() - timedelta(minutes=10))
    for status in (Status.PENDING, Status.QUEUED, Status.QUEUED):
        Job.objects.create(user=user, status=status)
    Job.objects.create(user=user, status=Status.QUEUED)
    lifecycle.claim_next(node)  # the oldest queued job
    rendering = Job.objects.get(status=Status.RENDERING)
    Job.objects.filter(pk=rendering.pk).update(render_seconds=12.5)
    lifecycle.complete(rendering.pk, rendering.lease, output_path="/x.mp4", output_size=1)
    lifecycle.claim_next(node)
    second = Job.objects.get(status=Status.RENDERING)
    Job.objects.filter(pk=second.pk).update(attempts=3)
    lifecycle.render_crashed(second.pk, second.lease, "boom")
    lifecycle.claim_next(node)

    response = admin_client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    values = parse(response.content.decode())
    assert values['rendermanager_jobs{status="PENDING"}'] == 1
    assert values['rendermanager_jobs{status="QUEUED"}'] == 0
    assert values['rendermanager_jobs{status="RENDERING"}'] == 1
    assert values['rendermanager_jobs{status="COMPLETED"}'] == 1
    assert values['rendermanager_jobs{status="FAILED"}'] == 1
    assert values["rendermanager_renders_completed_total"] == 1
    assert values["rendermanager_renders_failed_total"] == 1
    assert values["rendermanager_renders_started_total"] == 3
    assert values["rendermanager_render_seconds_sum"] == 12.5
    assert values["rendermanager_render_seconds_count"] == 1
    assert values['rendermanager_jobs_finished_total{status="completed"}'] == 1
    assert values['rendermanager_node_up{node="render-01"}'] == 1
    assert values['rendermanager_node_up{node="render-02"}'] == 0
    assert values['rendermanager_node_rendering{node="render-01"}'] == 1
    heartbeat = values['rendermanager_node_last_heartbeat_seconds{node="render-01"}']
    assert abs(heartbeat - timezone.now().timestamp()) < 60


@pytest.mark.django_db(transaction=True)
def test_counters_survive_retention(admin_client, user):
    from jobs.node import retention

    node = RenderNode.objects.create(name="render-01")
    Job.objects.create(user=user, status=Status.QUEUED)
    job = lifecycle.claim_next(node)
    lifecycle.complete(job.pk, job.lease, output_path="/x.mp4", output_size=1)
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=30))
    assert retention.purge_jobs().jobs == 1
    values = parse(admin_client.get("/metrics").content.decode())
    assert values["rendermanager_renders_completed_total"] == 1
    assert values['rendermanager_jobs{status="COMPLETED"}'] == 0


def test_the_metrics_token_opens_metrics(db, token):
    client = Client()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics").status_code == 401


def test_users_and_api_tokens_are_refused(user_client, api_token, token, settings):
    assert user_client.get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_X_API_TOKEN=api_token).status_code == 401
    # An empty token opens nothing when none is configured.
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_metrics_count_reviews(admin_client, user):
    job = Job.objects.create(user=user, status=Status.AWAITING_REVIEW, review=True)
    lifecycle.reject(job.pk, actor="ada@studio.test", comment="no")
    Job.objects.create(user=user, status=Status.AWAITING_REVIEW, review=True)

    values = parse(admin_client.get("/metrics").content.decode())

    assert values['rendermanager_jobs{status="AWAITING_REVIEW"}'] == 1
    assert values['rendermanager_jobs_finished_total{status="rejected"}'] == 1
