"""The Langfuse Python SDKs that people run today, 2.x to 5.x, each the real package from PyPI in
a virtualenv of its own, send a traced chat turn and a thumbs-up to a live Sinkhole: the key
check passes and the rating arrives with its prompt, reply, model and rater.

2.x sends everything through `/api/public/ingestion`; 3.x and 4.x export the trace as OTLP
protobuf and send scores through ingestion; 5.x posts scores as a JSON array to
`/api/public/scores`. The virtualenvs are cached under var/sdk-venvs/langfuse-<major> (made once,
reused by later runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
from django.conf import settings

from apps.feedback.models import Event
from apps.sources.hashing import rater_hash

SCRIPT = Path(__file__).parent / "sdk" / "send_feedback.py"
VENVS = Path(settings.BASE_DIR) / "var" / "sdk-venvs"
PROMPT = "Which RFC defines HTTP/1.1 message syntax?"
REPLY = "RFC 9112 defines the HTTP/1.1 message syntax and routing."
MODEL = "llama3.1:8b"
USER = "alice@example.org-id-7"


def sdk_python(major: int) -> Path:
    """The Python of a virtualenv holding `langfuse==<major>.*`, made on first use."""
    folder = VENVS / f"langfuse-{major}"
    python = folder / "bin" / "python"
    marker = folder / ".installed"
    if marker.exists() and python.exists():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"langfuse=={major}.*"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if installed.returncode != 0:
        pytest.fail(f"pip could not install langfuse=={major}.*: {installed.stderr[-2000:]}")
    marker.touch()
    return python


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("major", [2, 3, 4, 5])
def test_the_real_langfuse_sdk_lands_a_score_with_its_prompt_reply_model_and_rater(
    major: int, live_server, make_source
) -> None:
    python = sdk_python(major)
    keys = make_source(f"langfuse-sdk-{major}")
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("LANGFUSE_")
    }
    run = subprocess.run(
        [
            str(python),
            str(SCRIPT),
            live_server.url,
            keys.publishable,
            keys.secret,
            PROMPT,
            REPLY,
            MODEL,
            USER,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    said = json.loads(run.stdout.strip().splitlines()[-1])
    assert said["major"] == major
    assert said["auth_check"] is True, run.stderr[-3000:]

    deadline = time.monotonic() + 20
    while not Event.objects.filter(source=keys.source).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    events = list(Event.objects.filter(source=keys.source))
    assert len(events) == 1, run.stderr[-3000:]
    event = events[0]
    assert event.type == "rating"
    assert event.payload["rating"] == 1
    assert event.payload["messages"] == [{"role": "user", "content": PROMPT}]
    assert event.payload["response"] == REPLY
    assert event.model == MODEL
    # The trace keeps only the user's keyed hash; the score's event hashes that again.
    assert event.rater_hash == rater_hash(keys.source.pk, rater_hash(keys.source.pk, USER))
    assert said["trace_id"] in event.client_id or said["trace_id"] in json.dumps(event.payload)


def test_the_sdk_script_is_never_imported_by_the_project() -> None:
    assert "langfuse" not in sys.modules
