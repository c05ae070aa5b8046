"""A tiny real model (random Llama + tokenizer) and a real LoRA adapter on it, registered as
checkpoints: the gateway's built-in engine loads them like any base model and adapter."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apps.registry.models import Alias, BaseModel, Checkpoint


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LoRA adapter with random (not zero) weights, so that it answers differently."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
    )
    folder = tmp_path_factory.mktemp("tiny-adapter")
    model.save_pretrained(folder)
    return str(folder)


@dataclass
class Registry:
    base: Checkpoint
    adapter: Checkpoint
    production: Alias


@pytest.fixture(autouse=True)
def _builtin_engine(settings: Any) -> None:
    settings.SERVING_UPSTREAM_URL = ""
    settings.VLLM_URL = ""
    settings.SERVING_DEVICE = "cpu"


@pytest.fixture
def registry(db: Any, tiny_model: str, tiny_adapter: str) -> Registry:
    base_model = BaseModel.objects.create(name="tiny", model_id=tiny_model)
    base = Checkpoint.objects.create(
        name="base-tiny", kind="base", base_model=base_model, status="published"
    )
    adapter = Checkpoint.objects.create(
        name="tiny-lora",
        kind="adapter",
        base_model=base_model,
        status="published",
        local_path=tiny_adapter,
    )
    production = Alias.objects.create(name="production", checkpoint=base)
    return Registry(base, adapter, production)


@pytest.fixture
def admin_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="pw-boss"))
    return client


class Gateway:
    """The gateway through the Django test client, with a source's key."""

    def __init__(self, client: Client, key: str) -> None:
        self.client, self.key = client, key

    def chat(
        self,
        model: str,
        content: str = "Is the sky blue?",
        *,
        key: str | None = None,
        **fields: Any,
    ):
        body = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 8,
            **fields,
        }
        return self.client.post(
            "/v1/chat/completions",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key or self.key}",
        )


@pytest.fixture
def gateway(src: Any, client: Client) -> Gateway:
    return Gateway(client, src.secret)


def sse_events(response: Any) -> list[Any]:
    """The `data:` payloads of a streamed answer, JSON-decoded (`[DONE]` kept as the string)."""
    text = b"".join(response.streaming_content).decode()
    events = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


class FakeOpenAI:
    """A small OpenAI-compatible server (a real HTTP server): answers 'upstream says hi' in
    three pieces and records every request body."""

    PIECES = ["upstream ", "says ", "hi"]

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if body.get("model") == "missing":
                    self._json(404, {"error": {"message": "The model `missing` does not exist."}})
                    return
                if not body.get("stream"):
                    self._json(
                        200,
                        {
                            "id": "upstream-1",
                            "object": "chat.completion",
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {
                                        "role": "assistant",
                                        "content": "".join(fake.PIECES),
                                    },
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 7,
                                "completion_tokens": 3,
                                "total_tokens": 10,
                            },
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in fake.PIECES:
                    chunk = {
                        "id": "upstream-1",
                        "object": "chat.completion.chunk",
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                done = {
                    "id": "upstream-1",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
                usage = {
                    "id": "upstream-1",
                    "choices": [],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3},
                }
                self.wfile.write(
                    f"data: {json.dumps(done)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()
                )

            def _json(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai(settings: Any) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    settings.SERVING_UPSTREAM_URL = server.url
    settings.SERVING_UPSTREAM_API_KEY = "upstream-secret"
    yield server
    server.close()
