"""POST /api/estimates: what a submission would get, without submitting it.

The body of ``POST /api/jobs`` (a job) or of ``POST /api/batches`` (a batch:
a body with ``columns``) is checked exactly as those endpoints check it, and
the answer is the estimate each job would have if it joined the queue now
(jobs.forecast). Nothing is written.
"""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from jobs import forecast, lifecycle
from jobs.api.batches import checked_batch
from jobs.api.permissions import is_api_client, session_user
from jobs.api.serializers import (
    CostSerializer,
    EstimateSerializer,
    SubmitSerializer,
    estimate_body,
)
from jobs.api.views import JsonApiView, errors
from jobs.submission.batches import plan_batch

BATCH_KEYS = ("columns", "rows", "csv")

BATCH_ESTIMATE = inline_serializer("BatchEstimate", {
    "rows": inline_serializer("BatchRowEstimate", {
        "row": serializers.IntegerField(help_text="The 1-based data row of the table."),
        "output_name": serializers.CharField(),
        "errors": serializers.DictField(help_text="Why the row would be refused (empty: "
                                        "none); such a row has no estimate."),
        "estimate": EstimateSerializer(allow_null=True),
    }, many=True),
    "total": inline_serializer("BatchEstimateTotal", {
        "renders": serializers.IntegerField(help_text="Rows that would render."),
        "render_seconds": serializers.FloatField(help_text="Their render time added up."),
        "starts_at": serializers.DateTimeField(allow_null=True, help_text="The first start."),
        "finishes_at": serializers.DateTimeField(allow_null=True,
                                                 help_text="When the last row is done."),
        "cost": CostSerializer(allow_null=True),
    }),
})


def is_batch(data) -> bool:
    return isinstance(data, dict) and any(key in data for key in BATCH_KEYS)


class EstimatesView(JsonApiView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="estimates_create",
        summary="Estimate a render (or a batch) before submitting it",
        description="Takes the body of `POST /api/jobs`, or of `POST /api/batches` (a body "
                    "with `columns`), checks it the same way and answers the estimate it would "
                    "get if it were submitted now: how long it renders, when it would start and "
                    "finish behind the current queue, and what it would cost. A batch answers "
                    "per row and in total, its rows queued one after another. Nothing is "
                    "created or changed.",
        request=SubmitSerializer,
        responses={200: OpenApiResponse(EstimateSerializer, description="A job's estimate; "
                                        "for a batch body, BatchEstimate."),
                   **errors(400, 401, 413, 415)},
    )
    def post(self, request):
        if is_batch(request.data):
            return Response(self.batch(request))
        submission = SubmitSerializer(data=request.data,
                                      context={"session_user": session_user(request)})
        submission.is_valid(raise_exception=True)
        client = request.user.name[:64] if is_api_client(request) else ""
        [estimate] = forecast.estimate_new([lifecycle.new_job(
            **submission.validated_data.job_fields(client=client))])
        return Response(estimate_body(estimate))

    def batch(self, request) -> dict:
        batch_request, checks = checked_batch(request)
        client = request.user.name[:64] if is_api_client(request) else ""
        _, plans, shared = plan_batch(batch_request, checks, client=client,
                                      batch_id=uuid.uuid4())
        valid = [plan for plan in plans if plan.job is not None]
        found = forecast.estimate_new([lifecycle.new_job(**shared, **plan.job)
                                       for plan in valid])
        by_row = dict(zip((plan.number for plan in valid), found, strict=True))
        rows = []
        for plan in plans:
            rows.append({"row": plan.number, "output_name": plan.output_name,
                         "errors": plan.errors,
                         "estimate": estimate_body(by_row.get(plan.number))})
        seconds = sum(estimate.render_seconds for estimate in found)
        starts = [e.starts_at for e in found if e.starts_at is not None]
        finishes = [e.finishes_at for e in found if e.finishes_at is not None]
        total = {"renders": len(found), "render_seconds": round(seconds, 1),
                 "starts_at": min(starts) if starts else None,
                 "finishes_at": max(finishes) if len(finishes) == len(found) and finishes
                 else None,
                 "cost": forecast.cost(seconds)}
        when = serializers.DateTimeField()
        for key in ("starts_at", "finishes_at"):
            total[key] = when.to_representation(total[key]) if total[key] else None
        return {"rows": rows, "total": total}
