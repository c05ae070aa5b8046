"""Reads of the registry, with their joins done: checkpoints, aliases with history, base models
and the serving manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.core.ids import parse_id
from apps.registry.models import Alias, AliasMove, BaseModel, Checkpoint


def checkpoint_list(*, status: str = "") -> QuerySet[Checkpoint]:
    qs = Checkpoint.objects.select_related(
        "base_model", "run", "dataset_version", "dataset_version__recipe"
    ).prefetch_related("aliases")
    return qs.filter(status=status) if status else qs


def checkpoint_get(ref: str | int) -> Checkpoint:
    """A checkpoint by name or by numeric id; 404 when there is none."""
    qs = checkpoint_list()
    text = str(ref).strip()
    row = qs.filter(name=text).first()
    if row is None and (pk := parse_id(text)) is not None:
        row = qs.filter(pk=pk).first()
    if row is None:
        raise ApplicationError(
            f"There is no checkpoint {text!r}.", code="not_found", status_code=404
        )
    return row


def alias_list() -> QuerySet[Alias]:
    moves = AliasMove.objects.select_related("from_checkpoint", "to_checkpoint", "user").order_by(
        "-id"
    )
    return Alias.objects.select_related("checkpoint", "checkpoint__base_model").prefetch_related(
        Prefetch("moves", queryset=moves)
    )


def alias_get(name: str) -> Alias:
    row = alias_list().filter(name=name).first()
    if row is None:
        raise ApplicationError(f"There is no alias {name!r}.", code="not_found", status_code=404)
    return row


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.all()


def base_model_find(ref: str | None) -> BaseModel | None:
    """The base model named REF (its short name, its model id, or its numeric id); the default
    one when REF is empty; None when nothing matches."""
    if not ref:
        return BaseModel.objects.filter(is_default=True).first()
    text = str(ref).strip()
    row = (
        BaseModel.objects.filter(name=text).first()
        or BaseModel.objects.filter(model_id=text).first()
    )
    if row is None and (pk := parse_id(text)) is not None:
        row = BaseModel.objects.filter(pk=pk).first()
    return row


def artifact_path(checkpoint: Checkpoint) -> str:
    """What a serving engine loads: the local path of a file:// URI, else the URI itself."""
    uri = checkpoint.artifact_uri
    if uri.startswith("file://"):
        return unquote(urlsplit(uri).path)
    return uri


def lineage(checkpoint: Checkpoint) -> dict[str, Any]:
    """run → dataset version → recipe, as plain data (ids and names)."""
    run = checkpoint.run
    version = checkpoint.dataset_version
    recipe = version.recipe if version is not None else None
    return {
        "run": run.pk if run else None,
        "dataset_version": version.pk if version else None,
        "dataset_content_hash": version.content_hash if version else "",
        "recipe": recipe.name if recipe else None,
        "base_model": checkpoint.base_model.model_id,
        "method": checkpoint.method,
    }


def base_weights(checkpoint: Checkpoint) -> dict[str, Any]:
    """The exact weights an adapter was trained on (source, file, sha256, dtype, quantization),
    as the trainer recorded them in the adapter's lineage.json; {} when it did not."""
    if not checkpoint.local_path:
        return {}
    path = Path(checkpoint.local_path) / "lineage.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    weights = data.get("base_weights")
    return weights if isinstance(weights, dict) else {}


def serving_manifest() -> dict[str, Any]:
    """What a serving box needs to sync: every published checkpoint (adapters with where to
    load them from and their sha256; base-model checkpoints with no files) and every alias."""
    published = list(checkpoint_list(status=Checkpoint.Status.PUBLISHED).order_by("id"))
    aliases = list(Alias.objects.select_related("checkpoint").order_by("name"))
    by_checkpoint: dict[int, list[str]] = {}
    for alias in aliases:
        by_checkpoint.setdefault(alias.checkpoint_id, []).append(alias.name)
    return {
        "generated_at": timezone.now().isoformat(),
        "adapters": [
            {
                "name": c.name,
                "kind": c.kind,
                "base_model": c.base_model.model_id,
                "method": c.method,
                "uri": c.artifact_uri,
                "path": artifact_path(c),
                "sha256": c.sha256,
                "published_at": c.published_at.isoformat() if c.published_at else None,
                "aliases": by_checkpoint.get(c.pk, []),
            }
            for c in published
        ],
        "aliases": {alias.name: alias.checkpoint.name for alias in aliases},
    }
