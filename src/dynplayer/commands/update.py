"""`dynplayer update`, `bench foldin` and `bench update`: new playlists and tracks without
retraining."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dynplayer.commands.bench import bench_app


def register(app: typer.Typer) -> None:
    """Add the update subcommands to the app."""

    @app.command()
    def update(
        run_dir: Annotated[Path, typer.Argument(help="Run directory (dynplayer train)")],
        inputs: Annotated[list[Path], typer.Argument(help="New playlist files or directories")],
        fmt: Annotated[
            str, typer.Option("--format", help="auto|mpd|melon|jsonl (default: sniffed)")
        ] = "auto",
        lenient: Annotated[
            bool, typer.Option(help="Skip and count bad records and playlist ids the run "
                               "already holds, instead of failing")
        ] = False,
        tracks: Annotated[
            list[Path] | None, typer.Option("--tracks", help="Companion track file (JSON lines)")
        ] = None,
        min_playlists: Annotated[
            int | None, typer.Option(help="Fold in a vector for an eligible track once it occurs "
                                     "in this many training playlists (default: the run's, "
                                     "else 2 for --eligible selected, 10 for any)")
        ] = None,
        method: Annotated[
            str | None, typer.Option(help="Fold-in method: context|cooc|pmi|steps")
        ] = None,
        eligible: Annotated[
            str | None, typer.Option(help="Tracks that may get a vector: selected (the "
                                     "corpus' selection rule keeps them on the updated data, "
                                     "as a retrain would) or any (default: the run's, else "
                                     "selected)")
        ] = None,
        calibrate: Annotated[
            float | None, typer.Option(help="Folded vectors' score level against trained "
                                       "tracks of the same support, 0-1 (0: raw; default: "
                                       "the run's, else 0.9)")
        ] = None,
        database_url: Annotated[
            str | None, typer.Option(help="Also insert the new rows into this database's "
                                     "pgvector tables (it must hold the run's model)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
        name: Annotated[str | None, typer.Option(
            help="Catalog holding the run in that database (default: the run directory's "
                 "name, as `dynplayer index` names it)")] = None,
        by_artist: Annotated[bool, typer.Option(
            "--by-artist/--no-by-artist",
            help="Place a new track left without a vector by its artist (runs trained with "
                 "--set shared=artist)")] = False,
    ) -> None:
        """Add new playlists to a trained run: catalogue, fold-in vectors for new tracks, text
        search space, and (with --database-url) the served index; all or nothing."""
        from dynplayer.commands.data import count
        from dynplayer.store.names import catalog_name_for, check_catalog_name
        from dynplayer.update.apply import update_run

        catalog = check_catalog_name(name) if name is not None else catalog_name_for(run_dir)
        report = update_run(run_dir, inputs, fmt=fmt, lenient=lenient, tracks=tracks or [],
                            min_playlists=min_playlists, method=method, eligible=eligible,
                            calibrate=calibrate, database_url=database_url, catalog=catalog,
                            by_artist=by_artist)
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2))
            return
        if report.update == 0:
            typer.echo(f"nothing to add: all {report.duplicates_skipped:,} playlists are "
                       f"already in {run_dir}")
            return
        typer.echo(f"update {report.update} of {run_dir}: "
                   f"{count(report.playlists_added, 'playlist')} added "
                   f"({report.duplicates_skipped:,} already in the run, "
                   f"{count(report.records_skipped, 'bad record')} skipped); "
                   f"{count(report.tracks_new, 'new track')}; "
                   f"{count(report.tracks_folded, 'track')} folded in (rows "
                   f"{report.rows[0]:,}-{report.rows[1]:,})"
                   + (f", {count(report.tracks_placed_by_artist, 'track')} placed by its "
                      "artist" if by_artist else "")
                   + f", {report.tracks_waiting:,} waiting "
                   f"for {report.min_playlists} playlists; model {report.model_version}; "
                   f"{report.seconds['total']:.1f} s")
        if report.tracks_not_eligible:
            typer.echo(f"{count(report.tracks_not_eligible, 'track')} of the new playlists "
                       "got no vector: not among the tracks the corpus' selection rule keeps "
                       "(--eligible selected: what a retrain would train); --eligible any "
                       f"folds in every track once it is in {report.min_playlists} playlists "
                       "(--min-playlists)")
        if report.index is not None:
            ix = report.index
            typer.echo(f"index: {ix['tracks_inserted']:,} tracks and "
                       f"{ix['playlists_inserted']:,} playlists inserted, "
                       f"{ix['tracks_renamed']:,} track names filled")

    @bench_app.command("foldin")
    def bench_foldin(
        run_dir: Annotated[Path, typer.Argument(help="Trained run (dynplayer train)")],
        hide: Annotated[float, typer.Option(help="Share of vectored tracks hidden")] = 0.2,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Choose the fold-in method and min-playlists on validation: hide vectored tracks and
        fold them back; fold in the long tail and measure validation reach and recall."""
        from dynplayer.update.foldin_bench import bench_foldin as run_bench

        result = run_bench(run_dir, hide=hide)
        typer.echo(json.dumps(result, indent=2) if as_json else result["table"])

    @bench_app.command("update")
    def bench_update(
        data: Annotated[Path, typer.Argument(help="MPD slices (../shared/data/mpd)")],
        work: Annotated[Path, typer.Option("--work", help="Scratch directory")],
        share: Annotated[float, typer.Option(help="Share of training playlists held back "
                                             "for the update")] = 0.2,
        timing_playlists: Annotated[int, typer.Option(help="Playlists in the timed served "
                                                      "update")] = 1000,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Train override")] = None,
        hold: Annotated[str, typer.Option(
            help="random: a share of the training playlists; release: tracks taken as "
                 "released after the base was trained and every training playlist holding "
                 "one, so the tracks only the update brings are test targets")] = "random",
        choose: Annotated[bool, typer.Option(
            help="First compare the fold-in rules on the validation split")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Train on (1 - share) of the training playlists, update with the rest, and compare
        with a retrain on all of them on the test split; time a served update."""
        from dynplayer.train.config import load_train_config
        from dynplayer.update.bench import bench_update as run_bench

        result = run_bench(data, work, share=share, timing_playlists=timing_playlists,
                           train_cfg=load_train_config(None, set_), hold=hold, choose=choose)
        typer.echo(json.dumps(result, indent=2) if as_json else result["table"])
