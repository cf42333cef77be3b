"""`dynplayer bench diversity` and `bench confidence`: the measurements behind the artist cap's
defaults and the text answers' confidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dynplayer.commands.bench import bench_app

PROBE = Path(__file__).resolve().parents[3] / "docs" / "probes" / "nothing-close.jsonl"


def register(app: typer.Typer) -> None:
    """Add the benchmarks to `bench` (no top-level commands)."""

    @bench_app.command("diversity")
    def bench_diversity(
        run_dir: Annotated[Path, typer.Argument(help="Run directory (a ranker and a text model "
                                                     "are used when present)")],
        split: Annotated[str, typer.Option(help="val (chooses the defaults) | test")] = "val",
        caps: Annotated[str, typer.Option(help="Caps per artist to measure, comma separated "
                                               "(0 = none)")] = "0,1,2,3,4,5",
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON")]
        = False,
    ) -> None:
        """Recall@10 and distinct artists in the top 10 at each artist cap, for continuation,
        similar tracks and text answers."""
        from dynplayer.errors import ConfigError
        from dynplayer.serve.diversity_bench import format_table, run_bench

        try:
            values = tuple(sorted({int(c) for c in caps.split(",") if c.strip()}))
        except ValueError as exc:
            raise ConfigError(f"--caps must be whole numbers separated by commas, got "
                              f"{caps!r}") from exc
        if not values or min(values) < 0:
            raise ConfigError(f"--caps must be whole numbers >= 0, got {caps!r}")
        result = run_bench(run_dir, split=split, caps=values,
                           log=lambda m: typer.echo(m, err=True))
        typer.echo(json.dumps(result, indent=2) if as_json else format_table(result))

    @bench_app.command("confidence")
    def bench_confidence(
        run_dir: Annotated[Path, typer.Argument(help="Run directory with a text model")],
        probe: Annotated[Path | None, typer.Option(
            help="JSON lines {query, kind} of queries the model cannot answer (default: "
                 "docs/probes/nothing-close.jsonl when present)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON")]
        = False,
    ) -> None:
        """Shares of "close", "weak match" and "nothing close" on real captions (validation,
        test) and on unanswerable queries, and the confidence's calibration on test."""
        from dynplayer.text.confidence_bench import format_report, run_bench

        if probe is None and PROBE.exists():
            probe = PROBE
        result = run_bench(run_dir, probe)
        typer.echo(json.dumps(result, indent=2) if as_json else format_report(result))
