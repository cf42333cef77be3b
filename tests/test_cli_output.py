"""What the CLI prints, as a newcomer reads it: numbers with separators and no float noise,
help without template placeholders."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dynplayer.commands.data import human


def dynplayer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynplayer.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("value, shown", [
    (242.30000000000018, "242.3"), (98.56554942723801, "98.57"), (5.0, "5"), (7071, "7,071"),
    (696957, "696,957"), (0.0993, "0.0993"), (0.123456, "0.1235"), (12345.678, "12,345.7"),
    (True, "True"), (None, "None"), (["mpd", "melon"], "mpd, melon"),
])
def test_human_numbers(value: object, shown: str) -> None:
    assert human(value) == shown


def test_stats_prints_readable_numbers(synthetic_corpus_dir: Path, tmp_path: Path) -> None:
    done = dynplayer("stats", str(synthetic_corpus_dir), "--plots", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert re.search(r"^occurrences: \d{1,3}(,\d{3})+$", done.stdout, re.M), done.stdout
    assert not re.search(r"\d\.\d{5,}", done.stdout), done.stdout  # 242.30000000000018


@pytest.mark.parametrize("command", ["prepare", "stats", "train", "search", "similar",
                                     "evaluate", "serve", "bench text"])
def test_help_has_no_template_placeholders(command: str) -> None:
    done = dynplayer(*command.split(), "--help")
    assert done.returncode == 0, done.stderr
    assert "<bool>" not in done.stdout and not re.search(r"\{[a-z_]+\}", done.stdout), \
        done.stdout
    usage = done.stdout.splitlines()[0]
    assert "{" not in usage and re.search(r" [A-Z_]+(\.\.\.)?( |$)", usage), usage


def test_help_keeps_square_brackets_in_texts() -> None:
    assert "TOML file with a [data] table" in dynplayer("prepare", "--help").stdout
