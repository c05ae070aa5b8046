"""rater_forget: a rater asked to be forgotten.

The raw event log is append-only, so their events stay; a `RaterTombstone` beside it makes every
later dataset build (and the leaderboards) leave them out, and the dataset versions already built
with their events are flagged (`forgotten_raters`), found through the versions' manifests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.feedback.models import Event, RaterTombstone
from apps.sources.hashing import rater_hash
from apps.sources.models import Source


@dataclass
class ForgetResult:
    rater_hashes: list[str]
    events: int = 0
    flagged_versions: list[int] = field(default_factory=list)
    new: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rater_hashes": self.rater_hashes,
            "events": self.events,
            "flagged_versions": self.flagged_versions,
            "new_tombstones": self.new,
        }


def rater_hashes_for(rater: str, *, source: Source | None = None) -> list[str]:
    """The stored hashes of a raw rater id: raters are pseudonymous per source, so without a
    SOURCE the id is hashed for every source."""
    sources = [source] if source is not None else list(Source.objects.order_by("id"))
    return [rater_hash(s.pk, rater) for s in sources]


@transaction.atomic
def rater_forget(*, rater_hashes: list[str], note: str = "") -> ForgetResult:
    """Tombstone each of RATER_HASHES (idempotent: a second call adds nothing and recounts),
    and flag the dataset versions that contain their events."""
    from apps.datasets.models import DatasetVersion, ManifestEntry

    hashes = sorted({h for h in rater_hashes if h})
    result = ForgetResult(rater_hashes=hashes)
    for h in hashes:
        events = Event.objects.filter(rater_hash=h).count()
        result.events += events
        _, created = RaterTombstone.objects.update_or_create(
            rater_hash=h,
            defaults={"events": events},
            create_defaults={"events": events, "note": note[:500]},
        )
        result.new += int(created)
    versions = DatasetVersion.objects.filter(
        pk__in=ManifestEntry.objects.filter(rater_hash__in=hashes).values("version_id")
    )
    result.flagged_versions = sorted(versions.values_list("pk", flat=True))
    versions.filter(forgotten_raters=False).update(forgotten_raters=True)
    return result
