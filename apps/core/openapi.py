"""Schema helpers, so that what the OpenAPI schema promises is what a list answers."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


def results_of(serializer: type[serializers.Serializer], name: str) -> Any:
    """The schema of `{"results": [SERIALIZER, ...]}`, the shape of the unpaginated lists."""
    return inline_serializer(name=name, fields={"results": serializer(many=True)})


def cursor_page_of(serializer: type[serializers.Serializer], name: str) -> Any:
    """The schema of a cursor-paginated page: `{"next", "previous", "results": [...]}`."""
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
            "previous": serializers.URLField(
                allow_null=True, help_text="The previous page, or null."
            ),
            "results": serializer(many=True),
        },
    )
