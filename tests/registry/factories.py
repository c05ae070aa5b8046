"""Rows and files that the registry and training tests share: a dataset version with small
JSONL files in TRL's formats, base models, users in the permission groups, adapter folders, and
a fake vLLM server (a real HTTP server that records what it is asked)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from apps.datasets.models import DatasetVersion, Recipe
from apps.registry.models import BaseModel

# A learnable toy preference: the chosen answer always says "yes", the rejected one "no".
PROMPTS = [f"Question {i}: is {i} a number?" for i in range(12)]


def rows_for(kind: str) -> list[dict[str, Any]]:
    if kind == "sft":
        return [
            {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "yes"}]}
            for p in PROMPTS
        ]
    if kind == "dpo":
        return [
            {
                "prompt": [{"role": "user", "content": p}],
                "chosen": [{"role": "assistant", "content": "yes"}],
                "rejected": [{"role": "assistant", "content": "no"}],
            }
            for p in PROMPTS
        ]
    rows = []
    for p in PROMPTS:
        for answer, label in (("yes", True), ("no", False)):
            rows.append(
                {
                    "prompt": [{"role": "user", "content": p}],
                    "completion": [{"role": "assistant", "content": answer}],
                    "label": label,
                }
            )
    return rows


def make_dataset_version(kind: str = "dpo", *, name: str | None = None) -> DatasetVersion:
    """A succeeded dataset version whose train/test JSONL files lie under ARTIFACT_ROOT."""
    recipe = Recipe.objects.create(name=name or f"toy-{kind}", kind=kind)
    version = DatasetVersion.objects.create(
        recipe=recipe,
        kind=kind,
        status=DatasetVersion.Status.SUCCEEDED,
        content_hash="c0ffee" * 10,
        finished_at=timezone.now(),
    )
    rel = Path("datasets") / f"v{version.pk}"
    folder = Path(settings.ARTIFACT_ROOT) / rel
    folder.mkdir(parents=True, exist_ok=True)
    rows = rows_for(kind)
    split = {
        "train": rows[:-2] if kind != "kto" else rows[:-4],
        "test": rows[-2:] if kind != "kto" else rows[-4:],
    }
    files: dict[str, Any] = {}
    for name_, part in split.items():
        (folder / f"{name_}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        files[name_] = {"jsonl": str(rel / f"{name_}.jsonl")}
    version.files = files
    version.rows = {k: len(v) for k, v in split.items()}
    version.save()
    return version


def make_base_model(model_id: str, name: str = "tiny") -> BaseModel:
    return BaseModel.objects.create(name=name, model_id=model_id)


def make_user(username: str, *, group: str = "", perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username, password="pw-" + username)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def make_adapter_dir(folder: Path, base_model_id: str, *, payload: bytes = b"weights") -> Path:
    """A folder shaped like a PEFT adapter (the registry only moves and hashes files)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": base_model_id, "peft_type": "LORA", "r": 8})
    )
    (folder / "adapter_model.safetensors").write_bytes(payload)
    (folder / "README.md").write_text("# adapter\n")
    return folder


class FakeVllm:
    """A real HTTP server on a free local port that answers vLLM's LoRA endpoints and records
    every call (vLLM itself cannot run here)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.loaded: set[str] = set()
        self.fail_with: int | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.calls.append((self.path, body))
                status, text = 200, "Success"
                if fake.fail_with:
                    status, text = fake.fail_with, '{"error": "no"}'
                elif self.path == "/v1/load_lora_adapter":
                    if body["lora_name"] in fake.loaded:
                        status, text = (
                            400,
                            f"The lora adapter '{body['lora_name']}' has already been loaded.",
                        )
                    fake.loaded.add(body["lora_name"])
                elif self.path == "/v1/unload_lora_adapter":
                    fake.loaded.discard(body["lora_name"])
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
