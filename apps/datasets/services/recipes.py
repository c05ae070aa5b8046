"""Writes of the datasets app other than the build itself: recipes, eval sets, queueing versions."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from apps.datasets import selectors
from apps.datasets.mining import RULES, rules_with_defaults
from apps.datasets.models import RECIPE_OPTIONS, DatasetVersion, EvalSet, Recipe
from apps.datasets.text import clean_messages, ngrams, text_hash, user_texts

MAX_EVAL_BYTES = 20 * 1024 * 1024
MAX_EVAL_PROMPTS = 100_000


def _check_options(recipe: Recipe) -> None:
    errors: dict[str, str] = {}
    try:
        recipe.filters = selectors.filters_as_json(
            selectors.clean_recipe_filters(recipe.filters or {})
        )
    except ValidationError as exc:
        errors.update({f"filters.{k}": v[0] for k, v in exc.message_dict.items()})
    rules = recipe.pair_rules or {}
    if not isinstance(rules, dict):
        errors["pair_rules"] = f"Give an object of booleans for {', '.join(RULES)}."
    else:
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            errors["pair_rules"] = (
                f"Unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}."
            )
        elif any(not isinstance(v, bool) for v in rules.values()):
            errors["pair_rules"] = "Each rule is true or false."
    if not 0 < recipe.near_threshold <= 1:
        errors["near_threshold"] = "Give a Jaccard similarity above 0 and at most 1."
    for name in ("kto_desirable_weight", "kto_undesirable_weight"):
        value = getattr(recipe, name)
        if value is not None and not 0 < value <= 100:
            errors[name] = (
                "Give a weight above 0 (at most 100), or leave it blank for the class balance."
            )
    if recipe.max_rows is not None and recipe.max_rows < 1:
        errors["max_rows"] = "Give at least 1, or leave it blank for no cap."
    if errors:
        raise ValidationError(errors)
    recipe.full_clean()


@transaction.atomic
def recipe_create(
    *, name: str, kind: str, user: AbstractBaseUser | None = None, **options: Any
) -> Recipe:
    """A new recipe. OPTIONS are Recipe fields (see RECIPE_OPTIONS); filters are the inbox's."""
    unknown = set(options) - set(RECIPE_OPTIONS) - {"adhoc"}
    if unknown:
        raise ValidationError({k: "Unknown option." for k in sorted(unknown)})
    recipe = Recipe(
        name=name, kind=kind, created_by=user if user and user.is_authenticated else None, **options
    )
    _check_options(recipe)
    recipe.save()
    return recipe


@transaction.atomic
def recipe_update(*, recipe: Recipe, **options: Any) -> Recipe:
    """Change a recipe; versions already built keep the snapshot they were built with."""
    unknown = set(options) - set(RECIPE_OPTIONS) - {"name"}
    if unknown:
        raise ValidationError({k: "Unknown option." for k in sorted(unknown)})
    for key, value in options.items():
        setattr(recipe, key, value)
    _check_options(recipe)
    recipe.save()
    return recipe


@transaction.atomic
def recipe_delete(*, recipe: Recipe) -> None:
    if recipe.versions.exists():
        raise ValidationError(
            {"recipe": "It has dataset versions; a recipe with versions is kept for their lineage."}
        )
    recipe.delete()


def recipe_snapshot(recipe: Recipe) -> dict[str, Any]:
    """The recipe as a version keeps it (the eval set by name and content digest)."""
    eval_set = recipe.decontaminate
    return {
        "name": recipe.name,
        "kind": recipe.kind,
        "filters": recipe.filters or {},
        "min_trust": recipe.min_trust,
        "curated_only": recipe.curated_only,
        "pair_rules": rules_with_defaults(recipe.pair_rules),
        "dedup_exact": recipe.dedup_exact,
        "dedup_near": recipe.dedup_near,
        "near_threshold": recipe.near_threshold,
        "decontaminate": {"id": eval_set.pk, "name": eval_set.name, "digest": eval_set.digest}
        if eval_set
        else None,
        "test_fraction": recipe.test_fraction,
        "max_rows": recipe.max_rows,
        "kto_desirable_weight": recipe.kto_desirable_weight,
        "kto_undesirable_weight": recipe.kto_undesirable_weight,
        "seed": recipe.seed,
    }


def dataset_version_create(
    *, recipe: Recipe, user: AbstractBaseUser | None = None, enqueue: bool = True
) -> DatasetVersion:
    """Queue a build of RECIPE as it is now. With ENQUEUE the `datasets.build_version` task is
    sent once the transaction commits; without, the caller builds it (the command, in-process)."""
    with transaction.atomic():
        version = DatasetVersion(
            recipe=recipe,
            kind=recipe.kind,
            recipe_snapshot=recipe_snapshot(recipe),
            created_by=user if user and user.is_authenticated else None,
            message="queued",
        )
        version.full_clean()
        version.save()
        if enqueue:
            from apps.datasets.tasks import build_version

            transaction.on_commit(lambda: build_version.delay(version.pk), robust=True)
    return version


def adhoc_recipe_name(kind: str) -> str:
    return f"adhoc-{kind}-{timezone.now():%Y%m%d-%H%M%S}-{get_random_string(4).lower()}"


# --- eval sets --------------------------------------------------------------------------------


def _eval_item_texts(item: Any) -> list[str]:
    """The user texts of one eval-set item: a string, {"prompt": str | messages},
    {"messages": [...]}, or {"question"/"instruction"/"input"/"text": str}."""
    if isinstance(item, str):
        return [item]
    if not isinstance(item, dict):
        raise ValueError("each item is a string or an object with prompt/messages/question/text")
    for key in ("messages", "prompt", "conversations"):
        value = item.get(key)
        if isinstance(value, list):
            return user_texts(clean_messages(value))
        if isinstance(value, str):
            return [value]
    for key in ("question", "instruction", "input", "text", "problem"):
        if isinstance(item.get(key), str):
            return [item[key]]
    raise ValueError("no prompt found: give prompt, messages, question, instruction or text")


@transaction.atomic
def eval_set_create(
    *, name: str, content: bytes, file_name: str = "", user: AbstractBaseUser | None = None
) -> EvalSet:
    """An evaluation set from an uploaded file: JSONL (one item a line) or a JSON array. Its
    prompts are kept as hashes of the normalized text, and as hashed 13-gram word shingles."""
    if len(content) > MAX_EVAL_BYTES:
        raise ValidationError({"file": f"The file is over {MAX_EVAL_BYTES // (1024 * 1024)} MB."})
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"file": "The file is not UTF-8 text."}) from None
    items: list[Any]
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            items = orjson.loads(stripped)
        else:
            items = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise ValidationError({"file": f"Not JSON lines or a JSON array: {exc}"}) from None
    hashes: set[str] = set()
    grams: set[int] = set()
    for index, item in enumerate(items, 1):
        try:
            texts = _eval_item_texts(item)
        except ValueError as exc:
            raise ValidationError({"file": f"item {index}: {exc}"}) from None
        for t in texts:
            hashes.add(text_hash(t))
            grams |= ngrams(t)
    if not hashes:
        raise ValidationError({"file": "The file holds no prompts."})
    if len(items) > MAX_EVAL_PROMPTS:
        raise ValidationError({"file": f"At most {MAX_EVAL_PROMPTS:,} prompts."})
    sorted_hashes, sorted_grams = sorted(hashes), sorted(grams)
    digest = hashlib.sha256(orjson.dumps([sorted_hashes, sorted_grams])).hexdigest()
    eval_set = EvalSet(
        name=name,
        prompts_hashes=sorted_hashes,
        ngrams=sorted_grams,
        prompts=len(items),
        file_name=file_name[:255],
        digest=digest,
        created_by=user if user and user.is_authenticated else None,
    )
    eval_set.full_clean()
    eval_set.save()
    return eval_set
