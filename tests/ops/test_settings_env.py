"""Settings come from the environment: all documented, all checked at start.

No database needed: each start is a separate ``django.setup()`` process with
a controlled environment, as the server and workers start.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "rendermanager" / "settings.py"
EXAMPLE = REPO / "deploy" / ".env.example"
KEY_LINE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$")


def settings_read() -> tuple[set[str], set[str]]:
    """Names settings.py reads with env.<getter>("NAME"), and prefixes read with
    env.prefixed("PREFIX_"), found in its source (so settings read only on some
    code paths count too)."""
    names, prefixes = set(), set()
    for node in ast.walk(ast.parse(SETTINGS.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        # Any env.<getter>(...) with arguments: new getters are covered too.
        if not (isinstance(owner, ast.Name) and owner.id == "env" and node.args):
            continue
        first = node.args[0]
        assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
            f"settings.py line {node.lineno}: read settings by literal name so they "
            "can be checked and documented")
        (prefixes if node.func.attr == "prefixed" else names).add(first.value)
    return names, prefixes


def example_entries() -> dict[str, str]:
    """KEY -> value of every `KEY=value` or `#KEY=value` line of the example."""
    entries = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = KEY_LINE.match(line.strip())
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any setting, plus ``values``."""
    names, prefixes = settings_read()
    env = {key: value for key, value in os.environ.items()
           if key not in names and key != "ENV_FILE"
           and not any(key.startswith(prefix) for prefix in prefixes)}
    # A fixed hash seed: sets in settings print in the same order in every start.
    env.update(DJANGO_SETTINGS_MODULE="rendermanager.settings",
               ENV_FILE=str(REPO / "var" / "no-such-file.env"), PYTHONUNBUFFERED="1",
               PYTHONHASHSEED="0")
    env.update(values)
    return env


def start(env: dict[str, str], code: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


# --- Documentation ---------------------------------------------------------------


def test_settings_source_reads_something():
    names, prefixes = settings_read()
    assert {"DEBUG", "DATABASE_URL", "MAX_RENDER_ATTEMPTS", "MAC_DROPBOX_FOLDERS"} <= names
    assert prefixes == {"API_TOKEN_"}


def test_every_setting_is_in_env_example():
    names, prefixes = settings_read()
    documented = set(example_entries())
    missing = sorted(names - documented)
    assert not missing, f"add these to deploy/.env.example: {', '.join(missing)}"
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in documented), (
            f"deploy/.env.example should show an example of {prefix}<NAME>")


def test_env_example_lists_only_real_settings():
    names, prefixes = settings_read()
    stale = sorted(key for key in example_entries()
                   if key not in names and not any(key.startswith(p) for p in prefixes))
    assert not stale, f"deploy/.env.example lists settings nobody reads: {', '.join(stale)}"


def test_every_example_setting_is_explained():
    lines = [line.strip() for line in EXAMPLE.read_text(encoding="utf-8").splitlines()]
    for number, line in enumerate(lines):
        if not KEY_LINE.match(line):
            continue
        above = number - 1
        while above >= 0 and KEY_LINE.match(lines[above]):  # a group shares one comment
            above -= 1
        assert above >= 0 and lines[above].startswith("# ") and len(lines[above]) > 12, (
            f"deploy/.env.example: {line!r} needs a one-line explanation above it")


def test_settings_read_at_start_are_documented():
    """What a real start reads (env.read) is documented too, whatever helper read it."""
    code = ("from django.conf import settings; from rendermanager import settings as s; "
            "import json; print(json.dumps(sorted(s.env.read)))")
    result = start(clean_env(DEBUG="true"), code)
    assert result.returncode == 0, result.stderr
    read = set(json.loads(result.stdout.strip().splitlines()[-1]))
    documented = set(example_entries())
    assert read - documented == set()


def test_example_defaults_are_the_real_defaults(tmp_path):
    """Uncommenting every example line that has a literal value changes nothing."""
    entries = {key: value for key, value in example_entries().items()
               if "<" not in value and not key.startswith("API_TOKEN_")}
    env_file = tmp_path / "example.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in entries.items()))
    # Numbers compare by value: a default of 30 and a parsed "30" (30.0) agree.
    code = ("from rendermanager import settings as s; import json\n"
            "norm = lambda v: float(v) if type(v) in (int, float) else v\n"
            "print(json.dumps({k: repr(norm(v)) for k, v in vars(s).items() if k.isupper()}))")
    with_file = start(clean_env(DEBUG="true", ENV_FILE=str(env_file)), code)
    without = start(clean_env(DEBUG="true"), code)
    assert with_file.returncode == 0, with_file.stderr
    assert without.returncode == 0, without.stderr
    documented = json.loads(with_file.stdout.strip().splitlines()[-1])
    real = json.loads(without.stdout.strip().splitlines()[-1])
    wrong = {key: (documented[key], real[key]) for key in real if documented[key] != real[key]}
    assert not wrong, f"deploy/.env.example shows wrong defaults (shown, real): {wrong}"


# --- Checked at start -----------------------------------------------------------------


def test_a_clean_start_succeeds():
    """The harness can succeed, so the failures below are the values' doing."""
    result = start(clean_env(DEBUG="true"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("name", "value"), [
    ("MAX_RENDER_ATTEMPTS", "abc"),
    ("MAX_RENDER_ATTEMPTS", "0"),
    ("RENDER_ENGINE", "foo"),
    ("DEBUG", "maybe"),
    ("PUBLIC_URL", "ftp://x"),
    ("PORT", "70000"),
    ("MIN_FILE_AGE_SECONDS", "soon"),
    ("VALIDATION_INTERVAL_SECONDS", "nan"),
    ("ALLOW_PASSWORD_LOGIN", "sometimes"),
    ("DATABASE_URL", "mysql://db/x"),
    ("ESTIMATE_DEFAULT_SECONDS_PER_FRAME", "0"),
    ("RENDER_COST_PER_MINUTE", "cheap"),
    ("RENDER_COST_PER_MINUTE", "-0.5"),
    # A rate without a currency (or the other way round) says nothing.
    ("RENDER_COST_PER_MINUTE", "0.85"),
    ("RENDER_COST_CURRENCY", "EUR"),
    ("RENDER_COST_CURRENCY", "euros"),
])
def test_malformed_value_fails_at_start_naming_the_setting(name, value):
    env = clean_env(DEBUG="true")
    env[name] = value
    result = start(env)
    assert result.returncode != 0, f"{name}={value!r} was accepted"
    last = result.stderr.strip().splitlines()[-1]
    assert "SettingError" in last and name in last, result.stderr


@pytest.mark.parametrize(("heartbeat", "timeout"), [("25", "30"), ("16", "30"), ("1", "1")])
def test_a_heartbeat_too_slow_for_the_node_timeout_is_refused(heartbeat, timeout):
    # A render stops when its node's heartbeat is older than 0.8 x the timeout:
    # with beats 25 s apart and a 30 s timeout, every render was interrupted.
    result = start(clean_env(DEBUG="true", HEARTBEAT_SECONDS=heartbeat,
                             NODE_TIMEOUT_SECONDS=timeout))
    assert result.returncode != 0, f"HEARTBEAT_SECONDS={heartbeat} was accepted"
    last = result.stderr.strip().splitlines()[-1]
    assert "SettingError" in last and "HEARTBEAT_SECONDS" in last
    assert "at most half of NODE_TIMEOUT_SECONDS" in last
    fine = start(clean_env(DEBUG="true", HEARTBEAT_SECONDS="15", NODE_TIMEOUT_SECONDS="30"))
    assert fine.returncode == 0, fine.stderr


def test_malformed_value_in_env_file_fails_too(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=true\nRENDER_ENGINE=blender\n")
    result = start(clean_env(ENV_FILE=str(env_file)))
    assert result.returncode != 0
    assert "RENDER_ENGINE" in result.stderr.strip().splitlines()[-1]


def test_secret_key_is_required_without_debug():
    result = start(clean_env(DEBUG="false"))
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


KEY_CODE = "from django.conf import settings; print(settings.SECRET_KEY)"


def test_debug_without_a_secret_key_makes_one_and_keeps_it(tmp_path):
    # What `make run` writes: DEBUG=true and no SECRET_KEY.
    env = clean_env(DEBUG="true", DATA_DIR=str(tmp_path / "data"))
    first, again = start(env, KEY_CODE), start(env, KEY_CODE)
    assert first.returncode == 0, first.stderr

    key = first.stdout.strip().splitlines()[-1]
    assert len(key) >= 50 and "insecure" not in key
    assert again.stdout.strip().splitlines()[-1] == key
    kept = tmp_path / "data" / "secret_key"
    assert kept.read_text().strip() == key
    if os.name != "nt":
        assert kept.stat().st_mode & 0o777 == 0o600
    # Another install gets another key.
    other = start(clean_env(DEBUG="true", DATA_DIR=str(tmp_path / "other")), KEY_CODE)
    assert other.stdout.strip().splitlines()[-1] != key


def test_processes_starting_together_share_one_generated_key(tmp_path):
    env = clean_env(DEBUG="true", DATA_DIR=str(tmp_path / "data"))
    procs = [subprocess.Popen([sys.executable, "-c", "import django; django.setup()\n" + KEY_CODE],
                              cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    keys = {proc.communicate(timeout=60)[0].strip().splitlines()[-1] for proc in procs}
    assert len(keys) == 1
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret_key"]


def test_an_explicit_secret_key_is_used_as_it_is(tmp_path):
    env = clean_env(DEBUG="true", DATA_DIR=str(tmp_path), SECRET_KEY="k" * 60)
    assert start(env, KEY_CODE).stdout.strip().splitlines()[-1] == "k" * 60
    assert not (tmp_path / "secret_key").exists()


def test_a_postgres_connection_gives_up_on_a_silent_server_unless_told_otherwise(tmp_path):
    code = ("from django.conf import settings; o = settings.DATABASES['default']['OPTIONS']; "
            "print(o['connect_timeout'], o['keepalives_idle'], o['tcp_user_timeout'])")
    env = clean_env(DEBUG="true", DATA_DIR=str(tmp_path),
                    DATABASE_URL="postgres://u:p@db.example/rm")
    assert start(env, code).stdout.split() == ["10", "10", "30000"]
    env["DATABASE_URL"] += "?connect_timeout=3"
    assert start(env, code).stdout.split()[0] == "3"


def test_unknown_key_in_env_file_fails_naming_it(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# demo\nDEBUG=true\nRENDER_ENGIN=aerender\n")
    result = start(clean_env(ENV_FILE=str(env_file)))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "RENDER_ENGIN" in last and "Unknown setting" in last, result.stderr


def test_known_keys_in_env_file_are_used(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("export DEBUG=true\nMAX_RENDER_ATTEMPTS = 5\nAPI_TOKEN_BRAVO='x'\n")
    code = ("from django.conf import settings; "
            "print(settings.MAX_RENDER_ATTEMPTS, settings.API_TOKENS)")
    result = start(clean_env(ENV_FILE=str(env_file)), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "5 {'bravo': 'x'}"


def test_environment_wins_over_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=true\nMAX_RENDER_ATTEMPTS=5\n")
    code = "from django.conf import settings; print(settings.MAX_RENDER_ATTEMPTS)"
    result = start(clean_env(ENV_FILE=str(env_file), MAX_RENDER_ATTEMPTS="7"), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "7"


def test_malformed_env_file_line_names_file_and_line(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=true\nthis is not a setting\n")
    result = start(clean_env(ENV_FILE=str(env_file)))
    assert result.returncode != 0
    assert f"{env_file}:2" in result.stderr
