from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class LangfuseBasicScheme(OpenApiAuthenticationExtension):
    target_class = "apps.peers.langfuse.auth.LangfuseBasicAuthentication"
    name = "langfuseBasic"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": (
                "Langfuse-style keys: user = the source's publishable key (`pk-…`), "
                "password = the same source's secret key (`sk-…`)."
            ),
        }
