"""Recipes and the immutable dataset versions built from them.

- `Recipe`: what to build: the kind (sft, dpo, kto), the inbox's filters, minimum trust,
  curated-only, pair mining rules, deduplication, decontamination, the split, a row cap and the
  KTO weights. Recipes can change; each version keeps a snapshot of the recipe it was built with.
- `EvalSet`: an uploaded evaluation set whose prompts are kept out of datasets (decontamination).
- `DatasetVersion`: one build: its status and progress while it builds, then its content hash,
  row counts, stats card, the manifest of event ids and its files (JSONL in TRL's conversational
  formats and Parquet) under ARTIFACT_ROOT. Never changed after it succeeded, except the
  `forgotten_raters` flag that `forget_rater` sets. `sources` is the set of sources its events
  came from, recorded by the build: a source's key reads the version only when that set is its
  own source alone (`selectors.versions_readable_by`).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

KINDS = ["sft", "dpo", "kto"]


class Kind(models.TextChoices):
    SFT = "sft", "SFT (messages)"
    DPO = "dpo", "DPO (prompt, chosen, rejected)"
    KTO = "kto", "KTO (prompt, completion, label)"


class EvalSet(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    prompts_hashes = models.JSONField(default=list, help_text="Normalized prompt hashes.")
    prompts = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True)
    ngrams = models.JSONField(
        default=list, blank=True, help_text="Hashed word 13-grams of the prompts (overlap check)."
    )
    digest = models.CharField(
        max_length=64,
        blank=True,
        help_text="sha256 of the hashes: part of a version's content hash.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


# What a recipe decides about its rows: the API's fields, and what its content hash covers.
RECIPE_OPTIONS = (
    "kind",
    "filters",
    "min_trust",
    "curated_only",
    "pair_rules",
    "dedup_exact",
    "dedup_near",
    "near_threshold",
    "decontaminate",
    "test_fraction",
    "max_rows",
    "kto_desirable_weight",
    "kto_undesirable_weight",
    "seed",
)


class Recipe(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=3, choices=Kind.choices)
    filters = models.JSONField(
        default=dict,
        blank=True,
        help_text="The inbox's filters: source, model, checkpoint, type, rating, tags, since, until, q.",
    )
    min_trust = models.FloatField(default=0.0)
    curated_only = models.BooleanField(default=False)
    pair_rules = models.JSONField(
        default=dict,
        blank=True,
        help_text='Which pairs to mine: {"preferences", "rankings", "edits", "thumbs"} booleans (all on by default).',
    )
    dedup_exact = models.BooleanField(default=True)
    dedup_near = models.BooleanField(default=False)
    near_threshold = models.FloatField(
        default=0.9, help_text="Jaccard similarity for near duplicates."
    )
    decontaminate = models.ForeignKey(
        EvalSet, null=True, blank=True, on_delete=models.PROTECT, related_name="recipes"
    )
    test_fraction = models.FloatField(default=0.1)
    max_rows = models.PositiveIntegerField(null=True, blank=True)
    kto_desirable_weight = models.FloatField(
        null=True, blank=True, help_text="Blank: from class balance."
    )
    kto_undesirable_weight = models.FloatField(
        null=True, blank=True, help_text="Blank: from class balance."
    )
    seed = models.IntegerField(default=0)
    adhoc = models.BooleanField(default=False, help_text="Made by build_dataset from flags.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=KINDS), name="recipe_kind_valid"),
            models.CheckConstraint(
                condition=Q(test_fraction__gte=0, test_fraction__lt=1), name="recipe_test_fraction"
            ),
            models.CheckConstraint(
                condition=Q(min_trust__gte=0, min_trust__lte=1), name="recipe_min_trust"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class DatasetVersion(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        BUILDING = "building"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    recipe = models.ForeignKey(Recipe, on_delete=models.PROTECT, related_name="versions")
    kind = models.CharField(max_length=3, choices=Kind.choices)
    recipe_snapshot = models.JSONField(default=dict, help_text="The recipe as it was built.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1 while building.")
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    rows = models.JSONField(
        default=dict, blank=True, help_text='Per split: {"train": n, "test": n}.'
    )
    stats = models.JSONField(default=dict, blank=True, help_text="The stats card.")
    files = models.JSONField(
        default=dict,
        blank=True,
        help_text='Paths relative to ARTIFACT_ROOT: {"train": {"jsonl": …, "parquet": …}, "test": {…}, "manifest": …}.',
    )
    forgotten_raters = models.BooleanField(
        default=False, help_text="Contains events of a rater forgotten after the build."
    )
    sources = models.ManyToManyField(
        "sources.Source",
        blank=True,
        related_name="+",
        help_text="The sources its events came from (set by the build; who may read it by key).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=KINDS), name="dataset_version_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.recipe.name} v{self.pk} ({self.kind})"

    def file_path(self, split: str = "train", fmt: str = "jsonl") -> Path | None:
        """The absolute path of one split's file, or None when the version has no such file."""
        rel = (self.files.get(split) or {}).get(fmt)
        return settings.ARTIFACT_ROOT / rel if rel else None


class ManifestEntry(models.Model):
    """One event that went into a dataset version (for compare, forgetting and lineage)."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="manifest")
    event_id = models.BigIntegerField(db_index=True)
    rater_hash = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "event_id"], name="manifest_unique_event"),
        ]

    def __str__(self) -> str:
        return f"event {self.event_id} in version {self.version_id}"
