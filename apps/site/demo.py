"""Demo pages: `/demo/widget` is a pretend chat app that embeds the feedback widget, so that
`make run` shows the widget working with nothing to configure.

The page needs a publishable key for a source that allows the page's own origin. It uses the
source `demo-widget` (created on first view), adds the origin the page was asked for to its
`allowed_origins`, and issues a publishable key. Keys are stored hashed and shown once, so the
raw key is kept in SINKHOLE_DATA_DIR/demo-widget-key (mode 0600) and reused while it is valid.
A publishable key is public by design (it sits in the page), so keeping it is no leak.

Demo pages change data (a source, a key, an allowed origin), so they are on only where that is
wanted: with DEBUG, or when Sinkhole runs embedded (no DATABASE_URL); a distributed deployment
turns them on with SINKHOLE_DEMO_PAGES=true. Elsewhere they answer 404."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.sources.models import ApiKey, Source
from apps.sources.selectors import api_key_by_raw
from apps.sources.services import api_key_issue, source_create

DEMO_WIDGET_SOURCE = "demo-widget"
DEMO_WIDGET_KEY_FILE = "demo-widget-key"

# What the pretend chat has already said when the page opens: a reply worth a thumbs-down, two
# replies to compare, and a reply worth a thumbs-up.
DEMO_CONVERSATION = [
    {
        "user": "What is the capital of Australia?",
        "reply": "The capital of Australia is Sydney, its largest city.",
        "model": "llama3.1:8b",
    },
    {
        "user": "Write a haiku about autumn leaves.",
        "compare": [
            {
                "content": "Red leaves let go now;\nthe maple counts what it lost.\nWind keeps no ledger.",
                "model": "llama3.1:8b",
            },
            {
                "content": "Autumn leaves falling\ndown and down onto the ground.\nLeaves are falling down.",
                "model": "qwen2.5:7b",
            },
        ],
    },
    {
        "user": "How do I reverse a list in Python?",
        "reply": "items[::-1] gives a reversed copy; items.reverse() reverses the list in place.",
        "model": "qwen2.5:7b",
    },
]


def demo_pages_enabled() -> bool:
    """settings.SINKHOLE_DEMO_PAGES: by default on with DEBUG or in embedded mode."""
    return bool(settings.SINKHOLE_DEMO_PAGES)


def _demo_source(*, origin: str) -> tuple[Source, str | None]:
    """The `demo-widget` source, allowing ORIGIN; with a fresh publishable key if just created."""
    source = Source.objects.select_for_update().filter(name=DEMO_WIDGET_SOURCE).first()
    if source is None:
        try:
            with transaction.atomic():
                source, _secret, publishable = source_create(
                    name=DEMO_WIDGET_SOURCE,
                    description="The demo chat page at /demo/widget (publishable key only in use).",
                    allowed_origins=[origin],
                )
            return source, publishable.raw
        except IntegrityError:  # another request created it first
            source = Source.objects.select_for_update().get(name=DEMO_WIDGET_SOURCE)
    if origin not in source.allowed_origins:
        source.allowed_origins = [*source.allowed_origins, origin]
        source.full_clean()
        source.save(update_fields=["allowed_origins"])
    return source, None


@transaction.atomic
def demo_widget_key_issue(*, origin: str, data_dir: Path) -> str:
    """A raw publishable key of the `demo-widget` source that works from ORIGIN: the one kept
    in DATA_DIR while it is still valid, else a new one (then kept there)."""
    source, raw = _demo_source(origin=origin)
    key_file = data_dir / DEMO_WIDGET_KEY_FILE
    if raw is None:
        try:
            kept = key_file.read_text().strip()
        except FileNotFoundError:
            kept = ""
        key = api_key_by_raw(kept) if kept else None
        if key is not None and key.source_id == source.pk and key.kind == ApiKey.Kind.PUBLISHABLE:
            return kept
        raw = api_key_issue(source=source, kind=ApiKey.Kind.PUBLISHABLE).raw
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(raw)
    return raw


@require_GET
def widget_demo(request: HttpRequest) -> HttpResponse:
    """A pretend chat app with the widget on every reply and an A/B comparison."""
    if not demo_pages_enabled():
        raise Http404("Demo pages are off here (SINKHOLE_DEMO_PAGES).")
    origin = f"{request.scheme}://{request.get_host()}"
    key = demo_widget_key_issue(origin=origin, data_dir=Path(settings.DATA_DIR))
    return render(
        request,
        "demo/widget.html",
        {
            "key": key,
            "endpoint": origin,
            "source_name": DEMO_WIDGET_SOURCE,
            "conversation": DEMO_CONVERSATION,
        },
    )
