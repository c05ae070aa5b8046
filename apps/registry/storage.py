"""The artifact store that publishing copies adapters into.

Two kinds behind one interface (`ArtifactStore.put_dir`):

- `LocalStore` (the default): a folder, `ARTIFACT_ROOT/adapters/<name>/`. The URI is
  `file://<absolute path>` and the path is what a vLLM on the same machine (or with the folder
  mounted) loads.
- `S3Store`, chosen when `ARTIFACT_S3_URL` is set (`s3://bucket/prefix`, any S3-compatible
  service; `ARTIFACT_S3_ENDPOINT_URL` for MinIO and friends, credentials from boto3's usual
  environment variables). It needs `boto3`, which is imported only when the store is used, so
  that a deployment without S3 does not need it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from django.conf import settings

from apps.core.exceptions import ApplicationError
from trainer.models import sha256_file  # the one implementation (plain Python, no torch)

__all__ = ["sha256_file", "sha256_tree"]


def sha256_tree(folder: Path) -> dict[str, str]:
    """{relative file name: sha256} of every file under FOLDER, sorted by name."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class StoredArtifact:
    uri: str  # where the store keeps it: file:///… or s3://…
    path: str  # what a serving engine loads (a local path, or the URI where there is none)


class ArtifactStore(Protocol):
    kind: str

    def put_dir(self, source: Path, name: str) -> StoredArtifact:
        """Copy the folder SOURCE to the store as NAME, replacing what was there."""


class LocalStore:
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put_dir(self, source: Path, name: str) -> StoredArtifact:
        target = self.root / "adapters" / name
        staging = target.with_name(f".{name}.partial")
        if staging.exists():
            shutil.rmtree(staging)
        staging.parent.mkdir(parents=True, exist_ok=True)
        # Copy beside the target, then swap: a reader never sees half an adapter.
        shutil.copytree(source, staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        resolved = target.resolve()
        return StoredArtifact(uri=resolved.as_uri(), path=str(resolved))


class S3Store:
    kind = "s3"

    def __init__(self, url: str, endpoint_url: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ApplicationError(
                f"ARTIFACT_S3_URL must look like s3://bucket/prefix, not {url!r}."
            )
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint_url = endpoint_url or None

    def put_dir(self, source: Path, name: str) -> StoredArtifact:
        try:
            import boto3  # optional: only S3 deployments install it
        except ImportError as exc:
            raise ApplicationError(
                "ARTIFACT_S3_URL is set but boto3 is not installed; `pip install boto3`.",
                code="store_unavailable",
                status_code=503,
            ) from exc
        client = boto3.client("s3", endpoint_url=self.endpoint_url)
        key_prefix = "/".join(p for p in (self.prefix, "adapters", name) if p)
        for path in sorted(source.rglob("*")):
            if path.is_file():
                client.upload_file(
                    str(path), self.bucket, f"{key_prefix}/{path.relative_to(source).as_posix()}"
                )
        uri = f"s3://{self.bucket}/{key_prefix}"
        return StoredArtifact(uri=uri, path=uri)


def artifact_store() -> ArtifactStore:
    """The store the settings name: S3 when ARTIFACT_S3_URL is set, else the local folder."""
    s3_url = settings.ARTIFACT_S3_URL
    if s3_url:
        return S3Store(s3_url, settings.ARTIFACT_S3_ENDPOINT_URL)
    return LocalStore(Path(settings.ARTIFACT_ROOT))
