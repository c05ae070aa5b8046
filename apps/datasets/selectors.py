"""Reads of the datasets app: recipes, versions, the events a recipe selects, and compare."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.curation.filters import clean_filters, events_filtered, filters_as_params
from apps.curation.selectors import accepted_event_ids, gold_decisions, rejected_event_ids
from apps.datasets.models import DatasetVersion, EvalSet, Recipe
from apps.feedback.models import Event, RaterTombstone
from apps.feedback.selectors import latest_revisions
from apps.quality.models import Verdict
from apps.sources.models import Source


def recipes() -> QuerySet[Recipe]:
    return Recipe.objects.select_related("decontaminate", "created_by").order_by("name")


def recipe_get(*, recipe_id: int | None = None, name: str | None = None) -> Recipe | None:
    qs = recipes()
    if recipe_id is not None:
        return qs.filter(pk=recipe_id).first()
    return qs.filter(name=name).first()


def versions(*, recipe: Recipe | None = None) -> QuerySet[DatasetVersion]:
    qs = DatasetVersion.objects.select_related("recipe", "created_by").order_by("-id")
    return qs.filter(recipe=recipe) if recipe is not None else qs


def version_get(*, version_id: int) -> DatasetVersion | None:
    return versions().filter(pk=version_id).first()


# --- who reads what by key ---------------------------------------------------------------------
# A source's key reads a dataset version only when every event in it came from that source: the
# version's recorded `sources` are exactly {the key's source}. A version still building, failed,
# or built from no event has no sources and is read by staff only. Staff sessions read by role.


def versions_readable_by(
    *, source: Source, qs: QuerySet[DatasetVersion] | None = None
) -> QuerySet[DatasetVersion]:
    """The versions (of QS, default all) that SOURCE's key may read."""
    through = DatasetVersion.sources.through
    own = through.objects.filter(datasetversion=OuterRef("pk"), source=source)
    foreign = through.objects.filter(datasetversion=OuterRef("pk")).exclude(source=source)
    qs = versions() if qs is None else qs
    return qs.filter(Exists(own), ~Exists(foreign))


def version_readable_by(*, version: DatasetVersion, source: Source) -> bool:
    return versions_readable_by(
        source=source, qs=DatasetVersion.objects.filter(pk=version.pk)
    ).exists()


def recipes_readable_by(*, source: Source, qs: QuerySet[Recipe] | None = None) -> QuerySet[Recipe]:
    """The recipes SOURCE's key may read: those whose filters select that source alone (so that
    everything they build is the source's own)."""
    qs = recipes() if qs is None else qs
    return qs.filter(filters__source=source.name)


def eval_sets() -> QuerySet[EvalSet]:
    return EvalSet.objects.defer("prompts_hashes", "ngrams").order_by("name")


# --- the selection ----------------------------------------------------------------------------


def clean_recipe_filters(params: Mapping[str, Any]) -> dict[str, Any]:
    """The inbox's filters, checked (ValidationError per field) and typed."""
    return clean_filters(params)


def filters_as_json(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Clean filters in the form a recipe stores (query-parameter strings)."""
    return filters_as_params(filters)


def _filtered(filters: Mapping[str, Any], qs: QuerySet[Event]) -> QuerySet[Event]:
    return events_filtered(clean_recipe_filters(filters), qs) if filters else qs


def events_for_snapshot(snapshot: Mapping[str, Any]) -> QuerySet[Event]:
    """The events a recipe (as snapshotted) may use, unordered:

    - consent given, the rater not forgotten (no RaterTombstone), not rejected by a curator;
    - the latest revision only: an event that a later one revises (`supersedes`) is left out;
    - curated-only: accepted by a curator or edited to gold; otherwise also every event whose
      current quality verdict is accepted with a trust weight of at least `min_trust`;
    - narrowed by the recipe's inbox filters."""
    gold_ids = gold_decisions().values("event_id")
    curated = Q(id__in=accepted_event_ids()) | Q(id__in=gold_ids)
    if snapshot.get("curated_only"):
        usable = curated
    else:
        verdict = Verdict.objects.filter(
            event=OuterRef("pk"), is_current=True, status=Verdict.Status.ACCEPTED
        )
        if snapshot.get("min_trust"):
            verdict = verdict.filter(trust_weight__gte=snapshot["min_trust"])
        usable = Q(Exists(verdict)) | curated
    qs = (
        Event.objects.filter(consent=True)
        .filter(usable)
        .exclude(id__in=rejected_event_ids())
        .filter(~Exists(RaterTombstone.objects.filter(rater_hash=OuterRef("rater_hash"))))
    )
    qs = latest_revisions(qs)
    return _filtered(snapshot.get("filters") or {}, qs)


def gold_replies(event_ids: QuerySet | None = None) -> dict[int, dict[int, str]]:
    """{event id: {position: gold reply}}: the newest live gold decision per event and position."""
    qs = gold_decisions()
    if event_ids is not None:
        qs = qs.filter(event_id__in=event_ids)
    out: dict[int, dict[int, str]] = {}
    for event_id, position, text in qs.values_list(
        "event_id", "position", "gold_response"
    ).iterator():
        out.setdefault(event_id, {}).setdefault(position, text)  # newest first: keep the first
    return out


# --- reading a version's files ----------------------------------------------------------------


def artifact_path(rel: str | None) -> Path | None:
    return Path(settings.ARTIFACT_ROOT) / rel if rel else None


def manifest_rows(version: DatasetVersion) -> Iterator[dict[str, Any]]:
    """Lines of the version's manifest.jsonl: split, index, row hash, quadrant, event ids…"""
    rel = version.files.get("manifest")
    if not rel:
        return
    with open(settings.ARTIFACT_ROOT / rel, "rb") as fh:
        for line in fh:
            yield orjson.loads(line)


def version_rows(
    version: DatasetVersion, split: str, *, limit: int | None = None
) -> list[dict[str, Any]]:
    path = version.file_path(split, "jsonl")
    out: list[dict[str, Any]] = []
    if path is None or not path.exists():
        return out
    with open(path, "rb") as fh:
        for line in fh:
            out.append(orjson.loads(line))
            if limit is not None and len(out) >= limit:
                break
    return out


@dataclass
class Comparison:
    """Rows of B not in A (added) and of A not in B (removed), by row hash."""

    a: DatasetVersion
    b: DatasetVersion
    added: int = 0
    removed: int = 0
    kept: int = 0
    added_sample: list[dict[str, Any]] = field(default_factory=list)
    removed_sample: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.a.pk,
            "with": self.b.pk,
            "added": self.added,
            "removed": self.removed,
            "kept": self.kept,
            "added_sample": self.added_sample,
            "removed_sample": self.removed_sample,
        }


def versions_compare(*, a: DatasetVersion, b: DatasetVersion, sample: int = 20) -> Comparison:
    """What changed from A to B: rows (by content hash, whatever split they are in) that B adds
    and that it removes, with the first SAMPLE of each as manifest lines (split, index, quadrant,
    event ids)."""
    hashes_a = {row["row_hash"] for row in manifest_rows(a)}
    result = Comparison(a=a, b=b)
    hashes_b: set[str] = set()
    for row in manifest_rows(b):
        hashes_b.add(row["row_hash"])
        if row["row_hash"] in hashes_a:
            result.kept += 1
        else:
            result.added += 1
            if len(result.added_sample) < sample:
                result.added_sample.append(row)
    for row in manifest_rows(a):
        if row["row_hash"] not in hashes_b:
            result.removed += 1
            if len(result.removed_sample) < sample:
                result.removed_sample.append(row)
    return result
