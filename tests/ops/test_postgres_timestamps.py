"""Timestamps come back from PostgreSQL through psycopg's compiled loader, and
exactly as Django's own loader would give them (rendermanager/postgres.py)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from django.utils import timezone as django_timezone

from jobs.models import Job, Status
from rendermanager import postgres

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def loader_in_use():
    connection.ensure_connection()
    return connection.connection.adapters.get_loader(postgres.TIMESTAMPTZ,
                                                     postgres.Format.TEXT)


def test_the_connection_reads_timestamps_with_the_compiled_loader():
    assert postgres.optimised_loader() is not None, "psycopg[binary] is a dependency"
    assert loader_in_use().__name__ == "FastTimestamptzLoader"


@pytest.mark.parametrize("moment", [
    datetime(2026, 12, 2, 7, 5, 3, 123456, tzinfo=UTC),
    # Written in another zone: the same instant comes back, in the connection's.
    datetime(2026, 7, 1, 23, 59, 59, 999999, tzinfo=zoneinfo.ZoneInfo("America/Los_Angeles")),
    datetime(1999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
])
def test_a_timestamp_comes_back_as_the_same_instant_in_the_connections_zone(user, moment):
    job = Job.objects.create(user=user, status=Status.QUEUED, started_at=moment)
    with connection.cursor() as cursor:
        cursor.execute("SELECT started_at, created_at FROM jobs_job WHERE id = %s", [job.pk])
        started, created = cursor.fetchone()
    assert started == moment
    assert started.utcoffset() == timedelta(0) and connection.timezone == UTC
    assert django_timezone.is_aware(created)
    # What a page shows: the same wall time as Django's loader gave.
    assert django_timezone.localtime(started) == django_timezone.localtime(moment)


def test_a_cursor_keeps_the_fast_loader_while_the_zone_matches(user):
    Job.objects.create(user=user, status=Status.QUEUED)
    # Django compares the loader's zone with the connection's before every cursor.
    with connection.cursor() as cursor:
        assert cursor.cursor.adapters.get_loader(postgres.TIMESTAMPTZ, postgres.Format.TEXT) \
            is loader_in_use()
        cursor.execute("SELECT created_at FROM jobs_job")
        assert cursor.fetchone()[0].tzinfo is not None
