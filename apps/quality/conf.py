"""The quality pipeline's knobs: `settings.QUALITY_<NAME>`, each declared once, with its default
and meaning, in config/settings.py (and documented in docs/configuration.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def get(name: str) -> Any:
    """The knob NAME (`RATER_PER_MINUTE` reads `settings.QUALITY_RATER_PER_MINUTE`)."""
    return getattr(settings, f"QUALITY_{name}")
