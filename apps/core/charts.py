"""Charts as inline SVG, drawn on the server.

Pages show charts without a JavaScript charting library: each function returns a SafeString of
one `<svg>` element that scales to its container. Every label and series name goes through
`escape`, so names that come from users (models, sources, tags) are text, never markup.

- `line_chart(series)`: one or more lines over numbers or dates (loss curves, daily rates).
- `bar_chart(bars)`: one bar per label (counts).
- `interval_chart(rows)`: a point with its interval per row (ratings with confidence intervals,
  rates with Wilson intervals), best first as given.

Colours come from one palette; the stroke and text colours follow the page's CSS (`currentColor`
and the `--muted`/`--line` custom properties of app.css)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#3b6fe0", "#e0663b", "#2e9d6a", "#a04fd1", "#d1a23b", "#3bb3d1", "#d13b7a", "#6b7280"]


def _x_value(x: Any) -> float:
    if isinstance(x, datetime):
        return x.timestamp()
    if isinstance(x, date):
        return datetime(x.year, x.month, x.day).timestamp()
    return float(x)


def _x_label(x: Any) -> str:
    if isinstance(x, datetime):
        return x.strftime("%m-%d %H:%M")
    if isinstance(x, date):
        return x.strftime("%Y-%m-%d")
    return _number(x)


def _number(v: float) -> str:
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e9):
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _svg(width: int, height: int, body: Iterable[str], title: str) -> SafeString:
    label = f' aria-label="{escape(title)}"' if title else ""
    return mark_safe(  # noqa: S308 - every piece of text inside was escaped where it was made
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img"{label} '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" '
        f'font-size="11" font-family="system-ui, sans-serif">'
        + (f"<title>{escape(title)}</title>" if title else "")
        + "".join(body)
        + "</svg>"
    )


def _empty(width: int, height: int, title: str) -> SafeString:
    return _svg(
        width,
        height,
        [
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
            f'fill="var(--muted, #6b7280)">No data yet</text>'
        ],
        title,
    )


def line_chart(
    series: Sequence[dict[str, Any]],
    *,
    x_label: str = "",
    y_label: str = "",
    width: int = 640,
    height: int = 240,
    y_min: float | None = None,
    y_max: float | None = None,
    title: str = "",
) -> SafeString:
    """SERIES: [{"name": str, "points": [(x, y), ...]}]; x numbers, dates or datetimes (not
    mixed), y numbers (None leaves a gap). A legend is drawn when there is more than one line."""
    pts = [(x, y) for s in series for x, y in s.get("points", []) if y is not None]
    if not pts:
        return _empty(width, height, title)
    left, right, top, bottom = 56, 16, 14 + (16 if len(series) > 1 else 0), 36
    xs = [_x_value(x) for x, _ in pts]
    ys = [float(y) for _, y in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    yt = nice_ticks(min(ys) if y_min is None else y_min, max(ys) if y_max is None else y_max)
    y0, y1 = yt[0], yt[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * plot_w

    def sy(v: float) -> float:
        return top + plot_h - (v - y0) / ((y1 - y0) or 1) * plot_h

    body = []
    for t in yt:
        y = sy(t)
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="var(--line, #e5e7eb)"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="var(--muted, #6b7280)">'
            f"{escape(_number(t))}</text>"
        )
    # Up to six x labels, taken from the data's own x values.
    raw_x = sorted({x for x, _ in pts}, key=_x_value)
    stride = max(1, math.ceil(len(raw_x) / 6))
    for x in raw_x[::stride]:
        body.append(
            f'<text x="{sx(_x_value(x)):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'fill="var(--muted, #6b7280)">{escape(_x_label(x))}</text>'
        )
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for x, y in sorted(s.get("points", []), key=lambda p: _x_value(p[0])):
            if y is None:
                segments.append([])
                continue
            segments[-1].append(f"{sx(_x_value(x)):.1f},{sy(float(y)):.1f}")
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            elif seg:
                body.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                    f'stroke-linejoin="round" points="{" ".join(seg)}"/>'
                )
        if len(series) > 1:
            lx = left + (i % 4) * (plot_w / 4)
            ly = 12 + (i // 4) * 14
            body.append(
                f'<rect x="{lx:.1f}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
                f'<text x="{lx + 14:.1f}" y="{ly + 1}" fill="currentColor">'
                f"{escape(str(s.get('name', ''))[:40])}</text>"
            )
    if x_label:
        body.append(
            f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" '
            f'fill="var(--muted, #6b7280)">{escape(x_label)}</text>'
        )
    if y_label:
        body.append(
            f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" '
            f'fill="var(--muted, #6b7280)">{escape(y_label)}</text>'
        )
    return _svg(width, height, body, title)


def bar_chart(
    bars: Sequence[tuple[str, float]] | Sequence[dict[str, Any]],
    *,
    width: int = 640,
    height: int = 240,
    y_label: str = "",
    title: str = "",
) -> SafeString:
    """BARS: [(label, value)] or [{"label", "value"}], drawn left to right as given."""
    rows = [(b["label"], b["value"]) if isinstance(b, dict) else b for b in bars]
    if not rows:
        return _empty(width, height, title)
    left, right, top, bottom = 56, 10, 12, 40
    yt = nice_ticks(min(0.0, *(float(v) for _, v in rows)), max(float(v) for _, v in rows))
    y0, y1 = yt[0], yt[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def sy(v: float) -> float:
        return top + plot_h - (v - y0) / ((y1 - y0) or 1) * plot_h

    body = []
    for t in yt:
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
            f'stroke="var(--line, #e5e7eb)"/><text x="{left - 6}" y="{sy(t) + 4:.1f}" '
            f'text-anchor="end" fill="var(--muted, #6b7280)">{escape(_number(t))}</text>'
        )
    slot = plot_w / len(rows)
    stride = max(1, math.ceil(len(rows) / 12))
    for i, (label, value) in enumerate(rows):
        x = left + i * slot + slot * 0.15
        top_y, base_y = sorted((sy(float(value)), sy(0.0)))
        body.append(
            f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{max(base_y - top_y, 0.5):.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(str(label))}: {escape(_number(float(value)))}</title></rect>"
        )
        if i % stride == 0:
            body.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                f'fill="var(--muted, #6b7280)">{escape(str(label)[:16])}</text>'
            )
    if y_label:
        body.append(
            f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" '
            f'fill="var(--muted, #6b7280)">{escape(y_label)}</text>'
        )
    return _svg(width, height, body, title)


def interval_chart(
    rows: Sequence[dict[str, Any]],
    *,
    width: int = 640,
    row_height: int = 22,
    x_label: str = "",
    title: str = "",
) -> SafeString:
    """ROWS: [{"label", "value", "lower", "upper"}] (a row may add "muted": True to grey it, e.g.
    an unreliable rating). One line per row: the interval as a bar, the value as a dot."""
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return _empty(width, 80, title)
    left, right, top, bottom = 170, 16, 8, 34
    height = top + bottom + row_height * len(rows)
    lows = [float(r.get("lower", r["value"])) for r in rows]
    highs = [float(r.get("upper", r["value"])) for r in rows]
    xt = nice_ticks(min(lows), max(highs))
    x0, x1 = xt[0], xt[-1]
    plot_w = width - left - right

    def sx(v: float) -> float:
        return left + (v - x0) / ((x1 - x0) or 1) * plot_w

    body = []
    for t in xt:
        body.append(
            f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{height - bottom}" '
            f'stroke="var(--line, #e5e7eb)"/><text x="{sx(t):.1f}" y="{height - bottom + 14}" '
            f'text-anchor="middle" fill="var(--muted, #6b7280)">{escape(_number(t))}</text>'
        )
    for i, (r, lo, hi) in enumerate(zip(rows, lows, highs, strict=True)):
        y = top + i * row_height + row_height / 2
        colour = "#9ca3af" if r.get("muted") else PALETTE[0]
        body.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="currentColor">'
            f"{escape(str(r['label'])[:28])}</text>"
            f'<line x1="{sx(lo):.1f}" x2="{sx(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-width="4" stroke-linecap="round" opacity="0.45"/>'
            f'<circle cx="{sx(float(r["value"])):.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
            f"<title>{escape(str(r['label']))}: {escape(_number(float(r['value'])))} "
            f"[{escape(_number(lo))}, {escape(_number(hi))}]</title></circle>"
        )
    if x_label:
        body.append(
            f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" '
            f'fill="var(--muted, #6b7280)">{escape(x_label)}</text>'
        )
    return _svg(width, height, body, title)
