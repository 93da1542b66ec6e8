"""Strict parsing of settings from the environment.

Every setting is read through one of the typed getters below so that a
malformed value stops the process at start with a message naming the
setting, instead of surfacing later as a confusing runtime error.

An optional ``.env`` file (or the file named by ``ENV_FILE``) is read first;
real environment variables win over it. Because the file is ours, a key in it
that no setting reads is an error too: a typo there would otherwise be
silently ignored.
"""

from __future__ import annotations

import os
import secrets
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class SettingError(ImproperlyConfigured):
    pass


def parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise SettingError(f"{path}:{number}: expected KEY=value, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def generated_secret(path: Path) -> str:
    """The random secret kept in ``path``, made on first use (readable by this user only).

    Several processes (the web server, render workers) may start at once: the
    file is written under a private name and linked into place, so it appears
    whole or not at all, and every process ends up with the same secret.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeError) as exc:
        raise SettingError(f"Cannot read the generated SECRET_KEY in {path}: {exc}") from None
    if text:
        return text
    if text == "":
        raise SettingError(f"{path} is empty: delete it (a new key is made) or set SECRET_KEY")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        spare = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        handle = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(spare, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            spare.unlink(missing_ok=True)
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise SettingError(f"Cannot create a SECRET_KEY in {path}: {exc}; set SECRET_KEY")\
            from None


class Env:
    def __init__(self, environ=None, env_file: Path | None = None):
        self.environ = dict(os.environ if environ is None else environ)
        self.file_values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            self.file_values = parse_env_file(env_file)
        self.read: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.read.add(name)
        if name in self.environ:
            return self.environ[name]
        return self.file_values.get(name)

    def str(self, name: str, default: str = "") -> str:
        value = self.raw(name)
        return default if value is None else value.strip()

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise SettingError(f"{name} must be true or false, got {value!r}")

    def int(self, name: str, default: int, minimum: int | None = None,
            maximum: int | None = None) -> int:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise SettingError(f"{name} must be a whole number, got {value!r}") from None
        if minimum is not None and number < minimum:
            raise SettingError(f"{name} must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise SettingError(f"{name} must be at most {maximum}, got {number}")
        return number

    def float(self, name: str, default: float, minimum: float | None = None,
              maximum: float | None = None) -> float:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        try:
            number = float(value.strip())
        except ValueError:
            raise SettingError(f"{name} must be a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise SettingError(f"{name} must be a finite number, got {value!r}")
        if minimum is not None and number < minimum:
            raise SettingError(f"{name} must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise SettingError(f"{name} must be at most {maximum}, got {number}")
        return number

    def decimal(self, name: str, minimum: float | None = None) -> Decimal | None:
        """An exact decimal number (money: 0.85 stays 0.85), or None when empty or unset."""
        value = self.raw(name)
        if value is None or value.strip() == "":
            return None
        # Checked as a float (a number, finite, in range); str() of a float is the
        # shortest text that reads back as it, so no binary noise reaches the Decimal.
        return Decimal(str(self.float(name, 0.0, minimum=minimum)))

    def list(self, name: str, default: list[str] | None = None) -> list[str]:
        value = self.raw(name)
        if value is None:
            return list(default or [])
        return [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, name: str, default: str, choices: list[str]) -> str:
        value = self.str(name, default).lower()
        if value not in choices:
            raise SettingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def url(self, name: str, default: str = "") -> str:
        value = self.str(name, default).rstrip("/")
        if value and not (value.startswith("http://") or value.startswith("https://")):
            raise SettingError(f"{name} must start with http:// or https://, got {value!r}")
        return value

    def prefixed(self, prefix: str) -> dict[str, str]:
        """All variables starting with ``prefix``, keyed by the rest of the name."""
        found = {}
        for source in (self.file_values, self.environ):
            for key, value in source.items():
                if key.startswith(prefix) and len(key) > len(prefix):
                    self.read.add(key)
                    found[key[len(prefix) :].lower()] = value.strip()
        return found

    def check_file_keys(self) -> None:
        unknown = sorted(set(self.file_values) - self.read)
        if unknown:
            raise SettingError(
                "Unknown setting(s) in the .env file: " + ", ".join(unknown)
                + " (see deploy/.env.example for the settings there are)"
            )
