"""Every setting once: config/settings.py declares each environment variable with its default,
docs/configuration.md documents the same variables, and an unknown `SINKHOLE_*`/`QUALITY_*`
variable stops start-up instead of passing silently."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ROOT / "config" / "settings.py"
DOCS = ROOT / "docs" / "configuration.md"
ENV_READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list"}


def variables_in_settings() -> set[str]:
    """The names settings.py reads through config/env.py, and the ones it lists as read
    elsewhere (READ_OUTSIDE_SETTINGS)."""
    tree = ast.parse(SETTINGS.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ENV_READERS
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "READ_OUTSIDE_SETTINGS" for t in node.targets
        ):
            names.update(ast.literal_eval(node.value))
    return names


def variables_in_docs() -> dict[str, str]:
    """{name: its table's heading} for every backticked name in the first column of the tables
    under "## Variables"."""
    text = DOCS.read_text()
    section = text[text.index("## Variables") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    found: dict[str, str] = {}
    heading = ""
    for line in section.splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
        if line.startswith("| `"):
            first = line.split("|")[1]
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", first):
                found[name] = heading
    return found


# Read by other programs than Sinkhole's processes, documented for the operator's sake.
READ_BY_OTHERS = {"GUNICORN_CMD_ARGS", "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR"}


def test_every_variable_settings_reads_is_documented_and_every_documented_one_is_read() -> None:
    in_settings = variables_in_settings()
    in_docs = variables_in_docs()
    undocumented = sorted(in_settings - set(in_docs))
    unread = sorted(set(in_docs) - in_settings - READ_BY_OTHERS)
    assert not undocumented, (
        f"config/settings.py reads {', '.join(undocumented)} but docs/configuration.md does not "
        "document it: add a row `| `NAME` | `default` | meaning |` to the table of its section "
        "under '## Variables'"
    )
    assert not unread, (
        f"docs/configuration.md documents {', '.join(unread)} but config/settings.py never reads "
        "it: read it there with env_str/env_int/env_bool/env_float/env_list (or, if another "
        "program reads it, name it in READ_OUTSIDE_SETTINGS), or drop the row"
    )


def test_the_variables_listed_as_read_elsewhere_are_really_read_there() -> None:
    tree = ast.parse(SETTINGS.read_text())
    listed = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "READ_OUTSIDE_SETTINGS" for t in node.targets)
    )
    elsewhere = [
        path.read_text(errors="replace")
        for pattern in ("config/*.py", "apps/**/*.py", "trainer/**/*.py", "sdk/python/**/*.py")
        for path in ROOT.glob(pattern)
        if path != SETTINGS
    ]
    elsewhere.append((ROOT / "docker-compose.yml").read_text())
    unread = [
        name
        for name in (*listed, "PROMETHEUS_MULTIPROC_DIR")
        if not any(name in text for text in elsewhere)
    ]
    assert not unread, f"listed as read outside settings.py, but nothing there reads: {unread}"


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh process with ENV added, and print two of them."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.QUALITY_RATER_PER_MINUTE, settings.QUALITY_OUTLIER_ALPHA)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_with_an_unknown_quality_variable_and_names_the_nearest() -> None:
    result = start({"QUALITY_RATER_PER_MINUT": "5"})
    assert result.returncode != 0
    assert "Unknown environment variable QUALITY_RATER_PER_MINUT" in result.stderr
    assert "did you mean QUALITY_RATER_PER_MINUTE?" in result.stderr


def test_it_refuses_to_start_with_an_unknown_sinkhole_variable() -> None:
    result = start({"SINKHOLE_DATADIR": "/tmp/elsewhere"})
    assert result.returncode != 0
    assert "SINKHOLE_DATADIR" in result.stderr and "SINKHOLE_DATA_DIR" in result.stderr


def test_a_quality_knob_from_the_environment_is_read_typed_and_a_bad_one_stops_start_up() -> None:
    result = start({"QUALITY_RATER_PER_MINUTE": "7", "QUALITY_OUTLIER_ALPHA": "0.01"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["7", "0.01"]
    bad = start({"QUALITY_OUTLIER_ALPHA": "often"})
    assert bad.returncode != 0 and "QUALITY_OUTLIER_ALPHA='often' is not a number" in bad.stderr


def test_the_code_reads_settings_directly_with_no_second_default() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for pattern in ("apps/**/*.py", "config/*.py")
        for path in ROOT.glob(pattern)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"getattr\(\s*settings\s*,\s*[^,()]+,", line)
    ]
    assert not offenders, (
        "getattr(settings, NAME, default) repeats a default that config/settings.py declares: "
        f"read settings.NAME instead: {offenders}"
    )
