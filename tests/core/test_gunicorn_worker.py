"""The server's sync worker (config/gunicorn.py): several workers share the listening socket
and one of them is woken per connection; requests, answers and shutdown are gunicorn's own."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gunicorn.config import Config

from tests.conftest import ROOT, rating

WORKER = "config.gunicorn.ExclusiveSyncWorker"


def _config(*args: str) -> Config:
    from gunicorn.app.base import Application

    class _App(Application):
        def init(self, parser, opts, args):  # type: ignore[no-untyped-def]
            return None

        def load(self):  # type: ignore[no-untyped-def]
            return None

    sys_argv = sys.argv
    sys.argv = ["gunicorn", "--config", "python:config.gunicorn", *args, "config.wsgi"]
    try:
        return _App().cfg
    finally:
        sys.argv = sys_argv


def test_sync_workers_are_the_exclusive_wakeup_worker_and_threads_still_pick_gthread() -> None:
    assert _config().worker_class_str == WORKER
    assert _config("--threads", "4").worker_class_str == "gthread"
    assert _config("--worker-class", "sync").worker_class_str == "sync"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(select, "EPOLLEXCLUSIVE"), reason="epoll is Linux's")
def test_three_workers_answer_concurrent_events_and_stop_on_sigterm(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(
        SINKHOLE_DATA_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        DEBUG="false",
        SECRET_KEY="a-test-secret-key-that-is-long-enough-for-debug-off",
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    made = subprocess.run(
        [*manage, "create_source", "herd"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    secret = next(word for word in made.split() if word.startswith("sk-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:config.gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "3",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)

            def send(number: int) -> httpx.Response:
                return httpx.post(
                    f"{url}/api/v1/feedback",
                    json=rating(id=f"herd-{number}"),
                    headers={"Authorization": f"Bearer {secret}"},
                    timeout=30,
                )

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(send, range(60)))
            again = send(7)

            assert [a.status_code for a in answers] == [201] * 60
            assert sorted(a.json()["client_id"] for a in answers) == sorted(
                f"herd-{n}" for n in range(60)
            )
            assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=30)
    text = log_path.read_text()
    assert f"Using worker: {WORKER}" in text, text[-2000:]
    assert text.count("Booting worker with pid") == 3, text[-2000:]
