"""The quality pipeline's knobs. Each is read as `settings.QUALITY_<NAME>` when the settings module
defines it (from the environment, like every setting) and falls back to the default here."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # velocity: events per rater / per client address / per source in a sliding window; 0 = off.
    # Addresses are off by default: a front-end that posts from its server sends every user's
    # feedback from one address. Turn them on where events come straight from browsers.
    "RATER_PER_MINUTE": 20,
    "RATER_PER_HOUR": 300,
    "IP_PER_MINUTE": 0,
    "IP_PER_HOUR": 0,
    "SOURCE_PER_MINUTE": 0,
    "SOURCE_PER_HOUR": 0,
    # floods: the same or nearly the same comment from several raters within a window
    "FLOOD_WINDOW_SECONDS": 6 * 3600,
    "FLOOD_MIN_RATERS": 4,
    "FLOOD_MIN_REPEATS": 4,
    "FLOOD_MIN_CHARS": 24,
    "FLOOD_MIN_WORDS": 4,
    "FLOOD_MAX_DISTANCE": 3,  # SimHash bits; at most 3 so that one of four 16-bit bands matches
    # rater reputation
    "DAILY_VOTE_CAP": 300,
    "OUTLIER_ALPHA": 0.05,
    "OUTLIER_MIN_PAIR_VOTES": 20,
    "OUTLIER_MIN_RATER_VOTES": 10,
    "LOW_TRUST": 0.25,
    "LOW_TRUST_MIN_EVENTS": 10,
    # the learned classifier
    "CLASSIFIER_REJECT": 0.98,
    "RETRAIN_MIN_NEW_LABELS": 20,
    # judging
    "BATCH_SIZE": 1000,
}


def get(name: str) -> Any:
    return getattr(settings, f"QUALITY_{name}", DEFAULTS[name])
