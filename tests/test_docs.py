"""The documentation site: `mkdocs build --strict` passes, and the pages agree with the code
(every metric key documented, every subcommand described, the tables' counts current, the
Python examples valid)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from carbonlog import metrics
from carbonlog.cli import build_parser
from carbonlog.intensity import coverage
from carbonlog.intensity.tables import tables

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
MKDOCS_HINT = 'the docs build needs mkdocs-material: pip install "carbonlog[dev]"'


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason='docs need mkdocs-material: pip install "carbonlog[dev]"')
    pytest.importorskip(
        "material", reason='docs need mkdocs-material: pip install "carbonlog[dev]"'
    )
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "metrics" / "index.html").is_file()


def test_every_page_is_in_the_navigation():
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s+(\S+\.md)\s*$", config, flags=re.MULTILINE))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == listed


def test_every_metric_key_is_documented():
    text = page("metrics.md")
    for key in (*metrics.KEYS, *metrics.OPTIONAL_KEYS):
        assert f"| `{metrics.metric_key(key)}` |" in text, key


def test_every_subcommand_is_described():
    commands = next(
        action for action in build_parser()._actions if action.dest == "command"
    ).choices
    text = page("cli.md")
    for name in commands:
        assert f"\n## {name}\n" in text, name


def test_methodology_counts_match_the_shipped_tables():
    text = page("methodology.md")
    found = coverage()
    for kind, label in (("country", "countries"), ("subdivision", "subdivisions")):
        first, last = found[kind]["years"]
        assert f"| {label} | {found[kind]['count']} | {first}-{last} |" in text
    labels = {p: label for p, (label, _) in tables().providers.items()}
    per_provider = found["cloud"]["per_provider"]
    for provider, count in per_provider.items():
        assert f"{labels[provider]} {count}" in text, provider
    assert f"| cloud regions | {found['cloud']['count']} (" in text
    assert f"{found['world']['g_per_kwh']:g} g CO2e/kWh" in text


def python_blocks() -> list[tuple[str, str]]:
    """(page, code) of every ```python block, tabbed ones included."""
    blocks = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^( *)```python\n(.*?)^\1```", text, re.DOTALL | re.MULTILINE):
            blocks.append((path.name, textwrap.dedent(match.group(2))))
    return blocks


@pytest.mark.parametrize("name, code", python_blocks())
def test_python_examples_are_valid_python(name, code):
    compile(code, name, "exec")
