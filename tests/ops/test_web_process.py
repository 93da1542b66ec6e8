"""The web process as daphne starts it (rendermanager.asgi)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def in_web_process(expression: str, module: str = "rendermanager.asgi", **extra_env) -> str:
    """``expression`` printed by a fresh interpreter that loaded ``module``."""
    code = (f"import gc, sys, {module}; from django.db import connection; "
            f"print({expression})")
    env = {**os.environ, "ENV_FILE": "/dev/null", "DEBUG": "true"}
    env.pop("DATABASE_URL", None)
    env.update(extra_env)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_what_the_app_loaded_is_kept_out_of_the_cyclic_collectors_scans():
    # Full collections run in the middle of requests and scan every object
    # tracked: the app's own (about 150 000) are frozen once it is loaded.
    assert int(in_web_process("gc.get_freeze_count()")) > 50_000


def test_a_computing_thread_hands_the_interpreter_back_to_requests_quickly():
    # A background rebuild must not hold a request's thread back for the default
    # 5 ms each time it returns from the database.
    assert float(in_web_process("sys.getswitchinterval()")) <= 0.001


def test_only_the_web_process_borrows_postgresql_connections_from_a_pool():
    # Tests drive the application in-process (rendermanager.routing) with their own
    # connections; the daemons hold one per thread. No server is needed to see it.
    url = "postgres://rm@127.0.0.1:1/rm"
    pool = "(connection.settings_dict['OPTIONS'].get('pool') or {}).get('max_size')"
    assert in_web_process(pool, DATABASE_URL=url) == "8"
    assert in_web_process(pool, "rendermanager.routing", DATABASE_URL=url) == "None"
    assert in_web_process("connection.settings_dict['CONN_HEALTH_CHECKS']",
                          DATABASE_URL=url) == "True"
    # SQLite has no pool to take.
    assert in_web_process(pool) == "None"
