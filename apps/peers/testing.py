"""Test helpers for the peers. The plugin files in `<peer>/plugin/` are plain Python that other programs load (Open WebUI,
text-generation-webui, a cron job): the tests load them the same way, from their files, with
no Django behind them, and check what they would send against Sinkhole's event schema."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PEERS = Path(__file__).resolve().parent


def load(relative: str, name: str) -> ModuleType:
    """The module in apps/peers/RELATIVE, loaded from its file as its host program would."""
    path = PEERS / relative
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def imports_of(path: Path) -> set[str]:
    """The top-level modules a file imports (to check that a plugin needs no Django)."""
    import ast

    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found
