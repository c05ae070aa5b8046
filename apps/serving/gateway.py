"""`POST /v1/chat/completions`: OpenAI's chat API, answered by a checkpoint of the registry.

A plain Django view rather than DRF: the request, the answer, the stream (server-sent events)
and the errors are OpenAI's shapes, so that any OpenAI client works unchanged — errors are
`{"error": {"message", "type", "param", "code"}}`, not the house API shape.

Authentication: a source's secret key, `Authorization: Bearer sk-…` (publishable keys are
refused: generation costs compute, and a page's key is public). `model` is an alias, a
checkpoint name, or an experiment (`experiment:<id or name>`, or the name of a running one); the
rater that experiments split by is the request's `user`, or the `X-Sinkhole-Rater` header.

Every answer carries its interaction id (the completion's `id`, and the `sinkhole` object with
the checkpoint, alias, experiment and arm; also the `X-Sinkhole-Interaction` and
`X-Sinkhole-Checkpoint` headers) and is recorded as a `ServedAnswer`. Feedback that sends the id
as `interaction_id` is attached to exactly that checkpoint."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apps.core.exceptions import ApplicationError
from apps.registry.models import Alias, Checkpoint
from apps.registry.models import BaseModel as RegistryBaseModel
from apps.registry.selectors import base_model_find
from apps.registry.services import base_model_serve
from apps.serving import selectors, services
from apps.serving.backends import Params, Usage, backend_for
from apps.sources.models import ApiKey, Source
from apps.sources.selectors import api_key_for_request


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Annotated[str, Field(max_length=100_000)] | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields the gateway uses; any other OpenAI field is accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[_Message], Field(min_length=1, max_length=500)]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1)] | None = None
    user: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = (
            status,
            message,
            code,
            param,
            kind,
        )

    def response(self) -> JsonResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }
        return JsonResponse(body, status=self.status)


def _from_application_error(exc: ApplicationError) -> GatewayError:
    param = next(iter(exc.fields), None)
    kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
    message = exc.message
    if exc.fields and message.startswith("The request is invalid"):
        message = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.fields.items())
    return GatewayError(exc.status_code, message, code=exc.code, param=param, kind=kind)


def _authenticate(request: HttpRequest) -> Source:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise GatewayError(
            401,
            "Send a source's secret key: 'Authorization: Bearer sk-…'.",
            code="invalid_api_key",
            kind="authentication_error",
        )
    key = api_key_for_request(raw.strip())
    if key is None:
        raise GatewayError(
            401,
            "The API key is unknown or has been revoked.",
            code="invalid_api_key",
            kind="authentication_error",
        )
    if key.kind != ApiKey.Kind.SECRET:
        raise GatewayError(
            403,
            "The gateway takes a secret key (sk-…); publishable keys cannot generate.",
            code="permission_denied",
            kind="permission_error",
        )
    return key.source


def _parse(request: HttpRequest) -> ChatRequest:
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise GatewayError(413, "The request body is too large.", code="payload_too_large") from exc
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"The body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise GatewayError(400, "The body must be a JSON object.", code="invalid_request")
    try:
        chat = ChatRequest.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(
            str(part)
            for part in error["loc"]
            if not (isinstance(part, str) and ("[" in part or part in {"str", "list"}))
        )
        raise GatewayError(
            400, f"{param}: {error['msg']}", code="invalid_value", param=param or None
        ) from exc
    if chat.n not in (None, 1):
        raise GatewayError(400, "Only n=1 is supported.", code="invalid_value", param="n")
    return chat


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def _trace_id(request: HttpRequest) -> str:
    """The Langfuse trace the client puts this call in: `X-Sinkhole-Trace-Id` (any Langfuse
    trace id: W3C hex, a v2 SDK's UUID), else a W3C `traceparent` header's trace id (what
    OpenTelemetry-instrumented clients send; an invalid one is ignored, as W3C says); empty
    when neither is sent."""
    named = request.META.get("HTTP_X_SINKHOLE_TRACE_ID")
    if named is not None:
        if not _TRACE_ID.fullmatch(named.strip()):
            raise GatewayError(
                400,
                "X-Sinkhole-Trace-Id must be 1-64 letters, digits, '.', '_', ':' or '-'.",
                code="invalid_value",
                param="X-Sinkhole-Trace-Id",
            )
        return named.strip()
    found = _TRACEPARENT.fullmatch(request.META.get("HTTP_TRACEPARENT", "").strip().lower())
    if found and found.group(1) != "0" * 32:
        return found.group(1)
    return ""


def _params(chat: ChatRequest) -> Params:
    limit = settings.SERVING_MAX_TOKENS
    wanted = chat.max_completion_tokens or chat.max_tokens or settings.SERVING_DEFAULT_MAX_TOKENS
    if wanted > limit:
        field = "max_completion_tokens" if chat.max_completion_tokens else "max_tokens"
        raise GatewayError(
            400, f"{field} is at most {limit} here.", code="invalid_value", param=field
        )
    return Params(
        max_tokens=min(wanted, limit),
        temperature=chat.temperature if chat.temperature is not None else 0.0,
        top_p=chat.top_p if chat.top_p is not None else 1.0,
    )


def _sinkhole(answer: Any, target: selectors.Target) -> dict[str, Any]:
    return {
        "interaction_id": answer.interaction_id,
        "trace_id": answer.trace_id,
        "checkpoint": target.checkpoint.name,
        "model": selectors.model_name_for(target.checkpoint),
        "alias": target.alias or None,
        "experiment": target.experiment.name if target.experiment else None,
        "arm": target.arm.name if target.arm else None,
    }


def _headers(response: HttpResponse, answer: Any, target: selectors.Target) -> HttpResponse:
    response["X-Sinkhole-Interaction"] = answer.interaction_id
    response["X-Sinkhole-Trace-Id"] = answer.trace_id
    response["X-Sinkhole-Checkpoint"] = target.checkpoint.name
    if target.experiment is not None:
        response["X-Sinkhole-Experiment"] = target.experiment.name
        response["X-Sinkhole-Arm"] = target.arm.name
    return response


def _usage(usage: Usage) -> dict[str, Any] | None:
    if usage.prompt_tokens is None and usage.completion_tokens is None:
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def resolve_or_serve_base(model: str, *, rater: str | None) -> selectors.Target:
    """resolve_model, and where MODEL names no alias, checkpoint or experiment but a registered
    base model (its name or model id), that base model served as it is: the gateway answers
    before anything was trained or published."""
    try:
        return selectors.resolve_model(model, rater=rater)
    except ApplicationError as exc:
        base = base_model_find(model) if exc.status_code == 404 and model.strip() else None
        if base is None:
            raise
        checkpoint = base_model_serve(base_model=base)
        return selectors.resolve_model(checkpoint.name, rater=rater)


@csrf_exempt
def chat_completions(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return GatewayError(405, "Use POST.", code="method_not_allowed").response()
    try:
        source = _authenticate(request)
        chat = _parse(request)
        params = _params(chat)
        rater = chat.user or request.META.get("HTTP_X_SINKHOLE_RATER") or None
        trace_id = _trace_id(request)
        target = resolve_or_serve_base(chat.model, rater=rater)
        backend = backend_for(target.checkpoint)
        messages = [m.model_dump(exclude_none=True) for m in chat.messages]
        answer = services.served_answer_start(
            source=source,
            target=target,
            requested_model=chat.model,
            messages=messages,
            rater=rater,
            backend=backend.name,
            stream=chat.stream,
            trace_id=trace_id,
        )
    except GatewayError as exc:
        return exc.response()
    except ApplicationError as exc:
        return _from_application_error(exc).response()

    started = time.perf_counter()
    usage = Usage()
    if chat.stream:
        include_usage = bool((chat.stream_options or {}).get("include_usage"))
        events = _stream(backend, target, messages, params, usage, answer, started, include_usage)
        response = StreamingHttpResponse(events, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return _headers(response, answer, target)

    try:
        text = backend.complete(target.checkpoint, messages, params, usage)
    except ApplicationError as exc:
        services.served_answer_finish(
            answer=answer,
            response="",
            prompt_tokens=None,
            completion_tokens=None,
            finish_reason="error",
            latency_ms=_ms(started),
            error=exc.message,
        )
        return _headers(_from_application_error(exc).response(), answer, target)
    services.served_answer_finish(
        answer=answer,
        response=text,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        finish_reason=usage.finish_reason,
        latency_ms=_ms(started),
    )
    body = {
        "id": answer.interaction_id,
        "object": "chat.completion",
        "created": int(answer.created_at.timestamp()),
        "model": target.checkpoint.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": usage.finish_reason,
            }
        ],
        "usage": _usage(usage),
        "sinkhole": _sinkhole(answer, target),
    }
    return _headers(JsonResponse(body), answer, target)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def _stream(
    backend: Any,
    target: selectors.Target,
    messages: list[dict[str, Any]],
    params: Params,
    usage: Usage,
    answer: Any,
    started: float,
    include_usage: bool,
) -> Iterator[bytes]:
    """Server-sent events as OpenAI sends them: a role chunk, content chunks, a chunk with the
    finish reason (and, asked for, a usage chunk), then `[DONE]`. The first and the last chunk
    carry the `sinkhole` object. The answer is recorded when the stream ends, also when the
    client goes away half-way (with what was generated by then)."""
    base = {
        "id": answer.interaction_id,
        "object": "chat.completion.chunk",
        "created": int(answer.created_at.timestamp()),
        "model": target.checkpoint.name,
    }
    sinkhole = _sinkhole(answer, target)
    pieces: list[str] = []
    error = ""
    finished = False
    try:
        yield _event(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
                "sinkhole": sinkhole,
            }
        )
        try:
            for piece in backend.stream(target.checkpoint, messages, params, usage):
                pieces.append(piece)
                yield _event(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"content": piece},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                    }
                )
        except ApplicationError as exc:
            error = exc.message
            gateway_error = _from_application_error(exc)
            yield _event(
                {
                    "error": {
                        "message": gateway_error.message,
                        "type": gateway_error.kind,
                        "param": None,
                        "code": gateway_error.code,
                    }
                }
            )
            yield b"data: [DONE]\n\n"
            finished = True
            return
        yield _event(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": usage.finish_reason,
                    }
                ],
                "sinkhole": sinkhole,
            }
        )
        if include_usage:
            yield _event({**base, "choices": [], "usage": _usage(usage)})
        yield b"data: [DONE]\n\n"
        finished = True
    finally:
        services.served_answer_finish(
            answer=answer,
            response="".join(pieces),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            finish_reason=("error" if error else usage.finish_reason) if finished else "abandoned",
            latency_ms=_ms(started),
            error=error,
        )


def list_models(request: HttpRequest) -> HttpResponse:
    """`GET /v1/models`, which OpenAI clients (Open WebUI among them) call to fill their model
    picker: the aliases, the published checkpoints, the running experiments and the registered
    base models (served as they are)."""
    try:
        _authenticate(request)
    except GatewayError as exc:
        return exc.response()
    from apps.serving.models import Experiment

    def entry(name: str, created: Any, owned_by: str) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": int(created.timestamp()),
            "owned_by": owned_by,
        }

    data = [entry(a.name, a.updated_at, "sinkhole:alias") for a in Alias.objects.order_by("name")]
    data += [
        entry(c.name, c.published_at or c.created_at, "sinkhole:checkpoint")
        for c in Checkpoint.objects.filter(status=Checkpoint.Status.PUBLISHED).order_by("name")
    ]
    data += [
        entry(
            f"{selectors.EXPERIMENT_PREFIX}{e.name}",
            e.started_at or e.created_at,
            "sinkhole:experiment",
        )
        for e in Experiment.objects.filter(status=Experiment.Status.RUNNING).order_by("name")
    ]
    listed = {item["id"] for item in data}
    data += [
        entry(b.name, b.created_at, "sinkhole:base-model")
        for b in RegistryBaseModel.objects.order_by("name")
        if b.name not in listed
    ]
    return JsonResponse({"object": "list", "data": data})
