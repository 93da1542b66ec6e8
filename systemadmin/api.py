"""JSON endpoints of the admin panel (admin session only; POSTs need the CSRF token).

GET  /api/system/health             machine, disks, queue counts, render nodes
GET  /api/system/queue-history      queue depth samples of the last 24 hours
GET  /api/system/errors             failed jobs and system warnings/errors
GET  /api/system/events             admin actions and alerts
GET  /api/reports/usage             render minutes, renders and cost per user, client, project
GET  /api/system/update/check       git fetch; the new commits
POST /api/system/update/execute     start the update: drain the farm, then update (409 if one runs)
GET  /api/system/update/status      the latest (or ?id=) run, log from ?offset=
POST /api/system/emergency-stop     cancel every active job, kill the renders
POST /api/system/clear-queue        cancel every job not rendering yet
POST /api/system/restart-engine     {"node": optional} restart render workers
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.errors import ConflictError
from jobs.api.permissions import IsAdminSession
from jobs.api.views import AnyAccept
from systemadmin import health, services, updates, usage
from systemadmin.models import SystemEvent, UpdateRun


class UpstreamError(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "update_check_failed"


class AdminView(APIView):
    # Sessions only: an API token cannot run the farm (it is ignored → 403).
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAdminSession]


ANY = inline_serializer("SystemAny", {"detail": serializers.CharField(required=False)})
ACTION = inline_serializer("AdminActionResult", {
    "action": serializers.CharField(), "actor": serializers.CharField(),
    "message": serializers.CharField(), "count": serializers.IntegerField(),
    "job_ids": serializers.ListField(child=serializers.CharField()),
    "nodes": serializers.ListField(child=serializers.CharField()),
})


@extend_schema(tags=["system"], responses=ANY, summary="Live health of the farm")
class HealthView(AdminView):
    def get(self, request):
        return Response(health.snapshot())


@extend_schema(tags=["system"], responses=ANY, summary="Queue depth, last 24 hours")
class QueueHistoryView(AdminView):
    def get(self, request):
        return Response({"hours": health.HISTORY_HOURS, "samples": health.queue_history()})


@extend_schema(tags=["system"], responses=ANY, summary="Recent errors")
class ErrorsView(AdminView):
    def get(self, request):
        errors = health.recent_errors(_limit(request))
        for item in errors:
            item["time"] = item["time"].isoformat()
            item["job_id"] = str(item["job_id"]) if item["job_id"] else None
        return Response({"errors": errors})


@extend_schema(tags=["system"], responses=ANY, summary="Admin actions and alerts")
class EventsView(AdminView):
    def get(self, request):
        rows = SystemEvent.objects.all()[:_limit(request)]
        return Response({"events": [
            {"time": e.created_at.isoformat(), "kind": e.kind, "level": e.level,
             "actor": e.actor, "message": e.message} for e in rows]})


def _limit(request, default: int = 20, most: int = 200) -> int:
    try:
        return max(1, min(most, int(request.query_params.get("limit", default))))
    except (TypeError, ValueError):
        raise ValidationError({"limit": "must be a whole number"}) from None


@extend_schema(tags=["system"], responses=ANY, summary="Look for a newer version (git fetch)")
class UpdateCheckView(AdminView):
    def get(self, request):
        try:
            return Response(updates.check())
        except updates.UpdateError as exc:
            raise UpstreamError(str(exc)) from None


@extend_schema(tags=["system"], request=None, responses={202: ANY, 409: ANY},
               summary="Update now (claims paused, waits for the renders in progress)")
class UpdateExecuteView(AdminView):
    def post(self, request):
        try:
            run = updates.execute(request.user)
        except updates.Refused as exc:
            raise ConflictError(str(exc)) from None
        return Response(updates.run_dict(run), status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["system"], responses=ANY, summary="Progress and log of an update",
               parameters=[OpenApiParameter("id", int), OpenApiParameter("offset", int)])
class UpdateStatusView(AdminView):
    def get(self, request):
        run_id = request.query_params.get("id")
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
            run = (UpdateRun.objects.filter(pk=int(run_id)).first() if run_id
                   else updates.latest_run())
        except (TypeError, ValueError):
            raise ValidationError({"id": "id and offset must be whole numbers"}) from None
        if run_id and run is None:
            raise NotFound("No such update run.")
        return Response({"run": updates.run_dict(run, offset)})


@extend_schema(tags=["system"], request=None, responses=ACTION,
               summary="Emergency stop: cancel every active job and kill its render")
class EmergencyStopView(AdminView):
    def post(self, request):
        return Response(services.emergency_stop(request.user).as_dict())


@extend_schema(tags=["system"], request=None, responses=ACTION,
               summary="Clear the queue: cancel every pending, validating and queued job")
class ClearQueueView(AdminView):
    def post(self, request):
        return Response(services.clear_queue(request.user).as_dict())


@extend_schema(tags=["system"], responses=ACTION, summary="Restart the render engine",
               request=inline_serializer("RestartEngine", {
                   "node": serializers.CharField(required=False, allow_blank=True)}))
class RestartEngineView(AdminView):
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        node = data.get("node") or None
        if node is not None and not isinstance(node, str):
            raise ValidationError({"node": "must be a render node's name"})
        try:
            result = services.restart_engine(request.user, node)
        except services.UnknownNode as exc:
            raise NotFound(str(exc)) from None
        return Response(result.as_dict())


USAGE_LINE = {
    "renders": serializers.IntegerField(help_text="Renders that completed."),
    "render_minutes": serializers.FloatField(help_text="Their render time, claim to publish."),
    "cost": serializers.FloatField(allow_null=True, help_text="render_minutes × "
                                   "RENDER_COST_PER_MINUTE; null when not set."),
    "failed_renders": serializers.IntegerField(help_text="Render attempts that ended "
                                               "otherwise: failed, retried, cancelled."),
    "failed_minutes": serializers.FloatField(),
}
USAGE = inline_serializer("UsageReport", {
    "group": serializers.ChoiceField(choices=list(usage.GROUPS)),
    "from": serializers.DateField(), "to": serializers.DateField(),
    "currency": serializers.CharField(allow_null=True),
    "rows": inline_serializer("UsageRow", {
        "key": serializers.CharField(help_text="User id, client name or a digest of the "
                                     "project path."),
        "label": serializers.CharField(), **USAGE_LINE}, many=True),
    "total": inline_serializer("UsageTotal", USAGE_LINE),
})


@extend_schema(
    tags=["reports"], summary="Usage: render minutes, renders and cost per user, API client "
    "or project", responses={200: USAGE, (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
                             400: ANY, 403: ANY},
    parameters=[OpenApiParameter("group", str, enum=list(usage.GROUPS),
                                 description="Default: user."),
                OpenApiParameter("from", OpenApiTypes.DATE, description="First day (local "
                                 "time); default: the first of this month."),
                OpenApiParameter("to", OpenApiTypes.DATE, description="Last day, included; "
                                 "default: today."),
                OpenApiParameter("format", str, enum=["json", "csv"],
                                 description="csv: a download for spreadsheets.")])
class UsageReportView(AdminView):
    # ?format=csv is ours, not DRF's renderer switch.
    content_negotiation_class = AnyAccept

    def get(self, request):
        wanted = usage.asked(request.query_params)
        form = (request.query_params.get("format") or "json").lower()
        if form not in ("json", "csv"):
            wanted.errors["format"] = "json or csv."
        if wanted.errors:
            raise ValidationError(wanted.errors)
        report = usage.report(wanted.group, wanted.date_from, wanted.date_to)
        if form == "csv":
            response = HttpResponse(report.csv(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = (
                f'attachment; filename="usage-by-{wanted.group}-{wanted.date_from}-'
                f'{wanted.date_to}.csv"')
            return response
        return Response(report.as_dict())
