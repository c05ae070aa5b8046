"""Writes of the registry: base models, registering checkpoints from finished runs, publishing,
retiring, and moving aliases (with rollback). Every function is keyword-only and atomic."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.registry import vllm
from apps.registry.models import Alias, AliasMove, BaseModel, Checkpoint
from apps.registry.storage import artifact_store, sha256_tree

# Checks an upper app registers from its AppConfig.ready(): (checkpoint, alias) -> note or None.
PUBLISH_CHECKS: list[Callable[[Checkpoint, str], str | None]] = []


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError("The request is invalid; see fields.", fields={field: [message]})


def checkpoint_name_for_run(run: Any) -> str:
    return f"run-{run.pk}-{run.method}"


def checkpoint_register(
    *, run: Any, adapter_dir: Path, metrics: dict[str, Any] | None = None
) -> Checkpoint:
    """Record the adapter a finished run wrote as a `candidate`, with the sha256 of every file
    and the lineage (run → dataset version → recipe). A second call for the same run (a task
    that ran twice) returns the first checkpoint."""
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise ApplicationError(f"{adapter_dir} holds no adapter_config.json: not a PEFT adapter.")
    declared = json.loads(config_path.read_text()).get("base_model_name_or_path")
    if declared != run.base_model.model_id:
        # vLLM matches adapters to the served base by this field.
        raise ApplicationError(
            f"The adapter says its base is {declared!r}, but the run trained "
            f"{run.base_model.model_id!r}."
        )
    hashes = sha256_tree(adapter_dir)
    with transaction.atomic():
        existing = Checkpoint.objects.filter(run=run).first()
        if existing is not None:
            return existing
        checkpoint = Checkpoint(
            name=checkpoint_name_for_run(run),
            kind=Checkpoint.Kind.REWARD if run.method == "rm" else Checkpoint.Kind.ADAPTER,
            base_model=run.base_model,
            run=run,
            dataset_version=run.dataset_version,
            method=run.method,
            local_path=str(adapter_dir.resolve()),
            sha256=hashes,
            metrics=metrics or {},
        )
        checkpoint.full_clean()
        checkpoint.save()
    return checkpoint


def checkpoint_register_base(*, base_model: BaseModel) -> Checkpoint:
    """A checkpoint for the base model served without an adapter (published at once), so that
    experiments and aliases can point at "no fine-tune" too."""
    with transaction.atomic():
        checkpoint, _ = Checkpoint.objects.get_or_create(
            name=f"base-{base_model.name}",
            defaults={
                "kind": Checkpoint.Kind.BASE,
                "base_model": base_model,
                "status": Checkpoint.Status.PUBLISHED,
                "published_at": timezone.now(),
            },
        )
    return checkpoint


def base_model_serve(*, base_model: BaseModel, alias: str = "", user: Any = None) -> Checkpoint:
    """Serve a base model as it is (no adapter): its base checkpoint is registered and published
    (again, if it was retired), and ALIAS, if given, points at it. The gateway then answers with
    the base before any training, so base vs first checkpoint can be A/B-tested from day one."""
    if alias:
        _validate_alias_name(alias)
    checkpoint = checkpoint_register_base(base_model=base_model)
    if checkpoint.status != Checkpoint.Status.PUBLISHED:
        checkpoint = checkpoint_publish(checkpoint=checkpoint, user=user)
    if alias:
        alias_set(name=alias, checkpoint=checkpoint, user=user, reason="serve the base model")
    return checkpoint


def checkpoint_publish(
    *, checkpoint: Checkpoint, alias: str = "", user: Any = None, reason: str = ""
) -> Checkpoint:
    """Copy the adapter into the artifact store, check its files against the sha256 recorded at
    registration, load it into vLLM where VLLM_URL is set, mark it `published` and, with ALIAS,
    point that alias at it. Publishing again re-copies and re-loads (idempotent)."""
    if alias:
        _validate_alias_name(alias)
    if checkpoint.kind == Checkpoint.Kind.REWARD:
        raise ApplicationError(
            f"{checkpoint.name} is a reward model: it judges replies and is not served; "
            "register it as a judge instead."
        )
    if alias:
        # Upper apps may require something first (judges: a passed offline gate); each check
        # raises ApplicationError to refuse, or returns a note for the alias history.
        notes = [note for check in PUBLISH_CHECKS if (note := check(checkpoint, alias))]
        reason = "; ".join([reason or "published", *notes])
    if checkpoint.kind == Checkpoint.Kind.ADAPTER:
        source = Path(checkpoint.local_path)
        if not source.is_dir():
            raise ApplicationError(
                f"The adapter folder {source} of {checkpoint.name} is gone; it cannot be published."
            )
        if sha256_tree(source) != checkpoint.sha256:
            raise ApplicationError(
                f"The files in {source} no longer match the sha256 recorded for {checkpoint.name}."
            )
        stored = artifact_store().put_dir(source, checkpoint.name)
        if vllm.vllm_url():
            vllm.load_adapter(name=checkpoint.name, path=stored.path)
        artifact_uri = stored.uri
    else:
        artifact_uri = ""
    with transaction.atomic():
        row = Checkpoint.objects.select_for_update().get(pk=checkpoint.pk)
        if row.status != Checkpoint.Status.PUBLISHED or row.published_at is None:
            row.published_at = timezone.now()
        row.status = Checkpoint.Status.PUBLISHED
        row.artifact_uri = artifact_uri
        row.full_clean()
        row.save(update_fields=["status", "artifact_uri", "published_at"])
        if alias:
            alias_set(name=alias, checkpoint=row, user=user, reason=reason or "published")
    return row


def checkpoint_retire(*, checkpoint: Checkpoint, user: Any = None) -> Checkpoint:
    """Take a checkpoint out of serving. Refused while an alias points at it: move the alias
    first, so that nothing served disappears by accident."""
    with transaction.atomic():
        row = Checkpoint.objects.select_for_update().get(pk=checkpoint.pk)
        pointing = list(Alias.objects.filter(checkpoint=row).values_list("name", flat=True))
        if pointing:
            raise ApplicationError(
                f"{row.name} is still the target of {', '.join(pointing)}; move "
                f"{'that alias' if len(pointing) == 1 else 'those aliases'} first.",
                code="in_use",
                status_code=409,
            )
        if row.kind == Checkpoint.Kind.ADAPTER and row.status == "published" and vllm.vllm_url():
            vllm.unload_adapter(name=row.name)
        row.status = Checkpoint.Status.RETIRED
        row.save(update_fields=["status"])
    return row


def _validate_alias_name(name: str) -> None:
    try:
        validate_slug(name)
    except ValidationError as exc:
        raise _invalid("alias", "use letters, digits, hyphens and underscores") from exc
    if len(name) > 100:
        raise _invalid("alias", "at most 100 characters")


def alias_set(*, name: str, checkpoint: Checkpoint, user: Any = None, reason: str = "") -> Alias:
    """Point alias NAME at CHECKPOINT (creating the alias), recording the move. Only published
    checkpoints can be served; pointing an alias where it already points changes nothing."""
    _validate_alias_name(name)
    checkpoint = Checkpoint.objects.get(pk=checkpoint.pk)  # its status now, not when it was read
    if checkpoint.status != Checkpoint.Status.PUBLISHED:
        raise _invalid("checkpoint", f"{checkpoint.name} is {checkpoint.status}; publish it first")
    return _move(name=name, checkpoint=checkpoint, user=user, reason=reason, is_rollback=False)


def _move(*, name: str, checkpoint: Checkpoint, user: Any, reason: str, is_rollback: bool) -> Alias:
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(name=name).first()
        if alias is not None and alias.checkpoint_id == checkpoint.pk:
            return alias
        previous = alias.checkpoint if alias is not None else None
        if alias is None:
            alias = Alias(name=name, checkpoint=checkpoint)
        alias.checkpoint = checkpoint
        alias.updated_at = timezone.now()
        alias.full_clean()
        alias.save()
        AliasMove.objects.create(
            alias=alias,
            from_checkpoint=previous,
            to_checkpoint=checkpoint,
            reason=reason[:500],
            user=user if getattr(user, "pk", None) else None,
            is_rollback=is_rollback,
        )
    return alias


def alias_rollback_target(alias: Alias) -> Checkpoint | None:
    """The checkpoint a rollback would move ALIAS to: the source of the newest move that no
    rollback has undone yet (so rolling back twice goes two steps back, like undo)."""
    pending_undos = 0
    for move in alias.moves.select_related("from_checkpoint").order_by("-id"):
        if move.is_rollback:
            pending_undos += 1
        elif pending_undos:
            pending_undos -= 1
        else:
            return move.from_checkpoint
    return None


def alias_rollback(*, name: str, user: Any = None, reason: str = "") -> Alias:
    """Move alias NAME back to where it pointed before its last move (recorded as a move)."""
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(name=name).first()
        if alias is None:
            raise ApplicationError(
                f"There is no alias {name!r}.", code="not_found", status_code=404
            )
        target = alias_rollback_target(alias)
        if target is None:
            raise ApplicationError(f"{name} has no earlier checkpoint to roll back to.")
        if target.status != Checkpoint.Status.PUBLISHED:
            raise ApplicationError(
                f"{name} would roll back to {target.name}, which is {target.status}; publish it first."
            )
        return _move(
            name=name, checkpoint=target, user=user, reason=reason or "rollback", is_rollback=True
        )
