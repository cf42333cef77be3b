"""`dynplayer train`, `export`, `similar` and `bench train`: the track embedding stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dynplayer.commands.bench import bench_app


def register(app: typer.Typer) -> None:
    """Add the train-stage subcommands to the app."""

    @app.command()
    def train(
        corpus_dir: Annotated[Path, typer.Argument(help="Corpus directory (dynplayer prepare)")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write")],
        config: Annotated[
            Path | None, typer.Option(help="TOML file: flat keys or a [train] table")
        ] = None,
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="Override, e.g. temperature=0.07")
        ] = None,
        full: Annotated[
            bool, typer.Option(help="Train on every playlist except the validation ones")
        ] = False,
        resume: Annotated[bool, typer.Option(help="Continue from RUN_DIR/checkpoint.pt")] = False,
        device: Annotated[
            str | None, typer.Option(help="auto|cpu|cuda (overrides the config)")
        ] = None,
        long_tail: Annotated[
            bool | None, typer.Option("--long-tail/--no-long-tail",
                                      help="Fold in vectors for tracks below the selection "
                                      "threshold in >= long_tail_min_playlists training "
                                      "playlists (default: the config's long_tail)")
        ] = None,
    ) -> None:
        """Train track embeddings and write the run directory (vectors, ids, config, metrics)."""
        import sys

        from dynplayer.train.config import load_train_config
        from dynplayer.train.loop import train_run

        sets = list(set_ or [])
        if device is not None:
            sets.append(f"device={device}")
        if long_tail is not None:
            sets.append(f"long_tail={str(long_tail).lower()}")
        cfg = load_train_config(config, sets)
        tty = sys.stderr.isatty()
        run = train_run(corpus_dir, out, cfg, full=full, resume=resume,
                        log=(lambda m: typer.echo(m, err=True)) if tty else None)
        if cfg.long_tail:
            from dynplayer.update.longtail import fold_in_long_tail

            rec = fold_in_long_tail(out, min_playlists=cfg.long_tail_min_playlists,
                                    method=cfg.foldin_method)
            b, a = rec["reach_before"], rec["reach_after"]
            typer.echo(f"long tail: {rec['tracks_folded']:,} tracks folded in; catalogue reach "
                       f"(tracks with a vector / tracks in >= 2 playlists) {b['reach']:.3f} -> "
                       f"{a['reach']:.3f}")
        metrics = json.loads((run.path / "metrics.json").read_text())
        typer.echo(f"wrote {out}: {len(run.ids):,} tracks x {run.vectors.shape[1]}; "
                   f"val recall@10 {metrics['val_recall@10']:.4f} "
                   f"ndcg@10 {metrics['val_ndcg@10']:.4f}; "
                   f"{metrics['train_seconds']:.1f} s, {metrics['pairs_per_s']:,.0f} pairs/s")

    @app.command()
    def export(
        run_dir: Annotated[Path, typer.Argument(help="Run directory (dynplayer train)")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write")],
        projector: Annotated[
            bool, typer.Option(help="Also vectors.tsv + metadata.tsv for the TensorBoard "
                               "Embedding Projector")
        ] = False,
    ) -> None:
        """Write DIR/vectors.npy (float32 N x d) and DIR/ids.txt (N track ids, same order)."""
        from dynplayer.train.artifacts import export_run

        paths = export_run(run_dir, out, projector=projector)
        typer.echo("wrote " + ", ".join(str(p) for p in paths))

    @app.command()
    def similar(
        run_dir: Annotated[Path, typer.Argument(help="Run directory (dynplayer train)")],
        track: Annotated[str, typer.Argument(
            help="Track id, spotify:track:ID, open.spotify.com link, or a name such as "
                 "\"la vie en rose\" (best match, as the API's track search finds it)")],
        k: Annotated[int, typer.Option("-k", help="How many neighbours")] = 10,
        max_per_artist: Annotated[int | None, typer.Option(
            help="At most this many tracks per artist (0: no cap; default: chosen on "
                 "validation)")] = None,
        save: Annotated[Path | None, typer.Option(
            help="Also write the track and its neighbours as a playlist: FILE.m3u, .csv or "
                 ".json (Spotify URIs)")] = None,
    ) -> None:
        """Print the nearest tracks (cosine) with ids, names and artists."""
        from dynplayer.diversity import check_max_per_artist
        from dynplayer.playlist_file import format_of
        from dynplayer.serve.limits import check_k

        check_k(k)  # before anything is loaded
        check_max_per_artist(max_per_artist, "similar")
        if save is not None:
            format_of(save)
        from dynplayer.api import Dynplayer
        from dynplayer.commands.text import save_results

        model = Dynplayer.load(run_dir, text=False, ranker=False)
        found = model.resolver.resolve(track)
        tid = model.recommender.catalog.track_ids[found.row]
        if found.by_name:  # say which track the name was taken for
            also = "; ".join(model.resolver.describe(o) for o in found.others[:3])
            typer.echo(f"similar to {model.resolver.describe(found.row)}, the best match for "
                       f"{track!r}" + (f" (also fits: {also})" if also else "") + ":", err=True)
        result = model.similar(tid, k, max_per_artist)
        if save is not None:
            seed = model.track(tid)
            save_results(save, f"More like {seed.label}", result, [seed])
        for t in result:
            typer.echo(f"{t.rank:>3}  {t.score or 0:.4f}  {t.track_id}  {t.name or '?'} — "
                       f"{t.artist or '?'}")

    @bench_app.command("train")
    def bench_train(
        corpus_dir: Annotated[Path, typer.Argument(help="Corpus directory (dynplayer prepare)")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Scratch run directory")],
        config: Annotated[Path | None, typer.Option(help="TOML train config")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Train override")] = None,
        item2vec: Annotated[bool, typer.Option(help="Also time gensim item2vec")] = True,
        test: Annotated[
            bool, typer.Option(help="Also report the test split (report only, never tune)")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Time default training (wall, pairs/s) beside gensim item2vec on the same sequences,
        and report validation (and with --test, test) Recall@10 / NDCG@10."""
        from dynplayer.train.bench import bench_training
        from dynplayer.train.config import load_train_config

        result = bench_training(corpus_dir, out, load_train_config(config, set_),
                                item2vec=item2vec, test=test)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        for key, value in result.items():
            typer.echo(f"{key}: {value}")

    @bench_app.command("train-scale")
    def bench_train_scale(
        work: Annotated[Path, typer.Option("--work", help="Scratch directory")],
        playlists: Annotated[int, typer.Option(help="Synthetic playlists")] = 1_000_000,
        n_tracks: Annotated[int, typer.Option("--tracks", help="Synthetic tracks")] = 100_000,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Train override")] = None,
    ) -> None:
        """Time training epochs on a synthetic corpus at MPD scale (default 1M playlists)."""
        from dynplayer.train.bench import bench_scale
        from dynplayer.train.config import load_train_config

        cfg = load_train_config(None, ["epochs=1", "eval_playlists=2000", *(set_ or [])])
        typer.echo(json.dumps(bench_scale(work, cfg, n_playlists=playlists, n_tracks=n_tracks),
                              indent=2))
