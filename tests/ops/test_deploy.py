"""The deployment files say what the issue asks for."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.common import requires

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def pm2_apps(env_file: Path) -> list[dict]:
    if shutil.which("node") is None:
        requires("Node.js", "install Node 20")
    script = "console.log(JSON.stringify(require(process.argv[1]).apps))"
    result = subprocess.run(["node", "-e", script, str(DEPLOY / "ecosystem.config.js")],
                            capture_output=True, text=True, timeout=30, check=True,
                            env={"PATH": "/usr/bin:/bin:/usr/local/bin",
                                 "ENV_FILE": str(env_file)})
    return json.loads(result.stdout)


def test_pm2_runs_web_and_worker_as_the_issue_says(tmp_path):
    (tmp_path / ".env").write_text("DEBUG=true\nPORT=8123\n")
    apps = {app["name"]: app for app in pm2_apps(tmp_path / ".env")}
    assert set(apps) == {"ae-render-manager-web", "ae-render-manager-worker"}
    for app in apps.values():
        assert app["exec_mode"] == "fork" and app["instances"] == 1
        assert app["autorestart"] is True and app["max_memory_restart"] == "2G"
        assert app["interpreter"] == "none"
        assert app["out_file"] != app["error_file"]
        assert app["out_file"].endswith(f"{app['name']}-out.log")
        assert app["error_file"].endswith(f"{app['name']}-error.log")
    assert apps["ae-render-manager-web"]["args"][-3:] == ["-p", "8123",
                                                         "rendermanager.asgi:application"]
    assert apps["ae-render-manager-worker"]["args"] == ["manage.py", "render_worker"]
    assert "pm2-logrotate:rotateInterval" in (DEPLOY / "ecosystem.config.js").read_text()


@pytest.mark.parametrize("unit", ["ae-render-manager-web", "ae-render-manager-worker"])
def test_systemd_units(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(DEPLOY / "systemd" / f"{unit}.service")
    service = parser["Service"]
    assert service["Restart"] == "always"
    assert service["ExecStart"].startswith("/opt/ae-render-manager/.venv/bin/python ")
    assert service["MemoryMax"] == "2G"
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    if unit.endswith("worker"):
        assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"


def test_reverse_proxy_terminates_https_and_upgrades_websockets():
    text = (DEPLOY / "nginx.conf").read_text()
    assert "listen 443 ssl" in text and "return 301 https://" in text
    ws = text[text.index("location /ws/"):]
    ws = ws[:ws.index("}")]
    assert "proxy_set_header Upgrade $http_upgrade" in ws
    assert "proxy_set_header Connection $connection_upgrade" in ws
    assert "X-Forwarded-Proto $scheme" in text
