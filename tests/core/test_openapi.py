"""The OpenAPI schema and its docs page load, validate as OpenAPI 3.0, and describe the feedback
endpoints as they behave: the event shapes, the answers, the errors and the key scheme."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client


@pytest.fixture
def schema(client: Client, db: Any) -> dict[str, Any]:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_the_schema_loads_without_credentials(client: Client, db: Any) -> None:
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.0")


def test_the_schema_is_also_served_as_json(client: Client, db: Any) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Sinkhole API"


def test_the_schema_validates_as_openapi_without_warnings(db: Any, tmp_path: Any) -> None:
    target = tmp_path / "schema.yaml"

    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(target),
        stdout=StringIO(),
        stderr=StringIO(),
    )

    assert target.stat().st_size > 0


def test_the_docs_page_loads_and_points_at_the_schema(client: Client, db: Any) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page.lower()
    assert "/api/schema/" in page


def test_the_schema_documents_every_feedback_operation(schema: dict[str, Any]) -> None:
    paths = schema["paths"]

    assert set(paths["/api/v1/feedback"]) >= {"get", "post"}
    assert "get" in paths["/api/v1/feedback/{event_id}"]
    assert paths["/api/v1/feedback"]["post"]["operationId"] == "feedback_ingest"
    assert paths["/api/v1/feedback"]["get"]["operationId"] == "feedback_list"
    assert paths["/api/v1/feedback/{event_id}"]["get"]["operationId"] == "feedback_detail"


def test_ingest_documents_each_answer_it_gives(schema: dict[str, Any]) -> None:
    responses = schema["paths"]["/api/v1/feedback"]["post"]["responses"]

    assert set(responses) == {"200", "201", "207", "400", "401", "403", "413", "429"}
    created = responses["201"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][created]["properties"]) == {
        "id",
        "client_id",
        "outcome",
        "status",
    }
    batch = responses["207"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][batch]["properties"]) == {
        "results",
        "outcomes",
        "summary",
    }
    error = responses["400"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][error]["properties"]) == {"error"}


def test_ingest_takes_one_event_or_a_batch_of_the_four_shapes(schema: dict[str, Any]) -> None:
    body = schema["paths"]["/api/v1/feedback"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    components = schema["components"]["schemas"]

    assert {option["$ref"] for option in body["oneOf"]} == {
        "#/components/schemas/FeedbackEvent",
        "#/components/schemas/FeedbackBatch",
    }
    assert components["FeedbackBatch"]["maxItems"] == 1000
    assert set(components["FeedbackEvent"]["discriminator"]["mapping"]) == {
        "rating",
        "preference",
        "ranking",
        "edit",
    }
    assert set(components["RatingEvent"]["required"]) == {"type", "messages", "response"}
    assert set(components["PreferenceEvent"]["required"]) == {
        "type",
        "messages",
        "responses",
        "choice",
    }
    assert components["RatingEvent"]["properties"]["rating"]["enum"] == [1, -1]
    assert components["RatingEvent"]["properties"]["rater"]["nullable"] is True


def test_the_list_documents_its_filters_and_its_pages(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/api/v1/feedback"]["get"]
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit(
        "/", 1
    )[-1]

    assert {p["name"] for p in operation["parameters"]} >= {
        "type",
        "status",
        "model",
        "checkpoint",
        "rater",
        "since",
        "until",
        "source",
        "limit",
        "cursor",
    }
    assert set(schema["components"]["schemas"][page]["properties"]) == {
        "next",
        "previous",
        "results",
    }
    assert "400" in operation["responses"]


def test_the_key_scheme_is_bearer(schema: dict[str, Any]) -> None:
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["apiKey"]["description"],
    }
    assert {"apiKey": []} in schema["paths"]["/api/v1/feedback"]["post"]["security"]
