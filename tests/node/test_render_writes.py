"""What one render writes to the database: only what changed, at a cost that
does not grow with the log, and nothing once its claim is gone."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobEvent, JobLog, RenderNode, Status
from jobs.node.render import Render


@pytest.fixture
def render(user, settings, tmp_path):
    settings.RENDER_TEMP_DIR = str(tmp_path)
    settings.RENDER_LOG_MAX_BYTES = 10_000
    job = Job.objects.create(user=user, status=Status.RENDERING, lease=uuid.uuid4(),
                             attempts=1, node=RenderNode.objects.create(name="node-a"))
    return Render(SimpleNamespace(node_name="node-a"), job)


def updates_of(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]


def test_an_unchanged_log_is_not_written_again(render):
    render.buffer.append("PROGRESS: 0:00:00:01 (1): 0 Seconds")
    render._flush_log()
    assert JobLog.objects.get(job=render.job).head.startswith("PROGRESS")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            render._flush_log()
    assert len(queries) == 0


def test_once_the_head_is_full_a_write_carries_the_tail_only(render):
    for n in range(2000):  # far beyond the 10 kB cap
        render.buffer.append(f"line {n:05} of a chatty render")
    render._flush_log()
    render.buffer.append("one more line")
    with CaptureQueriesContext(connection) as queries:
        render._flush_log()
    [update] = updates_of(queries)
    assert '"tail"' in update and '"head"' not in update
    # What a write sends is bounded by the cap, however long the log grows.
    stored = JobLog.objects.get(job=render.job)
    assert len(stored.head) + len(stored.tail) <= 10_000
    assert stored.tail.endswith("one more line\n") and stored.omitted_bytes > 0


def test_a_render_that_lost_its_claim_writes_neither_log_nor_figures(render):
    render.buffer.append("first attempt's line")
    render._flush_log()
    Job.objects.filter(pk=render.job.pk).update(lease=uuid.uuid4())  # taken over
    render.buffer.append("a line from the render that lost its job")
    render._flush_log()
    render._update("the render time", render_seconds=42.0)
    assert "lost its job" not in JobLog.objects.get(job=render.job).text()
    assert Job.objects.get(pk=render.job.pk).render_seconds is None


def test_a_render_without_a_log_row_yet_creates_it_only_while_the_claim_is_its_own(render):
    Job.objects.filter(pk=render.job.pk).update(lease=uuid.uuid4())
    render.buffer.append("stale")
    render._flush_log()
    assert not JobLog.objects.filter(job=render.job).exists()


def test_progress_events_do_not_pile_up_over_a_long_render(render):
    progress = SimpleNamespace(percent=0.0, phase="rendering", frames_done=0,
                               frames_total=100_000, eta_seconds=lambda now: 60)
    for frame in range(1, 301):  # five minutes of progress writes at the default pace
        progress.percent, progress.frames_done = frame / 1000, frame
        render._write_progress(progress)
        assert JobEvent.objects.filter(job=render.job, kind="progress").count() <= 60
    job = Job.objects.get(pk=render.job.pk)
    assert job.frames_done == 300
    assert JobEvent.objects.filter(job=job, kind="progress").last().message == "0%"


def test_a_renders_first_log_write_replaces_an_earlier_attempts_row_in_one_statement(render):
    JobLog.objects.create(job=render.job, head="=== attempt 0, an earlier log ===\n")
    render.buffer.append("this attempt's line")
    with CaptureQueriesContext(connection) as queries:
        render._flush_log()
    # Nothing looks at the claim apart, no transaction around it: one round trip.
    assert len(queries) == 1
    assert JobLog.objects.get(job=render.job).text() == "this attempt's line\n"
