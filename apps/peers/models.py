"""What the connectors keep: the state that lets Sinkhole speak other tools' languages.

- `LangfuseObservation`: the text of a Langfuse trace or generation that a client sent to the
  Langfuse-compatible ingestion endpoint, already read into chat messages and a reply and
  PII-redacted, so that a score on that trace becomes a rating with real text. It is context,
  not feedback: it is updated as the client updates its trace, and purged after
  `CONTEXT_DAYS`. Rater ids are kept only as their keyed hash.
- `LangfuseScore`: every Langfuse score Sinkhole accepted, by its Langfuse id: where it points
  (trace, observation, session), what it said, and the event it became. This is how scores are
  found by trace id. A score the client deletes is marked retracted here; its events stay in the
  append-only log.
- `OpenWebUIConnector`: an Open WebUI server whose feedback export is pulled on a schedule,
  with its watermark, its last run and its counts.
- `FastChatLogCursor`: how far `follow_fastchat` has read a FastChat vote log, so that a
  restarted follower goes on where it stopped."""

from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from apps.feedback.models import Event
from apps.sources.models import Source

CONTEXT_DAYS = 30  # how long trace texts are kept for scores that arrive after their trace


class LangfuseObservation(models.Model):
    """A Langfuse trace (observation_id "") or generation, as text Sinkhole can use."""

    class Kind(models.TextChoices):
        TRACE = "trace"
        GENERATION = "generation"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=200)
    observation_id = models.CharField(
        max_length=200, blank=True, help_text="Empty for the trace itself."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    rater_hash = models.CharField(
        max_length=64, blank=True, help_text="Keyed hash of the trace's userId."
    )
    session_id = models.CharField(max_length=200, blank=True)
    messages = models.JSONField(
        null=True, blank=True, help_text="The input, as OpenAI chat messages (redacted)."
    )
    response = models.TextField(blank=True, help_text="The output's text (redacted).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "trace_id", "observation_id"],
                name="langfuse_observation_unique",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["trace", "generation"]), name="langfuse_observation_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.trace_id}/{self.observation_id or '-'}"


class LangfuseScore(models.Model):
    """One Langfuse score by its id, and the Sinkhole event its latest version became."""

    class DataType(models.TextChoices):
        NUMERIC = "NUMERIC"
        BOOLEAN = "BOOLEAN"
        CATEGORICAL = "CATEGORICAL"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    score_id = models.CharField(max_length=200)
    trace_id = models.CharField(max_length=200, blank=True)
    observation_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=200)
    data_type = models.CharField(max_length=20, choices=DataType.choices)
    value = models.FloatField(null=True, blank=True)
    string_value = models.CharField(max_length=500, blank=True)
    comment = models.TextField(blank=True)
    environment = models.CharField(max_length=100, blank=True)
    event = models.ForeignKey(
        Event,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The event of the score's current value.",
    )
    digest = models.CharField(max_length=32, blank=True, help_text="Digest of what it says.")
    revision = models.PositiveIntegerField(
        default=0, help_text="How many different values it has had (each one an event)."
    )
    with_text = models.BooleanField(
        default=False, help_text="The event carries the trace's text (not placeholders)."
    )
    retracted_at = models.DateTimeField(
        null=True, blank=True, help_text="The client deleted this score."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "score_id"], name="langfuse_score_unique"),
            models.CheckConstraint(
                condition=Q(data_type__in=["NUMERIC", "BOOLEAN", "CATEGORICAL"]),
                name="langfuse_score_data_type",
            ),
        ]
        indexes = [models.Index(fields=["source", "trace_id"], name="langfuse_score_trace")]

    def __str__(self) -> str:
        return f"{self.name} on {self.trace_id or self.session_id} ({self.score_id})"


class OpenWebUIConnector(models.Model):
    """An Open WebUI server whose feedback export Sinkhole pulls every `interval_minutes`."""

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z0-9][a-z0-9_.-]*$", "lower-case letters, digits, '.', '_' and '-'"
            )
        ],
        help_text="Short identifier, e.g. openwebui-prod.",
    )
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="+", help_text="Events go to this source."
    )
    base_url = models.URLField(
        max_length=500, help_text="The Open WebUI server's root, e.g. https://chat.example.org"
    )
    token = models.TextField(
        help_text="An Open WebUI admin's API key or token; sent as a bearer token."
    )
    interval_minutes = models.PositiveIntegerField(default=15, validators=[MinValueValidator(1)])
    is_active = models.BooleanField(default=True)
    watermark = models.BigIntegerField(
        null=True, blank=True, help_text="Newest `updated_at` (epoch seconds) pulled so far."
    )
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    running_since = models.DateTimeField(
        null=True, blank=True, help_text="Set while a pull runs, so two never overlap."
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_imported = models.PositiveIntegerField(default=0)
    last_duplicate = models.PositiveIntegerField(default=0)
    last_rejected = models.PositiveIntegerField(default=0)
    total_imported = models.PositiveBigIntegerField(default=0)
    total_runs = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "Open WebUI connector"

    def __str__(self) -> str:
        return self.name

    @property
    def masked_token(self) -> str:
        """The token as people may see it: its first and last four characters at most."""
        token = self.token or ""
        if len(token) <= 12:
            return "•" * 8 if token else ""
        return f"{token[:4]}…{token[-4:]}"


class FastChatLogCursor(models.Model):
    """How far a FastChat vote log has been read: the byte offset after the last whole line,
    and what identifies the file (inode, device, a hash of its first bytes) to notice a
    rotation or a truncation."""

    path = models.CharField(max_length=1000, unique=True, help_text="Absolute path of the log.")
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    offset = models.PositiveBigIntegerField(default=0)
    inode = models.PositiveBigIntegerField(null=True, blank=True)
    device = models.PositiveBigIntegerField(null=True, blank=True)
    head_hash = models.CharField(max_length=64, blank=True)
    head_length = models.PositiveIntegerField(default=0)
    lines = models.PositiveBigIntegerField(default=0, help_text="Whole lines read so far.")
    imported = models.PositiveBigIntegerField(default=0)
    duplicate = models.PositiveBigIntegerField(default=0)
    rejected = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        verbose_name = "FastChat log cursor"

    def __str__(self) -> str:
        return f"{self.path} @ {self.offset}"
