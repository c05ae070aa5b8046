"""rater_forget: a rater asked to be forgotten.

The raw event log is append-only, so their events stay; a `RaterTombstone` beside it makes every
later dataset build (and the leaderboards) leave them out. The apps above feedback react to the
`rater_forgotten` signal: datasets flags the versions already built with their events
(`forgotten_raters`) and answers with their ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from django.db import transaction

from apps.feedback.models import Event, RaterTombstone
from apps.feedback.signals import rater_forgotten
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
    and tell the apps above (`rater_forgotten`): datasets flags the versions that contain their
    events and answers with their ids."""
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
    flagged: set[int] = set()
    for _receiver, version_ids in rater_forgotten.send(sender=None, rater_hashes=hashes):
        flagged.update(cast("list[int]", version_ids) or ())
    result.flagged_versions = sorted(flagged)
    return result
