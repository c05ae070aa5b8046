"""Fixtures for the operations tests: a real broker that this test has to itself, and a real
Celery worker process on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from apps.site.management.commands.serve import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
# Redis database for tests that put real messages on the broker (emptied before and after), so
# that they never meet the messages of a development server on database 0.
TEST_REDIS_DB = 15


def reset_celery_connections() -> None:
    """Celery caches its connection and producer pools, and kombu keeps them in a process-wide
    registry keyed by broker URL (not by transport options): after the broker URL or its options
    change, every pool must go, or the next send reuses the old one."""
    from kombu import pools

    from config.celery import app

    pools.reset()  # closes and forgets every pool in kombu's registry
    app._after_fork()  # drops the app's references to them, as Celery does in a forked child


@dataclass
class LiveBroker:
    url: str
    env: dict[str, str] = field(default_factory=dict)  # what a worker process needs to use it


@pytest.fixture
def live_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveBroker]:
    """The broker kind this run is configured with (file system, or Redis in CI), emptied for
    this test, with Celery sending to it for real (not eagerly)."""
    from config.celery import app

    url = app.conf.broker_url or ""
    redis_client = None
    if url.startswith("filesystem://"):
        data_dir = tmp_path / "worker-data"
        broker_dir = data_dir / "broker"
        options = {
            "data_folder_in": str(broker_dir / "queue"),
            "data_folder_out": str(broker_dir / "queue"),
            "processed_folder": str(broker_dir / "processed"),
            "control_folder": str(broker_dir / "control"),
            "store_processed": False,
        }
        for key in ("data_folder_in", "processed_folder", "control_folder"):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
        monkeypatch.setitem(app.conf, "broker_transport_options", options)
        # settings.py puts the embedded broker in SINKHOLE_DATA_DIR/broker: the same folders.
        broker = LiveBroker(url, {"SINKHOLE_DATA_DIR": str(data_dir)})
    elif url.startswith(("redis://", "rediss://")):
        import redis

        url = urlunsplit(urlsplit(url)._replace(path=f"/{TEST_REDIS_DB}"))
        client = redis.Redis.from_url(url)
        me = client.client_id()
        others = [
            c["addr"]
            for c in client.client_list()
            if c.get("db") == str(TEST_REDIS_DB) and c["id"] != str(me)
        ]
        if others:
            client.close()
            pytest.fail(
                f"{len(others)} other connection(s) use Redis database {TEST_REDIS_DB} ({', '.join(others[:3])}): "
                "most likely a Celery worker left behind by a test run that was killed; stop it"
            )
        client.flushdb()
        redis_client = client
        broker = LiveBroker(url, {"CELERY_BROKER_URL": url})
    else:
        pytest.skip(
            f"no isolated test broker for {url.split(':')[0]}:// (file system and Redis only)"
        )
    # Celery reads CELERY_BROKER_URL from the environment before its own settings.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setitem(app.conf, "broker_url", url)
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    reset_celery_connections()
    yield broker
    monkeypatch.undo()
    reset_celery_connections()
    if redis_client is not None:
        redis_client.flushdb()
        redis_client.close()


def database_url_of_the_test_db() -> str:
    """A DATABASE_URL for another process that points at the database this test uses (the one
    pytest-django made, `test_<name>`, or the SQLite test file)."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        if str(name).startswith("file:") or name == ":memory:":
            pytest.fail("the SQLite test database is in memory: settings.py must give it a file")
        return f"sqlite:///{Path(name).resolve()}"
    base = urlsplit(os.environ.get("DATABASE_URL", ""))
    return urlunsplit(base._replace(path=f"/{name}"))


class WorkerProcess:
    """`celery worker` in a child process on the test database and the live broker."""

    def __init__(self, broker: LiveBroker, log_path: Path, *, pool: str = "solo") -> None:
        env = dict(os.environ)
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        env.update(broker.env)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
                "DATABASE_URL": database_url_of_the_test_db(),
                "CELERY_BROKER_URL": broker.url,
                "SECRET_KEY": settings.SECRET_KEY,
                "RATER_HASH_KEY": settings.RATER_HASH_KEY,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.log_path = log_path
        self._log = log_path.open("wb")
        queues = ",".join(settings.CELERY_WORKER_QUEUES)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queues,
                "--pool",
                pool,  # solo answers `inspect` only between tasks; threads also while one runs
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # a test run that is killed leaves no worker behind
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
