"""A Source is one integration (a front-end, an importer); it owns API keys, rate limits and the
consent/licence defaults for the feedback it sends."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models


def _validate_origins(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(
            "allowed_origins must be a list of origins such as https://chat.example.org"
        )
    for origin in value:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValidationError(f"{origin!r} is not an origin (scheme://host[:port]) or '*'")
        if origin.endswith("/"):
            raise ValidationError(f"{origin!r}: an origin has no trailing slash")


class Source(models.Model):
    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z0-9][a-z0-9_.-]*$", "lower-case letters, digits, '.', '_' and '-'"
            )
        ],
        help_text="Short identifier, e.g. open-webui-prod.",
    )
    description = models.TextField(blank=True)
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        validators=[_validate_origins],
        help_text="Browser origins that may use this source's publishable key (CORS).",
    )
    redact_pii = models.BooleanField(
        default=True, help_text="Redact e-mails, phone numbers, cards, keys…"
    )
    hold_for_review = models.BooleanField(
        default=False, help_text="Quarantine every new event until a curator accepts it."
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        default=60_000, help_text="Events per minute per key; 0 means unlimited."
    )
    rater_rate_limit_per_minute = models.PositiveIntegerField(
        default=600, help_text="Events per minute per rater; 0 means unlimited."
    )
    default_consent = models.BooleanField(
        default=True,
        help_text="Whether events that say nothing about consent may be used for training.",
    )
    default_licence = models.CharField(max_length=100, blank=True, default="")
    daily_vote_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The quality policy's votes per rater per day for this source: empty means "
        "QUALITY_DAILY_VOTE_CAP; 0 lifts the per-rater volume limits (daily cap and hourly "
        "bursts) for an imported research log, whose few annotators cast every vote.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    class Kind(models.TextChoices):
        SECRET = "secret", "secret (sk-…): ingest and read"
        PUBLISHABLE = "publishable", "publishable (pk-…): ingest only, from allowed origins"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="keys")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the whole key.")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["secret", "publishable"]), name="apikey_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.source.name}, {self.kind})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
