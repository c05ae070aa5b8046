"""CORS for the ingest API, per source: a browser may call it with a publishable key from any
origin that some active source allows. Preflights carry no key, so they are answered for the
union of allowed origins; the real request is then checked against its own key's source
(auth.ApiKeyAuthentication) before anything is stored."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

from apps.sources.models import Source

_CACHE_SECONDS = 10.0
_cached: tuple[float, frozenset[str]] = (0.0, frozenset())


def _known_origins() -> frozenset[str]:
    global _cached
    now = time.monotonic()
    if now - _cached[0] > _CACHE_SECONDS:
        origins: set[str] = set()
        for allowed in Source.objects.filter(is_active=True).values_list(
            "allowed_origins", flat=True
        ):
            origins.update(allowed or [])
        _cached = (now, frozenset(origins))
    return _cached[1]


def forget_known_origins(**_: object) -> None:
    """Drop the cached union of origins (connected to Source saves and deletes), so that this
    process sees a changed source at once; other processes within _CACHE_SECONDS."""
    global _cached
    _cached = (0.0, frozenset())


def _allowed(origin: str) -> bool:
    known = _known_origins()
    return "*" in known or origin in known


class FeedbackCorsMiddleware:
    PREFIX = "/api/v1/feedback"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(self.PREFIX):
            return self.get_response(request)
        origin = request.headers.get("Origin")
        if (
            origin
            and request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
        ):
            response = HttpResponse(status=204)
            if _allowed(origin):
                response["Access-Control-Allow-Origin"] = origin
                response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
                response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response["Access-Control-Max-Age"] = "600"
        else:
            response = self.get_response(request)
            if origin and _allowed(origin):
                response["Access-Control-Allow-Origin"] = origin
                response["Access-Control-Expose-Headers"] = "Retry-After"
        # Add to, never replace, what the view varies on (Accept, Cookie…): shared caches rely on
        # it, and an answer without Origin must not be served to a browser that sends one.
        patch_vary_headers(response, ["Origin"])
        return response
