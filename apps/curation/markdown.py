"""Markdown from strangers, rendered safely.

markdown-it-py with raw HTML off (a `<script>` in the text stays the text "<script>"), then nh3
(an allow-list sanitizer) keeps only formatting tags; links keep only http, https and mailto
targets (a `javascript:` link loses its href and stays plain text), and open with
rel="nofollow noopener noreferrer". Images are dropped: no tracking pixels in a curator's
browser. Every other byte of user text is escaped."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import nh3
from django.utils.safestring import SafeString, mark_safe

TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
SCHEMES = ("http://", "https://", "mailto:")
MAX_CHARS = 200_000


@lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
        ["table", "strikethrough"]
    )


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    if tag == "a" and attribute == "href":
        return value if value.strip().lower().startswith(SCHEMES) else None
    return value


def render_markdown(text: str) -> SafeString:
    """TEXT (untrusted) as sanitized HTML."""
    if not isinstance(text, str) or not text:
        return mark_safe("")
    html = _parser().render(text[:MAX_CHARS])
    clean = nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags={"script", "style"},
        attributes={"a": {"href", "title"}, "code": set(), "th": {"align"}, "td": {"align"}},
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )
    return mark_safe(clean)  # noqa: S308 (sanitized by nh3 just above)
