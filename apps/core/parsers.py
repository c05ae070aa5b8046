from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

_BOM = b"\xef\xbb\xbf"


class OrjsonParser(JSONParser):
    """JSON in through orjson, which also refuses invalid UTF-8 and lone surrogates. The body is
    read up to DATA_UPLOAD_MAX_MEMORY_SIZE (413 beyond it), and a NUL character in any string
    (which PostgreSQL's text refuses) is a 400 naming its field."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            from apps.core.exceptions import ApplicationError

            raise ApplicationError(
                f"The request body is over {limit} bytes.",
                code="payload_too_large",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        data = parse_json_body(body)
        if b"\\u0000" in body and (where := nul_path(data)) is not None:
            raise ValidationError({where or "non_field_errors": ["must not contain NUL (\\u0000)"]})
        return data


def parse_json_body(body: bytes) -> Any:
    if body.startswith(_BOM):
        # A UTF-8 byte order mark (Windows tools write one): RFC 8259 lets a parser ignore it.
        body = body[len(_BOM) :]
    if not body:
        raise ParseError("The request body is empty; send a JSON object or array.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).lower()
        if "utf-8" in reason:
            raise ParseError("The request body is not valid UTF-8.") from exc
        if "surrogate" in reason:
            raise ParseError(
                "The request body is not valid UTF-8 text: it escapes a lone surrogate (\\ud800-\\udfff)."
            ) from exc
        raise ParseError(f"The request body is not valid JSON: {exc}") from exc


def nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (value or key) in VALUE holding a NUL, else None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return path or "non_field_errors"
        found = nul_path(item, where)
        if found is not None:
            return found
    return None
