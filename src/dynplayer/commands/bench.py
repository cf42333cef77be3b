"""`dynplayer bench ...`: benchmark commands; each stage adds its own subcommand here."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks whose results are recorded in docs/benchmarks.md.",
                        no_args_is_help=True)
