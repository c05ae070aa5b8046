"""What the quality pipeline adds beside the raw event log, which it never changes.

- `Verdict`: the judgement on one event: status, a 0-1 spam/noise score, reasons with a sentence
  each, the filters (and their versions) that produced it, and the trust weight that datasets and
  leaderboards use. An event keeps every verdict it ever had; exactly one is current.
- `VerdictOverride` and `CuratorLabel`: a curator overruling the filters, and the training label
  that every overrule (and every other curator judgement on a text) becomes.
- `RaterReputation`: a rater's history in numbers, and the trust that follows from it.
- `SpamClassifier`: trained versions of the learned text classifier (the seed-only model is
  rebuilt from the shipped corpus and never stored).
- `EventSignal` and `VoteSignal`: the per-event features that the history-aware filters (floods,
  velocity, reputation) look up, with the indexes those look-ups need.
- `RequalifyJob`: a resumable replay of history through today's filters.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.feedback.models import Event
from apps.sources.models import Source

STATUSES = ["accepted", "quarantined", "rejected"]


class Verdict(models.Model):
    class Status(models.TextChoices):
        ACCEPTED = "accepted"
        QUARANTINED = "quarantined", "quarantined (kept, held from datasets)"
        REJECTED = "rejected", "rejected (kept, never used)"

    class Origin(models.TextChoices):
        PIPELINE = "pipeline"
        CURATOR = "curator"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="verdicts")
    status = models.CharField(max_length=20, choices=Status.choices)
    score = models.FloatField(help_text="How likely spam or noise: 0 clean, 1 certainly bad.")
    trust_weight = models.FloatField(
        help_text="Weight for datasets and leaderboards: 0 unused, 1 full."
    )
    reasons = models.JSONField(
        default=list, blank=True, help_text='[{"code", "message", "filter"}], worst first.'
    )
    filters = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per filter: {"version", "action"} and, where it said anything, "score", "trust", "reasons".',
    )
    pipeline_version = models.CharField(max_length=64, help_text="Digest of every filter version.")
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.PIPELINE)
    is_current = models.BooleanField(default=True)
    curator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event"], condition=Q(is_current=True), name="verdict_one_current_per_event"
            ),
            models.CheckConstraint(condition=Q(status__in=STATUSES), name="verdict_status_valid"),
            models.CheckConstraint(
                condition=Q(score__gte=0, score__lte=1), name="verdict_score_range"
            ),
            models.CheckConstraint(
                condition=Q(trust_weight__gte=0, trust_weight__lte=1), name="verdict_trust_range"
            ),
            models.CheckConstraint(
                condition=Q(origin__in=["pipeline", "curator"]), name="verdict_origin_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "is_current"], name="verdict_status_current"),
            models.Index(fields=["event", "is_current"], name="verdict_event_current"),
        ]

    def __str__(self) -> str:
        return f"{self.status} #{self.event_id} ({self.origin})"

    @property
    def reason_codes(self) -> list[str]:
        return [reason["code"] for reason in self.reasons]


class VerdictOverride(models.Model):
    """A curator overruling the filters on one event; it creates the event's new current verdict."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="overrides")
    overruled = models.ForeignKey(
        Verdict,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The verdict that was current before.",
    )
    verdict = models.OneToOneField(Verdict, on_delete=models.CASCADE, related_name="override")
    status = models.CharField(max_length=20, choices=Verdict.Status.choices)
    note = models.TextField(blank=True)
    curator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=STATUSES), name="override_status_valid"),
        ]

    def __str__(self) -> str:
        return f"override #{self.event_id} → {self.status}"


class CuratorLabel(models.Model):
    """A text with a spam/ham label that a curator stands behind: the classifier's training data."""

    class Label(models.TextChoices):
        SPAM = "spam"
        HAM = "ham"

    class Origin(models.TextChoices):
        OVERRIDE = "override", "a curator overruled the filters"
        REVIEW = "review", "a curator reviewed it"
        IMPORT = "import", "imported labelled data"

    text = models.TextField()
    label = models.CharField(max_length=10, choices=Label.choices)
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.REVIEW)
    event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.CASCADE, related_name="curator_labels"
    )
    override = models.OneToOneField(
        VerdictOverride, null=True, blank=True, on_delete=models.CASCADE, related_name="label"
    )
    curator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(label__in=["spam", "ham"]), name="curatorlabel_label_valid"
            ),
            models.CheckConstraint(condition=~Q(text=""), name="curatorlabel_text_not_empty"),
        ]
        indexes = [models.Index(fields=["created_at"], name="curatorlabel_created")]

    def __str__(self) -> str:
        return f"{self.label}: {self.text[:40]}"


class RaterReputation(models.Model):
    """A rater's record (raters are keyed hashes, pseudonymous per source)."""

    rater_hash = models.CharField(max_length=64, unique=True)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    events = models.PositiveIntegerField(default=0, help_text="Events judged.")
    flagged = models.PositiveIntegerField(
        default=0, help_text="Of those, quarantined or rejected now."
    )
    votes = models.PositiveIntegerField(
        default=0, help_text="Pairwise votes (preference, ranking)."
    )
    outlier = models.BooleanField(
        default=False, help_text="Votes against the consensus beyond chance."
    )
    outlier_p = models.FloatField(null=True, blank=True, help_text="The sequential test's p-value.")
    trust = models.FloatField(default=1.0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trust"]
        constraints = [
            models.CheckConstraint(
                condition=Q(trust__gte=0, trust__lte=1), name="reputation_trust_range"
            ),
        ]

    def __str__(self) -> str:
        return f"rater {self.rater_hash[:10]}… trust {self.trust:.2f}"


class SpamClassifier(models.Model):
    """One trained version of the text classifier, stored whole (joblib, zlib) so that every worker
    loads the same model without a shared disk."""

    version = models.PositiveIntegerField(unique=True)
    is_active = models.BooleanField(default=True)
    artifact = models.BinaryField()
    threshold = models.FloatField(help_text="Spam probability from which a text is quarantined.")
    trained_on = models.JSONField(default=dict, help_text="Counts by origin and label.")
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Out-of-fold scores on curator labels."
    )
    last_label_id = models.BigIntegerField(
        default=0, help_text="The newest curator label it learned from."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="classifier_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"spam classifier v{self.version}"


class EventSignal(models.Model):
    """The features of a judged event that other events' filters look up: who, from where, when,
    and a fingerprint of the text the rater wrote."""

    event = models.OneToOneField(
        Event, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    rater_hash = models.CharField(max_length=64, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(
        help_text="When the user gave it: the client's time, never later than receipt."
    )
    received_at = models.DateTimeField()
    is_vote = models.BooleanField(default=False)
    simhash = models.BigIntegerField(
        null=True, blank=True, help_text="64-bit SimHash of the rater's text."
    )
    exact = models.BigIntegerField(null=True, blank=True, help_text="Hash of the normalized text.")
    band0 = models.IntegerField(null=True, blank=True)
    band1 = models.IntegerField(null=True, blank=True)
    band2 = models.IntegerField(null=True, blank=True)
    band3 = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["rater_hash", "at"], name="signal_rater_at"),
            models.Index(fields=["ip_hash", "received_at"], name="signal_ip_received"),
            models.Index(fields=["source", "received_at"], name="signal_source_received"),
            models.Index(fields=["band0"], name="signal_band0"),
            models.Index(fields=["band1"], name="signal_band1"),
            models.Index(fields=["band2"], name="signal_band2"),
            models.Index(fields=["band3"], name="signal_band3"),
        ]

    def __str__(self) -> str:
        return f"signal #{self.event_id}"


class VoteSignal(models.Model):
    """One pairwise vote of an event (a preference, or one pair of a ranking), with models in name
    order, and how surprising it was against the consensus when it was judged."""

    class Outcome(models.TextChoices):
        LO = "lo", "the first model by name won"
        HI = "hi", "the second model by name won"
        TIE = "tie"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    rater_hash = models.CharField(max_length=64, blank=True)
    model_lo = models.CharField(max_length=200)
    model_hi = models.CharField(max_length=200)
    outcome = models.CharField(max_length=3, choices=Outcome.choices)
    neg2logp = models.FloatField(
        null=True,
        blank=True,
        help_text="-2 ln p against the consensus; null when the pair had too few votes.",
    )
    counted = models.BooleanField(
        default=True, help_text="Counts toward the consensus (its event was accepted)."
    )
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=["lo", "hi", "tie"]), name="votesignal_outcome_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["model_lo", "model_hi"], name="votesignal_pair"),
            models.Index(fields=["rater_hash", "event"], name="votesignal_rater"),
        ]

    def __str__(self) -> str:
        return f"{self.model_lo} vs {self.model_hi}: {self.outcome}"


class RequalifyJob(models.Model):
    """Re-judging history with today's filters, in chunks; the cursor makes it resumable."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    since = models.DateTimeField(
        null=True, blank=True, help_text="Only events received from then on."
    )
    filter_names = models.JSONField(
        default=list, blank=True, help_text="Re-run only these; [] = all."
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    cursor = models.BigIntegerField(default=0, help_text="Events up to this id are done.")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0, help_text="Events whose status changed.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed", "cancelled"]),
                name="requalifyjob_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"requalify #{self.pk} {self.status} {self.done}/{self.total}"
