"""The inbox's filters: one vocabulary for the inbox page, the API and dataset recipes.

`clean_filters(params)` turns query parameters (a QueryDict or a plain dict) into a clean dict and
raises `ValidationError({field: message})` on a bad value; `events_filtered(filters)` applies a
clean dict to a queryset of events. Keys (all optional):

| key | value | meaning |
| --- | --- | --- |
| source | name | the source that sent it |
| model, checkpoint | text | the model / checkpoint that answered (exact) |
| type | rating, preference, ranking, edit | the event type |
| rating | up, down, or a score range `7-10` / `7` | thumbs or 1-10 score |
| status | accepted, quarantined, rejected, unjudged | the current quality verdict |
| spam_min, spam_max | 0..1 | the current verdict's spam score |
| tags | list of names (or "a,b") | curator tags or payload tags; all must match |
| since, until | dates (YYYY-MM-DD) or ISO datetimes | received at; a date `until` includes that day |
| q | text | full text over the event's texts (PostgreSQL full-text; icontains on SQLite) |
| decision | accepted, rejected, undecided | the newest live curator accept/reject |

Every filter is an index-friendly predicate (EXISTS on one table, no joins that multiply rows),
so `ORDER BY id DESC LIMIT n` stays fast on millions of events."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.postgres.search import SearchQuery
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.curation.models import Decision, EventTag
from apps.feedback.models import EVENT_TYPES, Event, Rating
from apps.quality.models import Verdict

KEYS = (
    "source",
    "model",
    "checkpoint",
    "type",
    "rating",
    "status",
    "spam_min",
    "spam_max",
    "tags",
    "since",
    "until",
    "q",
    "decision",
)
STATUSES = ("accepted", "quarantined", "rejected", "unjudged")
DECISIONS = ("accepted", "rejected", "undecided")
MAX_TAGS = 10
MAX_Q = 200
_SCORE_RANGE = re.compile(r"^\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?$")
FTS_CONFIG = "english"
FEW_MATCHES = 2000  # text matches up to this many become an id list (see text_search)
SLACK = timedelta(hours=1)  # inserts are never this far out of id order


def _values(params: Mapping[str, Any], key: str) -> list[str]:
    """Every value given for KEY: a QueryDict's list, a list, or a comma-separated string."""
    getlist = getattr(params, "getlist", None)
    raw: Any = getlist(key) if getlist is not None else params.get(key)
    if raw is None:
        return []
    items = raw if isinstance(raw, list | tuple) else [raw]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationError({key: "Give text values."})
        out.extend(part.strip() for part in item.split(","))
    return [part for part in out if part]


def _one(params: Mapping[str, Any], key: str) -> str:
    getter = getattr(params, "get", None)
    value = getter(key) if getter is not None else None
    if isinstance(value, list | tuple):
        value = value[-1] if value else None
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValidationError({key: "Give a text value."})
    return value.strip()


def _when(key: str, value: str) -> datetime:
    """A date or an ISO datetime; a bare `until` date means the end of that day."""
    moment = parse_datetime(value) if "T" in value or " " in value else None
    if moment is None:
        try:
            day = parse_date(value)
        except ValueError:
            day = None
        if day is None:
            raise ValidationError({key: "Give a date as YYYY-MM-DD or an ISO datetime."})
        if key == "until":
            day = day + timedelta(days=1)
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return moment


def clean_filters(params: Mapping[str, Any]) -> dict[str, Any]:
    """The filters in PARAMS, checked and typed; keys not given (or empty) are left out.
    Unknown keys are ignored (pagination, the page's own parameters)."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}

    def attempt(key: str, fn: Any) -> None:
        try:
            value = fn()
        except ValidationError as exc:
            errors.update(
                {k: v[0] for k, v in exc.message_dict.items()}
                if hasattr(exc, "error_dict")
                else {key: exc.messages[0]}
            )
            return
        if value not in (None, "", []):
            out[key] = value

    for key in ("source", "model", "checkpoint"):
        attempt(key, lambda key=key: _text(key, _one(params, key), 200))

    def type_() -> str:
        value = _one(params, "type")
        if value and value not in EVENT_TYPES:
            raise ValidationError({"type": f"Give one of {', '.join(EVENT_TYPES)}."})
        return value

    attempt("type", type_)
    attempt("rating", lambda: _rating(_one(params, "rating")))

    def status() -> str:
        value = _one(params, "status")
        if value and value not in STATUSES:
            raise ValidationError({"status": f"Give one of {', '.join(STATUSES)}."})
        return value

    attempt("status", status)
    attempt("spam_min", lambda: _score("spam_min", _one(params, "spam_min")))
    attempt("spam_max", lambda: _score("spam_max", _one(params, "spam_max")))

    def tags() -> list[str]:
        values = sorted(set(_values(params, "tags") + _values(params, "tag")))
        if len(values) > MAX_TAGS:
            raise ValidationError({"tags": f"Give at most {MAX_TAGS} tags."})
        for value in values:
            _text("tags", value, 64)
        return values

    attempt("tags", tags)
    for key in ("since", "until"):
        attempt(key, lambda key=key: _when(key, v) if (v := _one(params, key)) else None)
    attempt("q", lambda: _text("q", " ".join(_one(params, "q").split()), MAX_Q))

    def decision() -> str:
        value = _one(params, "decision")
        if value and value not in DECISIONS:
            raise ValidationError({"decision": f"Give one of {', '.join(DECISIONS)}."})
        return value

    attempt("decision", decision)

    lo, hi = out.get("spam_min"), out.get("spam_max")
    if lo is not None and hi is not None and lo > hi and "spam_min" not in errors:
        errors["spam_min"] = "spam_min must not be above spam_max."
    since, until = out.get("since"), out.get("until")
    if since and until and since >= until and "since" not in errors:
        errors["since"] = "since must be before until."
    if errors:
        raise ValidationError(errors)
    return out


def _text(key: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise ValidationError({key: f"At most {limit} characters."})
    if "\x00" in value:
        raise ValidationError({key: "Null characters are not allowed."})
    return value


def _rating(value: str) -> Any:
    if not value:
        return None
    if value in ("up", "down"):
        return value
    match = _SCORE_RANGE.match(value)
    if match:
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if 1 <= lo <= hi <= 10:
            return [lo, hi]
    raise ValidationError({"rating": "Give up, down, or a score range within 1-10 such as 7-10."})


def _score(key: str, value: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValidationError({key: "Give a number between 0 and 1."}) from None
    if not 0.0 <= number <= 1.0:
        raise ValidationError({key: "Give a number between 0 and 1."})
    return number


def filters_as_params(filters: Mapping[str, Any]) -> dict[str, Any]:
    """A clean filter dict back as query parameters (dates as ISO, tags comma-joined): for links
    (the next page, "build a dataset from this filter") and for storing in a recipe as JSON."""
    out: dict[str, Any] = {}
    for key in KEYS:
        if key not in filters:
            continue
        value = filters[key]
        if key == "tags":
            out[key] = ",".join(value)
        elif key == "rating" and isinstance(value, list):
            out[key] = f"{value[0]}-{value[1]}"
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def latest_judgement(outer: str = "pk") -> Subquery:
    """The newest live accept/reject decision of the outer event: 'accept', 'reject' or NULL."""
    return Subquery(
        Decision.objects.filter(
            event=OuterRef(outer), action__in=["accept", "reject"], undone_at__isnull=True
        )
        .order_by("-id")
        .values("action")[:1]
    )


def events_filtered(
    filters: Mapping[str, Any], qs: QuerySet[Event] | None = None
) -> QuerySet[Event]:
    """QS (default: every event) narrowed by clean FILTERS (see `clean_filters`). The order of
    QS is kept; no joins are added, so callers can page with `id < cursor`."""
    qs = Event.objects.all() if qs is None else qs
    f = filters
    if f.get("source"):
        qs = qs.filter(source__name=f["source"])
    for key in ("model", "checkpoint", "type"):
        if f.get(key):
            qs = qs.filter(**{key: f[key]})

    rating = f.get("rating")
    if rating:
        ratings = Rating.objects.filter(event=OuterRef("pk"))
        if rating == "up":
            ratings = ratings.filter(value=1)
        elif rating == "down":
            ratings = ratings.filter(value=-1)
        else:
            ratings = ratings.filter(score__gte=rating[0], score__lte=rating[1])
        qs = qs.filter(Exists(ratings))

    status = f.get("status")
    spam_min, spam_max = f.get("spam_min"), f.get("spam_max")
    if status == "unjudged":
        qs = qs.filter(~Exists(Verdict.objects.filter(event=OuterRef("pk"), is_current=True)))
    if (status and status != "unjudged") or spam_min is not None or spam_max is not None:
        verdicts = Verdict.objects.filter(event=OuterRef("pk"), is_current=True)
        if status and status != "unjudged":
            verdicts = verdicts.filter(status=status)
        if spam_min is not None:
            verdicts = verdicts.filter(score__gte=spam_min)
        if spam_max is not None:
            verdicts = verdicts.filter(score__lte=spam_max)
        qs = qs.filter(Exists(verdicts))

    for tag in f.get("tags") or []:
        curator = Exists(EventTag.objects.filter(event=OuterRef("pk"), name=tag))
        if is_postgres():
            payload = Q(payload__tags__contains=[tag])
        else:  # SQLite has no JSON containment: match the quoted name inside the tags array
            payload = Q(payload__tags__icontains=f'"{tag}"')
        qs = qs.filter(curator | payload)

    if f.get("since"):
        qs = qs.filter(received_at__gte=f["since"])
    if f.get("until"):
        qs = qs.filter(received_at__lt=f["until"])
    if f.get("since") or f.get("until"):
        qs = _id_bounds(qs, f.get("since"), f.get("until"))

    if f.get("q"):
        qs = text_search(qs, f["q"])

    decision = f.get("decision")
    if decision:
        judged = Decision.objects.filter(
            event=OuterRef("pk"), action__in=["accept", "reject"], undone_at__isnull=True
        )
        if decision == "undecided":
            qs = qs.filter(~Exists(judged))
        else:
            qs = qs.alias(_judgement=latest_judgement()).filter(
                Exists(judged), _judgement=decision[:-2]
            )
    return qs


def _id_bounds(
    qs: QuerySet[Event], since: datetime | None, until: datetime | None
) -> QuerySet[Event]:
    """Id bounds that say the same as a date range, so a newest-first page walks only that
    range of the primary key instead of the whole table. `received_at` is the server's clock at
    insert, so it grows with the id up to the jitter of concurrent inserts; the bounds come from
    events more than SLACK outside the range, so they never cut a matching event."""
    if since is not None:
        below = (
            Event.objects.filter(received_at__lt=since - SLACK)
            .order_by("-received_at")
            .values("id")[:1]
        )
        qs = qs.filter(id__gt=Coalesce(Subquery(below), Value(0), output_field=BigIntegerField()))
    if until is not None:
        above = (
            Event.objects.filter(received_at__gte=until + SLACK)
            .order_by("received_at")
            .values("id")[:1]
        )
        qs = qs.filter(
            id__lt=Coalesce(Subquery(above), Value(2**62), output_field=BigIntegerField())
        )
    return qs


def text_search(qs: QuerySet[Event], q: str) -> QuerySet[Event]:
    """Full text over the event's texts. PostgreSQL: the stored `to_tsvector('english', payload)`
    (apps/curation/search.py, GIN-indexed) `@@ websearch_to_tsquery(q)`: quotes, `or`, `-word`
    work. Elsewhere: every word must appear in the payload (case-insensitive substring)."""
    if is_postgres():
        from apps.curation.models import EventSearch
        from apps.curation.search import search_ready

        search_ready()
        documents = EventSearch.objects.filter(
            document=SearchQuery(q, search_type="websearch", config=FTS_CONFIG)
        )
        # The planner guesses how common an unseen word is (0.5 %) and may then walk every
        # event newest first looking for one that never comes. Ask the GIN index first: a
        # query with few matches becomes a plain id list; a common one stays a subquery,
        # which the newest-first walk serves well.
        few = list(documents.values_list("event_id", flat=True)[: FEW_MATCHES + 1])
        if len(few) <= FEW_MATCHES:
            return qs.filter(pk__in=few)
        return qs.filter(pk__in=documents.values("event_id"))
    qs = qs.alias(_text=Cast("payload", TextField()))
    for word in q.split()[:10]:
        word = word.strip('"')
        if word and not word.startswith("-"):
            # JSON text may escape quotes, backslashes and non-ASCII: match either spelling
            escaped = json.dumps(word)[1:-1]
            match = Q(_text__icontains=word)
            if escaped != word:
                match |= Q(_text__icontains=escaped)
            qs = qs.filter(match)
    return qs
