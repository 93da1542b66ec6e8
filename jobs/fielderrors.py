"""Collecting every problem of a client's JSON under its dotted path.

The whitelists (nexrender configs, timelines) report all problems at once,
so a client fixes its request in one go instead of one 400 at a time.
"""

from rest_framework.exceptions import ValidationError


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
            raise ValidationError(self.found)
