"""Writes of the site app. `sinkhole_bootstrap` turns an empty database into a working demo:
an admin account, a `demo` source with its keys, and real sample feedback to look at.

`manage.py serve` (the `make run` target) calls it on every start; it only ever adds what is
missing, so a restart changes nothing. Secrets that are shown once (the admin password, the
demo keys) are also kept in files of mode 0600 in the data folder, so that a restart can say
where they are instead of losing them."""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from apps.feedback.services.importing import feedback_import
from apps.sources.models import Source
from apps.sources.selectors import api_key_by_raw
from apps.sources.services import source_create

logger = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"
DEMO_SOURCE = "demo"
ARENA_LOG_SOURCE = "demo-arena-log"
RESEARCH_LOG_FORMATS = {"fastchat"}  # samples that are research logs, judged by their policy
ADMIN_PASSWORD_FILE = "admin-password"  # noqa: S105 (a file name, not a password)
DEMO_KEYS_FILE = "demo-keys.json"

# Real, openly licensed feedback in the formats the importers read (see ../shared/data/README.md):
# (format, file under ../shared/data, its small slice in tests/fixtures).
SHARED_DATA = Path(settings.BASE_DIR).parent / "shared" / "data"
FIXTURES = Path(settings.BASE_DIR) / "tests" / "fixtures"
SHIPPED = Path(__file__).resolve().parent / "sample_data"
SAMPLE_FILES: tuple[tuple[str, str, str], ...] = (
    (
        "openwebui",
        "formats/openwebui_feedback_export_example.json",
        "importers/openwebui_feedback_export.json",
    ),
    ("hh-rlhf", "formats/hh_rlhf_harmless_sample.jsonl", "importers/hh_rlhf_harmless.jsonl"),
    ("oasst", "formats/oasst_tree_sample.jsonl", "importers/oasst_trees.jsonl"),
    ("fastchat", "battles/prd_vicuna80_human_battles.jsonl", "importers/fastchat_battles.jsonl"),
)
# The slices that ship inside the package, for a clone without ../shared (apps/site/sample_data).
SHIPPED_FILES = {
    "hh-rlhf": "hh_rlhf_harmless_sample.jsonl",
    "oasst": "oasst_tree_sample.jsonl",
    "fastchat": "prd_vicuna80_battles_slice.jsonl",
}


@dataclass(frozen=True)
class SampleFile:
    format: str
    path: Path


@dataclass(frozen=True)
class AdminAccount:
    username: str
    created: bool
    password: str | None  # only when created by this call
    password_file: Path | None  # where the first password was saved, if that file is still there


@dataclass(frozen=True)
class DemoSource:
    name: str
    created: bool
    # secret_key: known when created now, or read back from the keys file while still valid
    secret_key: str | None
    publishable_key: str | None
    keys_file: Path | None


@dataclass(frozen=True)
class SampleImport:
    format: str
    path: Path
    imported: int = 0
    duplicate: int = 0
    rejected: int = 0
    skipped: int = 0
    first_reasons: list[str] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class BootstrapResult:
    admin: AdminAccount | None  # None: users exist but none is called `admin`
    demo: DemoSource | None  # None: the database has other sources and no `demo`
    samples: list[SampleImport]


def sample_files(
    *, shared_data: Path = SHARED_DATA, fixtures: Path = FIXTURES, shipped: Path = SHIPPED
) -> list[SampleFile]:
    """The sample feedback to load: each file of ../shared/data where this checkout has it,
    else its slice shipped in apps/site/sample_data (tests/fixtures for the Open WebUI example),
    else nothing for that format."""
    found = []
    for format_name, shared_file, fixture_file in SAMPLE_FILES:
        candidates = [shared_data / shared_file]
        if format_name in SHIPPED_FILES:
            candidates.append(shipped / SHIPPED_FILES[format_name])
        candidates.append(fixtures / fixture_file)
        for candidate in candidates:
            if candidate.is_file():
                found.append(SampleFile(format_name, candidate))
                break
    return found


def sinkhole_bootstrap(
    *,
    data_dir: Path,
    samples: Sequence[SampleFile] | None = None,
    progress: Callable[[int], Any] | None = None,
) -> BootstrapResult:
    """Make sure there is a way in and something to look at; add only what is missing.

    - no user at all: create the superuser `admin` with a random password, saved to
      DATA_DIR/admin-password (0600);
    - no source at all: create the source `demo`, keys saved to DATA_DIR/demo-keys.json (0600);
    - the `demo` source has no events: import SAMPLES into it (default: `sample_files()`;
      pass `[]` to load none). A file that fails to import is reported, not raised, so that a
      broken sample never stops the product from starting."""
    data_dir.mkdir(parents=True, exist_ok=True)
    admin = _ensure_admin(data_dir)
    demo = _ensure_demo_source(data_dir)
    loaded: list[SampleImport] = []
    if demo is not None:
        source = Source.objects.get(name=demo.name)
        if not source.events.exists():
            files = sample_files() if samples is None else list(samples)
            loaded = [_import_sample(source, sample, progress) for sample in files]
    return BootstrapResult(admin=admin, demo=demo, samples=loaded)


def _ensure_admin(data_dir: Path) -> AdminAccount | None:
    user_model = get_user_model()
    password_file = data_dir / ADMIN_PASSWORD_FILE
    with transaction.atomic():
        if not user_model.objects.exists():
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser(
                username=ADMIN_USERNAME, email="", password=password
            )
            _write_private(password_file, password + "\n")
            logger.info("admin account created", extra={"username": ADMIN_USERNAME})
            return AdminAccount(ADMIN_USERNAME, True, password, password_file)
    if not user_model.objects.filter(username=ADMIN_USERNAME).exists():
        return None
    return AdminAccount(
        ADMIN_USERNAME, False, None, password_file if password_file.is_file() else None
    )


def _ensure_demo_source(data_dir: Path) -> DemoSource | None:
    keys_file = data_dir / DEMO_KEYS_FILE
    with transaction.atomic():
        if not Source.objects.exists():
            source, secret, publishable = source_create(
                name=DEMO_SOURCE,
                description="Sample feedback loaded by `manage.py serve` on first start. Safe to delete.",
            )
            keys = {
                "source": source.name,
                "secret_key": secret.raw,
                "publishable_key": publishable.raw,
            }
            _write_private(keys_file, json.dumps(keys, indent=2) + "\n")
            logger.info("demo source created", extra={"source": source.name})
            return DemoSource(source.name, True, secret.raw, publishable.raw, keys_file)
    if not Source.objects.filter(name=DEMO_SOURCE).exists():
        return None
    secret_key = publishable_key = None
    try:
        saved = json.loads(keys_file.read_text())
    except (OSError, ValueError):
        saved = {}
    for kind, raw in (
        ("secret_key", saved.get("secret_key")),
        ("publishable_key", saved.get("publishable_key")),
    ):
        key = api_key_by_raw(raw) if isinstance(raw, str) else None
        if key is not None and key.source.name == DEMO_SOURCE:
            if kind == "secret_key":
                secret_key = raw
            else:
                publishable_key = raw
    return DemoSource(
        DEMO_SOURCE, False, secret_key, publishable_key, keys_file if keys_file.is_file() else None
    )


def _research_log_source() -> Source:
    """The source the sample arena log goes into: a research log, judged under its own policy
    (no per-rater volume limits: three annotators cast all of its votes)."""
    source = Source.objects.filter(name=ARENA_LOG_SOURCE).first()
    if source is None:
        source, _, _ = source_create(
            name=ARENA_LOG_SOURCE, description="The sample FastChat arena log (research data)"
        )
        source.daily_vote_cap = 0
        source.full_clean()
        source.save(update_fields=["daily_vote_cap"])
    return source


def _import_sample(
    source: Source, sample: SampleFile, progress: Callable[[int], Any] | None
) -> SampleImport:
    if sample.format in RESEARCH_LOG_FORMATS:
        source = _research_log_source()
    try:
        summary = feedback_import(
            source=source, format=sample.format, path=sample.path, progress=progress
        )
    except Exception as exc:  # a broken sample is reported; the product still starts
        logger.exception(
            "sample import failed", extra={"path": str(sample.path), "format": sample.format}
        )
        return SampleImport(sample.format, sample.path, error=f"{exc.__class__.__name__}: {exc}")
    return SampleImport(
        sample.format,
        sample.path,
        imported=summary.imported,
        duplicate=summary.duplicate,
        rejected=summary.rejected,
        skipped=summary.skipped,
        first_reasons=list(summary.first_reasons),
    )


def _write_private(path: Path, text: str) -> None:
    """Write TEXT to PATH, readable by its owner only (also when the file was already there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
