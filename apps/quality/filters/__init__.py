"""The filters, one module each, all of one shape (see `base`). The order is the order in which
they run and in which their reasons are listed among equals."""

from __future__ import annotations

from functools import cache
from importlib import import_module

from apps.quality.filters.base import Filter

FILTER_MODULES = (
    "unreadable",
    "hold",
    "junk",
    "advertising",
    "arena",
    "classifier",
    "flood",
    "velocity",
    "reputation",
)


@cache
def registry() -> dict[str, Filter]:
    found = {}
    for module in FILTER_MODULES:
        instance: Filter = import_module(f"apps.quality.filters.{module}").FILTER
        found[instance.name] = instance
    return found


def get_filters(names: list[str] | tuple[str, ...] | None = None) -> list[Filter]:
    """The filters named (all when NAMES is empty), in running order; an unknown name is an error."""
    every = registry()
    if not names:
        return list(every.values())
    unknown = sorted(set(names) - set(every))
    if unknown:
        raise ValueError(f"unknown filter {', '.join(unknown)}; the filters are {', '.join(every)}")
    return [f for name, f in every.items() if name in names]
