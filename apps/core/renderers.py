from __future__ import annotations

import json
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer


class OrjsonRenderer(JSONRenderer):
    """JSON out through orjson: several times faster than the standard library on big batches."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)
        except TypeError:
            # orjson stops at 64-bit integers; rows stored before validation bounded numbers may
            # hold bigger ones (jsonb prints 1e20 back as an integer). The standard library
            # writes them as they are, so one such row never breaks a whole list.
            return json.dumps(
                data, default=str, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
