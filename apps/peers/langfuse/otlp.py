"""Langfuse's OpenTelemetry intake (`POST /api/public/otel/v1/traces`): what the Langfuse SDKs
3.x and later, and anything else that speaks OTLP/HTTP, export instead of ingestion batches.

Both encodings of OTLP/HTTP are read: protobuf (`application/x-protobuf`, what the Python
exporter sends), parsed with the `opentelemetry-proto` package, and JSON (`application/json`).
Either becomes the same list of `Span`s, and each span is mapped the way Langfuse's own server
maps it (its OtelIngestionProcessor), as far as Sinkhole needs: the texts that give a score its
prompt and reply, the model, the user and the session.

- Trace: `langfuse.trace.input` / `langfuse.trace.output` where set; a root span (no parent)
  otherwise gives the trace its own input and output. The user is `user.id` or
  `langfuse.user.id`, the session `session.id` or `langfuse.session.id`, the name
  `langfuse.trace.name` (else the root span's name).
- Observation: `langfuse.observation.input` / `output`, else the GenAI conventions
  (`gen_ai.prompt` / `gen_ai.completion`, `input.value` / `output.value`). It is a generation
  when `langfuse.observation.type` says so or a model is named
  (`langfuse.observation.model.name`, `gen_ai.request.model`, `gen_ai.response.model`,
  `llm.model_name`).

Sinkhole is not a tracing backend: timings, usage, costs and other spans are dropped unread."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from apps.peers.langfuse.services import langfuse_observation_record
from apps.peers.models import LangfuseObservation
from apps.sources.models import Source

PROTOBUF = "application/x-protobuf"

USER_KEYS = ("langfuse.user.id", "user.id")
SESSION_KEYS = ("langfuse.session.id", "session.id")
MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
)
INPUT_KEYS = ("langfuse.observation.input", "gen_ai.prompt", "input.value")
OUTPUT_KEYS = ("langfuse.observation.output", "gen_ai.completion", "output.value")


class OtlpError(ValueError):
    """The body is not an OTLP trace export in the encoding it claims."""


@dataclass
class Span:
    """One span, whatever the encoding: hex ids as OTLP/JSON writes them, attributes as values
    (JSON strings that Langfuse writes for inputs and outputs already parsed)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)


def decode_body(body: bytes, *, encoding: str = "") -> bytes:
    """BODY without its Content-Encoding (gzip or deflate, as OTLP/HTTP exporters may send)."""
    encoding = encoding.strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise OtlpError(f"the body is not valid {encoding} ({exc})") from exc
    return body


def spans_from_protobuf(body: bytes) -> list[Span]:
    """The spans of a protobuf ExportTraceServiceRequest."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(f"not an OTLP protobuf trace export ({exc})") from exc
    spans = []
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        attributes={
                            kv.key: _parsed(_proto_value(kv.value)) for kv in span.attributes
                        },
                    )
                )
    return spans


def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def spans_from_json(payload: Any) -> list[Span]:
    """The spans of an OTLP/JSON export (`resourceSpans` → `scopeSpans` → `spans`)."""
    if not isinstance(payload, dict):
        raise OtlpError("an OTLP/JSON trace export is an object with resourceSpans")
    spans = []
    for resource in _list(payload.get("resourceSpans")):
        for scope in _list(resource.get("scopeSpans") if isinstance(resource, dict) else None):
            for span in _list(scope.get("spans") if isinstance(scope, dict) else None):
                if not isinstance(span, dict):
                    continue
                attributes = {}
                for kv in _list(span.get("attributes")):
                    if isinstance(kv, dict) and isinstance(kv.get("key"), str):
                        attributes[kv["key"]] = _parsed(_json_value(kv.get("value")))
                spans.append(
                    Span(
                        trace_id=_text(span.get("traceId")),
                        span_id=_text(span.get("spanId")),
                        parent_span_id=_text(span.get("parentSpanId")),
                        name=_text(span.get("name")),
                        attributes=attributes,
                    )
                )
    return spans


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:  # int64 comes as a string in OTLP/JSON
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in value:
        return value["doubleValue"]
    if "arrayValue" in value and isinstance(value["arrayValue"], dict):
        return [_json_value(item) for item in _list(value["arrayValue"].get("values"))]
    if "kvlistValue" in value and isinstance(value["kvlistValue"], dict):
        return {
            kv["key"]: _json_value(kv.get("value"))
            for kv in _list(value["kvlistValue"].get("values"))
            if isinstance(kv, dict) and isinstance(kv.get("key"), str)
        }
    return None


def _parsed(value: Any) -> Any:
    """Langfuse serializes inputs and outputs as JSON strings: read them back."""
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _first(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((attributes[key] for key in keys if attributes.get(key) not in (None, "")), None)


def _usable(value: str) -> bool:
    return 0 < len(value) <= 200


def langfuse_otel_spans_record(*, source: Source, spans: list[Span]) -> int:
    """Keep what SPANS say of their traces and generations as score context of SOURCE (see the
    module's docstring for the mapping); return how many traces and generations were written."""
    kept = 0
    for span in spans:
        if not (_usable(span.trace_id) and _usable(span.span_id)):
            continue
        attributes = span.attributes
        model = _first(attributes, MODEL_KEYS)
        observation_input = _first(attributes, INPUT_KEYS)
        observation_output = _first(attributes, OUTPUT_KEYS)
        is_root = not span.parent_span_id
        trace: dict[str, Any] = {}
        trace_input = attributes.get("langfuse.trace.input")
        trace_output = attributes.get("langfuse.trace.output")
        if trace_input is None and is_root:
            trace_input = observation_input
        if trace_output is None and is_root:
            trace_output = observation_output
        if trace_input is not None:
            trace["input"] = trace_input
        if trace_output is not None:
            trace["output"] = trace_output
        user, session = _first(attributes, USER_KEYS), _first(attributes, SESSION_KEYS)
        if isinstance(user, str):
            trace["userId"] = user
        if isinstance(session, str):
            trace["sessionId"] = session
        name = attributes.get("langfuse.trace.name") or (span.name if is_root else None)
        if trace and isinstance(name, str):
            trace["name"] = name
        if trace:
            langfuse_observation_record(
                source=source,
                kind=LangfuseObservation.Kind.TRACE,
                trace_id=span.trace_id,
                observation_id="",
                body=trace,
            )
            kept += 1
        is_generation = attributes.get("langfuse.observation.type") == "generation" or bool(model)
        if is_generation:
            langfuse_observation_record(
                source=source,
                kind=LangfuseObservation.Kind.GENERATION,
                trace_id=span.trace_id,
                observation_id=span.span_id,
                body={
                    "input": observation_input,
                    "output": observation_output,
                    "name": span.name,
                    "model": model if isinstance(model, str) else None,
                },
            )
            kept += 1
    return kept
