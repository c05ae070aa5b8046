"""dataset_version_build: one recipe snapshot → one immutable dataset version on disk.

Streaming and deterministic. Events are read in id order (on PostgreSQL by a binary COPY on a
connection of its own, elsewhere through a server-side cursor), mined into rows
(`apps.datasets.mining`), deduplicated (exact: a set of 64-bit keys of the normalized text; near:
MinHash LSH), decontaminated against the recipe's eval set, split by prompt (a seeded hash of the
normalized prompt, so a prompt never lands on both sides) and written at once to train.jsonl /
test.jsonl with a manifest line per row. DPO pairs from thumbs come from a second stream, ordered
by normalized prompt, which the server sorts while the first is mined. Parquet is converted from
the JSONL by Arrow's streaming reader. What stays in memory grows only by a few dozen bytes per
row (the dedup keys and the event ids for the manifest table); near-duplicate detection keeps
each kept row's MinHash signature and band keys (about 2 KB a row).

The content hash is sha256 over the snapshot's content-affecting fields and every row in order
(with its split): the same events and recipe give the same hash, whatever the version id or
recipe name."""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from apps.datasets import selectors
from apps.datasets.formats import SPLITS, jsonl_to_parquet
from apps.datasets.mining import (
    EventRecord,
    Row,
    Thumb,
    event_rows,
    polarity,
    rules_with_defaults,
    thumbs_pairs,
)
from apps.datasets.models import RECIPE_OPTIONS, DatasetVersion, EvalSet, ManifestEntry
from apps.datasets.services.publish_scan import refuse_rows_with_secrets
from apps.datasets.text import (
    NearDuplicates,
    key64,
    ngrams,
    normalize,
    prompt_key,
    split_unit,
    text_hash,
    user_texts,
)
from apps.feedback.models import Event, Rating
from apps.sources.models import Source

logger = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
CHUNK = 2000
# Histogram bin edges, in characters (the last bin is open).
LENGTH_BINS = (0, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def version_dir(version_id: int) -> Path:
    return Path(settings.ARTIFACT_ROOT) / "datasets" / str(version_id)


def snapshot_digest(snapshot: dict[str, Any]) -> bytes:
    """The content-affecting part of a recipe snapshot as canonical JSON."""
    return orjson.dumps({k: snapshot.get(k) for k in RECIPE_OPTIONS}, option=orjson.OPT_SORT_KEYS)


def _histogram(lengths: Counter) -> list[dict[str, Any]]:
    edges = [*LENGTH_BINS, None]
    return [
        {"label": f"{lo}+" if hi is None else f"{lo}-{hi - 1}", "count": lengths.get(i, 0)}
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]


def _bin(n: int) -> int:
    for i in range(len(LENGTH_BINS) - 1, -1, -1):
        if n >= LENGTH_BINS[i]:
            return i
    return 0


def kto_weights(desirable: int, undesirable: int) -> tuple[float, float]:
    """TRL's guidance: desirable_weight * n_desirable / (undesirable_weight * n_undesirable)
    within [1, 4/3]. Up-weight the smaller class so the ratio is 1 (rounded to stay inside)."""
    if not desirable or not undesirable:
        return 1.0, 1.0
    if desirable < undesirable:
        return float(-(-undesirable * 10000 // desirable)) / 10000, 1.0  # rounded up: ratio ≥ 1
    ratio = desirable / undesirable
    if ratio <= 4 / 3:
        return 1.0, 1.0
    return 1.0, int(ratio * 10000) / 10000  # rounded down: ratio ≥ 1 and ≤ 4/3


@dataclass
class _Stats:
    splits: dict[str, dict[str, Counter]] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)

    def add(self, split: str, row: Row) -> None:
        s = self.splits.setdefault(
            split,
            {
                k: Counter()
                for k in (
                    "source",
                    "model",
                    "label",
                    "quadrant",
                    "prompt_chars",
                    "completion_chars",
                )
            },
        )
        s["source"][row.source] += 1
        s["model"][row.model or "(unknown)"] += 1
        s["label"][row.label] += 1
        s["quadrant"][row.quadrant] += 1
        s["prompt_chars"][_bin(sum(len(m["content"]) for m in row.prompt))] += 1
        s["completion_chars"][_bin(len(row.completion))] += 1

    def card(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for split in SPLITS:
            s = self.splits.get(split)
            if s is None:
                out[split] = {
                    "rows": 0,
                    "source": {},
                    "model": {},
                    "label": {},
                    "quadrant": {},
                    "prompt_chars": _histogram(Counter()),
                    "completion_chars": _histogram(Counter()),
                }
                continue
            out[split] = {
                "rows": sum(s["label"].values()),
                **{
                    k: dict(sorted(s[k].items(), key=lambda kv: (-kv[1], kv[0])))
                    for k in ("source", "model", "label", "quadrant")
                },
                "prompt_chars": _histogram(s["prompt_chars"]),
                "completion_chars": _histogram(s["completion_chars"]),
            }
        out["dropped"] = dict(sorted(self.dropped.items()))
        return out


class _Writer:
    """Writes rows to the split files and the manifest, hashing as it goes."""

    def __init__(self, folder: Path, snapshot: dict[str, Any]) -> None:
        self.folder = folder
        self.files: dict[str, BinaryIO] = {
            s: open(folder / f"{s}.jsonl", "wb", buffering=1 << 20) for s in SPLITS
        }  # noqa: SIM115
        self.manifest = open(folder / "manifest.jsonl", "wb", buffering=1 << 20)  # noqa: SIM115
        self.counts = dict.fromkeys(SPLITS, 0)
        self.longest = dict.fromkeys(SPLITS, 0)
        self.digest = hashlib.sha256(snapshot_digest(snapshot))
        self.event_ids = array("q")

    def write(self, split: str, row: Row) -> None:
        line = orjson.dumps(row.columns)
        self.files[split].write(line + b"\n")
        if len(line) > self.longest[split]:
            self.longest[split] = len(line)
        self.digest.update(split.encode() + b"\x00" + line + b"\n")
        self.manifest.write(
            orjson.dumps(
                {
                    "split": split,
                    "index": self.counts[split],
                    "row_hash": hashlib.blake2b(line, digest_size=16).hexdigest(),
                    "quadrant": row.quadrant,
                    "label": row.label,
                    "event_ids": row.event_ids,
                    "source": row.source,
                    "model": row.model,
                }
            )
            + b"\n"
        )
        self.counts[split] += 1
        self.event_ids.extend(row.event_ids)

    def close(self) -> None:
        for fh in [*self.files.values(), self.manifest]:
            fh.close()


class _Gate:
    """Decides for each mined row: kept (and in which split) or dropped, and why."""

    def __init__(
        self, snapshot: dict[str, Any], eval_set: EvalSet | None, dropped: Counter
    ) -> None:
        self.dropped = dropped
        self.exact = bool(snapshot.get("dedup_exact"))
        self.seen: set[int] = set()
        self.near = (
            NearDuplicates(float(snapshot.get("near_threshold") or 0.9))
            if snapshot.get("dedup_near")
            else None
        )
        self.eval_hashes = set(eval_set.prompts_hashes) if eval_set else set()
        self.eval_ngrams = set(eval_set.ngrams) if eval_set else set()
        self.test_fraction = float(snapshot.get("test_fraction") or 0)
        self.seed = int(snapshot.get("seed") or 0)
        self.max_rows = snapshot.get("max_rows")
        self.kept = 0
        self._forget_prompt([])

    def split_of(self, row: Row) -> str | None:
        if self.max_rows is not None and self.kept >= self.max_rows:
            self.dropped["over_max_rows"] += 1
            return None
        if row.prompt is not self._prompt:  # the rows of one event share its prompt
            self._forget_prompt(row.prompt)
        texts = [*self._prompt_texts, self._normalized(row.completion)]
        for name in ("chosen", "rejected", "label"):
            value = row.columns.get(name)
            if value is not None:
                texts.append(
                    repr(value) if name == "label" else self._normalized(value[0]["content"])
                )
        if self.exact:
            key = key64("\x1e".join(texts))
            if key in self.seen:
                self.dropped["duplicate_exact"] += 1
                return None
            self.seen.add(key)
        if self.eval_hashes or self.eval_ngrams:
            if self._contaminated is None:
                users = user_texts(row.prompt)
                self._contaminated = any(text_hash(t) in self.eval_hashes for t in users) or bool(
                    self.eval_ngrams
                    and any(not self.eval_ngrams.isdisjoint(ngrams(t)) for t in users)
                )
            if self._contaminated:
                self.dropped["contaminated"] += 1
                return None
        if self.near is not None and self.near.seen("\n".join(texts)):
            self.dropped["duplicate_near"] += 1
            return None
        self.kept += 1
        if self._split is None:
            unit = split_unit(prompt_key(row.prompt), self.seed)
            self._split = "test" if unit < self.test_fraction else "train"
        return self._split

    def _forget_prompt(self, prompt: list[dict[str, str]]) -> None:
        """Start on the rows of a new prompt: what depends on the prompt alone is worked out
        once for all of them (its normalized messages, contamination, split), and each reply
        is normalized once (a ranking's replies are in several pairs)."""
        self._prompt = prompt
        self._prompt_texts = [m["role"] + "\x00" + normalize(m["content"]) for m in prompt]
        self._replies: dict[str, str] = {}
        self._contaminated: bool | None = None
        self._split: str | None = None

    def _normalized(self, text: str) -> str:
        out = self._replies.get(text)
        if out is None:
            out = self._replies[text] = normalize(text)
        return out


class _Reporter:
    """Turns work done into progress updates, at most every 2 % or every second."""

    def __init__(self, version_id: int, callback: Progress | None) -> None:
        self.version_id, self.callback = version_id, callback
        self.done, self.last_fraction, self.last_time = 0, -1.0, 0.0

    def step(self, fraction: float, n: int = 1) -> None:
        """FRACTION: how far the current stream is, estimated from where its key is: event ids
        between the first and the last, prompt hashes (uniform) by their leading hex digits. No
        COUNT(*) over the selection, which costs as much as a second read."""
        self.done += n
        now = time.monotonic()
        if fraction - self.last_fraction >= 0.02 or now - self.last_time >= 1.0:
            self.report(fraction, f"read {self.done:,} events")

    def report(self, fraction: float, message: str) -> None:
        self.last_fraction, self.last_time = fraction, time.monotonic()
        DatasetVersion.objects.filter(pk=self.version_id).update(
            progress=round(fraction, 4), message=message[:500]
        )
        if self.callback is not None:
            self.callback(fraction, message)


MAIN_COLUMNS = ("id", "type", "payload_text", "source_id", "model")
THUMBS_COLUMNS = (
    "interaction__prompt_hash",
    "event_id",
    "value",
    "score",
    "payload_text",
    "source_id",
    "model",
)


def _main_query(qs: QuerySet) -> QuerySet:
    # The payload as text, parsed by orjson: Django's JSONField parses with the json module,
    # several times slower on payloads of a few kilobytes.
    return (
        qs.order_by("id")
        .annotate(payload_text=Cast("payload", TextField()))
        .values_list(*MAIN_COLUMNS)
    )


def _thumbs_query(selection: QuerySet) -> QuerySet:
    """The thumbs of the selection, in (normalized prompt hash, event id) order."""
    return (
        Rating.objects.filter(event_id__in=selection.values("id"))
        .filter(Q(value__isnull=False) | Q(score__isnull=False))
        .order_by("interaction__prompt_hash", "event_id")
        .annotate(payload_text=Cast("event__payload", TextField()))
        .values_list(*THUMBS_COLUMNS)
    )


@contextmanager
def _streams(
    main: QuerySet, thumbs: QuerySet | None
) -> Iterator[tuple[Iterator[tuple], Iterator[tuple]]]:
    """The rows of MAIN and THUMBS (querysets of values tuples), each an iterator.

    On PostgreSQL each is one `COPY (query) TO STDOUT` on a connection of its own: the server
    sends while the build works (a server-side cursor makes it wait for every FETCH, and outside
    a transaction Django's holds the whole result before the first row). Both connections read
    one snapshot, exported by the first, and the thumbs query starts at once, so the server
    sorts the thumbs by prompt while the build mines the main stream. Inside a transaction (a
    test, a caller's atomic block) other connections would not see its rows: a server-side
    cursor on this connection then, as on SQLite."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield (
            main.iterator(chunk_size=CHUNK),
            thumbs.iterator(chunk_size=CHUNK) if thumbs is not None else iter(()),
        )
        return
    from psycopg import IsolationLevel, sql

    def connect(stack: ExitStack, snapshot: str | None) -> Any:
        conn = connection.Database.connect(**connection.get_connection_params())
        stack.callback(conn.close)
        conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
        if snapshot is not None:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(snapshot))
        # The selection's OR'd EXISTS look expensive to the planner, which then spends half a
        # second compiling them (JIT) to save nothing on a scan it reads once.
        conn.execute("SET LOCAL jit = off")
        return conn

    with ExitStack() as stack:
        conn = connect(stack, None)
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        main_rows = _copy_rows(stack, conn, main)
        if thumbs is None:
            yield main_rows, iter(())
            return
        other = connect(stack, snapshot)
        # The server answers a COPY only once its sort is done: open it on a thread meanwhile.
        thumbs_stack = stack.enter_context(ExitStack())
        pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="thumbs"))
        opening = pool.submit(_copy_rows, thumbs_stack, other, thumbs)

        def thumbs_rows() -> Iterator[tuple]:
            yield from opening.result()

        try:
            yield main_rows, thumbs_rows()
        except BaseException:
            other.cancel_safe()  # a failed build does not wait for the sort
            raise


def _copy_rows(stack: ExitStack, conn: Any, qs: QuerySet) -> Iterator[tuple]:
    """Start `COPY (QS) TO STDOUT` on CONN, closed with STACK; its rows as tuples. In the
    binary format: no escaping of the payloads' text to undo, a fifth faster to read. Binary
    values must be read as the types they are, so the query is described first (LIMIT 0)."""
    query, params = qs.query.sql_with_params()
    cursor = stack.enter_context(conn.cursor())
    cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0", params)  # noqa: S608 (Django's SQL)
    types = [column.type_code for column in cursor.description]
    copy = stack.enter_context(cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params))
    copy.set_types(types)
    return copy.rows()


def _main_stream(rows: Iterator[tuple], sources: dict[int, str]) -> Iterator[EventRecord]:
    for event_id, kind, payload, source_id, model in rows:
        yield EventRecord(event_id, kind, orjson.loads(payload), sources.get(source_id, ""), model)


def _thumbs_stream(
    rows: Iterator[tuple], sources: dict[int, str]
) -> Iterator[tuple[str, list[Thumb]]]:
    """(normalized prompt hash, its thumbs) in hash order."""
    for key, group in groupby(rows, key=itemgetter(0)):
        thumbs = [
            Thumb(event_id, sign, orjson.loads(payload), sources.get(source_id, ""), model)
            for _, event_id, value, score, payload, source_id, model in group
            if (sign := polarity(value, score))
        ]
        yield key, thumbs


def _insert_manifest(version_id: int, event_ids: array) -> int:
    """One ManifestEntry per distinct event, with its rater hash (for forget_rater), by
    INSERT … SELECT in chunks: a million events take seconds, not a million round trips."""
    import numpy as np

    ids = (
        np.unique(np.frombuffer(event_ids, dtype=np.int64))
        if len(event_ids)
        else np.array([], dtype=np.int64)
    )
    table = ManifestEntry._meta.db_table
    events = "feedback_event"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for start in range(0, len(ids), 50000):
                cursor.execute(
                    f"INSERT INTO {table} (version_id, event_id, rater_hash) "  # noqa: S608 (table names are ours)
                    f"SELECT %s, id, rater_hash FROM {events} WHERE id = ANY(%s)",
                    [version_id, ids[start : start + 50000].tolist()],
                )
        else:
            for start in range(0, len(ids), 5000):
                chunk = ids[start : start + 5000].tolist()
                cursor.execute(
                    f"INSERT INTO {table} (version_id, event_id, rater_hash) "  # noqa: S608
                    f"SELECT %s, id, rater_hash FROM {events} WHERE id IN ({','.join(['%s'] * len(chunk))})",
                    [version_id, *chunk],
                )
    return len(ids)


def dataset_version_build(*, version_id: int, progress: Progress | None = None) -> DatasetVersion:
    """Build the queued version VERSION_ID. Idempotent: a version that already succeeded is
    returned as it is. A failure marks the version failed with the error and removes its files."""
    version = DatasetVersion.objects.select_related("recipe").get(pk=version_id)
    if version.status == DatasetVersion.Status.SUCCEEDED:
        return version
    version.status, version.started_at, version.error = (
        DatasetVersion.Status.BUILDING,
        timezone.now(),
        "",
    )
    version.progress, version.message = 0.0, "starting"
    version.save(update_fields=["status", "started_at", "error", "progress", "message"])
    folder = version_dir(version.pk)
    try:
        _build(version, folder, progress)
    except Exception as exc:
        logger.exception("dataset version %s failed", version.pk)
        shutil.rmtree(folder, ignore_errors=True)
        version.status, version.error, version.finished_at = (
            DatasetVersion.Status.FAILED,
            f"{type(exc).__name__}: {exc}",
            timezone.now(),
        )
        version.message = "failed"
        version.save(update_fields=["status", "error", "finished_at", "message"])
    return version


def _build(version: DatasetVersion, folder: Path, progress: Progress | None) -> None:
    snapshot, kind = version.recipe_snapshot, version.kind
    rules = rules_with_defaults(snapshot.get("pair_rules"))
    eval_set = EvalSet.objects.filter(pk=(snapshot.get("decontaminate") or {}).get("id")).first()
    if snapshot.get("decontaminate") and eval_set is None:
        raise ValueError("the recipe's evaluation set no longer exists")
    sources = dict(Source.objects.values_list("id", "name"))
    selection = selectors.events_for_snapshot(snapshot)
    gold = selectors.gold_replies(selection.values("id")) if rules["gold"] else {}
    main = selection
    if kind == "dpo":  # ratings pair up across events in the thumbs stream
        main = selection.filter(~Q(type="rating") | Q(id__in=list(gold)))
    thumbs = kind == "dpo" and rules["thumbs"]
    bounds = Event.objects.aggregate(lo=Min("id"), hi=Max("id"))
    lo, span = bounds["lo"] or 0, max((bounds["hi"] or 0) - (bounds["lo"] or 0), 1)
    share = 0.6 if thumbs else 0.9  # of the bar for the main stream; thumbs take the rest to 0.9

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stats = _Stats()
    gate = _Gate(snapshot, eval_set, stats.dropped)
    writer = _Writer(folder, snapshot)
    reporter = _Reporter(version.pk, progress)
    reporter.report(0.0, "reading events")
    try:
        with _streams(_main_query(main), _thumbs_query(selection) if thumbs else None) as (
            main_rows,
            thumbs_rows,
        ):
            for event in _main_stream(main_rows, sources):
                for row in event_rows(
                    kind, event, rules=rules, gold=gold.get(event.id), dropped=stats.dropped
                ):
                    split = gate.split_of(row)
                    if split is not None:
                        writer.write(split, row)
                        stats.add(split, row)
                reporter.step(share * (event.id - lo) / span)
            for key, group in _thumbs_stream(thumbs_rows, sources):
                for row in thumbs_pairs(group, dropped=stats.dropped):
                    split = gate.split_of(row)
                    if split is not None:
                        writer.write(split, row)
                        stats.add(split, row)
                reporter.step(
                    share + (0.9 - share) * int(key[:4] or "0", 16) / 0x10000, len(group) or 1
                )
    finally:
        writer.close()

    reporter.report(0.91, "scanning rows for secrets")
    refuse_rows_with_secrets(folder)
    reporter.report(0.92, "writing Parquet")
    for split in SPLITS:
        jsonl_to_parquet(
            folder / f"{split}.jsonl",
            folder / f"{split}.parquet",
            kind,
            longest_line=writer.longest[split],
        )
    card = stats.card()
    if kind == "kto":
        labels = card["train"]["label"]
        n_good, n_bad = labels.get("desirable", 0), labels.get("undesirable", 0)
        computed = kto_weights(n_good, n_bad)
        d = snapshot.get("kto_desirable_weight")
        u = snapshot.get("kto_undesirable_weight")
        card["kto"] = {
            "desirable": n_good,
            "undesirable": n_bad,
            "desirable_weight": d if d is not None else computed[0],
            "undesirable_weight": u if u is not None else computed[1],
            "weights_from": "recipe" if d is not None or u is not None else "class balance",
        }
    rel = f"datasets/{version.pk}"
    files: dict[str, Any] = {s: {f: f"{rel}/{s}.{f}" for f in ("jsonl", "parquet")} for s in SPLITS}
    files["manifest"], files["stats"] = f"{rel}/manifest.jsonl", f"{rel}/stats.json"

    reporter.report(0.97, "recording the manifest")
    with transaction.atomic():
        ManifestEntry.objects.filter(version=version).delete()
        events = _insert_manifest(version.pk, writer.event_ids)
        # Who may read the version by key: the sources its events came from (models.py).
        version.sources.set(
            Event.objects.filter(
                id__in=ManifestEntry.objects.filter(version=version).values("event_id")
            )
            .values_list("source_id", flat=True)
            .distinct()
        )
        card["events"] = events
        # Written once, complete, before the version is marked succeeded.
        (folder / "stats.json").write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2))
        version.content_hash = writer.digest.hexdigest()
        version.rows = dict(writer.counts)
        version.stats, version.files = card, files
        version.status, version.progress, version.finished_at = (
            DatasetVersion.Status.SUCCEEDED,
            1.0,
            timezone.now(),
        )
        version.message = f"{sum(writer.counts.values()):,} rows from {events:,} events"
        version.save(
            update_fields=[
                "content_hash",
                "rows",
                "stats",
                "files",
                "status",
                "progress",
                "finished_at",
                "message",
            ]
        )
