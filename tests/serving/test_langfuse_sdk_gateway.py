"""The real Langfuse SDK's OpenAI wrapper around Sinkhole's gateway: the app makes the trace id,
gives it to the wrapper and to the gateway (`X-Sinkhole-Trace-Id`), and scores the trace; the
rating arrives attached to the checkpoint that answered, with the answer's interaction id.
Each major version runs in the virtualenv test_real_sdks.py makes (var/sdk-venvs/langfuse-N),
with the openai package added once."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from apps.feedback.models import Event
from apps.peers.langfuse.tests.test_real_sdks import sdk_python

SCRIPT = Path(__file__).resolve().parents[2] / "apps/peers/langfuse/tests/sdk/gateway_feedback.py"
PROMPT = "Is the sky blue?"


def with_openai(major: int) -> Path:
    python = sdk_python(major)
    marker = python.parent.parent / ".openai-installed"
    if not marker.exists():
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "openai"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if installed.returncode != 0:
            pytest.fail(f"pip could not install openai: {installed.stderr[-2000:]}")
        marker.touch()
    return python


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("major", [2, 3, 4, 5])
def test_the_langfuse_openai_wrapper_s_score_counts_for_the_checkpoint_that_answered(
    major: int, registry, live_server, make_source
) -> None:
    python = with_openai(major)
    keys = make_source(f"wrapper-{major}")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LANGFUSE_")}
    run = subprocess.run(
        [str(python), str(SCRIPT), live_server.url, keys.publishable, keys.secret, PROMPT, "alice"],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    said = json.loads(run.stdout.strip().splitlines()[-1])

    deadline = time.monotonic() + 20
    while not Event.objects.filter(source=keys.source).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    event = Event.objects.get(source=keys.source)
    assert said["model"] == "base-tiny"  # the production alias serves the base checkpoint
    assert (event.checkpoint, event.model) == ("base-tiny", "tiny")
    assert event.payload["interaction_id"] == said["id"]
    assert event.payload["rating"] == 1
    assert event.payload["messages"] == [{"role": "user", "content": PROMPT}]
