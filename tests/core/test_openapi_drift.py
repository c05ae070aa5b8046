"""The schema says what the answers are: the lists that answer `{"results": [...]}` are
documented so (they were documented as bare arrays), and a decision's `verdict_status`, null
when the decision carries no verdict, is documented as nullable. Each answer is validated
against the schema with jsonschema, as a client generated from the schema would read it."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client: Client) -> dict[str, Any]:
    return yaml.safe_load(client.get("/api/schema/").content)


@pytest.fixture
def staff(client: Client) -> Client:
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("root", "r@example.org", "pw"))
    return client


def _resolve(schema: dict[str, Any], node: Any) -> Any:
    """NODE with every $ref replaced by its component (OpenAPI 3.0 nullable → JSON Schema)."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            return _resolve(schema, schema["components"]["schemas"][name])
        out = {key: _resolve(schema, value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        if node.get("nullable") and "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    if isinstance(node, list):
        return [_resolve(schema, item) for item in node]
    return node


def _answer_schema(schema: dict[str, Any], path: str, method: str, status: str) -> Any:
    content = schema["paths"][path][method]["responses"][status]["content"]
    return _resolve(schema, content["application/json"]["schema"])


@pytest.mark.parametrize(
    "path",
    ["/api/v1/dataset-versions", "/api/v1/eval-sets", "/api/v1/experiments", "/api/v1/recipes"],
)
def test_a_list_that_answers_results_is_documented_as_results(
    schema: dict[str, Any], staff: Client, path: str
) -> None:
    documented = _answer_schema(schema, path, "get", "200")
    answer = staff.get(path)

    assert answer.status_code == 200
    assert documented["type"] == "object" and documented["properties"]["results"]["type"] == "array"
    jsonschema.validate(answer.json(), documented)


def test_a_decision_without_a_verdict_validates_against_its_schema(
    schema: dict[str, Any], staff: Client
) -> None:
    from apps.feedback.models import Event
    from apps.sources.services import source_create

    source, _, _ = source_create(name="drift", allowed_origins=[])
    event = Event.objects.create(
        source=source, client_id="e1", type="rating", payload={"type": "rating"}
    )
    response = staff.post(
        f"/api/v1/events/{event.pk}/decisions",
        {"action": "tag", "tag": "keep"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["verdict_status"] is None

    documented = _answer_schema(schema, "/api/v1/events/{event_id}/decisions", "post", "201")
    jsonschema.validate(response.json(), documented)
