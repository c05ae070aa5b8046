"""Writes of the feedback app: `ingest` (the hot path) and `normalize` (derived rows)."""
