"""The widget as shipped: frontend/static/sinkhole/widget.js is the minified build of its source,
within its size budget, served where the README says, and free of HTML parsing of any text."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "frontend" / "widget" / "src" / "sinkhole-widget.js"
BUILT = ROOT / "frontend" / "static" / "sinkhole" / "widget.js"


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "widget_build", ROOT / "frontend" / "widget" / "build.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_widget_is_the_build_of_its_source() -> None:
    build = load_build()
    assert BUILT.read_text(encoding="utf-8") == build.build(), (
        "frontend/static/sinkhole/widget.js is stale: run .venv/bin/python frontend/widget/build.py"
    )


def test_the_built_widget_is_at_most_15_kb() -> None:
    size = BUILT.stat().st_size
    assert size <= 15 * 1024, f"the widget is {size} bytes"
    assert load_build().SIZE_LIMIT == 15 * 1024


def test_the_build_minifies_the_stylesheet_and_refuses_a_source_without_one() -> None:
    build = load_build()
    out = build.build("/*! x */\nconst CSS = `\n  .a {\n    color: red;\n  }\n`;\nlet  y = 1;\n")
    assert out == "/*! x */const CSS=`.a{color:red}`;let y=1;\n"
    try:
        build.build("const x = 1;")
    except ValueError as exc:
        assert "stylesheet" in str(exc)
    else:
        raise AssertionError("a source without its stylesheet was built")


def test_the_widget_never_parses_text_as_html() -> None:
    source = BUILT.read_text(encoding="utf-8")  # the code, without the comments that name these
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in source, f"the widget source uses {sink}"
    assert "'textContent'" in source, "text goes in with the textContent setter"


def test_the_widget_is_served_from_static(db: object, client: Client) -> None:
    response = client.get("/static/sinkhole/widget.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(("text/javascript", "application/javascript"))
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.decode("utf-8") == BUILT.read_text(encoding="utf-8")
