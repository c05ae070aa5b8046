"""`manage.py serve` (what `make run` runs): the whole product on one machine.

It migrates, bootstraps an empty database (admin account, `demo` source, sample feedback; see
`apps.site.services.sinkhole_bootstrap`), then runs two children side by side and watches them:

- gunicorn serving the web app and the API (static files through WhiteNoise);
- a Celery worker on the queues in CELERY_WORKER_QUEUES.

With nothing configured that means SQLite and the file-system broker in SINKHOLE_DATA_DIR; with
DATABASE_URL and CELERY_BROKER_URL set, the same command runs against those. Ctrl-C or SIGTERM
stops both children by pid; if either child dies, the other is stopped and `serve` exits non-zero."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.site.services import BootstrapResult, sinkhole_bootstrap

READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
REPEAT_SIGNAL_S = 1.0


class Command(BaseCommand):
    help = (
        "Run Sinkhole on one machine: migrate, bootstrap an empty database (admin, demo source, "
        "sample feedback), then gunicorn and a Celery worker side by side until Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
        )
        parser.add_argument(
            "--port", type=int, default=8000, help="port to listen on (default 8000)"
        )
        parser.add_argument(
            "--workers", type=int, default=2, help="gunicorn worker processes (default 2)"
        )
        parser.add_argument(
            "--threads", type=int, default=4, help="threads per gunicorn worker (default 4)"
        )
        parser.add_argument(
            "--concurrency", type=int, default=2, help="Celery worker processes (default 2)"
        )
        parser.add_argument(
            "--no-samples",
            action="store_true",
            help="do not load sample feedback into a new demo source",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        problem = _cannot_bind(host, port)
        if problem:
            raise CommandError(
                f"cannot listen on {host}:{port}: {problem}; pick another with --port"
            )

        data_dir = Path(settings.DATA_DIR)
        self.stdout.write(f"Sinkhole: data in {data_dir} ({_mode()})")
        try:
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write("Database ready. Checking the admin account and the demo source…")
            result = sinkhole_bootstrap(
                data_dir=data_dir, samples=[] if options["no_samples"] else None
            )
        except KeyboardInterrupt:
            raise CommandError("interrupted before the servers started", returncode=130) from None
        self._report_bootstrap(result)

        env = self._child_env(data_dir)
        children = _Children(self)
        children.install_signal_handlers()
        queues = ",".join(settings.CELERY_WORKER_QUEUES)
        from trainer.memory import jemalloc_env  # plain Python: no torch at import

        # The worker trains too (the `training` queue): on jemalloc, where the system has it, a
        # CPU training step peaks about 0.5 GB lower than on glibc's malloc (docs/training.md).
        children.start(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queues,
                "--concurrency",
                str(options["concurrency"]),
                "--loglevel",
                "INFO",
                "--hostname",
                "sinkhole@%h",
                "--without-gossip",
                "--without-mingle",
                # The periodic jobs (connector pulls, classifier retraining) run from a beat
                # embedded in this one worker; a deployment runs exactly one beat.
                "--beat",
            ],
            jemalloc_env(env) or env,
        )
        children.start(
            "web server",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--config",
                "python:config.gunicorn",
                "--bind",
                _bind_address(host, port),
                "--workers",
                str(options["workers"]),
                "--threads",
                str(options["threads"]),
            ],
            env,
        )

        failure = children.wait_until_listening(_connect_host(host), port)
        if failure is None and not children.stop_signals:
            self._banner(result, host, port, data_dir)
            failure = children.watch()
        children.stop_all()
        if failure:
            raise CommandError(failure, returncode=1)
        self.stdout.write("Sinkhole stopped.")

    # --- what it prints ---------------------------------------------------------------------

    def _report_bootstrap(self, result: BootstrapResult) -> None:
        if result.admin and result.admin.created:
            self.stdout.write(f"Created the superuser {result.admin.username!r}.")
        if result.demo and result.demo.created:
            self.stdout.write(f"Created the source {result.demo.name!r} and its keys.")
        for sample in result.samples:
            label = f"  {sample.format:<9} {_shown_path(sample.path)}"
            if sample.error:
                self.stderr.write(f"{label}: not imported: {sample.error}")
                continue
            line = f"{label}: {sample.imported} imported, {sample.duplicate} duplicate, {sample.rejected} rejected"
            if sample.skipped:
                line += f", {sample.skipped} skipped"
            if sample.rejected and sample.first_reasons:
                line += f" (first: {sample.first_reasons[0]})"
            self.stdout.write(line)
        if result.demo and result.demo.created and not result.samples:
            self.stdout.write("  no sample feedback loaded")

    def _banner(self, result: BootstrapResult, host: str, port: int, data_dir: Path) -> None:
        url = f"http://{_url_host(host)}:{port}"
        admin = result.admin
        if admin and admin.password:
            login = f'user "{admin.username}", password "{admin.password}" (also in {admin.password_file})'
        elif admin and admin.password_file:
            login = f'user "{admin.username}", first password in {admin.password_file}'
        elif admin:
            login = f'user "{admin.username}" (password as you set it)'
        else:
            login = "your own superuser (manage.py createsuperuser makes one)"
        secret = result.demo.secret_key if result.demo else None
        event = json.dumps(
            {
                "type": "rating",
                "rater": "me",
                "model": "llama3.1:8b",
                "messages": [{"role": "user", "content": "Hi!"}],
                "response": "Hello! How can I help?",
                "rating": 1,
            }
        )
        lines = [
            "",
            "=" * 78,
            f"  Sinkhole is running at {url}/",
            f"    log in    {url}/accounts/login/  {login}",
            f"    inbox     {url}/inbox/  (the feedback)   leaderboard {url}/leaderboard/",
            f"    status    {url}/status/  (workers, queues, events waiting for a verdict)",
            f"    API docs  {url}/api/docs/   admin {url}/admin/",
            f"    health    {url}/readyz  metrics {url}/metrics (signed in, or the metrics token)",
        ]
        if secret:
            keys_file = (
                f"  (keys in {result.demo.keys_file})"
                if result.demo and result.demo.keys_file
                else ""
            )
            lines += [
                f"  Send feedback as the demo source{keys_file}:",
                f"    curl -sS {url}/api/v1/feedback -H 'Authorization: Bearer {secret}' \\",
                f"      -H 'Content-Type: application/json' -d '{event}'",
            ]
        else:
            lines.append(
                "  Make a source and its API keys with: python manage.py create_source my-app"
            )
        if host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get("ALLOWED_HOSTS"):
            lines.append(f"  Listening on {host}: set ALLOWED_HOSTS to the names clients will use.")
        lines += ["  Ctrl-C stops the web server and the worker.", "=" * 78, ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    # --- the children -----------------------------------------------------------------------

    def _child_env(self, data_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["SINKHOLE_DATA_DIR"] = str(data_dir)
        env["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
        env.setdefault("PYTHONUNBUFFERED", "1")
        # Every gunicorn worker counts its own requests; prometheus_client adds them up from files
        # in this folder. Files left by an earlier run would count twice: start empty.
        metrics_dir = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or data_dir / "prometheus")
        metrics_dir.mkdir(parents=True, exist_ok=True)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        return env


class _Children:
    """Two child processes, each in its own process group (Ctrl-C reaches `serve` alone, which
    stops them in order), stopped by pid."""

    def __init__(self, command: BaseCommand) -> None:
        self.command = command
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_signals: list[float] = []  # when each stop signal arrived (monotonic)

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_signals.append(time.monotonic())

    def _asked_again(self, since: float) -> bool:
        """A stop signal after SINCE, not part of the first burst: under `make run` one Ctrl-C
        reaches `serve` twice (from the terminal and from make), a moment apart."""
        return any(at > since + REPEAT_SIGNAL_S for at in self.stop_signals)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.Popen(
            argv, env=env, cwd=settings.BASE_DIR, process_group=0, preexec_fn=die_with_parent
        )
        self.procs[name] = proc
        self.command.stdout.write(f"Started the {name} (pid {proc.pid}).")
        self.command.stdout.flush()

    def _dead(self) -> str | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return f"the {name} (pid {proc.pid}) exited with code {code}; stopping the rest"
        return None

    def wait_until_listening(self, host: str, port: int) -> str | None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self.stop_signals:
            dead = self._dead()
            if dead:
                return dead
            try:
                with socket.create_connection((host, port), timeout=1):
                    return None
            except OSError:
                time.sleep(0.2)
        if self.stop_signals:
            return None
        return f"the web server did not listen on {host}:{port} within {READY_TIMEOUT_S}s"

    def watch(self) -> str | None:
        """Until a stop signal (None) or a child's death (what happened)."""
        while not self.stop_signals:
            dead = self._dead()
            if dead:
                return dead
            time.sleep(0.25)
        return None

    def stop_all(self) -> None:
        first = self.stop_signals[0] if self.stop_signals else time.monotonic()
        alive = {name: proc for name, proc in self.procs.items() if proc.poll() is None}
        for name, proc in alive.items():
            self.command.stdout.write(f"Stopping the {name} (pid {proc.pid})…")
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(proc.poll() is None for proc in alive.values()):
            if time.monotonic() > deadline or self._asked_again(first):
                # Too slow, or Ctrl-C pressed again: no more waiting.
                for proc in alive.values():
                    _signal(proc, signal.SIGKILL)
            time.sleep(0.1)
        for proc in self.procs.values():
            proc.wait()


def _signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:  # exited between poll() and kill()
            return


def die_with_parent() -> None:
    """In the child, before exec: on Linux, ask for SIGTERM when `serve` dies (even by SIGKILL),
    so that no orphan keeps the port or the queue."""
    if not sys.platform.startswith("linux"):
        return
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        pr_set_pdeathsig = 1
        ctypes.CDLL(libc_name, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _cannot_bind(host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _bind_address(host: str, port: int) -> str:
    return f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"


def _connect_host(host: str) -> str:
    bare = host.strip("[]")
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bare, bare)  # noqa: S104


def _url_host(host: str) -> str:
    shown = _connect_host(host)
    return f"[{shown}]" if ":" in shown else shown


def _mode() -> str:
    database = (
        "SQLite" if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") else "DATABASE_URL"
    )
    broker = (
        "file-system broker"
        if settings.CELERY_BROKER_URL.startswith("filesystem://")
        else "CELERY_BROKER_URL"
    )
    return f"{database}, {broker}"


def _shown_path(path: Path) -> str:
    try:
        return os.path.relpath(path, settings.BASE_DIR)
    except ValueError:
        return str(path)
