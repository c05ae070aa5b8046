"""OpenAPI for the ingest endpoint: the event schema comes straight from the pydantic models
(one source of truth), registered as components, plus worked examples."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample
from pydantic import TypeAdapter

from apps.feedback.schema import Event

_REF = "#/components/schemas/{model}"


def _openapi30(node: Any) -> Any:
    """pydantic writes JSON Schema 2020-12; OpenAPI 3.0 has no `{"type": "null"}` (it says
    `nullable: true`) and no `const` (a one-value `enum`). Client generators refuse the former."""
    if isinstance(node, list):
        return [_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _openapi30(value) for key, value in node.items()}
    if "const" in node and not isinstance(node["const"], dict):
        node["enum"] = [node.pop("const")]
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in node.pop("anyOf") if option != {"type": "null"}]
        if len(rest) == 1 and "$ref" not in rest[0]:
            node = {**rest[0], **node}
        elif len(rest) == 1:
            node["allOf"] = rest
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    return node


def event_components() -> dict[str, Any]:
    schema = _openapi30(TypeAdapter(Event).json_schema(ref_template=_REF))
    components = dict(schema.pop("$defs", {}))
    components["FeedbackEvent"] = schema
    components["FeedbackBatch"] = {
        "type": "array",
        "items": {"$ref": _REF.format(model="FeedbackEvent")},
        "minItems": 1,
        "maxItems": 1000,
    }
    return components


EVENT_SCHEMA_REF = {
    "oneOf": [
        {"$ref": _REF.format(model="FeedbackEvent")},
        {"$ref": _REF.format(model="FeedbackBatch")},
    ]
}

_PROMPT = [{"role": "user", "content": "What is the capital of Australia?"}]

INGEST_EXAMPLES = [
    OpenApiExample(
        "Thumbs down with a reason",
        value={
            "type": "rating",
            "id": "evt-1842",
            "rater": "user-77",
            "model": "llama3.1:8b",
            "messages": _PROMPT,
            "response": "Sydney.",
            "rating": -1,
            "reason": "not_factually_correct",
            "comment": "It is Canberra.",
            "tags": ["geography"],
        },
        request_only=True,
    ),
    OpenApiExample(
        "A/B choice",
        value={
            "type": "preference",
            "id": "evt-1843",
            "rater": "user-77",
            "messages": _PROMPT,
            "responses": [
                {"model": "qwen2.5:7b", "content": "Canberra."},
                {"model": "mistral:7b", "content": "Sydney."},
            ],
            "choice": 0,
        },
        request_only=True,
    ),
    OpenApiExample(
        "Ranking, best first",
        value={
            "type": "ranking",
            "id": "evt-1844",
            "messages": _PROMPT,
            "responses": [
                {"model": "a", "content": "Sydney."},
                {"model": "b", "content": "Canberra."},
                {"model": "c", "content": "Canberra, since 1913."},
            ],
            "ranking": [2, 1, 0],
        },
        request_only=True,
    ),
    OpenApiExample(
        "An edit",
        value={
            "type": "edit",
            "id": "evt-1845",
            "model": "llama3.1:8b",
            "messages": _PROMPT,
            "response": "Sydney.",
            "edited": "Canberra.",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Batch answer (207)",
        value={
            "results": [
                {
                    "index": 0,
                    "outcome": "stored",
                    "status": "accepted",
                    "id": 101,
                    "client_id": "evt-1842",
                },
                {
                    "index": 1,
                    "outcome": "duplicate",
                    "status": "duplicate",
                    "id": 97,
                    "client_id": "evt-1790",
                },
                {
                    "index": 2,
                    "outcome": "error",
                    "status": "error",
                    "client_id": "evt-1846",
                    "code": "invalid",
                    "errors": {
                        "messages.0.role": [
                            "Input should be 'system', 'developer', 'user', 'assistant', 'tool' or 'function'"
                        ]
                    },
                },
            ],
            "outcomes": {"stored": 1, "duplicate": 1, "error": 1},
            "summary": {"accepted": 1, "duplicate": 1, "error": 1},
        },
        response_only=True,
        status_codes=["207"],
    ),
]


def add_event_components(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: add the pydantic-made event schemas."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(event_components())
    return result
