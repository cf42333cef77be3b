"""`dynplayer bench ...`: benchmark commands; each stage adds its own subcommand here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

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


@bench_app.command("cli")
def bench_cli(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (with text/ for search, "
                                            "ranker/ for the two-stage recommend)")],
    repeat: Annotated[int, typer.Option(help="Timed runs of each command, after a warm-up")]
    = 3,
    seed_track: Annotated[list[str] | None, typer.Option(
        help="A recommend seed, id or name (repeat it; default: names of the run's three most "
             "played tracks)")] = None,
    track: Annotated[str | None, typer.Option(
        help="The similar track (default: the most played track's name)")] = None,
    query: Annotated[str, typer.Option(help="The search query")] = "rainy day jazz",
    against: Annotated[str | None, typer.Option(
        help="Another dynplayer command timed interleaved, e.g. \"env PYTHONPATH=old/src "
             "python -m dynplayer.cli\"")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON")] = None,
) -> None:
    """One-shot CLI commands in fresh processes on a warm disk: similar, search, recommend and
    bad arguments, wall and CPU time against the targets."""
    import json
    import shlex

    from dynplayer.clibench import default_cases, markdown, run_cli_bench
    from dynplayer.run import check_run_dir

    check_run_dir(run_dir)
    if out is not None:
        check_writable(out)
    result = run_cli_bench(default_cases(run_dir, seed_track, track, query), repeat=repeat,
                           against=shlex.split(against) if against else None,
                           echo=lambda m: typer.echo(m, err=True))
    typer.echo(markdown(result))
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
