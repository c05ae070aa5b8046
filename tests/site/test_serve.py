"""`make run` (`manage.py serve`): the bootstrap of an empty database, and the real thing started
on a free port with nothing configured."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import authenticate, get_user_model

from apps.feedback.models import Event
from apps.site.management.commands.serve import die_with_parent
from apps.site.services import (
    FIXTURES,
    SAMPLE_FILES,
    SampleFile,
    sample_files,
    sinkhole_bootstrap,
)
from apps.sources.models import Source
from apps.sources.selectors import api_key_by_raw
from apps.sources.services import api_key_revoke, source_create
from tests.conftest import rating

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fixture_samples(tmp_path: Path) -> list[SampleFile]:
    """The small slices in tests/fixtures, whether or not ../shared/data is there."""
    samples = sample_files(shared_data=tmp_path / "no-shared-data", shipped=tmp_path / "none")
    assert [sample.format for sample in samples] == [fmt for fmt, _, _ in SAMPLE_FILES]
    assert all(sample.path.is_relative_to(FIXTURES) for sample in samples)
    return samples


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.django_db
def test_bootstrap_makes_an_admin_and_a_demo_source_with_sample_feedback_once(
    tmp_path, fixture_samples
):
    first = sinkhole_bootstrap(data_dir=tmp_path, samples=fixture_samples)

    assert first.admin is not None and first.admin.created
    assert authenticate(username="admin", password=first.admin.password) is not None
    assert get_user_model().objects.get().is_superuser
    password_file = tmp_path / "admin-password"
    assert password_file.read_text().strip() == first.admin.password
    assert mode(password_file) == 0o600

    assert first.demo is not None and first.demo.created and first.demo.name == "demo"
    secret = api_key_by_raw(first.demo.secret_key)
    assert secret is not None and secret.source.name == "demo" and secret.kind == "secret"
    keys_file = tmp_path / "demo-keys.json"
    assert json.loads(keys_file.read_text())["secret_key"] == first.demo.secret_key
    assert mode(keys_file) == 0o600

    assert [(s.format, s.error) for s in first.samples] == [(s.format, "") for s in fixture_samples]
    assert all(s.imported > 0 for s in first.samples), first.samples
    # The arena log is a research log: it goes into a source of its own, without vote caps.
    assert Event.objects.filter(source__name__in=["demo", "demo-arena-log"]).count() == sum(
        s.imported for s in first.samples
    )

    events = Event.objects.count()
    again = sinkhole_bootstrap(data_dir=tmp_path, samples=fixture_samples)
    assert again.admin is not None and not again.admin.created
    assert again.admin.password is None and again.admin.password_file == password_file
    assert again.demo is not None and not again.demo.created
    assert again.demo.secret_key == first.demo.secret_key  # read back, so a restart can print it
    assert again.samples == []
    assert get_user_model().objects.count() == 1
    assert Source.objects.count() == 2  # demo, and the arena log's own source
    assert Event.objects.count() == events
    assert password_file.read_text().strip() == first.admin.password


@pytest.mark.django_db
def test_bootstrap_leaves_a_database_with_its_own_users_and_sources_alone(
    tmp_path, fixture_samples
):
    get_user_model().objects.create_user(username="alice", password="correct horse battery")
    source_create(name="prod")

    result = sinkhole_bootstrap(data_dir=tmp_path, samples=fixture_samples)

    assert (result.admin, result.demo, result.samples) == (None, None, [])
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["alice"]
    assert list(Source.objects.values_list("name", flat=True)) == ["prod"]
    assert Event.objects.count() == 0
    assert not (tmp_path / "admin-password").exists()
    assert not (tmp_path / "demo-keys.json").exists()


@pytest.mark.django_db
def test_bootstrap_reports_a_sample_that_cannot_be_imported_and_loads_the_others(
    tmp_path, fixture_samples
):
    broken = SampleFile("oasst", tmp_path / "missing.jsonl")
    result = sinkhole_bootstrap(data_dir=tmp_path, samples=[broken, fixture_samples[0]])

    assert "FileNotFoundError" in result.samples[0].error
    assert result.samples[1].error == "" and result.samples[1].imported > 0


@pytest.mark.django_db
def test_bootstrap_loads_the_samples_again_if_the_demo_source_is_still_empty(
    tmp_path, fixture_samples
):
    first = sinkhole_bootstrap(data_dir=tmp_path, samples=[])  # e.g. stopped before the import
    assert first.samples == [] and Event.objects.count() == 0

    second = sinkhole_bootstrap(data_dir=tmp_path, samples=fixture_samples[:1])
    assert second.samples[0].imported > 0


@pytest.mark.django_db
def test_a_revoked_demo_key_is_not_offered_again(tmp_path):
    first = sinkhole_bootstrap(data_dir=tmp_path, samples=[])
    api_key_revoke(key=api_key_by_raw(first.demo.secret_key))

    again = sinkhole_bootstrap(data_dir=tmp_path, samples=[])
    assert again.demo is not None and again.demo.secret_key is None
    assert again.demo.publishable_key == first.demo.publishable_key


# --- the real thing -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Serve:
    """`manage.py serve` in a child process: embedded mode (no DATABASE_URL, no broker URL) and
    its own data folder, as `make run` on a fresh checkout."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "PROMETHEUS_MULTIPROC_DIR"}
        }
        env.update(
            {
                "SINKHOLE_DATA_DIR": str(data_dir),
                "PYTHONUNBUFFERED": "1",
                "DEBUG": "false",
                "SINKHOLE_METRICS_TOKEN": "serve-metrics-token",
            }
        )
        self.url = f"http://127.0.0.1:{port}"
        self.output = data_dir.parent / "serve.out"
        self._out = self.output.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "serve",
                "--port",
                str(port),
                "--workers",
                "1",
                "--threads",
                "2",
                "--concurrency",
                "1",
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # a test run that is killed leaves no server behind
        )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (
                f"serve exited with {self.proc.returncode}:\n{self.text()[-5000:]}"
            )
            try:
                if (
                    httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
                    and "Ctrl-C" in self.text()
                ):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        pytest.fail(f"serve was not ready within {timeout}s:\n{self.text()[-5000:]}")

    def child_pids(self) -> dict[str, int]:
        return {
            name: int(pid)
            for name, pid in re.findall(
                r"Started the (worker|web server) \(pid (\d+)\)", self.text()
            )
        }

    def stop(self, signum: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(
                    f"serve did not stop within {timeout}s of signal {signum}:\n{self.text()[-5000:]}"
                )
        self._out.close()
        return self.proc.returncode


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if alive(pid)], "children outlived serve"


@pytest.fixture
def serve(tmp_path: Path):
    started: list[Serve] = []

    def start(*extra: str) -> Serve:
        server = Serve(tmp_path / "data", free_port(), *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        pids = list(server.child_pids().values())
        server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGINT)
        for pid in pids:  # never leave a server behind, whatever the test did
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_serve_runs_the_whole_product_with_no_configuration_until_ctrl_c(serve, tmp_path):
    server = serve()
    server.wait_ready()
    banner = server.text()
    secret = re.search(r"Authorization: Bearer (sk-[\w-]+)", banner).group(1)
    password = re.search(r'user "admin", password "([^"]+)"', banner).group(1)
    assert (tmp_path / "data" / "admin-password").read_text().strip() == password
    assert f"{server.url}/api/docs/" in banner
    assert f"log in    {server.url}/accounts/login/" in banner
    assert f"inbox     {server.url}/inbox/" in banner

    headers = {"Authorization": f"Bearer {secret}"}
    sent = httpx.post(
        f"{server.url}/api/v1/feedback", json=rating(id="smoke-1"), headers=headers, timeout=10
    )
    assert sent.status_code == 201, sent.text
    event_id = sent.json()["id"]

    # The worker beside the web server derives the normalized rows.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        normalized = httpx.get(
            f"{server.url}/api/v1/feedback/{event_id}", headers=headers, timeout=10
        ).json()["normalized"]
        if normalized["rating"] is not None:
            break
        time.sleep(0.5)
    assert normalized["rating"] == {"value": 1, "score": None, "reason": ""}, server.text()[-3000:]

    # The pages load with their CSS and JavaScript (WhiteNoise, DEBUG off).
    for page in ("/admin/login/", "/api/docs/", "/"):
        html = httpx.get(f"{server.url}{page}", timeout=10)
        assert html.status_code == 200, page
        assets = re.findall(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"', html.text)
        assert assets, page
        for asset in assets:
            assert httpx.get(f"{server.url}{asset}", timeout=10).status_code == 200, asset

    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 401
    metrics = httpx.get(
        f"{server.url}/metrics",
        headers={"Authorization": "Bearer serve-metrics-token"},
        timeout=10,
    ).text
    assert 'sinkhole_events_total{source="demo",status="accepted"}' in metrics

    children = list(server.child_pids().values())
    assert len(children) == 2
    from trainer.memory import jemalloc_library

    if jemalloc_library() is not None:  # the worker trains on jemalloc where the system has it
        maps = Path(f"/proc/{server.child_pids()['worker']}/maps").read_text()
        assert "jemalloc" in maps
    assert server.stop(signal.SIGINT) == 0, server.text()[-3000:]
    wait_gone(children)
    assert "Sinkhole stopped." in server.text()


@pytest.mark.slow
def test_serve_stops_the_web_server_and_fails_when_the_worker_dies(serve):
    server = serve("--no-samples")
    server.wait_ready()
    pids = server.child_pids()

    os.kill(pids["worker"], signal.SIGKILL)

    assert server.proc.wait(timeout=60) != 0
    wait_gone([pids["web server"]])
    assert "the worker" in server.text() and "exited" in server.text()


def test_serve_refuses_a_port_that_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Serve(tmp_path / "data", port, "--no-samples")
        code = server.proc.wait(timeout=60)
        server.stop()
    assert code != 0
    assert f"cannot listen on 127.0.0.1:{port}" in server.text()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_fresh_clone_without_shared_data_loads_real_conversations_and_a_real_leaderboard(
    tmp_path,
):
    from apps.evaluation.leaderboard import LeaderboardSettings, leaderboard_compute
    from apps.feedback.models import Event
    from apps.feedback.services.normalize import feedback_pending_normalize
    from apps.quality.backlog import quality_missing_judge
    from apps.site.services import SHIPPED

    samples = sample_files(shared_data=tmp_path / "no-shared-data")
    shipped = {s.format: s.path for s in samples if s.path.is_relative_to(SHIPPED)}
    assert set(shipped) == {"hh-rlhf", "oasst", "fastchat"}
    notice = (SHIPPED / "NOTICE").read_text()
    assert all(path.name in notice for path in shipped.values())

    result = sinkhole_bootstrap(data_dir=tmp_path, samples=samples)
    feedback_pending_normalize()
    quality_missing_judge()

    counts = {s.format: s.imported for s in result.samples}
    assert counts["hh-rlhf"] == 300 and counts["fastchat"] == 1006 and counts["oasst"] > 0
    real = Event.objects.filter(type="preference", client_id__startswith="hh-rlhf:").first()
    assert "text not in" not in json.dumps(real.payload)
    from apps.evaluation.selectors import BattleFilter
    from apps.sources.models import Source

    assert Source.objects.get(name="demo-arena-log").daily_vote_cap == 0
    board = leaderboard_compute(
        LeaderboardSettings(filter=BattleFilter(source="demo-arena-log"), bootstrap=0)
    )
    assert len(board["models"]) == 9, board["left_out"]
    assert board["battles"] == 1006 and not board["left_out"]
    ratings = [m["rating"] for m in board["models"]]
    assert max(ratings) - min(ratings) < 600  # FastChat's spread on this data, not 3651 / -2037
