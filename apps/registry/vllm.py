"""Tell a running vLLM server about adapters (its runtime LoRA API).

vLLM must run with `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`. Publishing calls
`POST /v1/load_lora_adapter` with `{"lora_name", "lora_path"}`; retiring calls
`POST /v1/unload_lora_adapter` with `{"lora_name"}`. Standard library only: one small POST does
not need an HTTP client library in the web process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from django.conf import settings

from apps.core.exceptions import ApplicationError

TIMEOUT_S = 30.0


def vllm_url() -> str:
    return settings.VLLM_URL.rstrip("/")


def _post(path: str, body: dict[str, str]) -> tuple[int, str]:
    if not vllm_url().startswith(("http://", "https://")):
        raise ApplicationError(
            f"VLLM_URL must be an http(s) URL, not {vllm_url()!r}.",
            code="misconfigured",
            status_code=502,
        )
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        f"{vllm_url()}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **_auth_headers()},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ApplicationError(
            f"The vLLM server at {vllm_url()} did not answer: {exc}.",
            code="serving_unavailable",
            status_code=502,
        ) from exc


def _auth_headers() -> dict[str, str]:
    key = settings.VLLM_API_KEY
    return {"Authorization": f"Bearer {key}"} if key else {}


def load_adapter(*, name: str, path: str) -> None:
    """Load (or keep) the adapter NAME from PATH; an adapter already loaded counts as done."""
    status, text = _post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
    if status < 300 or (status == 400 and "already" in text.lower()):
        return
    raise ApplicationError(
        f"vLLM refused to load the adapter {name!r} ({status}): {text[:300]}",
        code="serving_refused",
        status_code=502,
    )


def unload_adapter(*, name: str) -> None:
    """Unload NAME; an adapter that vLLM does not have counts as unloaded."""
    status, text = _post("/v1/unload_lora_adapter", {"lora_name": name})
    if status < 300 or status in (400, 404):
        return
    raise ApplicationError(
        f"vLLM refused to unload the adapter {name!r} ({status}): {text[:300]}",
        code="serving_refused",
        status_code=502,
    )
