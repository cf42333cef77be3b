"""`dynplayer prepare`, `stats` and `synth`: the data stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dynplayer.config import DataConfig, resolve


def register(app: typer.Typer) -> None:
    """Add the data-stage subcommands to the app."""

    @app.command()
    def prepare(
        inputs: Annotated[list[Path], typer.Argument(help="Playlist files or directories")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Corpus directory to write")],
        fmt: Annotated[str, typer.Option("--format", help="auto|mpd|melon|jsonl")] = "auto",
        lenient: Annotated[bool, typer.Option(help="Skip bad records, count them")] = False,
        tracks: Annotated[
            list[Path] | None, typer.Option("--tracks", help="Companion track JSON-lines file")
        ] = None,
        artist_genres: Annotated[
            Path | None, typer.Option(help="Artist genres CSV (data_w_genres.csv.gz)")
        ] = None,
        config: Annotated[Path | None, typer.Option(help="TOML file with a [data] table")] = None,
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="Override, e.g. window=10")
        ] = None,
    ) -> None:
        """Read playlists, count co-occurrence neighbours, select tracks, split, and save."""
        from dynplayer.config import load_toml
        from dynplayer.data.prepare import prepare as run_prepare

        cfg = DataConfig()
        if config is not None:
            table = load_toml(config)
            cfg = resolve(cfg, None, [f"{k}={v}" for k, v in table.get("data", table).items()
                                      if not isinstance(v, dict)])
        cfg = resolve(cfg, None, [s.removeprefix("data.") for s in set_ or []])
        corpus = run_prepare(inputs, out, cfg, fmt=fmt, lenient=lenient, tracks=tracks or [],
                             artist_genres=artist_genres)
        c = corpus.manifest["counts"]
        skipped = corpus.manifest.get("skipped", {}).get("total", 0)
        typer.echo(
            f"wrote {out}: {c['playlists']:,} playlists, {c['occurrences']:,} occurrences, "
            f"{c['tracks']:,} tracks; selected {c['selected_tracks']:,} tracks "
            f"({c['selected_occurrences']:,} occurrences in "
            f"{c['playlists_with_selected_tracks']:,} playlists); split "
            f"{c['train_playlists']:,}/{c['val_playlists']:,}/{c['test_playlists']:,}"
            + (f"; skipped {skipped} bad records" if skipped else "")
        )

    @app.command()
    def stats(
        corpus_dir: Annotated[Path, typer.Argument(help="Corpus directory")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout")] = False,
        plots: Annotated[
            Path | None, typer.Option(help="Directory for PNG plots (default: CORPUS_DIR)")
        ] = None,
    ) -> None:
        """Counts, popularity and neighbour distributions (PNG), caption coverage."""
        from dynplayer.data.corpus import load_corpus
        from dynplayer.data.stats import corpus_stats, write_plots

        corpus = load_corpus(corpus_dir)
        result = corpus_stats(corpus)
        result["plots"] = write_plots(corpus, plots or corpus_dir)
        if as_json:
            typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
            return
        for key, value in result.items():
            if isinstance(value, dict):
                typer.echo(f"{key}:")
                for k, v in value.items():
                    typer.echo(f"  {k}: {v}")
            else:
                typer.echo(f"{key}: {value}")

    @app.command()
    def synth(
        out: Annotated[Path, typer.Option("--out", "-o", help="Corpus directory to write")],
        playlists: Annotated[int, typer.Option(help="Number of playlists")] = 2000,
        n_tracks: Annotated[int, typer.Option("--tracks", help="Number of tracks")] = 3000,
        seed: Annotated[int, typer.Option(help="Random seed")] = 0,
        jsonl: Annotated[
            Path | None, typer.Option(help="Also write the JSON-lines interchange files here")
        ] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Data config override")]
        = None,
    ) -> None:
        """Generate the built-in synthetic corpus with planted genres and moods."""
        from dynplayer.data.corpus import save_corpus
        from dynplayer.data.prepare import derive
        from dynplayer.data.synthetic import SyntheticSpec, generate, write_jsonl

        spec = SyntheticSpec(n_playlists=playlists, n_tracks=n_tracks, seed=seed)
        corpus = generate(spec)
        if jsonl is not None:
            jsonl.mkdir(parents=True, exist_ok=True)
            write_jsonl(corpus, jsonl / "playlists.jsonl", jsonl / "tracks.jsonl")
        cfg = resolve(DataConfig(select_fraction=1.0), None,
                      [s.removeprefix("data.") for s in set_ or []])
        derive(corpus, cfg)
        corpus.manifest["sources"] = ["synthetic"]
        save_corpus(corpus, out)
        c = corpus.manifest["counts"]
        typer.echo(f"wrote {out}: {c['playlists']:,} playlists, {c['occurrences']:,} "
                   f"occurrences, {c['tracks']:,} tracks ({c['selected_tracks']:,} selected)")
