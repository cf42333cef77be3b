"""`dynplayer prepare`, `stats` and `synth`: the data stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dynplayer.commands.bench import bench_app
from dynplayer.config import DataConfig, resolve


def human(value: object) -> str:
    """A value as people read it: thousands separators, whole floats without '.0', others to one
    decimal from 100 up (242.3, not 242.30000000000018) and 4 significant digits below, lists
    without brackets."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) >= 100:
            return f"{value:,.1f}".rstrip("0").rstrip(".")
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(human(v) for v in value)
    return str(value)


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
        from dynplayer.config import load_toml, section
        from dynplayer.data.prepare import prepare as run_prepare

        cfg = DataConfig()
        if config is not None:
            table = section(load_toml(config), "data", config)
            cfg = resolve(cfg, None, [f"{k}={v}" for k, v in table.items()
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
            + (f"; skipped {skipped:,} bad record{'s' if skipped != 1 else ''}" if skipped
               else "")
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
                    typer.echo(f"  {k}: {human(v)}")
            else:
                typer.echo(f"{key}: {human(value)}")

    @app.command()
    def synth(
        out: Annotated[Path, typer.Option("--out", "-o", help="Corpus directory to write")],
        playlists: Annotated[int, typer.Option(help="Number of playlists")] = 2000,
        n_tracks: Annotated[int, typer.Option("--tracks", help="Number of tracks")] = 3000,
        seed: Annotated[int, typer.Option(help="Random seed")] = 0,
        mean_length: Annotated[float, typer.Option(help="Mean playlist length")] = 30.0,
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

        spec = SyntheticSpec(n_playlists=playlists, n_tracks=n_tracks, seed=seed,
                             mean_length=mean_length)
        corpus = generate(spec)
        if jsonl is not None:
            jsonl.mkdir(parents=True, exist_ok=True)
            write_jsonl(corpus, jsonl / "playlists.jsonl", jsonl / "tracks.jsonl")
        cfg = resolve(DataConfig(select="top_share", select_fraction=1.0), None,
                      [s.removeprefix("data.") for s in set_ or []])
        derive(corpus, cfg)
        corpus.manifest["sources"] = ["synthetic"]
        save_corpus(corpus, out)
        c = corpus.manifest["counts"]
        typer.echo(f"wrote {out}: {c['playlists']:,} playlists, {c['occurrences']:,} "
                   f"occurrences, {c['tracks']:,} tracks ({c['selected_tracks']:,} selected)")

    @app.command()
    def crawl(
        out: Annotated[Path, typer.Option("--out", "-o", help="Playlist JSON-lines file to write")],
        keyword: Annotated[
            list[str] | None, typer.Option("--keyword", "-k", help="Search keyword (repeatable)")
        ] = None,
        keywords_file: Annotated[
            list[Path] | None, typer.Option(help="File with one keyword per line")
        ] = None,
        tracks_out: Annotated[
            Path | None, typer.Option(help="Companion track file (default: OUT.tracks.jsonl)")
        ] = None,
        client_id: Annotated[
            str | None, typer.Option(help="Spotify client id (or DYNPLAYER_SPOTIFY_CLIENT_ID)")
        ] = None,
        client_secret: Annotated[
            str | None,
            typer.Option(help="Spotify client secret (or DYNPLAYER_SPOTIFY_CLIENT_SECRET)"),
        ] = None,
        per_keyword: Annotated[int, typer.Option(help="Playlists per keyword")] = 100,
        market: Annotated[str | None, typer.Option(help="ISO market code, e.g. US")] = None,
        api_base: Annotated[str, typer.Option(help="Web API base URL")] = (
            "https://api.spotify.com/v1"
        ),
        auth_url: Annotated[str, typer.Option(help="Token endpoint")] = (
            "https://accounts.spotify.com/api/token"
        ),
        max_retries: Annotated[int, typer.Option(help="Retries per request (429, 5xx)")] = 5,
        backoff: Annotated[float, typer.Option(help="First 5xx backoff in seconds")] = 1.0,
        max_wait: Annotated[
            float, typer.Option(help="Longest Retry-After to wait; longer stops the crawl")
        ] = 120.0,
    ) -> None:
        """Crawl playlists from the Spotify Web API into the JSON-lines format (resumable)."""
        from dynplayer.data.crawl import CrawlConfig, credentials, read_keywords
        from dynplayer.data.crawl import crawl as run_crawl

        if per_keyword < 1 or max_retries < 0 or backoff < 0 or max_wait < 0:
            raise typer.BadParameter("--per-keyword must be >= 1; retries and waits >= 0")
        words = read_keywords(keyword or [], keywords_file or [])
        cid, secret = credentials(client_id, client_secret)
        cfg = CrawlConfig(client_id=cid, client_secret=secret, api_base=api_base,
                          auth_url=auth_url, per_keyword=per_keyword, market=market,
                          max_retries=max_retries, backoff_s=backoff, max_wait_s=max_wait)
        summary = run_crawl(words, out, cfg, tracks_out=tracks_out,
                            progress=lambda msg: typer.echo(msg, err=True))
        s = summary.as_dict()
        typer.echo(f"wrote {out}: {s['playlists_written']} new playlists, "
                   f"{s['tracks_written']} track occurrences ({s['playlists_skipped']} without "
                   f"tracks skipped; {s['requests']} requests, {s['rate_limited']} rate limited, "
                   f"{s['retried']} retried)")

    @bench_app.command("prepare")
    def bench_prepare(
        mpd: Annotated[
            Path | None, typer.Option(help="Real playlists for (a); default ../shared/data/mpd")
        ] = None,
        artist_genres: Annotated[
            Path | None, typer.Option(help="Artist genres CSV read in (a)")
        ] = None,
        real: Annotated[bool, typer.Option(help="Run (a) prepare on real data")] = True,
        synthetic_playlists: Annotated[
            int, typer.Option(help="(b) synthetic playlists; 0 skips (b)")
        ] = 1_000_000,
        synthetic_tracks: Annotated[int, typer.Option(help="(b) synthetic tracks")] = 2_000_000,
        mean_length: Annotated[float, typer.Option(help="(b) mean playlist length")] = 66.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report")] = False,
    ) -> None:
        """Time prepare on real data (a) and derive on a full-MPD-scale synthetic corpus (b)."""
        from dynplayer.data.benchmark import run_benchmarks

        shared = Path("..") / "shared" / "data"
        if real and mpd is None:
            mpd = shared / "mpd"
            if artist_genres is None and (shared / "artist-genres").is_dir():
                artist_genres = shared / "artist-genres" / "data_w_genres.csv.gz"
        report = run_benchmarks(mpd=mpd if real else None, artist_genres=artist_genres,
                                synthetic_playlists=synthetic_playlists,
                                synthetic_tracks=synthetic_tracks, mean_length=mean_length)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        m = report["machine"]
        typer.echo(f"machine: {m['cpus']} CPUs, load {m['load_avg_1min_at_start']}")
        if "real" in report:
            r = report["real"]
            c = r["counts"]
            typer.echo(f"(a) prepare {r['input']}: {r['wall_s']} s in prepare() "
                       f"({r['process_wall_s']} s with process start; {r['cpu_s']} CPU s), "
                       f"peak RSS "
                       f"{r['peak_rss_mb']:.0f} MiB; {c['playlists']:,} playlists, "
                       f"{c['occurrences']:,} occurrences, {c['selected_tracks']:,} selected; "
                       f"stages {r['timings_s']}")
        if "synthetic" in report:
            s = report["synthetic"]
            c = s["counts"]
            typer.echo(f"(b) synthetic {c['playlists']:,} playlists, {c['occurrences']:,} "
                       f"occurrences, {c['tracks']:,} tracks: generate {s['generate_s']} s, "
                       f"derive {s['derive_s']} s ({s['derive_cpu_s']} CPU s; stages "
                       f"{s['timings_s']}), peak RSS "
                       f"{s['peak_rss_mb']:.0f} MiB; {c['selected_tracks']:,} selected")
