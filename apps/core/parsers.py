from __future__ import annotations

from typing import Any

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class OrjsonParser(JSONParser):
    """JSON in through orjson, which also refuses invalid UTF-8 and lone surrogates."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        body = stream.read() if stream is not None else b""
        return parse_json_body(body)


def parse_json_body(body: bytes) -> Any:
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
