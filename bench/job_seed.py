"""Many jobs, quickly: the seed of the job list benchmarks.

PostgreSQL gets one ``INSERT ... SELECT FROM generate_series`` (a million rows
in well under a minute); SQLite, for reference figures at 100 000, Django's
bulk_create. Both make the same mix: 80 % completed, 8 % failed, 6 % cancelled,
3 % queued and 1 % each rendering, validating and pending, in five
compositions, over 300 clients' folders, spread over the given users.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

COMPOSITIONS = ["Main", "Story 9x16", "Cutdown 15", "Banner 1080", "Holiday Special"]
# (status, share in %) in the order the buckets 0..99 are handed out.
STATUS_MIX = [("COMPLETED", 80), ("FAILED", 8), ("CANCELLED", 6), ("QUEUED", 3),
              ("RENDERING", 1), ("VALIDATING", 1), ("PENDING", 1)]
FINISHED = ("COMPLETED", "FAILED", "CANCELLED")
PRIORITIES = [0, 0, 0, 5, 10]
# A row's status bucket (0..99): (g * HASH_MULTIPLIER mod HASH_PRIME) mod 100.
HASH_MULTIPLIER = 2654435761
HASH_PRIME = 4294967291
# Compositions change every this many rows: each user (g modulo the number of
# users, at most this many) gets every composition.
COMPOSITION_RUN = 20


def seed(total: int, user_ids: list[int]) -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        _seed_postgres(total, user_ids)
    else:
        _seed_orm(total, user_ids)
    with connection.cursor() as cursor:
        # A live database is vacuumed and analysed by autovacuum; a fresh bulk load not yet.
        if connection.vendor != "postgresql":
            cursor.execute("ANALYZE")
            return
        cursor.execute("VACUUM ANALYZE")
        # VACUUM marks a page all-visible only if no transaction older than the load
        # still runs (autovacuum, set off by the load, often does): until it is, a
        # count reads the table instead of an index alone, at two to three times the
        # cost of a live database, and a run measured that instead (API p95 86.7 ms
        # in one run, 109.7 ms in the next, for that alone).
        deadline = time.monotonic() + 60
        while True:
            cursor.execute("SELECT relpages, relallvisible FROM pg_class "
                           "WHERE oid = 'jobs_job'::regclass")
            pages, visible = cursor.fetchone()
            if visible >= pages * 0.99 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
            cursor.execute("VACUUM jobs_job")
        print(f"jobs_job: {visible} of {pages} pages all-visible after VACUUM", flush=True)


def _status_case(bucket: str) -> str:
    parts, upto = [], 0
    for status, share in STATUS_MIX:
        upto += share
        parts.append(f"WHEN {bucket} < {upto} THEN '{status}'")
    return "CASE " + " ".join(parts) + " END"


def _seed_postgres(total: int, user_ids: list[int]) -> None:
    from django.db import connection

    from jobs.models import Job

    finished = ", ".join(f"'{s}'" for s in FINISHED)
    users = ", ".join(str(int(pk)) for pk in user_ids)
    comps = ", ".join("'" + c.replace("'", "''") + "'" for c in COMPOSITIONS)
    prios = ", ".join(str(p) for p in PRIORITIES)
    # Per-row values, from the row number g alone (the same seed every run); the
    # status from a hash of g, so that it does not follow the user or the
    # composition (both g modulo a small number).
    rows = (
        f"SELECT g, {_status_case(f'mod(mod(g * {HASH_MULTIPLIER}, {HASH_PRIME}), 100)')} AS s,"
        f" (ARRAY[{comps}])[mod(g / {COMPOSITION_RUN}, {len(COMPOSITIONS)}) + 1] AS comp,"
        f" 'D:\\Dropbox\\Clients\\client' || mod(g, 300) || '\\spot_' || mod(g, 5000)"
        f" || '.aep' AS project,"
        f" now() - make_interval(secs => {total} - g + mod(g * 31, 1000) / 1000.0) AS created"
        f" FROM generate_series(1::bigint, {int(total)}) AS g")
    overrides = {
        "id": "md5('job' || g)::uuid",
        "name": "CASE WHEN mod(g, 4) = 0 THEN 'spot ' || g ELSE '' END",
        "status": "s",
        "priority": f"(ARRAY[{prios}])[mod(g, {len(PRIORITIES)}) + 1]",
        "user_id": f"(ARRAY[{users}])[mod(g, {len(user_ids)}) + 1]",
        "client": "'bravo'",
        "mac_username": "'alice'",
        "project_path": "project",
        # One job per project may be unfinished: the unfinished get their own key.
        "path_key": f"lower(project) || CASE WHEN s IN ({finished}) THEN '' ELSE '#' || g END",
        "config": "jsonb_build_object('template',"
                  " jsonb_build_object('composition', comp, 'outputExt', 'mp4'))",
        "composition": "comp",
        "created_at": "created",
        "progress": "CASE WHEN s = 'COMPLETED' THEN 100 ELSE 0 END",
        "started_at": "CASE WHEN s <> 'PENDING' THEN created + interval '30 seconds' END",
        "finished_at": f"CASE WHEN s IN ({finished}) THEN created + interval '3 minutes' END",
        "output_path": "CASE WHEN s = 'COMPLETED' THEN 'D:\\Dropbox\\renders\\spot_' || g"
                       " || '.mp4' ELSE '' END",
        "output_size": "CASE WHEN s = 'COMPLETED' THEN 12345678 END",
        "error": "CASE WHEN s = 'FAILED' THEN 'aerender Error: missing footage' ELSE '' END",
    }
    template = Job()
    columns, values, params = [], [], []
    for field in Job._meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.column in overrides:
            values.append(overrides[field.column])
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {Job._meta.db_table} ({', '.join(columns)}) "
                       f"SELECT {', '.join(values)} FROM ({rows}) AS seed", params)


def _seed_orm(total: int, user_ids: list[int]) -> None:
    from django.utils import timezone

    from jobs.models import Job

    rng = random.Random(7)
    now = timezone.now()
    buckets = [status for status, share in STATUS_MIX for _ in range(share)]
    batch = []
    for g in range(1, total + 1):
        status = buckets[g * HASH_MULTIPLIER % HASH_PRIME % 100]
        project = f"D:\\Dropbox\\Clients\\client{g % 300}\\spot_{g % 5000}.aep"
        key = project.casefold() if status in FINISHED else f"{project.casefold()}#{g}"
        created = now - timedelta(seconds=total - g + rng.random())
        composition = COMPOSITIONS[g // COMPOSITION_RUN % len(COMPOSITIONS)]
        batch.append(Job(
            user_id=user_ids[g % len(user_ids)], status=status, client="bravo",
            name=f"spot {g}" if g % 4 == 0 else "", priority=PRIORITIES[g % len(PRIORITIES)],
            project_path=project, path_key=key, mac_username="alice",
            config={"template": {"composition": composition, "outputExt": "mp4"}},
            composition=composition,
            created_at=created, progress=100 if status == "COMPLETED" else 0,
            started_at=created + timedelta(seconds=30) if status != "PENDING" else None,
            finished_at=created + timedelta(minutes=3) if status in FINISHED else None,
            output_path=f"D:\\Dropbox\\renders\\spot_{g}.mp4" if status == "COMPLETED" else "",
            output_size=12_345_678 if status == "COMPLETED" else None,
            error="aerender Error: missing footage" if status == "FAILED" else ""))
        if len(batch) == 5000:
            Job.objects.bulk_create(batch)
            batch = []
    Job.objects.bulk_create(batch)
