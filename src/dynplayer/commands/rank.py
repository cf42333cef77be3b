"""`dynplayer train-ranker`, `recommend` and `bench ranker`: the learned second stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dynplayer.commands.bench import bench_app


def register(app: typer.Typer) -> None:
    """Add the second stage's subcommands to the app."""

    @app.command("train-ranker")
    def train_ranker_cmd(
        run_dir: Annotated[Path, typer.Argument(help="Run directory (dynplayer train)")],
        n_train: Annotated[int, typer.Option(help="Training playlists carved out as examples")]
        = 2000,
        groups: Annotated[str | None, typer.Option(help="Feature groups, comma separated "
                                                   "(default: all but text)")] = None,
        threads: Annotated[int, typer.Option(help="LightGBM threads")] = 2,
        as_json: Annotated[bool, typer.Option("--json", help="Print the manifest")] = False,
    ) -> None:
        """Fit the second stage; write RUN_DIR/ranker/ when it beats the embedding ranking on
        validation (RUN_DIR/ranker-rejected/ otherwise)."""
        from dynplayer.rank.train import TrainRankerConfig, train_ranker

        cfg = TrainRankerConfig(n_train=n_train)
        cfg.params.threads = threads
        if groups is not None:
            cfg.groups = [g.strip() for g in groups.split(",") if g.strip()]
        manifest = train_ranker(run_dir, cfg, log=lambda m: typer.echo(m, err=True))
        if as_json:
            typer.echo(json.dumps(manifest, indent=2))
            return
        v = manifest["validation"]
        typer.echo(f"wrote {manifest['written']}: validation recall@10 "
                   f"{v['two_stage']['recall@10']:.4f} / ndcg@10 {v['two_stage']['ndcg@10']:.4f}"
                   f" (embedding {v['embedding']['recall@10']:.4f} / "
                   f"{v['embedding']['ndcg@10']:.4f})")
        if not manifest["beats_embedding"]:
            typer.echo("the ranker does not beat the embedding ranking on validation: it is "
                       "not the default (kept in ranker-rejected/ for inspection)")

    @app.command()
    def recommend(
        run_dir: Annotated[Path, typer.Argument(help="Run directory")],
        tracks: Annotated[list[str] | None, typer.Argument(help="Track ids or names")] = None,
        seeds: Annotated[Path | None, typer.Option(help="JSON lines {pid, visible} (gzip ok)")]
        = None,
        k: Annotated[int, typer.Option("-k", "--k", help="Tracks per playlist")] = 20,
        jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON line per playlist")]
        = False,
        ranker: Annotated[bool, typer.Option(help="Use RUN_DIR/ranker/ when it exists")] = True,
        max_per_artist: Annotated[int | None, typer.Option(
            help="At most this many tracks per artist (0: no cap; default: chosen on "
                 "validation)")] = None,
        save: Annotated[Path | None, typer.Option(
            help="Also write the seeds and their continuation as a playlist: FILE.m3u, .csv or "
                 ".json (Spotify URIs; not with --seeds)")] = None,
    ) -> None:
        """Continue playlists (--seeds FILE) or one list of tracks given by id or name."""
        from dynplayer.diversity import check_max_per_artist, pool_size
        from dynplayer.errors import QueryError
        from dynplayer.playlist_file import format_of
        from dynplayer.rank.candidates import Queries
        from dynplayer.rank.recommend import Recommender, read_seed_file

        if (seeds is None) == (not tracks):
            raise QueryError("give either TRACK... or --seeds FILE")
        if not 1 <= k <= 1000:
            raise QueryError(f"k must be between 1 and 1000, got {k}")
        cap = check_max_per_artist(max_per_artist, "continue")
        if save is not None:
            if seeds is not None:
                raise QueryError("--save writes one playlist: give TRACK..., not --seeds FILE")
            format_of(save)
        rec = Recommender.load(run_dir, use_ranker=ranker)
        if seeds is not None:
            sf = read_seed_file(seeds, rec.index)
            results = _varied(rec, rec.recommend(sf.queries, pool_size(k, cap, 1000)), cap, k)
            out = sys.stdout
            for pid, (cols, scores) in zip(sf.pids, results, strict=True):
                line = {"pid": pid, "tracks": [rec.run.ids[c] for c in cols.tolist()],
                        "scores": [round(float(s), 6) for s in scores.tolist()]}
                if jsonl:
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                else:
                    out.write(f"{pid}: " + " ".join(line["tracks"]) + "\n")
            typer.echo(f"{len(sf.pids):,} playlists ({rec.method}); {sf.unknown:,} unknown track "
                       f"ids skipped; {len(sf.empty):,} playlists with no known track got the "
                       "most popular tracks", err=True)
            return
        assert tracks is not None
        import numpy as np

        rows = list(dict.fromkeys(rec.resolve(tracks)))
        q = Queries(np.array([0, len(rows)], dtype=np.int64), np.asarray(rows, dtype=np.int64))
        cols, scores = _varied(rec, rec.recommend(q, pool_size(k, cap, 1000)), cap, k)[0]
        if save is not None:
            from dynplayer.playlist_file import Entry, write_playlist

            entries = [Entry(t, None if n == "?" else n, None if a == "?" else a)
                       for t, n, a in (rec.label(int(c)) for c in [*rows, *cols.tolist()])]
            write_playlist(save, "Continued: " + "; ".join(" - ".join(rec.label(r)[1:])
                                                            for r in rows)[:180], entries)
            typer.echo(f"saved {len(entries)} tracks to {save}", err=True)
        if jsonl:
            typer.echo(json.dumps({"tracks": [rec.run.ids[c] for c in cols.tolist()],
                                   "scores": [round(float(s), 6) for s in scores.tolist()]}))
            return
        typer.echo("seeds: " + "; ".join(" - ".join(rec.label(r)[1:]) for r in rows))
        typer.echo(f"{'#':>3}  {'score':>8}  {'track':<40}  {'artist':<28}  id")
        for i, (c, s) in enumerate(zip(cols.tolist(), scores.tolist(), strict=True), 1):
            tid, name, artist = rec.label(c)
            typer.echo(f"{i:>3}  {s:8.3f}  {name[:40]:<40}  {artist[:28]:<28}  {tid}")
        typer.echo(f"({rec.method})")

    @bench_app.command("ranker")
    def bench_ranker(
        run_dir: Annotated[Path, typer.Argument(help="Run directory with a trained run")],
        out: Annotated[Path | None, typer.Option(help="Write the tables (markdown) here")]
        = None,
        peers: Annotated[str, typer.Option(help="Peers tuned on validation: all | comma list")]
        = "itemknn,ease,als",
        ablation: Annotated[bool, typer.Option(help="Refit without each feature group")] = True,
        threads: Annotated[int, typer.Option(help="Threads")] = 2,
    ) -> None:
        """Embedding vs two-stage vs the tuned peers on the test split, the feature-group
        ablation, and the ranker's CPU per request."""
        from dynplayer.eval.peers import parse_peers
        from dynplayer.rank.bench import run_bench

        text = run_bench(run_dir, parse_peers(peers), ablation=ablation, threads=threads,
                         log=lambda m: typer.echo(m, err=True))
        typer.echo(text)
        if out is not None:
            out.write_text(text + "\n", encoding="utf-8")


def _varied(rec: Any, ranked: list[tuple[Any, Any]], cap: int,
            k: int) -> list[tuple[Any, Any]]:
    """Each ranked pool cut to k with at most `cap` tracks per artist (`dynplayer.diversity`)."""
    from dynplayer.diversity import diversify

    out = []
    for cols, scores in ranked:
        keep = diversify([rec.corpus.artists[rec.vocab[int(c)]] for c in cols], cap, k)
        out.append((cols[keep], scores[keep]))
    return out
