"""One structured log line per API request, with its timing; every /api/ error as JSON."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.handlers.wsgi import LimitedStream
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("sinkhole.request")


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        return response


_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
_MESSAGES = {
    400: "The request is invalid.",
    401: "Authentication is needed: send Authorization: Bearer <key>.",
    403: "You may not do this.",
    404: "There is nothing at this address.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
    500: "The server failed on this request; it has been logged.",
}
# Headers of an error answer that stay when its body is replaced.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def api_error_response(status: int, message: str | None = None) -> HttpResponse:
    """A JSON answer in the documented error shape for STATUS."""
    from apps.core.exceptions import error_body

    code = _CODES.get(status, "server_error" if status >= 500 else "error")
    text = message or _MESSAGES.get(status) or HTTPStatus(status).phrase
    return JsonResponse(error_body(code, text), status=status)


class ApiErrorMiddleware:
    """Every answer under /api/ is JSON in the documented error shape, whoever made it: Django's
    404 for an unknown path, 405 from a plain view, CSRF's 403, 413 for a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, and 500 for an exception no view handled (logged with its
    traceback, never shown). DRF views already answer in this shape (apps.core.exceptions).

    It also reads a chunked request body (Transfer-Encoding: chunked, no Content-Length) that the
    WSGI server has already de-chunked (`wsgi.input_terminated`, as gunicorn sets): Django reads
    only Content-Length bytes and would see an empty body."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            too_big = _read_chunked_body(request)
            if too_big is not None:
                return too_big
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and _is_api(request)
            and not response.get("Content-Type", "").startswith(
                ("application/json", "application/problem+json")
            )
            and not getattr(response, "streaming", False)
        ):
            replaced = api_error_response(response.status_code)
            for header in _KEPT_HEADERS:
                if header in response:
                    replaced[header] = response[header]
            return replaced
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _is_api(request):
            return None
        if isinstance(exception, RequestDataTooBig):
            return api_error_response(
                413,
                f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            )
        if isinstance(exception, Http404):
            return api_error_response(404)
        if isinstance(exception, PermissionDenied):
            return api_error_response(403)
        if isinstance(exception, SuspiciousOperation | BadRequest):
            return api_error_response(400)
        logging.getLogger("django.request").error(
            "Internal Server Error: %s",
            request.path,
            exc_info=exception,
            extra={"status_code": 500, "request": request},
        )
        return api_error_response(500)


def _read_chunked_body(request: HttpRequest) -> HttpResponse | None:
    """Give Django the de-chunked body as if it had come with a Content-Length; a 413 answer
    (under /api/) when it is over DATA_UPLOAD_MAX_MEMORY_SIZE."""
    environ = request.META
    if environ.get("CONTENT_LENGTH") or not environ.get("wsgi.input_terminated"):
        return None  # a length was sent, or the server left the chunk framing in the stream
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = environ["wsgi.input"].read(limit + 1 if limit is not None else -1)
    if limit is not None and len(body) > limit:
        if _is_api(request):
            return api_error_response(413, f"The request body is over {limit} bytes.")
        return HttpResponse("Request body too large.", status=413, content_type="text/plain")
    environ["CONTENT_LENGTH"] = str(len(body))
    request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[attr-defined]
    return None
