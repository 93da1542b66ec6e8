"""A throwaway install of a tiny Django project and its git remote, for the
self-update tests (the update runs real git, pip-like steps and migrations)."""

from __future__ import annotations

import sqlite3
import subprocess
import textwrap
from pathlib import Path

from systemadmin.models import UpdateRun
from tests.helpers.common import wait_for

MINI_SETTINGS = """\
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "throwaway"
INSTALLED_APPS = ["throwaway"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": BASE_DIR / "mini.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
"""

MIGRATION_0001 = """\
from django.db import migrations, models

class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.CreateModel("Widget", fields=[
        ("id", models.AutoField(primary_key=True)),
        ("name", models.CharField(max_length=20))])]
"""

MIGRATION_0002 = """\
from django.db import migrations, models

class Migration(migrations.Migration):
    dependencies = [("throwaway", "0001_initial")]
    operations = [migrations.AddField("Widget", "colour",
                                      models.CharField(max_length=20, default="red"))]
"""


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@studio.test",
                             "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false",
                             *args], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


class Repos:
    def __init__(self, tmp: Path):
        self.remote = tmp / "remote.git"
        self.dev = tmp / "dev"
        self.install = tmp / "install"
        git(tmp, "init", "--bare", "-q", str(self.remote))
        git(tmp, "init", "-q", "-b", "main", str(self.dev))
        write(self.dev, {
            "manage.py": "import sys\nfrom django.core.management import "
                         "execute_from_command_line\nexecute_from_command_line(sys.argv)\n",
            "mini/__init__.py": "", "mini/settings.py": MINI_SETTINGS,
            "throwaway/__init__.py": "",
            "throwaway/models.py": "from django.db import models\n\n\nclass Widget(models.Model):"
                                   "\n    name = models.CharField(max_length=20)\n",
            "throwaway/migrations/__init__.py": "",
            "throwaway/migrations/0001_initial.py": MIGRATION_0001,
            ".gitignore": "*.sqlite3\n*.marker\n__pycache__/\n",
            "package.json": '{"name": "mini"}\n',
        })
        self.commit("Initial version")
        git(self.dev, "remote", "add", "origin", str(self.remote))
        git(self.dev, "push", "-q", "origin", "main")
        git(tmp, "clone", "-q", "-b", "main", str(self.remote), str(self.install))
        self.first = self.head(self.install)

    def commit(self, message: str) -> str:
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", message)
        return self.head(self.dev)

    def push_new_version(self) -> str:
        write(self.dev, {
            "throwaway/models.py": "from django.db import models\n\n\nclass Widget(models.Model):"
                                   "\n    name = models.CharField(max_length=20)\n"
                                   "    colour = models.CharField(max_length=20, default='red')\n",
            "throwaway/migrations/0002_colour.py": MIGRATION_0002,
        })
        sha = self.commit("Widgets have a colour")
        git(self.dev, "push", "-q", "origin", "main")
        return sha

    @staticmethod
    def head(repo: Path) -> str:
        return git(repo, "rev-parse", "HEAD")

    def applied_migrations(self) -> list[str]:
        db = self.install / "mini.sqlite3"
        if not db.exists():
            return []
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT name FROM django_migrations WHERE app='throwaway' "
                                "ORDER BY name").fetchall()
        return [name for (name,) in rows]


def marker(name: str) -> list[str]:
    """A command that writes ``<name>.marker`` in the install (its working folder)."""
    return ["{python}", "-c", f"open('{name}.marker', 'w').write('ok'); print('{name} done')"]


def wait_run(run_id: int, timeout: float = 60) -> UpdateRun:
    return wait_for(lambda: (run := UpdateRun.objects.get(pk=run_id)).state
                    != UpdateRun.State.RUNNING and run, timeout=timeout,
                    message="the update did not finish")
