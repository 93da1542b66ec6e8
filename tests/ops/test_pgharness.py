"""tools/pgtest.py: the throwaway PostgreSQL server behind `make test`'s second pass."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.helpers.common import requires

REPO = Path(__file__).resolve().parents[2]
PGTEST = REPO / "tools" / "pgtest.py"


def pgtest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PGTEST), *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("pgtest", PGTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.find_bin()
    except module.Failure as exc:
        requires("PostgreSQL server binaries", str(exc))
    folder = tmp_path_factory.mktemp("pgharness") / "pg"
    yield folder
    pgtest("destroy", str(folder))


def test_start_is_idempotent_fast_and_usable_by_tests(cluster_dir):
    first = pgtest("start", str(cluster_dir))
    assert first.returncode == 0, first.stderr
    url = first.stdout.strip().splitlines()[-1]
    assert url.startswith("postgres://postgres@127.0.0.1:") and url.endswith("/rendermanager")

    again = pgtest("start", str(cluster_dir))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == url
    assert pgtest("url", str(cluster_dir)).stdout.strip() == url

    with psycopg.connect(url, autocommit=True) as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'full_page_writes', 'listen_addresses')"
        ).fetchall())
        assert settings == {"fsync": "off", "synchronous_commit": "off",
                            "full_page_writes": "off", "listen_addresses": "127.0.0.1"}
        # pytest-django creates test_<name> databases: the role may create databases.
        conn.execute("CREATE DATABASE test_probe")
        conn.execute("DROP DATABASE test_probe")

    assert pgtest("stop", str(cluster_dir)).returncode == 0
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert pgtest("stop", str(cluster_dir)).returncode == 0  # stopping twice is fine
    assert pgtest("url", str(cluster_dir)).returncode != 0


def test_run_passes_the_url_and_exit_code_and_stops_the_server(cluster_dir):
    code = ("import os, sys, psycopg; url = os.environ['DATABASE_URL']; "
            "psycopg.connect(url).close(); print(url); sys.exit(5)")
    result = pgtest("run", str(cluster_dir), "--", sys.executable, "-c", code)
    assert result.returncode == 5, result.stderr
    url = result.stdout.strip().splitlines()[-1]
    assert url.startswith("postgres://")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_run_leaves_a_server_it_did_not_start_running(cluster_dir):
    url = pgtest("start", str(cluster_dir)).stdout.strip().splitlines()[-1]
    result = pgtest("run", str(cluster_dir), "--", sys.executable, "-c", "pass")
    assert result.returncode == 0, result.stderr
    psycopg.connect(url, connect_timeout=2).close()


def test_restart_drops_connections_and_comes_back_on_the_same_url(cluster_dir):
    code = "import os; print(os.environ['PGTEST_DIR'])"
    result = pgtest("run", str(cluster_dir), "--", sys.executable, "-c", code)
    assert result.stdout.strip() == str(cluster_dir.resolve())

    url = pgtest("start", str(cluster_dir)).stdout.strip().splitlines()[-1]
    conn = psycopg.connect(url, autocommit=True)
    before = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    restarted = pgtest("restart", str(cluster_dir))
    assert restarted.returncode == 0, restarted.stderr
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")  # the fast restart ended this session
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as again:
        after = again.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    assert after > before
    pgtest("stop", str(cluster_dir))
    assert pgtest("restart", str(cluster_dir)).returncode != 0
