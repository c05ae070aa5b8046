"""`manage.py follow_fastchat PATH [--source NAME] [--once]`: follow FastChat vote logs into
Sinkhole as they grow. PATH is one log file, or FastChat's LOGDIR (every `*-conv.json` in it,
new days included). The offset reached in each file is stored, so a restarted follower goes on
where it stopped; rotation and truncation are handled (see apps/peers/fastchat/services.py)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.peers.fastchat.services import (
    DEFAULT_GLOB,
    DirectoryFollower,
    FollowError,
    LogFollower,
    PollResult,
)
from apps.sources.models import Source


class Command(BaseCommand):
    help = "Follow a FastChat vote log (or a folder of them) as it grows, like tail -F."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", help="a FastChat *-conv.json log, or the folder FastChat logs into"
        )
        parser.add_argument(
            "--source", help="the Sinkhole source the votes go to (needed the first time)"
        )
        parser.add_argument("--once", action="store_true", help="read what is there now, then exit")
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between looks (default 1)"
        )
        parser.add_argument(
            "--glob",
            default=DEFAULT_GLOB,
            help=f"files to follow in a folder (default {DEFAULT_GLOB})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = None
        if options["source"]:
            source = Source.objects.filter(name=options["source"], is_active=True).first()
            if source is None:
                raise CommandError(
                    f"no active source named {options['source']!r}; create it with create_source"
                )
        path = Path(options["path"])
        try:
            if path.is_dir():
                follower: Any = DirectoryFollower(folder=path, source=source, glob=options["glob"])
            elif path.exists() or not options["once"]:
                follower = LogFollower(path=path, source=source)
            else:
                raise CommandError(f"{path}: no such file or folder")
        except FollowError as exc:
            raise CommandError(str(exc)) from exc

        stop = threading.Event()
        if not options["once"]:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            self.stdout.write(f"Following {path.resolve()} (Ctrl-C stops)…")
        try:
            while True:
                try:
                    polled = follower.poll()
                except FollowError as exc:
                    raise CommandError(str(exc)) from exc
                for result in polled if isinstance(polled, list) else [polled]:
                    self._report(result, options["once"])
                if options["once"] or stop.wait(max(0.05, options["interval"])):
                    break
        finally:
            follower.close()

    def _report(self, result: PollResult, always: bool) -> None:
        if result.changed or always:
            self.stdout.write(result.line())
            self.stdout.flush()
