"""The manual keeps its word: docs/cli.md documents every command and flag that `dynplayer`
has, the README and the benchmarks stay short, and the docs' links between each other resolve."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from dynplayer.cli import app

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = ROOT / "docs" / "cli.md"


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append(((*prefix, name), cmd))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def _section(doc: str, path: tuple[str, ...]) -> str:
    """A top-level command's `### name` section, or a bench command's table row."""
    if path[0] == "bench":
        rows = [line for line in doc.splitlines() if line.startswith(f"| `bench {path[1]}")]
        assert rows, f"docs/cli.md has no row for `dynplayer bench {path[1]}`"
        return rows[0]
    match = re.search(rf"^### {re.escape(path[0])}\n(.*?)(?=^##)", doc + "\n##", re.M | re.S)
    assert match, f"docs/cli.md has no section '### {path[0]}'"
    return match.group(1)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_cli_doc_names_every_command_and_flag(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    section = _section(CLI_DOC.read_text(encoding="utf-8"), path)
    missing = [opt for p in command.params if p.name != "help" and hasattr(p, "opts")
               for opt in p.opts if opt.startswith("--") and opt not in section]
    assert not missing, f"`dynplayer {' '.join(path)}`: docs/cli.md does not document {missing}"


def test_readme_and_benchmarks_stay_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150
    assert len((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_links_between_the_docs_resolve() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", doc.read_text("utf-8")):
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, broken
