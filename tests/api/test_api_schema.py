"""The OpenAPI schema and its docs page, as a client developer finds them."""

import re

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema():
    response = APIClient().get("/api/schema", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_every_job_operation_is_described(schema):
    paths = schema["paths"]

    assert set(paths["/api/jobs"]) >= {"get", "post"}
    assert set(paths["/api/jobs/{job_id}"]) >= {"get", "delete"}
    assert "patch" in paths["/api/jobs/{job_id}/priority"]
    assert "get" in paths["/api/jobs/{job_id}/logs"]
    assert "get" in paths["/api/jobs/{job_id}/download"]
    assert "202" in paths["/api/jobs"]["post"]["responses"]
    assert "post" in paths["/api/jobs/{job_id}/approve"]
    assert "post" in paths["/api/jobs/{job_id}/reject"]
    assert "get" in paths["/api/jobs/{job_id}/preview"]


def test_every_batch_operation_is_described(schema):
    paths = schema["paths"]

    assert {"201", "200", "400"} <= set(paths["/api/batches"]["post"]["responses"])
    assert "get" in paths["/api/batches/{batch_id}"]
    assert "text/csv" in paths["/api/batches/{batch_id}/results.csv"]["get"]["responses"][
        "200"]["content"]
    assert "post" in paths["/api/batches/{batch_id}/cancel"]
    assert "post" in paths["/api/batches/{batch_id}/retry"]
    body = schema["components"]["schemas"]["BatchRequestRequest"]
    assert {"columns", "csv", "rows", "output_name", "review", "dry_run", "accept"} <= set(
        body["properties"])


def test_the_submission_body_is_described(schema):
    body = schema["components"]["schemas"]["SubmitRequest"]

    # project_path, saved_at and nexrender are required for the After Effects engines,
    # timeline for the ffmpeg engine, mac_username with a client's token (a personal
    # token submits for its person): the descriptions say so, the server checks it.
    assert "required" not in body
    assert "except with a personal token" in body["properties"]["mac_username"]["description"]
    for field in ("project_path", "saved_at", "nexrender"):
        assert "Required for the After Effects engines" in body["properties"][field][
            "description"]
    timeline = body["properties"]["timeline"]
    assert timeline["required"] == ["width", "height"]
    assert timeline["properties"]["backgrounds"]["maxItems"] == 4
    assert {"oneOf"} <= set(body["properties"]["preset"])
    assert "priority" not in body["properties"]
    template = body["properties"]["nexrender"]["properties"]["template"]
    assert template["required"] == ["composition"]
    assert template["additionalProperties"] is False


def test_the_token_header_is_a_security_scheme(schema):
    scheme = schema["components"]["securitySchemes"]["ApiToken"]

    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "X-API-Token"}
    assert {"ApiToken": []} in schema["paths"]["/api/jobs"]["post"]["security"]


def test_the_docs_page_loads_nothing_from_a_cdn():
    response = APIClient().get("/api/docs")

    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("/static/drf_spectacular_sidecar/" in s for s in sources), sources
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    assert "cdn" not in html.lower()


def test_the_project_read_before_rendering_is_described(schema):
    project = schema["components"]["schemas"]["Project"]["properties"]
    assert set(project) >= {"error", "compositions", "composition", "footage", "fonts",
                            "saved_with"}
    footage = schema["components"]["schemas"]["Footage"]["properties"]
    assert footage["status"]["allOf"] == [{"$ref": "#/components/schemas/FootageStatusEnum"}]
    statuses = schema["components"]["schemas"]["FootageStatusEnum"]["enum"]
    assert set(statuses) == {"found", "syncing", "missing", "replaced"}


def test_every_cause_code_is_documented(schema):
    from jobs.node.engines.ae_output import TITLES

    described = schema["components"]["schemas"]["JobDetail"]["properties"]
    for code in TITLES:
        field = "warnings" if code in ("missing_font", "ae_warning") else "error_code"
        assert code in described[field]["description"], code
