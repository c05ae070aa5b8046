"""`POST /api/public/otel/v1/traces` in protobuf (built with opentelemetry-proto, as the
exporters do) and JSON: the root span gives the trace its text and user, a generation its model,
and a score on the trace then carries them. Bad bodies get a 4xx."""

from __future__ import annotations

import gzip
import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from apps.feedback.models import Event
from apps.peers.conftest import Langfuse

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
ROOT, CHILD = bytes.fromhex("b7ad6b7169203331"), bytes.fromhex("00f067aa0ba902b7")


def export() -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    root = spans.add(trace_id=TRACE, span_id=ROOT, name="chat")
    child = spans.add(trace_id=TRACE, span_id=CHILD, parent_span_id=ROOT, name="llm")
    messages = json.dumps([{"role": "user", "content": "Name a prime above 10."}])
    for span, pairs in (
        (root, {"langfuse.observation.input": messages, "user.id": "u-1"}),
        (root, {"langfuse.observation.output": '"Eleven."'}),
        (child, {"langfuse.observation.type": "generation", "gen_ai.request.model": "qwen2.5:7b"}),
    ):
        for key, value in pairs.items():
            span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    return request.SerializeToString()


def post(client, langfuse: Langfuse, body: bytes, content_type: str, **headers: str):
    return client.post(
        "/api/public/otel/v1/traces",
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=langfuse.authorization,
        **headers,
    )


def test_a_protobuf_export_gives_a_score_its_prompt_reply_model_and_rater(langfuse, client):
    response = post(
        client,
        langfuse,
        gzip.compress(export()),
        "application/x-protobuf",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200 and response.content == b""

    langfuse.score(
        {"id": "s-1", "traceId": TRACE.hex(), "name": "thumbs", "value": 1, "dataType": "BOOLEAN"}
    )

    event = Event.objects.get()
    assert event.payload["messages"] == [{"role": "user", "content": "Name a prime above 10."}]
    assert event.payload["response"] == "Eleven."
    assert event.model == "qwen2.5:7b"
    assert event.rater_hash


def test_bad_otlp_bodies_get_a_clear_4xx_and_store_nothing(langfuse, client):
    assert post(client, langfuse, b"\xff\xff\xff", "application/x-protobuf").status_code == 400
    assert (
        post(
            client, langfuse, b"not gzip", "application/x-protobuf", HTTP_CONTENT_ENCODING="gzip"
        ).status_code
        == 400
    )
    assert post(client, langfuse, b"[]", "application/json").status_code == 400
    assert post(client, langfuse, b"x", "text/plain").status_code == 415
