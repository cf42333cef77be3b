"""`dynplayer bench scale`: the default pipeline at several MPD-shaped sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dynplayer.commands.bench import bench_app
from dynplayer.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add `bench scale` (nothing on the top-level app)."""

    @bench_app.command("scale")
    def bench_scale_cmd(
        work: Annotated[Path, typer.Option("--work", help="Scratch directory (outside the repo)")],
        playlists: Annotated[str, typer.Option(
            help="Comma-separated sizes, e.g. 25000,100000,250000,1000000")]
        = "25000,100000,250000,1000000",
        set_: Annotated[list[str] | None, typer.Option(
            "--set", help="Training override for every size, e.g. seeds=1")] = None,
        text_set: Annotated[list[str] | None, typer.Option(
            "--text-set", help="train-text override for every size")] = None,
        seed: Annotated[int, typer.Option(help="Seed of the synthetic corpus")] = 0,
        keep: Annotated[bool, typer.Option(help="Keep each size's files")] = False,
        reuse: Annotated[bool, typer.Option(
            help="Keep the sizes already in WORK/scale.json (same settings) and run the rest")]
        = False,
        kill_train: Annotated[float | None, typer.Option(
            help="SIGKILL training after this many seconds, then continue it with "
                 "`train --resume` (what the killed run left goes in the report)")] = None,
        serve: Annotated[bool, typer.Option(
            help="Then measure each size's store as served (`bench serve --store`): HNSW "
                 "top-50 overlap with exact search, continuation and text latency at one "
                 "client (not a pipeline stage)")] = False,
        serve_duration: Annotated[float, typer.Option(
            help="Seconds of load per measure with --serve (1..300)")] = 20.0,
        from_stage: Annotated[str | None, typer.Option(
            help="Go on from this stage (prepare, train, train-text, index, or serve) in the "
                 "files an earlier --keep run of each size left, with its figures for the "
                 "stages before")] = None,
        png: Annotated[Path | None, typer.Option(help="Log-log plot (default WORK/scale.png)")]
        = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report")] = False,
    ) -> None:
        """Run prepare -> train -> train-text -> index on MPD-shaped synthetic slices per size;
        wall time, CPU, peak RSS, disk and growth exponents per stage (WORK/scale.json)."""
        from dynplayer.scale import bench_pipeline, plot, table

        try:
            sizes = [int(s.replace("_", "")) for s in playlists.split(",") if s.strip()]
        except ValueError as exc:
            raise ConfigError(f"--playlists: expected comma-separated integers, got "
                              f"{playlists!r}") from exc
        if kill_train is not None and not kill_train > 0:
            raise ConfigError(f"--kill-train: seconds must be > 0, got {kill_train:g}")
        if not sizes or min(sizes) < 100:
            raise ConfigError(f"--playlists: every size must be >= 100 (got {playlists!r})")
        if not 1 <= serve_duration <= 300:
            raise ConfigError(f"--serve-duration must be from 1 to 300 seconds, got "
                              f"{serve_duration:g}")
        if from_stage is not None and reuse:
            raise ConfigError("--from-stage and --reuse: choose one")
        report = bench_pipeline(work, sizes, train_sets=set_ or [], text_sets=text_set or [],
                                seed=seed, keep=keep, reuse=reuse, kill_train=kill_train,
                                serve=serve, serve_duration=serve_duration,
                                from_stage=from_stage, say=lambda m: typer.echo(m, err=True))
        plot(report, png or Path(work) / "scale.png")
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            typer.echo(table(report))
