"""Following FastChat vote logs as they grow, like `tail -F`, into Sinkhole.

FastChat's web servers append one JSON line per event to `<LOGDIR>/YYYY-MM-DD-conv.json`, a
new file each day. A `LogFollower` reads one file: each `poll()` takes the whole lines written
since the last one (a line still being written waits for its newline), maps them with the
`fastchat` importer's reader (the same mapping as `import_feedback --format fastchat`: votes
become preferences and thumbs, flags and chat lines are skipped), ingests them, and stores the
byte offset reached in a `FastChatLogCursor`, so a restarted follower goes on where it stopped.
A `DirectoryFollower` does that for every `*-conv.json` in a folder, picking up each new day's
file as it appears.

Rotation and truncation: the file is known by its inode and a hash of its first bytes. Renamed
or deleted under a running follower, the old file is read to its end (its last line too, even
without a newline) before the new one is read from its start; truncated in place, or replaced
while no follower ran, it is read again from its start. Event ids are hashes of the line, so
reading a line twice stores it once."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from apps.feedback.importers.base import Record, read_json_records
from apps.feedback.services.importing import ImportSummary, feedback_batch_ingest
from apps.peers.fastchat.importer import reader as fastchat_reader
from apps.peers.models import FastChatLogCursor
from apps.peers.selectors import fastchat_cursor
from apps.sources.models import Source

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # read at most this much per step
BATCH_LINES = 1000  # lines per feedback_ingest call (a line gives at most one event)
HEAD_BYTES = 1024  # the start of the file that identifies it
DEFAULT_GLOB = "*-conv.json"


class FollowError(ValueError):
    """The log cannot be followed as asked (no source for a new file, another source's file)."""


@dataclass
class PollResult:
    """What one poll of one file read: lines, import counts, and what happened to the file."""

    path: str
    summary: ImportSummary
    lines: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.lines or self.notes)

    def line(self) -> str:
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{self.path}: {self.lines} new lines{notes}; {self.summary.line()}"


def fastchat_cursor_for(*, path: Path, source: Source | None) -> FastChatLogCursor:
    """The cursor of the log at PATH, made (at offset 0) for SOURCE if there is none yet."""
    cursor = fastchat_cursor(path=str(path))
    if cursor is None:
        if source is None:
            raise FollowError(f"{path} has not been followed before: name its source with --source")
        cursor = FastChatLogCursor(path=str(path), source=source)
        cursor.full_clean()
        cursor.save()
    elif source is not None and cursor.source_id != source.pk:
        raise FollowError(
            f"{path} is already followed into the source {cursor.source.name!r}, not {source.name!r}"
        )
    return cursor


class LogFollower:
    """Follows one log file; not thread-safe (one follower per file)."""

    def __init__(self, *, path: Path | str, source: Source | None = None) -> None:
        self.path = Path(os.path.abspath(path))  # not resolved: a symlink may move on rotation
        self.cursor = fastchat_cursor_for(path=self.path, source=source)
        self._file: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._identity = None, None

    def poll(self) -> PollResult:
        """Read and ingest the whole lines appended since the last poll."""
        result = PollResult(
            str(self.path), ImportSummary(format="fastchat", source=self.cursor.source.name)
        )
        try:
            self._poll(result)
        finally:
            if result.lines:
                self._count(result.summary)
        return result

    def _poll(self, result: PollResult) -> None:
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        if self._file is not None:
            identity = None if current is None else (current.st_ino, current.st_dev)
            if identity != self._identity:
                self._read(result, final=True)  # the rotated file: read it to its very end
                self.close()
                self._save(offset=0, lines=0, head_hash="", head_length=0, inode=None, device=None)
                result.notes.append("rotated" if current is not None else "moved away")
            elif current is not None and (
                current.st_size < self.cursor.offset or not self._head_matches()
            ):
                result.notes.append("truncated or rewritten; reading it again from the start")
                self._restart()
        if self._file is None:
            if current is None:
                return
            self._open(result)
        self._read(result, final=False)

    # --- the file ---------------------------------------------------------------------------

    def _open(self, result: PollResult) -> None:
        handle = open(self.path, "rb")  # noqa: SIM115 - kept open across polls, closed by close()
        stat = os.fstat(handle.fileno())
        self._file, self._identity = handle, (stat.st_ino, stat.st_dev)
        cursor = self.cursor
        same = (cursor.inode, cursor.device) == self._identity
        if cursor.offset and not (same and stat.st_size >= cursor.offset and self._head_matches()):
            result.notes.append("a different file than last time; reading it from the start")
            self._restart()
        elif not same:
            self._save(inode=stat.st_ino, device=stat.st_dev)

    def _restart(self) -> None:
        assert self._identity is not None
        self._save(
            offset=0,
            lines=0,
            head_hash="",
            head_length=0,
            inode=self._identity[0],
            device=self._identity[1],
        )

    def _head(self, length: int) -> str:
        assert self._file is not None
        return hashlib.blake2b(os.pread(self._file.fileno(), length, 0), digest_size=16).hexdigest()

    def _head_matches(self) -> bool:
        cursor = self.cursor
        return not cursor.head_length or self._head(cursor.head_length) == cursor.head_hash

    def _read(self, result: PollResult, *, final: bool) -> None:
        """Ingest every whole line from the cursor on (with FINAL, a last line without a
        newline too: a rotated file will not grow any more)."""
        assert self._file is not None
        while True:
            base = self.cursor.offset
            self._file.seek(base)
            data = self._file.read(CHUNK_BYTES)
            while b"\n" not in data and len(data) % CHUNK_BYTES == 0 and data:
                more = self._file.read(CHUNK_BYTES)  # one line longer than a chunk
                if not more:
                    break
                data += more
            end = data.rfind(b"\n") + 1
            if end == 0:
                if not (final and data.strip()):
                    return
                end = len(data)
            lines = data[:end].split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            position = base
            for first in range(0, len(lines), BATCH_LINES):
                batch = lines[first : first + BATCH_LINES]
                self._ingest(batch, result)
                position += sum(len(line) + 1 for line in batch)
                self._advance(min(position, base + end), len(batch))
                result.lines += len(batch)

    def _ingest(self, lines: list[bytes], result: PollResult) -> None:
        events: list[dict[str, Any]] = []
        places: list[str] = []
        summary = result.summary
        number = self.cursor.lines
        for raw in lines:
            number += 1
            if not raw.strip():
                continue
            where = f"{self.path.name} line {number}"
            for record in _records(raw, where):
                if record.event is not None:
                    events.append(record.event)
                    places.append(where)
                elif record.skipped is not None:
                    summary.skip(f"{where}: {record.skipped}")
                else:
                    summary.reject(f"{where}: {record.error}")
        feedback_batch_ingest(
            source=self.cursor.source, events=events, places=places, summary=summary
        )

    def _advance(self, offset: int, lines: int) -> None:
        cursor = self.cursor
        changes: dict[str, Any] = {"offset": offset, "lines": cursor.lines + lines}
        if cursor.head_length < HEAD_BYTES and offset > cursor.head_length:
            length = min(offset, HEAD_BYTES)
            changes.update(head_length=length, head_hash=self._head(length))
        self._save(**changes)

    def _count(self, summary: ImportSummary) -> None:
        """Add a poll's counts to the cursor's running totals."""
        cursor = self.cursor
        self._save(
            imported=cursor.imported + summary.imported,
            duplicate=cursor.duplicate + summary.duplicate,
            rejected=cursor.rejected + summary.rejected,
            skipped=cursor.skipped + summary.skipped,
        )

    def _save(self, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(self.cursor, name, value)
        self.cursor.save(update_fields=[*changes, "updated_at"])


def _records(raw: bytes, where: str) -> list[Record]:
    """The records of one log line, through the fastchat reader (its JSON handling and its
    mapping), each named by WHERE (the file and line number)."""
    records = read_json_records(
        io.BytesIO(raw), lambda value, _: fastchat_reader.convert(value, where)
    )
    return [dataclasses.replace(record, where=where) for record in records]


class DirectoryFollower:
    """Follows every file matching GLOB in a folder, new ones included."""

    def __init__(
        self, *, folder: Path | str, source: Source | None, glob: str = DEFAULT_GLOB
    ) -> None:
        self.folder = Path(os.path.abspath(folder))
        self.glob = glob
        self.source = source
        self.followers: dict[Path, LogFollower] = {}

    def poll(self) -> list[PollResult]:
        results = []
        for path in sorted(self.folder.glob(self.glob)):
            if not path.is_file():
                continue
            follower = self.followers.get(path)
            if follower is None:
                follower = self.followers[path] = LogFollower(
                    path=path, source=self._source_for(path)
                )
            results.append(follower.poll())
        return results

    def _source_for(self, path: Path) -> Source | None:
        """The source given; for a file followed before, the one it went to; for a new file,
        the one the folder's other files go to."""
        if self.source is not None:
            return self.source
        if fastchat_cursor(path=str(path)) is not None:
            return None
        sources = {
            cursor.source
            for cursor in FastChatLogCursor.objects.select_related("source").filter(
                path__startswith=f"{self.folder}{os.sep}"
            )
        }
        if len(sources) != 1:
            raise FollowError(f"{path} has not been followed before: name its source with --source")
        return sources.pop()

    def close(self) -> None:
        for follower in self.followers.values():
            follower.close()
