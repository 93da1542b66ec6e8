"""``GET /metrics``: Prometheus text format, for an admin session or
``Authorization: Bearer <METRICS_TOKEN>``."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from jobs.models import Job, RenderNode, Status
from systemadmin.models import Counter
from systemadmin.signals import FINISHED_COUNTERS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Text:
    def __init__(self):
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            where = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{where}}} {_number(value)}" if where
                              else f"{name} {_number(value)}")

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def exposition() -> str:
    out = _Text()
    counts = dict(Job.objects.values_list("status").annotate(n=Count("pk"))
                  .values_list("status", "n"))
    out.metric("rendermanager_jobs", "gauge", "Jobs by status (the queue depth is the "
               "PENDING, VALIDATING and QUEUED ones).",
               [({"status": s}, counts.get(s, 0)) for s in Status.values])
    counters = dict(Counter.objects.values_list("name", "value"))
    out.metric("rendermanager_jobs_finished_total", "counter",
               "Jobs that reached a final status since the install.",
               [({"status": s.lower()}, counters.get(f"jobs_{s.lower()}", 0))
                for s in FINISHED_COUNTERS])
    out.metric("rendermanager_renders_completed_total", "counter",
               "Renders that completed.", [({}, counters.get("jobs_completed", 0))])
    out.metric("rendermanager_renders_failed_total", "counter",
               "Renders that failed for good (all attempts used).",
               [({}, counters.get("renders_failed", 0))])
    out.metric("rendermanager_render_attempts_failed_total", "counter",
               "Render attempts that crashed and were retried.",
               [({}, counters.get("render_attempts_failed", 0))])
    out.metric("rendermanager_renders_started_total", "counter",
               "Render attempts started.", [({}, counters.get("renders_started", 0))])
    out.metric("rendermanager_render_seconds", "summary",
               "Wall time of completed renders' render processes.", [])
    out.lines.append(f"rendermanager_render_seconds_sum "
                     f"{_number(counters.get('render_seconds_sum', 0))}")
    out.lines.append(f"rendermanager_render_seconds_count "
                     f"{_number(counters.get('render_seconds_count', 0))}")
    nodes = list(RenderNode.objects.with_liveness().order_by("name"))
    out.metric("rendermanager_node_last_heartbeat_seconds", "gauge",
               "Unix time of each render node's last heartbeat.",
               [({"node": n.name}, round(n.last_heartbeat.timestamp(), 3)) for n in nodes])
    out.metric("rendermanager_node_up", "gauge",
               "1 if the render node heartbeats within NODE_TIMEOUT_SECONDS.",
               [({"node": n.name}, int(n.is_alive())) for n in nodes])
    busy = set(Job.objects.filter(status=Status.RENDERING).values_list("node__name", flat=True))
    out.metric("rendermanager_node_rendering", "gauge", "1 while the node renders a job.",
               [({"node": n.name}, int(n.name in busy)) for n in nodes])
    return out.render()


def _token_ok(request) -> bool:
    expected = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not expected or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), expected.encode())


@require_GET
def metrics_view(request):
    user = getattr(request, "user", None)
    is_admin = bool(user is not None and user.is_authenticated and getattr(user, "is_admin",
                                                                          False))
    if not (is_admin or _token_ok(request)):
        if user is not None and user.is_authenticated:
            return JsonResponse({"detail": "Only admins may read the metrics."}, status=403)
        response = JsonResponse({"detail": "Sign in as an admin or send Authorization: "
                                 "Bearer <METRICS_TOKEN>."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)
