"""`dynplayer` subcommands for the text stage."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's subcommands to the app."""
    del app
