"""Reading settings from the environment: strict parsing, loud failures, `*_FILE` secrets, and
no unknown variable of Sinkhole's own prefixes (`refuse_unknown`): every name read is noted."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# Every variable the settings module asked for, so that an unknown one can be told apart.
NAMES_READ: set[str] = set()


def env_str(name: str, default: str = "") -> str:
    """A string from NAME, or from the file NAME_FILE points at (for secrets), or the default."""
    NAMES_READ.update((name, f"{name}_FILE"))
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    NAMES_READ.add(name)
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off"
    )


def env_int(name: str, default: int) -> int:
    NAMES_READ.add(name)
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_float(name: str, default: float) -> float:
    NAMES_READ.add(name)
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    NAMES_READ.add(name)
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def refuse_unknown(*, prefixes: tuple[str, ...], also_known: Iterable[str] = ()) -> None:
    """Fail start-up on an environment variable that starts with one of PREFIXES but that
    nothing reads (neither the settings, through the functions above, nor ALSO_KNOWN): a typo
    would otherwise leave the default in force without a word."""
    known = NAMES_READ | set(also_known)
    for name in sorted(os.environ):
        if name.startswith(prefixes) and name not in known:
            nearest = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {nearest[0]}?" if nearest else ""
            raise ImproperlyConfigured(
                f"Unknown environment variable {name}: no setting reads it{hint} "
                "(docs/configuration.md lists every variable)"
            )


def persistent_secret(path: Path) -> str:
    """A random secret kept in a file (created 0600 on first use), so an unconfigured install is
    never running on a key that is printed in the source code."""
    import secrets

    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
