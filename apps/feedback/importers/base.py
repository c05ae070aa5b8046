"""What every importer shares: the `Importer` and `Record` types, opening an input file
(plain or gzip, with a byte counter for progress bars), streaming JSON records out of it (a JSON
array through ijson, or JSON Lines one line at a time) and deterministic event ids.

A reader never holds more than one input record in memory, and it never raises on bad input: a
line that is not JSON, or a record of a shape it does not know, comes out as a `Record` with an
`error`; a record that is fine but carries no feedback (a FastChat `flag`, a chat log line)
comes out with `skipped`. `feedback_import` counts both and carries on."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import ijson
import orjson

MAX_ID = 200  # the schema's limit on event ids
PLACEHOLDERS = "placeholders"  # metadata key: which fields hold a stand-in, not real text


@dataclass(frozen=True, slots=True)
class Record:
    """One thing a reader found at WHERE ("line 17", "record 3, message 9a8b…"): an API v1
    event dict, an error (the input is broken), or a reason it was skipped (no feedback in it)."""

    where: str
    event: dict[str, Any] | None = None
    error: str | None = None
    skipped: str | None = None


Reader = Callable[[BinaryIO], Iterator[Record]]


@dataclass(frozen=True)
class Importer:
    """One input format: its `--format` name, a one-line description, and its reader, which
    takes an opened (already decompressed) binary stream and yields `Record`s."""

    name: str
    description: str
    read_stream: Reader
    # Its records keep their id while the user changes them (Open WebUI feedback): a changed
    # record becomes a revision of the event stored before (services/revisions.py).
    revisable: bool = False

    def read(self, source: str | os.PathLike[str] | BinaryIO) -> Iterator[Record]:
        """Records from a path (plain or gzip) or from an open binary stream."""
        if isinstance(source, str | os.PathLike):
            with open_input(source) as stream:
                yield from self.read_stream(stream)
        else:
            yield from self.read_stream(source)

    def events(self, source: str | os.PathLike[str] | BinaryIO) -> Iterator[dict[str, Any]]:
        """Only the event dicts (what a front-end would POST), dropping errors and skips."""
        for record in self.read(source):
            if record.event is not None:
                yield record.event


class _CountingReader(io.RawIOBase):
    """A raw stream that reports how many bytes it has handed out (for a progress bar)."""

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], None] | None) -> None:
        super().__init__()
        self._raw = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if count and self._on_read is not None:
            self._on_read(count)
        return count or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


GZIP_MAGIC = b"\x1f\x8b"


@contextmanager
def open_input(
    path: str | os.PathLike[str], *, on_read: Callable[[int], None] | None = None
) -> Iterator[BinaryIO]:
    """Open PATH for reading as bytes, decompressing gzip (found by its magic bytes, whatever
    the file is called). ON_READ gets the number of bytes read from the file itself (compressed
    bytes for gzip), so it adds up to the file's size."""
    raw = open(path, "rb", buffering=0)  # closed by the finally below
    buffered = io.BufferedReader(_CountingReader(raw, on_read), buffer_size=1 << 16)
    try:
        if buffered.peek(2)[:2] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=buffered, mode="rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield buffered  # type: ignore[misc]
    finally:
        buffered.close()


# --- JSON records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parsed:
    """One JSON value from the input, or why it could not be read."""

    where: str
    value: Any = None
    error: str | None = None


_BOM = b"\xef\xbb\xbf"
_SPACE = b" \t\r\n"


def _first_byte(stream: BinaryIO) -> bytes:
    """The first byte that is not white space or a byte-order mark, left unread."""
    peek = stream.peek  # type: ignore[attr-defined]
    if peek(3)[:3] == _BOM:
        stream.read(3)
    while True:
        head = peek(1)[:1]
        if head == b"" or head not in _SPACE:
            return head
        stream.read(1)


def json_records(stream: BinaryIO) -> Iterator[Parsed]:
    """The JSON values of STREAM one at a time: the items of a top-level JSON array (streamed by
    ijson, named "record N"), or else one value per non-blank line (JSON Lines, "line N")."""
    if not hasattr(stream, "peek"):  # e.g. io.BytesIO
        stream = io.BufferedReader(stream)  # type: ignore[arg-type]
    if _first_byte(stream) == b"[":
        yield from _array_items(stream)
    else:
        yield from _lines(stream)


def _array_items(stream: BinaryIO) -> Iterator[Parsed]:
    number = 0
    try:
        for number, value in enumerate(ijson.items(stream, "item", use_float=True), 1):
            yield Parsed(f"record {number}", value)
    except ijson.JSONError as exc:
        yield Parsed(
            f"record {number + 1}",
            error=f"not valid JSON ({_short(_message(exc))}); the rest of the file could not be read",
        )


def _lines(stream: BinaryIO) -> Iterator[Parsed]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield Parsed(f"line {number}", error=f"not valid JSON ({_short(str(exc))})")
            continue
        yield Parsed(f"line {number}", value)


def read_json_records(
    stream: BinaryIO, convert: Callable[[Any, str], Iterator[Record]]
) -> Iterator[Record]:
    """The reader most formats need: JSON records in, CONVERT(value, where) maps each to records.
    A record whose shape trips CONVERT (a missing key, a wrong type) becomes an error, not a crash."""
    for parsed in json_records(stream):
        if parsed.error is not None:
            yield Record(parsed.where, error=parsed.error)
            continue
        try:
            yield from convert(parsed.value, parsed.where)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            yield Record(
                parsed.where,
                error=f"unexpected record shape ({type(exc).__name__}: {_short(str(exc))})",
            )


def _message(exc: Exception) -> str:
    """yajl's messages come as bytes with a drawing of the spot; one line of text is enough."""
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- ids, times, text -----------------------------------------------------------------------


def digest(value: Any) -> str:
    """A stable hash of a JSON value: the same record gives the same hash whatever its key
    order or white space, so re-importing it (even from JSON instead of JSONL) is a no-op."""
    try:
        canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits
        canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


class Repeats:
    """Numbers the copies of a record within one file, so that a file that repeats a row (an
    arena-hard battle file repeats a verdict to weight it) keeps every copy: the first copy of a
    content hash keeps the plain id, the n-th gets `:n`. Re-importing the file gives the same ids
    (nothing is added); a grown file adds only its new rows. One instance per file read; it holds
    one 64-bit hash per distinct record."""

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._copies: dict[int, int] = {}  # only the records seen more than once

    def numbered(self, base_id: str) -> str:
        key = int.from_bytes(hashlib.blake2b(base_id.encode(), digest_size=8).digest())
        if key not in self._seen:
            self._seen.add(key)
            return base_id
        count = self._copies.get(key, 1) + 1
        self._copies[key] = count
        return f"{base_id}:{count}"


def number_repeats(records: Iterator[Record], *, prefix: str) -> Iterator[Record]:
    """RECORDS with the ids that start with PREFIX (ids a reader made from a record's content)
    numbered by copy (see `Repeats`); ids the file gave itself pass as they are."""
    repeats = Repeats()
    for record in records:
        event = record.event
        if (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and event["id"].startswith(prefix)
        ):
            record = Record(record.where, event={**event, "id": repeats.numbered(event["id"])})
        yield record


def event_id(prefix: str, *parts: str) -> str:
    """`prefix:part:part`, or `prefix:<hash of the parts>` where that would pass the id limit."""
    joined = ":".join((prefix, *parts))
    if len(joined) <= MAX_ID:
        return joined
    return f"{prefix}:{digest(list(parts))}"


def iso_time(value: Any) -> str | None:
    """An ISO 8601 UTC time from an epoch number (seconds, or milli-/micro-/nanoseconds, told
    apart by size) or an ISO string with a zone; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
        if abs(seconds) >= 1e17:  # nanoseconds since 1970
            seconds /= 1e9
        elif abs(seconds) >= 1e14:  # microseconds
            seconds /= 1e6
        elif abs(seconds) >= 1e11:  # milliseconds
            seconds /= 1e3
        try:
            return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return value if parsed.tzinfo is not None else None
    return None


def text_of(content: Any) -> str | None:
    """The text of an OpenAI-style content (a string, or a list of parts); None if there is none."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "\n".join(text for text in texts if isinstance(text, str))
    return None


def scalar_extras(record: dict[str, Any], *, leave_out: set[str]) -> dict[str, Any]:
    """The record's other top-level scalar fields, for the event's metadata (long strings cut)."""
    extras: dict[str, Any] = {}
    for key, value in record.items():
        if key in leave_out or not isinstance(key, str):
            continue
        if isinstance(value, str):
            extras[key] = _short(value)
        elif value is None or isinstance(value, bool | int | float):
            extras[key] = value
    return extras
