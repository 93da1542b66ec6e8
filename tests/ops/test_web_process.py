"""The web process as daphne starts it (rendermanager.asgi)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def in_web_process(expression: str) -> str:
    """``expression`` printed by a fresh interpreter that loaded rendermanager.asgi."""
    code = f"import gc, sys, rendermanager.asgi; print({expression})"
    env = {**os.environ, "ENV_FILE": "/dev/null", "DEBUG": "true"}
    env.pop("DATABASE_URL", None)
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
