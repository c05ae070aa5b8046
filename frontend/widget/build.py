"""Build the embeddable widget: frontend/widget/src/sinkhole-widget.js, minified, becomes
frontend/static/sinkhole/widget.js (served at /static/sinkhole/widget.js).

    .venv/bin/python frontend/widget/build.py          # write the built file
    .venv/bin/python frontend/widget/build.py --check  # exit 1 if it is stale or over budget

The minifiers are rjsmin and rcssmin from PyPI (dev dependencies): deterministic, pure Python
with an optional C speed-up, so the same bytes come out on every machine and the test suite can
rebuild in-process and compare, with no Node toolchain. The built file is committed, so serving
the widget needs no build step at all.

The source keeps its stylesheet readable in one template literal, `const CSS = `…`;`; it is
minified as CSS first, then the whole file as JavaScript."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import rcssmin
import rjsmin

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "src" / "sinkhole-widget.js"
TARGET = HERE.parent / "static" / "sinkhole" / "widget.js"
SIZE_LIMIT = 15 * 1024  # bytes: the budget for the minified file

_CSS_LITERAL = re.compile(r"const CSS = `([^`]*)`;")


def build(source: str | None = None) -> str:
    """The minified widget, from SOURCE's text (the source file by default)."""
    text = SOURCE.read_text(encoding="utf-8") if source is None else source
    found = _CSS_LITERAL.findall(text)
    if len(found) != 1:
        raise ValueError("the widget source must hold exactly one `const CSS = `…`;` stylesheet")
    css = found[0]
    if "${" in css or "\\" in css:
        raise ValueError("the stylesheet literal may not interpolate (${…}) or escape (\\)")
    text = _CSS_LITERAL.sub(lambda _: "const CSS = `" + rcssmin.cssmin(css).strip() + "`;", text)
    return rjsmin.jsmin(text, keep_bang_comments=True).strip() + "\n"


def main(argv: list[str]) -> int:
    built = build()
    size = len(built.encode("utf-8"))
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != built:
            print(f"{TARGET} is stale: run {Path(sys.executable).name} frontend/widget/build.py")
            return 1
    else:
        TARGET.write_text(built, encoding="utf-8")
        print(f"wrote {TARGET.relative_to(HERE.parent.parent)}: {size} bytes")
    if size > SIZE_LIMIT:
        print(f"the widget is {size} bytes, over its budget of {SIZE_LIMIT}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
