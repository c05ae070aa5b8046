"""The engines that produce an answer for a checkpoint.

- `BuiltinBackend`: transformers + peft in this process, through `trainer.inference`: the base
  model with the checkpoint's adapter, loaded once and kept (per base model and adapter, the
  least recently used dropped beyond `SERVING_MAX_MODELS`). One generation at a time per model
  (the model's own lock): a CPU gains nothing from interleaving. Fine for SmolLM2-135M on a CPU.
- `UpstreamBackend`: any OpenAI-compatible server (vLLM with the adapters loaded, which is what
  publishing does where `VLLM_URL` is set). The request is forwarded with `model` set to the
  name the server knows: an adapter's checkpoint name (vLLM's `lora_name`), or the base model's
  id for a base checkpoint. Streams pass through piece by piece.

`SERVING_UPSTREAM_URL` (an OpenAI base URL, e.g. `http://vllm:8000/v1`) chooses the upstream; when
it is unset but `VLLM_URL` is set, `VLLM_URL/v1` is used; otherwise the built-in engine answers.
torch and transformers are imported only when the built-in engine first loads a model."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from apps.core.exceptions import ApplicationError
from apps.feedback.services.normalize import message_text
from apps.registry.models import Checkpoint


@dataclass
class Params:
    max_tokens: int
    temperature: float
    top_p: float


@dataclass
class Usage:
    """Filled in while (or after) an answer is generated."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    extra: dict[str, Any] = field(default_factory=dict)


def _unavailable(
    message: str, *, code: str = "backend_unavailable", status_code: int = 503
) -> ApplicationError:
    return ApplicationError(message, code=code, status_code=status_code)


def adapter_dir(checkpoint: Checkpoint) -> str | None:
    """The adapter folder of CHECKPOINT on this machine (None for a base checkpoint): the
    published copy when it is a local folder, else the folder it was trained into."""
    if checkpoint.kind == Checkpoint.Kind.BASE:
        return None
    candidates = []
    if checkpoint.artifact_uri.startswith("file://"):
        candidates.append(urlsplit(checkpoint.artifact_uri).path)
    if checkpoint.local_path:
        candidates.append(checkpoint.local_path)
    for candidate in candidates:
        if (Path(candidate) / "adapter_config.json").is_file():
            return str(candidate)
    raise _unavailable(
        f"The adapter files of {checkpoint.name} are not on this machine; serve it through an "
        "upstream (SERVING_UPSTREAM_URL) or publish it to the local artifact store."
    )


class BuiltinBackend:
    name = "builtin"

    _models: OrderedDict[tuple[str, str], Any] = OrderedDict()
    _loading = threading.Lock()

    def _model(self, checkpoint: Checkpoint) -> Any:
        adapter = adapter_dir(checkpoint)
        key = (checkpoint.base_model.model_id, adapter or "")
        # One load at a time: two requests loading the same model would hold it twice in memory.
        with self._loading:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            from trainer.inference import load_model

            try:
                model = load_model(key[0], adapter, device=settings.SERVING_DEVICE)
            except Exception as exc:  # noqa: BLE001 - any load failure is the backend's, not the client's
                raise _unavailable(f"Could not load {checkpoint.name}: {exc}") from exc
            self._models[key] = model
            while len(self._models) > max(1, settings.SERVING_MAX_MODELS):
                self._models.popitem(last=False)
            return model

    @classmethod
    def forget_models(cls) -> None:
        with cls._loading:
            cls._models.clear()

    @staticmethod
    def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": message_text(m.get("content"))} for m in messages]

    @staticmethod
    def _count(
        model: Any, messages: list[dict[str, str]], text: str, usage: Usage, params: Params
    ) -> None:
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            return
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        else:
            prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        usage.prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        usage.completion_tokens = (
            len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
        )
        usage.finish_reason = "length" if usage.completion_tokens >= params.max_tokens else "stop"

    def complete(
        self, checkpoint: Checkpoint, messages: list[dict[str, Any]], params: Params, usage: Usage
    ) -> str:
        model = self._model(checkpoint)
        plain = self._plain(messages)
        text = model.chat(
            plain,
            max_new_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
        )
        self._count(model, plain, text, usage, params)
        return text

    def stream(
        self, checkpoint: Checkpoint, messages: list[dict[str, Any]], params: Params, usage: Usage
    ) -> Iterator[str]:
        model = self._model(checkpoint)
        plain = self._plain(messages)
        pieces: list[str] = []
        for piece in model.chat(
            plain,
            max_new_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stream=True,
        ):
            pieces.append(piece)
            yield piece
        self._count(model, plain, "".join(pieces), usage, params)


class UpstreamBackend:
    name = "upstream"

    def __init__(self, base_url: str, *, api_key: str = "", timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    @staticmethod
    def served_name(checkpoint: Checkpoint) -> str:
        return (
            checkpoint.base_model.model_id
            if checkpoint.kind == Checkpoint.Kind.BASE
            else checkpoint.name
        )

    def _request(
        self, checkpoint: Checkpoint, messages: list[dict[str, Any]], params: Params, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served_name(checkpoint),
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _failed(self, status: int, text: str) -> ApplicationError:
        try:
            message = json.loads(text)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = text[:300]
        return _unavailable(
            f"The upstream server answered {status}: {message}",
            code="upstream_error",
            status_code=502,
        )

    def complete(
        self, checkpoint: Checkpoint, messages: list[dict[str, Any]], params: Params, usage: Usage
    ) -> str:
        import httpx

        try:
            response = httpx.post(
                f"{self.base_url}/chat/completions",
                json=self._request(checkpoint, messages, params, False),
                headers=self._headers(),
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise _unavailable(
                f"The upstream server at {self.base_url} did not answer: {exc}", status_code=502
            ) from exc
        if response.status_code >= 300:
            raise self._failed(response.status_code, response.text)
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _unavailable(
                "The upstream server's answer is not a chat completion.", status_code=502
            ) from exc
        upstream_usage = data.get("usage") or {}
        usage.prompt_tokens = upstream_usage.get("prompt_tokens")
        usage.completion_tokens = upstream_usage.get("completion_tokens")
        usage.finish_reason = choice.get("finish_reason") or "stop"
        return text

    def stream(
        self, checkpoint: Checkpoint, messages: list[dict[str, Any]], params: Params, usage: Usage
    ) -> Iterator[str]:
        import httpx

        try:
            with httpx.stream(
                "POST",
                f"{self.base_url}/chat/completions",
                json=self._request(checkpoint, messages, params, True),
                headers=self._headers(),
                timeout=self.timeout,
            ) as response:
                if response.status_code >= 300:
                    raise self._failed(
                        response.status_code, response.read().decode(errors="replace")
                    )
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        continue
                    if chunk.get("usage"):
                        usage.prompt_tokens = chunk["usage"].get("prompt_tokens")
                        usage.completion_tokens = chunk["usage"].get("completion_tokens")
                    for choice in chunk.get("choices") or []:
                        if choice.get("finish_reason"):
                            usage.finish_reason = choice["finish_reason"]
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
        except httpx.HTTPError as exc:
            raise _unavailable(
                f"The upstream server at {self.base_url} failed: {exc}", status_code=502
            ) from exc


def upstream_url() -> str:
    url = settings.SERVING_UPSTREAM_URL
    if not url and settings.VLLM_URL:
        url = settings.VLLM_URL.rstrip("/") + "/v1"
    return url.rstrip("/")


def backend_for(checkpoint: Checkpoint) -> BuiltinBackend | UpstreamBackend:
    """The upstream when one is configured, else the built-in engine."""
    url = upstream_url()
    if url:
        return UpstreamBackend(
            url,
            api_key=settings.SERVING_UPSTREAM_API_KEY or settings.VLLM_API_KEY,
            timeout=float(settings.SERVING_UPSTREAM_TIMEOUT),
        )
    return BuiltinBackend()
