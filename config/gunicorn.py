"""Gunicorn settings shared by `manage.py serve` and the compose file
(`gunicorn -c python:config.gunicorn config.wsgi`). Bind address, workers and threads come from
the command line or GUNICORN_CMD_ARGS; this file holds what every deployment wants."""

from __future__ import annotations

import errno
import os
import select
from typing import Any

from gunicorn.workers.sync import StopWaiting, SyncWorker

# No control socket (gunicornc): nothing here uses it, and its default path in $HOME would be
# shared by two instances on one machine.
control_socket_disable = True
# Gunicorn's own lines (start, worker boot, timeouts) as JSON, like the rest of the logs. No access
# log: API requests are logged by apps.core.middleware.RequestLogMiddleware with their timing, and
# a second line per request would double the log volume of the ingest path.
logconfig_dict: dict[str, Any] = (
    {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            },
        },
        "handlers": {
            # Gunicorn merges this over its defaults key by key: both handler names must exist.
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {
                "level": "INFO",
                "handlers": ["error_console"],
                "propagate": False,
                "qualname": "gunicorn.error",
            },
            "gunicorn.access": {
                "level": "WARNING",
                "handlers": ["console"],
                "propagate": False,
                "qualname": "gunicorn.access",
            },
        },
    }
    if os.environ.get("LOG_FORMAT", "json") == "json"
    else {}
)
# Long imports and slow disks should not get a worker killed while it serves a 5 MB batch.
timeout = 60
graceful_timeout = 20


class ExclusiveSyncWorker(SyncWorker):
    """gunicorn's sync worker, woken alone for a new connection. The stock one waits in
    select() on the shared listening socket, so every idle worker wakes for each connection and
    all but one find nothing to accept; epoll with EPOLLEXCLUSIVE (Linux 4.5+) wakes one. Same
    requests, same answers: with 3 workers it cut the web tier's CPU per single event by about
    a tenth (side by side, docs/benchmarks.md). Where epoll or the flag is missing (macOS), it
    is the stock worker. `--threads` above 1 still picks gunicorn's gthread worker."""

    _epoll: Any = None

    def run(self) -> None:
        if hasattr(select, "epoll") and hasattr(select, "EPOLLEXCLUSIVE"):
            self._epoll = select.epoll()
            for sock in self.sockets:
                self._epoll.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
            # The pipe that signals write to (shutdown, reload): this worker's alone.
            self._epoll.register(self.PIPE[0], select.EPOLLIN)
            self._ready_by_fd: dict[int, Any] = {s.fileno(): s for s in self.sockets}
            self._ready_by_fd[self.PIPE[0]] = self.PIPE[0]
        super().run()

    def wait(self, timeout: float) -> Any:
        if self._epoll is None:
            return super().wait(timeout)
        try:
            self.notify()
            events = self._epoll.poll(timeout)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return self.sockets
            if exc.errno == errno.EBADF:
                if self.nr < 0:
                    return self.sockets
                raise StopWaiting from exc
            raise
        ready = [self._ready_by_fd[fd] for fd, _ in events if fd in self._ready_by_fd]
        if self.PIPE[0] in ready:
            os.read(self.PIPE[0], 1)
        return ready


# Sync workers (the default, `--threads 1`) are the one above; `-k`/`--worker-class` on the
# command line still chooses another.
worker_class = "config.gunicorn.ExclusiveSyncWorker"


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the shared metrics folder (prometheus_client's
    multi-process mode), so /metrics does not report a process that is gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    """Move everything loading the app created (Django, DRF, pydantic schemas, Celery: ~120,000
    objects, all alive until the worker exits) out of the garbage collector's sight. Otherwise
    every full collection walks them all, a pause of 50-150 ms in the middle of some request;
    measured with bench/ingest.py as the max and p99 of single events."""
    import gc

    gc.freeze()
