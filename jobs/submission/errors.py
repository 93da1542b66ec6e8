"""How the submission rules report a client's mistakes, without any web framework.

The whitelists (nexrender configs, timelines, presets) report every problem
at once under its dotted path, so a client fixes its request in one go
instead of one 400 at a time. The API turns ``InvalidInput`` into a 400.
"""

from __future__ import annotations

import math


class InvalidInput(ValueError):
    """The client's value breaks the rules.

    ``errors`` is a dict of messages by dotted field path, or a list of
    messages about the value as a whole.
    """

    def __init__(self, errors: dict[str, list[str]] | list[str]):
        self.errors = errors
        super().__init__(errors)


class FieldErrors:
    def __init__(self, refused: dict[str, str] | None = None):
        # Keys refused for a known reason (e.g. "actions": code execution) say so.
        self.refused = refused or {}
        self.found: dict[str, list[str]] = {}

    def add(self, where: str, message: str) -> None:
        self.found.setdefault(where, []).append(message)

    def unknown_keys(self, where: str, data: dict, allowed: set[str]) -> None:
        for key in data:
            if key in allowed:
                continue
            here = f"{where}.{key}" if where else str(key)
            reason = self.refused.get(key) or f"allowed here: {', '.join(sorted(allowed))}"
            self.add(here, f"'{key}' is not accepted: {reason}.")

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidInput(self.found)


def is_int(value) -> bool:
    """A JSON integer (true and false are not numbers here, though Python says so)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite JSON number."""
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


def body_fields(data, allowed, refused: dict[str, str]) -> dict:
    """The first look at a request body (a JSON object): InvalidInput if it is none or
    holds a NUL character anywhere; else the errors of its refused and unknown keys."""
    if not isinstance(data, dict):
        raise InvalidInput(["The body must be a JSON object."])
    # PostgreSQL stores no NUL character, in text or JSON; no client needs one.
    nul = sorted(str(key).replace("\x00", "\\x00") for key, value in data.items()
                 if has_nul(key) or has_nul(value))
    if nul:
        raise InvalidInput({key: ["May not contain NUL (\\x00) characters."] for key in nul})
    errors: dict = {}
    for key in data:
        if key in refused:
            errors[key] = [refused[key]]
        elif key not in allowed:
            errors[key] = [f"Unknown field; allowed: {', '.join(allowed)}."]
    return errors


def take(errors: dict, key: str, clean, value):
    """``clean(value)``, or None with its problems recorded under ``key``."""
    try:
        return clean(value)
    except InvalidInput as exc:
        errors[key] = exc.errors
        return None


def has_nul(value) -> bool:
    """A NUL character anywhere in ``value`` (text, or JSON's lists and objects):
    PostgreSQL stores none, in text or JSON."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_nul(item) for item in value)
    return False
