"""The layers of docs/architecture.md, kept: arrows follow the data.

The import graph of `apps/` is read with `ast` (nothing is imported). An app imports only apps
on lower rows; apps on one row may import one another one way only; a function-level import of
another app carries a comment on its line saying why it must be lazy (in `AppConfig.ready()`,
where an app connects its signals and hooks: apps.py loads before the models); `trainer/`
imports no Django and no app."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# docs/architecture.md, bottom to top: an app may import the apps on its own row (one way) and
# on the rows below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("sources",),
    ("feedback",),
    ("quality",),
    ("curation", "datasets"),
    ("serving", "evaluation", "training", "registry", "judges"),
    ("peers",),
    ("site",),
)
ROW = {app: row for row, apps in enumerate(LAYERS) for app in apps}


@dataclass(frozen=True)
class Arrow:
    """One import of another app: FILE (relative to the root) line LINE, app SOURCE imports
    module TARGET; FUNCTION the function it is in ('' at module level), COMMENT the comment on
    its lines."""

    file: str
    line: int
    source: str
    target: str
    function: str
    comment: str

    @property
    def lazy(self) -> bool:
        return bool(self.function)

    @property
    def target_app(self) -> str:
        return self.target.split(".")[1]

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.source} imports {self.target})"


def _module_name(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _comments(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    return comments


def _imported_modules(node: ast.Import | ast.ImportFrom, package: list[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the package, one level up per extra dot
        base = package[: len(package) - (node.level - 1)]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    if module == "apps":  # `from apps import feedback`: the names are the apps
        return [f"apps.{alias.name}" for alias in node.names]
    return [module]


def arrows(root: Path) -> list[Arrow]:
    """Every import of one app by another under ROOT/apps."""
    found: list[Arrow] = []
    for path in sorted((root / "apps").rglob("*.py")):
        name = _module_name(path, root)
        if len(name) < 2:
            continue
        app = name[1]
        package = name if path.name == "__init__.py" else name[:-1]
        source = path.read_text()
        comments = _comments(source)

        stack: list[tuple[ast.AST, str]] = [(ast.parse(source, filename=str(path)), "")]
        while stack:
            node, function = stack.pop()
            for child in ast.iter_child_nodes(node):
                inner = function
                if not function and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    inner = child.name
                stack.append((child, inner))
                if not isinstance(child, ast.Import | ast.ImportFrom):
                    continue
                for module in _imported_modules(child, package):
                    parts = module.split(".")
                    if parts[0] != "apps" or len(parts) < 2 or parts[1] == app:
                        continue
                    lines = range(child.lineno, (child.end_lineno or child.lineno) + 1)
                    found.append(
                        Arrow(
                            file=str(path.relative_to(root)),
                            line=child.lineno,
                            source=app,
                            target=module,
                            function=function,
                            comment=" ".join(comments[n] for n in lines if n in comments),
                        )
                    )
    return sorted(found, key=lambda arrow: (arrow.file, arrow.line))


def arrows_up(found: list[Arrow]) -> list[str]:
    problems = []
    for arrow in found:
        if arrow.source not in ROW or arrow.target_app not in ROW:
            unknown = arrow.source if arrow.source not in ROW else arrow.target_app
            problems.append(
                f"{arrow}: apps/{unknown} has no row in LAYERS: add it here and to "
                "docs/architecture.md"
            )
        elif ROW[arrow.target_app] > ROW[arrow.source]:
            problems.append(
                f"{arrow}: {arrow.target_app} is above {arrow.source}; let "
                f"{arrow.target_app} connect a signal or hook from its AppConfig.ready() "
                "(apps/feedback/signals.py) instead"
            )
    return problems


def cycles_within_rows(found: list[Arrow]) -> list[str]:
    edges: dict[tuple[str, str], Arrow] = {}
    for arrow in found:
        if ROW.get(arrow.source) is not None and ROW.get(arrow.source) == ROW.get(arrow.target_app):
            edges.setdefault((arrow.source, arrow.target_app), arrow)
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    return [
        f"{arrow}: {a} and {arrow.target_app} import each other (one way only on a row)"
        for (a, b), arrow in sorted(edges.items())
        if reaches(b, a, {b})
    ]


def lazy_without_reason(found: list[Arrow]) -> list[str]:
    return [
        f"{arrow}: a function-level import of another app needs a comment on its line saying "
        "why it must be lazy (a cycle, a heavy library, models not loaded yet); or move it to "
        "the top of the module"
        for arrow in found
        if arrow.lazy and len(arrow.comment.split()) < 2
    ]


def test_no_app_imports_an_app_above_it() -> None:
    problems = arrows_up(arrows(ROOT))
    assert not problems, "arrows against the data flow:\n" + "\n".join(problems)


def test_apps_on_one_row_import_one_another_one_way_only() -> None:
    problems = cycles_within_rows(arrows(ROOT))
    assert not problems, "\n".join(problems)


def test_every_function_level_import_of_another_app_says_why_it_is_lazy() -> None:
    problems = lazy_without_reason(arrows(ROOT))
    assert not problems, "\n".join(problems)


def test_the_trainer_imports_no_django_and_no_app() -> None:
    problems = []
    for path in sorted((ROOT / "trainer").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for name in names:
                    if name and name.split(".")[0] in {
                        "django",
                        "rest_framework",
                        "apps",
                        "config",
                    }:
                        problems.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not problems, "\n".join(problems)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small apps/ tree with one arrow of each kind."""
    files = {
        "apps/__init__.py": "",
        "apps/core/__init__.py": "",
        "apps/core/views.py": "from apps.sources.models import Source\n",
        "apps/sources/__init__.py": "",
        "apps/sources/models.py": "from ..core import views\n",
        "apps/feedback/__init__.py": "",
        "apps/feedback/services.py": (
            "def f():\n"
            "    from apps.sources.models import Source  # sources imports feedback's models\n"
            "    from apps.core import views\n"
        ),
        "apps/serving/__init__.py": "",
        "apps/serving/a.py": "from apps.registry import b\n",
        "apps/registry/__init__.py": "",
        "apps/registry/b.py": "from apps.serving import a\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_check_finds_an_arrow_up_a_cycle_on_a_row_and_an_unexplained_lazy_import(
    tree: Path,
) -> None:
    found = arrows(tree)
    assert [p.split(":")[0] + ":" + p.split(":")[1].split(" ")[0] for p in arrows_up(found)] == [
        "apps/core/views.py:1"
    ]
    assert len(cycles_within_rows(found)) == 2
    lazy = lazy_without_reason(found)
    assert len(lazy) == 1 and lazy[0].startswith("apps/feedback/services.py:3 ")
    # relative imports resolve to the app they name
    assert any(a.source == "sources" and a.target == "apps.core" for a in found)
