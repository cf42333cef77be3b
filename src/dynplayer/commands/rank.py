"""`dynplayer train-ranker`, `recommend` and `bench ranker`: the learned second stage."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
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
                                                   "(default: all but text and title)")] = None,
        threads: Annotated[int, typer.Option(help="LightGBM threads")] = 2,
        as_json: Annotated[bool, typer.Option("--json", help="Print the manifest")] = False,
        protocol: Annotated[str, typer.Option(
            help="mixed: both of the below, chosen on the sum of both protocols' figures; "
                 "field: challenge-shaped training splits, chosen on the validation split's "
                 "field cases (NDCG over 500 + R-precision); seed: random halves, chosen on "
                 "Recall@10 + NDCG@10")] = "mixed",
        recent_half_life: Annotated[float | None, typer.Option(
            help="The embedding retriever's mean halves a seed's weight every this many seeds "
                 "before the last (0: every seed alike; default: the stage's)")] = None,
    ) -> None:
        """Fit the second stage; write RUN_DIR/ranker/ when it beats the embedding ranking on
        validation (RUN_DIR/ranker-rejected/ otherwise)."""
        from dynplayer.errors import ConfigError
        from dynplayer.rank.train import (
            HEADLINE,
            PROTOCOLS,
            TrainRankerConfig,
            train_ranker,
            val_protocol,
        )

        if protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol must be mixed, field or seed, got {protocol!r}")
        cfg = TrainRankerConfig(n_train=n_train, protocol=protocol)
        cfg.params.threads = threads
        if recent_half_life is not None:
            if not (recent_half_life >= 0 and recent_half_life != float("inf")):  # NaN too
                raise ConfigError(f"--recent-half-life must be >= 0, got {recent_half_life}")
            cfg.stage.recent_half_life = recent_half_life
        if groups is not None:
            cfg.groups = [g.strip() for g in groups.split(",") if g.strip()]
        manifest = train_ranker(run_dir, cfg, log=lambda m: typer.echo(m, err=True))
        if as_json:
            typer.echo(json.dumps(manifest, indent=2))
            return
        v = manifest["validation"]
        keys = HEADLINE[val_protocol(cfg.protocol)]

        def fig(m: dict[str, float]) -> str:
            return " / ".join(f"{m[k]:.4f}" for k in keys)

        typer.echo(f"wrote {manifest['written']}: validation {' / '.join(keys)} "
                   f"({val_protocol(cfg.protocol)} protocol) {fig(v['two_stage'])} (embedding "
                   f"{fig(v['embedding'])})")
        if "validation_seed" in manifest:
            vs, seed_keys = manifest["validation_seed"], HEADLINE["seed"]
            typer.echo(f"  and {' / '.join(seed_keys)} (seed protocol) " + " / ".join(
                f"{vs['two_stage'][key]:.4f}" for key in seed_keys) + " (embedding " + " / ".join(
                f"{vs['embedding'][key]:.4f}" for key in seed_keys) + ")")
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
        name: Annotated[str | None, typer.Option(
            help="The playlist's name: evidence for the ranker; alone, a text query")] = None,
        max_per_artist: Annotated[int | None, typer.Option(
            help="At most this many tracks per artist (0: no cap; default: chosen on "
                 "validation)")] = None,
        save: Annotated[Path | None, typer.Option(
            help="Also write the seeds and their continuation as a playlist: FILE.m3u, .csv or "
                 ".json (Spotify URIs; not with --seeds)")] = None,
    ) -> None:
        """Continue playlists (--seeds FILE) or one playlist given by its tracks (ids or names)
        and / or its name."""
        from dynplayer.commands.data import count
        from dynplayer.diversity import check_max_per_artist, pool_size
        from dynplayer.errors import QueryError
        from dynplayer.playlist_file import format_of

        # Arguments first, then the seeds, and only then the model (loading takes seconds).
        if seeds is not None and (tracks or name is not None):
            raise QueryError("give either TRACK... / --name NAME or --seeds FILE (a seeds file "
                             "line carries its own name)")
        if seeds is None and not tracks and name is None:
            raise QueryError("give TRACK..., --name NAME or --seeds FILE")
        if name is not None:
            from dynplayer.errors import DataError
            from dynplayer.rank.recommend import check_name

            try:
                name = check_name(name, {})
            except DataError as exc:
                raise QueryError(f"--name: {str(exc).split(': ', 1)[-1]}") from exc
        if not 1 <= k <= 1000:
            raise QueryError(f"k must be between 1 and 1000, got {k}")
        cap = check_max_per_artist(max_per_artist, "continue")
        if save is not None:
            if seeds is not None:
                raise QueryError("--save writes one playlist: give TRACK..., not --seeds FILE")
            format_of(save)
        from dynplayer.run import check_run_dir, load_run

        check_run_dir(run_dir)
        if seeds is not None:
            _recommend_file(run_dir, seeds, k, jsonl, ranker, cap)
            return
        from dynplayer.serve.resolve import TrackResolver, UnknownTrackName
        from dynplayer.serve.track_search import matcher_for
        from dynplayer.store.track_names import track_names

        # the seeds are resolved from the names alone: an unknown one is refused before the
        # model (170 MB of vectors at 166k tracks) is read
        known = track_names(run_dir)
        resolver = TrackResolver(known.ids, known.names, known.artists, known.popularity,
                                 matcher=matcher_for(known))
        rows: list[int] = []
        unknown: list[str] = []
        for t in tracks or []:
            try:
                found = resolver.resolve(t)
            except UnknownTrackName:
                unknown.append(t)
                continue
            rows.append(found.row)
            if found.by_name:
                also = "; ".join(resolver.describe(o) for o in found.others[:3])
                typer.echo(f"{t!r}: {resolver.describe(found.row)}"
                           + (f" (also fits: {also})" if also else ""), err=True)
        if not rows and tracks and name is None:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise QueryError(f"none of the {len(tracks)} seeds is a track id or name in this "
                             f"model: {shown}")
        if unknown:
            typer.echo(f"{count(len(unknown), 'seed')} not in the model, skipped: "
                       + ", ".join(repr(u) for u in unknown), err=True)
        rows = list(dict.fromkeys(rows))
        import numpy as np

        from dynplayer.rank.candidates import Queries
        from dynplayer.rank.recommend import Recommender
        from dynplayer.store.catalog import track_catalog

        run = load_run(run_dir)
        cat = track_catalog(run_dir, run=run, names=known)
        rec = Recommender.load(run_dir, use_ranker=ranker, run=run)
        q = Queries(np.array([0, len(rows)], dtype=np.int64), np.asarray(rows, dtype=np.int64))
        names: list[str | None] | None = [name] if name is not None else None
        ranked = rec.recommend(q, pool_size(k, cap, 1000), names)
        cols, scores = _varied(cat.artists, ranked, cap, k)[0]
        method = rec.methods(q, names)[0]

        def label(r: int) -> tuple[str, str, str]:
            return cat.track_ids[r], cat.names[r] or "?", cat.artists[r] or "?"

        if save is not None:
            from dynplayer.playlist_file import Entry, write_playlist

            entries = [Entry(t, None if n == "?" else n, None if a == "?" else a)
                       for t, n, a in (label(int(c)) for c in [*rows, *cols.tolist()])]
            title = ("Continued: " + "; ".join(" - ".join(label(r)[1:]) for r in rows)[:180]
                     if rows else f"Continued: {name}")
            write_playlist(save, title, entries)
            typer.echo(f"saved {len(entries)} tracks to {save}", err=True)
        if jsonl:
            typer.echo(json.dumps({"tracks": [cat.track_ids[c] for c in cols.tolist()],
                                   "scores": [round(float(s), 6) for s in scores.tolist()],
                                   "method": method}))
            return

        if rows:
            typer.echo("seeds: " + "; ".join(" - ".join(label(r)[1:]) for r in rows))
        if name is not None:
            typer.echo(f"name: {name}")
        typer.echo(f"{'#':>3}  {'score':>8}  {'track':<40}  {'artist':<28}  id")
        for i, (c, s) in enumerate(zip(cols.tolist(), scores.tolist(), strict=True), 1):
            tid, name, artist = label(c)
            typer.echo(f"{i:>3}  {s:8.3f}  {name[:40]:<40}  {artist[:28]:<28}  {tid}")
        typer.echo(f"({method})")

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


def _recommend_file(run_dir: Path, seeds: Path, k: int, jsonl: bool, ranker: bool,
                    cap: int) -> None:
    """`recommend --seeds FILE`: one output line per input line; the file is read and checked
    before the model is loaded."""
    from dynplayer.commands.data import count
    from dynplayer.diversity import pool_size
    from dynplayer.rank.recommend import Recommender, read_seed_file

    ids = (run_dir / "ids.txt").read_text().splitlines()
    sf = read_seed_file(seeds, {t: i for i, t in enumerate(ids)})
    rec = Recommender.load(run_dir, use_ranker=ranker)
    out = sys.stdout
    names = sf.names if any(sf.names) else None
    methods = rec.methods(sf.queries, names)
    ranked = rec.recommend(sf.queries, pool_size(k, cap, 1000), names)
    if cap > 0:
        from dynplayer.store.catalog import track_catalog

        ranked = _varied(track_catalog(run_dir).artists, ranked, cap, k)
    for pid, (cols, scores), how in zip(sf.pids, ranked, methods, strict=True):
        line = {"pid": pid, "tracks": [ids[c] for c in cols.tolist()],
                "scores": [round(float(s), 6) for s in scores.tolist()], "method": how}
        if jsonl:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            out.write(f"{pid}: " + " ".join(line["tracks"]) + "\n")
    typer.echo(f"{count(len(sf.pids), 'playlist')} ({rec.method}); "
               f"{count(sf.unknown, 'unknown track id')} skipped; "
               f"{count(len(sf.empty), 'playlist')} with no known track got the most popular "
               "tracks", err=True)


def _varied(artists: Sequence[str | None], ranked: list[tuple[Any, Any]], cap: int,
            k: int) -> list[tuple[Any, Any]]:
    """Each ranked pool cut to k with at most `cap` tracks per artist (`dynplayer.diversity`);
    `artists` by run row."""
    from dynplayer.diversity import diversify

    out = []
    for cols, scores in ranked:
        keep = diversify([artists[int(c)] for c in cols], cap, k)
        out.append((cols[keep], scores[keep]))
    return out
