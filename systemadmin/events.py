"""System events (admin actions, alerts) and alerts to the Slack admin channel."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import F

from jobs.models import RenderNode
from jobs.notify import slack
from systemadmin.models import Counter, SystemEvent

log = logging.getLogger(__name__)

def record(kind: str, message: str, *, actor: str = "system", level: str = "info",
           key: str | None = None) -> SystemEvent | None:
    """Store an event. With ``key``, only the first event with that key is stored:
    the others return None (several nodes may notice the same thing)."""
    try:
        with transaction.atomic():
            return SystemEvent.objects.create(kind=kind, message=message, actor=actor[:200],
                                              level=level, key=key)
    except IntegrityError:
        if key is None:
            raise
        return None


def alert(kind: str, message: str, *, key: str | None = None,
          level: str = SystemEvent.Level.ERROR) -> bool:
    """Record a system error and tell the admin channel, once per ``key``."""
    if record(kind, message, level=level, key=key) is None:
        return False
    slack.alert_admins(message)
    return True


def node_down(node_name: str, detail: str = "") -> bool:
    """A render node stopped heartbeating: one alert per node start."""
    started = RenderNode.objects.filter(name=node_name).values_list("started_at", flat=True).first()
    key = f"node-down:{node_name}:{started.isoformat() if started else '-'}"
    text = f"Render node {node_name} stopped responding."
    if detail:
        text += f" {detail}"
    return alert("node_down", text, key=key)


def increment(name: str, amount: float = 1) -> None:
    if not Counter.objects.filter(name=name).update(value=F("value") + amount):
        try:
            with transaction.atomic():
                Counter.objects.create(name=name, value=amount)
        except IntegrityError:  # created meanwhile by another process
            Counter.objects.filter(name=name).update(value=F("value") + amount)
