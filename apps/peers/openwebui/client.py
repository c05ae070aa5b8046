"""Talking to an Open WebUI server: its feedback export, as a byte stream.

`GET <base>/api/v1/evaluations/feedbacks/all/export` with `Authorization: Bearer <token>` (an
admin's API key or session token) answers a JSON array of feedback records. The answer is
streamed, never held whole: exports with chat snapshots get large. Redirects are refused
rather than followed, so that the token is never replayed to another address."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

EXPORT_PATH = "/api/v1/evaluations/feedbacks/all/export"
TIMEOUT_S = 60.0
USER_AGENT = "sinkhole-openwebui-connector/1"


class OpenWebUIError(Exception):
    """The server could not be asked, or did not answer with an export; the message says why."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        raise OpenWebUIError(
            f"Open WebUI answered {code} and redirected to {newurl}: set the connector's URL "
            "to the server's final address (the token is not sent on to a redirect)"
        )


_opener = urllib.request.build_opener(_NoRedirects)


def export_url(base_url: str) -> str:
    return base_url.rstrip("/") + EXPORT_PATH


@contextmanager
def open_export(base_url: str, token: str, *, timeout: float = TIMEOUT_S) -> Iterator[BinaryIO]:
    """The export's body as a binary stream; raises `OpenWebUIError` with a reason a person
    can act on (wrong token, wrong URL, not JSON, unreachable)."""
    url = export_url(base_url)
    if not url.startswith(("http://", "https://")):
        raise OpenWebUIError(f"{base_url!r} is not an http:// or https:// URL")
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked: http(s) only
        url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
    )
    try:
        response = _opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise OpenWebUIError(_http_reason(exc.code, url)) from exc
    except urllib.error.URLError as exc:
        raise OpenWebUIError(f"could not reach {url}: {exc.reason}") from exc
    except (TimeoutError, OSError) as exc:
        raise OpenWebUIError(f"could not reach {url}: {exc}") from exc
    with response:
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type:
            raise OpenWebUIError(
                f"{url} answered {content_type or 'no content type'}, not JSON: is the URL the "
                "Open WebUI server's root?"
            )
        yield response


def _http_reason(code: int, url: str) -> str:
    if code in (401, 403):
        return (
            f"Open WebUI refused the token (HTTP {code}): the export needs an admin's API key "
            "or token"
        )
    if code == 404:
        return f"no feedback export at {url} (HTTP 404): is this Open WebUI 0.4 or later, and the URL its root?"
    return f"Open WebUI answered HTTP {code} for {url}"
