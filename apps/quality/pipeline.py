"""The quality pipeline: every filter on a batch of events, and their results combined into one
judgement per event. Pure of database writes (the filters may read history); `services` stores.

Combination: the worst action wins (reject > quarantine > pass); the score is the highest any
filter gave; reasons are listed worst first; the trust weight is the product of the filters'
trust factors times (1 − score), and 0 for an event that is not accepted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from apps.feedback.services.normalize import derive
from apps.quality import conf
from apps.quality.filters import get_filters
from apps.quality.filters.base import (
    PASS,
    SEVERITY,
    Batch,
    Context,
    EventView,
    Filter,
    FilterResult,
    History,
    Reason,
)
from apps.quality.text import event_texts, exact_hash, normalize, simhashes, word_count

STATUS_OF = {"pass": "accepted", "quarantine": "quarantined", "reject": "rejected"}
ACTION_OF = {status: action for action, status in STATUS_OF.items()}


@dataclass
class Judgement:
    event_id: int
    status: str
    score: float
    trust_weight: float
    reasons: list[dict[str, str]]
    filters: dict[str, dict[str, Any]]
    pipeline_version: str
    followups: list[int] = field(default_factory=list)

    def same_outcome(self, other: dict[str, Any]) -> bool:
        """Equal to a stored verdict (as values) in everything but when it was made."""
        return (
            self.status == other["status"]
            and abs(self.score - other["score"]) < 1e-6
            and [r["code"] for r in self.reasons] == [r["code"] for r in other["reasons"]]
            and self.pipeline_version == other["pipeline_version"]
        )


def make_view(
    *,
    id: int,
    source_id: int,
    payload: dict[str, Any],
    rater_hash: str = "",
    ip_hash: str = "",
    status: str = "accepted",
    occurred_at: Any = None,
    received_at: Any,
    unreadable: list[str] | None = None,
) -> EventView:
    """An event as the filters see it, with its rater text fingerprinted and its votes listed."""
    at = received_at if occurred_at is None or occurred_at > received_at else occurred_at
    texts = event_texts(payload)
    view = EventView(
        id=id,
        source_id=source_id,
        type=payload.get("type", ""),
        payload=payload,
        rater_hash=rater_hash,
        ip_hash=ip_hash,
        status=status,
        at=at,
        received_at=received_at,
        texts=texts,
        unreadable=unreadable or [],
    )
    rater_text = texts.rater_text
    if rater_text:
        normalized = normalize(rater_text)
        if len(normalized) >= conf.get("FLOOD_MIN_CHARS") and word_count(normalized) >= conf.get(
            "FLOOD_MIN_WORDS"
        ):
            view.normalized = normalized  # fingerprinted with the rest of its batch in `judge`
            view.exact = exact_hash(normalized)
    if view.is_vote:
        view.votes = _votes(payload)
    return view


def _votes(payload: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each pairwise outcome between two different named models: (model_lo, model_hi, lo|hi|tie)."""
    try:
        derived = derive(payload)
    except (KeyError, TypeError, ValueError):
        return []
    models = {spec["position"]: spec["model"] for spec in derived.interactions}
    found = []
    for a, b, outcome in derived.comparisons:
        model_a, model_b = models.get(a) or "", models.get(b) or ""
        if not model_a or not model_b or model_a == model_b:
            continue
        lo, hi = sorted((model_a, model_b))
        if outcome in ("tie", "both_bad"):
            found.append((lo, hi, "tie"))
        else:
            winner = model_a if outcome == "a" else model_b
            found.append((lo, hi, "lo" if winner == lo else "hi"))
    return found


def fingerprint(views: list[EventView]) -> None:
    """SimHash the rater texts of VIEWS that have none yet, in one vectorized pass."""
    wanted = [view for view in views if view.normalized and view.simhash is None]
    for view, value in zip(wanted, simhashes([view.normalized for view in wanted]), strict=True):
        view.simhash = value


def pipeline_version(versions: dict[str, str]) -> str:
    return _pipeline_version(tuple(sorted(versions.items())))


@lru_cache(maxsize=256)
def _pipeline_version(versions: tuple[tuple[str, str], ...]) -> str:
    # Cached: every event of a batch has the same filter versions.
    text = ";".join(f"{name}={version}" for name, version in versions)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def versions_of(filters: list[Filter], batch: Batch) -> dict[str, str]:
    return {f.name: f.current_version(batch) for f in filters}


def judge(
    views: list[EventView],
    *,
    history: History,
    only: list[str] | None = None,
    previous: dict[int, dict[str, dict[str, Any]]] | None = None,
    state: dict[str, Any] | None = None,
    filters: list[Filter] | None = None,
) -> tuple[list[Judgement], Batch]:
    """Judge VIEWS with every filter (or with ONLY those, reusing the other filters' results from
    PREVIOUS — event id → the stored verdict's `filters` — where it has them)."""
    every = filters if filters is not None else get_filters()
    fingerprint(views)
    batch = Batch(events=views, history=history, state=dict(state or {}))
    chosen = [f for f in every if not only or f.name in only]
    kept = [f for f in every if only and f.name not in only]
    # A filter whose earlier result is missing for some event runs anyway.
    if kept and previous is not None:
        missing = {f.name for f in kept for v in views if f.name not in (previous.get(v.id) or {})}
        chosen = [f for f in every if f in chosen or f.name in missing]
        kept = [f for f in kept if f.name not in missing]
    elif kept:
        chosen, kept = every, []
    for f in chosen:
        f.prepare(batch)
    versions = versions_of(chosen, batch)
    judgements = []
    for view in views:
        ctx = Context(view, batch)
        results: dict[str, FilterResult] = {f.name: f.check(ctx) for f in chosen}
        per_filter = {name: _compact(versions[name], r) for name, r in results.items()}
        for f in kept:
            stored = (previous or {}).get(view.id, {}).get(f.name)
            if stored is not None:
                per_filter[f.name] = stored
                results[f.name] = FilterResult(
                    action=stored["action"],
                    score=stored.get("score", 0.0),
                    trust=stored.get("trust", 1.0),
                    reasons=[Reason(x["code"], x["message"]) for x in stored.get("reasons", [])],
                )
        judgements.append(_combine(view.id, results, per_filter))
    return judgements, batch


def _compact(version: str, result: FilterResult) -> dict[str, Any]:
    """One filter's part of a verdict: version and action always, the rest when it says anything."""
    out: dict[str, Any] = {"version": version, "action": result.action}
    if result.score:
        out["score"] = round(result.score, 4)
    if result.trust != 1.0:
        out["trust"] = round(result.trust, 4)
    if result.reasons:
        out["reasons"] = [{"code": x.code, "message": x.message} for x in result.reasons]
    return out


def _combine(
    event_id: int, results: dict[str, FilterResult], per_filter: dict[str, dict[str, Any]]
) -> Judgement:
    order = {name: index for index, name in enumerate(results)}
    worst = max((r.action for r in results.values()), key=SEVERITY.__getitem__, default=PASS)
    score = max((r.score for r in results.values()), default=0.0)
    trust = 1.0
    for r in results.values():
        trust *= r.trust
    status = STATUS_OF[worst]
    weight = min(1.0, max(0.0, trust * (1.0 - score))) if status == "accepted" else 0.0
    flagged = sorted(
        ((name, r) for name, r in results.items() if r.reasons and r.action != PASS),
        key=lambda item: (-SEVERITY[item[1].action], -item[1].score, order[item[0]]),
    )
    reasons = [
        {"code": x.code, "message": x.message, "filter": name}
        for name, r in flagged
        for x in r.reasons
    ]
    followups = sorted({eid for r in results.values() if r.action != PASS for eid in r.followups})
    versions = {name: spec["version"] for name, spec in per_filter.items()}
    return Judgement(
        event_id=event_id,
        status=status,
        score=round(min(1.0, max(0.0, score)), 4),
        trust_weight=round(weight, 4),
        reasons=reasons,
        filters=per_filter,
        pipeline_version=pipeline_version(versions),
        followups=followups,
    )
