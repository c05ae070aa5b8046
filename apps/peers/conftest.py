"""Fixtures for the peers' tests (`apps/peers/<peer>/tests/`): the project's shared fixtures from
tests/conftest.py (this folder is outside tests/, so they are imported here), and a client that speaks to the Langfuse-compatible API with
a source's keys as Langfuse clients send them (HTTP Basic, public key as user, secret key as
password), and a real HTTP server that answers like Open WebUI's feedback export."""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client

from tests.conftest import (  # noqa: F401 - the shared fixtures, for the tests in this folder
    FIXTURES,
    SHARED_DATA,
    SourceWithKeys,
    _eager_celery_and_fresh_limits,
    api,
    make_source,
    src,
)
from tests.core.conftest import live_broker  # noqa: F401 - the real-broker fixture, shared


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Langfuse:
    """Django's test client with a source's Langfuse-style credentials."""

    def __init__(self, client: Client, keys: SourceWithKeys) -> None:
        self.client, self.keys = client, keys
        self.authorization = basic(keys.publishable, keys.secret)

    def _auth(self, authorization: str | None) -> dict[str, str]:
        value = self.authorization if authorization is None else authorization
        return {"HTTP_AUTHORIZATION": value} if value else {}

    def post(self, path: str, data: Any, *, authorization: str | None = None):
        return self.client.post(
            f"/api/public/{path}",
            json.dumps(data),
            content_type="application/json",
            **self._auth(authorization),
        )

    def get(self, path: str, *, authorization: str | None = None, **params: Any):
        return self.client.get(f"/api/public/{path}", params, **self._auth(authorization))

    def delete(self, path: str, *, authorization: str | None = None):
        return self.client.delete(f"/api/public/{path}", **self._auth(authorization))

    def score(self, body: dict[str, Any], **options: Any):
        return self.post("scores", body, **options)

    def ingest(self, batch: list[dict[str, Any]], **options: Any):
        return self.post(
            "ingestion", {"batch": batch, "metadata": {"sdk_name": "python"}}, **options
        )


@pytest.fixture
def langfuse(src: SourceWithKeys, client: Client) -> Langfuse:
    return Langfuse(client, src)


# --- a fake Open WebUI ------------------------------------------------------------------------

TOKEN = "sk-openwebui-admin-0123456789"
EXPORT = "/api/v1/evaluations/feedbacks/all/export"


def export_records() -> list[dict[str, Any]]:
    path = SHARED_DATA / "formats" / "openwebui_feedback_export_example.json"
    if not path.exists():  # the same three records, copied into the project's fixtures
        path = FIXTURES / "importers" / "openwebui_feedback_export.json"
    return json.loads(path.read_text())


class FakeOpenWebUI:
    """A real HTTP server that answers the export as Open WebUI does, for one admin token."""

    def __init__(self) -> None:
        self.records = export_records()
        self.requests: list[dict[str, str]] = []
        self.body: bytes | None = None  # set to answer something else than the records
        self.content_type = "application/json"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(
                    {"path": self.path, "authorization": self.headers.get("Authorization", "")}
                )
                if self.path != EXPORT:
                    return self._answer(404, b'{"detail":"Not Found"}')
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, b'{"detail":"Not authenticated"}')
                body = owner.body if owner.body is not None else json.dumps(owner.records).encode()
                self._answer(200, body, owner.content_type)

            def _answer(
                self, code: int, body: bytes, content_type: str = "application/json"
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def add_thumbs_down(self, feedback_id: str, updated_at: int) -> None:
        record = copy.deepcopy(self.records[1])
        record.update(id=feedback_id, created_at=updated_at, updated_at=updated_at)
        self.records.append(record)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def openwebui() -> Iterator[FakeOpenWebUI]:
    server = FakeOpenWebUI()
    yield server
    server.stop()
