"""A benchmark's own PostgreSQL database beside the server's default one: made and migrated
once, then reused (each benchmark checks that it still holds the data it loaded)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def database_url(base_url: str, name: str) -> str:
    """The URL of database NAME on the server that BASE_URL points at."""
    return base_url.rsplit("/", 1)[0] + "/" + name


def migrated_database(base_url: str, name: str) -> str:
    """Database NAME on BASE_URL's server, created if missing and migrated; its URL."""
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(base_url, name)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    return url
