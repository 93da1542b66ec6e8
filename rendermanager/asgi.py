"""The web server's entry point (daphne rendermanager.asgi:application): the ASGI
application (rendermanager/routing.py) and what the serving process sets for
itself: pooled database connections, the cyclic collector, the GIL's switch
interval. Tests that drive the application in-process import routing instead."""

import gc
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rendermanager.settings")

WEB_DATABASE_CONNECTIONS = 8


def pool_connections() -> None:
    """The web process borrows its PostgreSQL connections from a pool (Django's, on
    psycopg_pool), the way Django's documentation asks of ASGI servers instead of
    persistent connections: a connection opened for each request (a server process
    forked, signed in, its catalog caches cold) cost 10-20 ms of every request
    (bench/job_list.py). Only here: render nodes and the other daemons keep their
    own connections, one per thread, for as long as they run."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.postgresql":
        # Requests run on one thread; websockets, the queue forecast's builds and
        # the live updates take a few more.
        database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": WEB_DATABASE_CONNECTIONS, "timeout": 10}
        # The pool checks a connection before lending it: one a database restart
        # broke is replaced instead of failing a request.
        database["CONN_HEALTH_CHECKS"] = True


pool_connections()  # before anything connects

from rendermanager.routing import application  # noqa: E402,F401  (what daphne serves)

# What is loaded by now (Django, the apps, the URL and template machinery) lives as
# long as the process: out of the cyclic collector's sight, so that its full
# collections, which run in the middle of requests, scan only what requests and
# caches made since. On the job list at 100 000 jobs they took 180-220 ms; 90-110
# ms after this (bench/job_list.py, the README's performance notes).
gc.collect()
gc.freeze()

# A thread that computes (the queue forecast's rebuild on a busy farm, jobs.forecast)
# keeps the GIL for the interpreter's switch interval, 5 ms by default, each time a
# request's thread comes back from the database and wants it again: a page of ten
# queries then waits up to 50 ms more. At 0.5 ms the page barely notices the
# rebuild (job list p95 while the queue moves 138 -> 100 ms, GET /api/jobs?status=
# QUEUED 143 -> 57 ms at 100 000 jobs: bench/job_list.py).
WEB_SWITCH_INTERVAL = 0.0005
sys.setswitchinterval(WEB_SWITCH_INTERVAL)
