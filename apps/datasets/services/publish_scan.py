"""The last check before a dataset version is published: its output rows are scanned for
secrets and payment cards (apps.feedback.redaction.SECRET_KINDS). Events are redacted on the
way in, but a source may opt out, a curator's gold reply or edit is written later, and an event
may predate a pattern; a version with any such row is refused, and the build's error lists where."""

from __future__ import annotations

from pathlib import Path

from apps.feedback.redaction import find_secrets

SPLIT_FILES = ("train.jsonl", "test.jsonl")
MAX_LISTED = 20


class SecretsInDataset(ValueError):
    """The build found secrets or cards in its rows; the message lists them (file, line, kinds)."""


def scan_rows_for_secrets(folder: Path) -> list[str]:
    """Where the version's JSONL rows hold a secret or card: `train.jsonl:12 card_number`."""
    found = []
    for name in SPLIT_FILES:
        path = folder / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as rows:
            for number, line in enumerate(rows, start=1):
                kinds = find_secrets(line)
                if kinds:
                    found.append(f"{name}:{number} {', '.join(sorted(kinds))}")
    return found


def refuse_rows_with_secrets(folder: Path) -> None:
    """Raise SecretsInDataset when the version's rows hold a secret or a card."""
    found = scan_rows_for_secrets(folder)
    if found:
        listed = "; ".join(found[:MAX_LISTED])
        more = f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        raise SecretsInDataset(
            f"not published: {len(found)} row(s) hold a secret or a payment card "
            f"({listed}{more}); redact them at the source or exclude those events"
        )
