"""`dynplayer bench ...`: benchmark commands; each stage adds its own subcommand here."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dynplayer.errors import ConfigError

bench_app = typer.Typer(help="Benchmarks whose results are recorded in docs/benchmarks.md.",
                        no_args_is_help=True)


def check_writable(path: Path, option: str = "--out") -> None:
    """Fail before a long benchmark, not after it, when its results could not be written:
    `path` must be a file (or not exist yet) in a directory this process can write to (a
    missing directory is created later, so its nearest existing parent must be writable)."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file name")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option} {path}: the file is not writable")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: cannot create the file ({parent} is not a "
                          "writable directory)")
