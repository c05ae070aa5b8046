"""The SVG charts: well-formed, scaled to the data, and user text kept as text."""

from __future__ import annotations

from datetime import date
from xml.etree import ElementTree

from apps.core.charts import bar_chart, interval_chart, line_chart, nice_ticks

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # noqa: S314 - our own output


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(987, 1213)
    assert ticks[0] <= 987 and ticks[-1] >= 1213
    assert len({round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}) == 1


def test_line_chart_draws_one_polyline_per_series_and_escapes_names() -> None:
    svg = line_chart(
        [
            {"name": HOSTILE, "points": [(1, 2.0), (2, 1.5), (3, 1.0)]},
            {"name": "eval", "points": [(1, 2.2), (3, 1.4)]},
        ],
        x_label="step",
        y_label="loss",
    )
    root = parse(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 2
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert not root.findall(f".//{ns}script") and not root.findall(f".//{ns}img")


def test_line_chart_over_dates_and_gaps() -> None:
    svg = line_chart(
        [
            {
                "name": "up",
                "points": [
                    (date(2026, 1, 1), 0.5),
                    (date(2026, 1, 2), None),
                    (date(2026, 1, 3), 0.7),
                ],
            }
        ]
    )
    root = parse(svg)
    # The gap splits the line: two single points, drawn as dots.
    assert len(root.findall("{http://www.w3.org/2000/svg}circle")) == 2
    assert "2026-01-01" in svg


def test_empty_charts_say_so() -> None:
    for svg in (line_chart([]), bar_chart([]), interval_chart([])):
        assert "No data yet" in svg
        parse(svg)


def test_bar_and_interval_charts() -> None:
    bars = parse(bar_chart([("a", 3), ("b", 0), ("c", 7)]))
    heights = [float(r.get("height")) for r in bars.findall("{http://www.w3.org/2000/svg}rect")]
    assert heights[2] > heights[0] > heights[1]
    svg = interval_chart(
        [
            {"label": "m1", "value": 1100, "lower": 1080, "upper": 1120},
            {"label": HOSTILE, "value": 950, "lower": 900, "upper": 1000, "muted": True},
        ]
    )
    root = parse(svg)
    assert len(root.findall("{http://www.w3.org/2000/svg}circle")) == 2
    assert "<img" not in svg
