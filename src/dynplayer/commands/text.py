"""`dynplayer` subcommands for the text stage: `train-text`, `search`, `bench text`."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from dynplayer.commands.bench import bench_app


def register(app: typer.Typer) -> None:
    """Add this stage's subcommands to the app."""

    @app.command("train-text")
    def train_text_cmd(
        run_dir: Annotated[Path, typer.Argument(help="Run directory (vectors.npy, ids.txt, "
                                                     "config.json)")],
        encoder: Annotated[str | None, typer.Option(help="use | minilm | ngram")] = None,
        config: Annotated[Path | None, typer.Option(help="TOML file with a [text] table")]
        = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. epochs=20")]
        = None,
        calibrate_only: Annotated[bool, typer.Option(
            help="Only (re)calibrate the existing text model's confidence on the validation "
                 "captions (text/confidence.json, text/words.txt)")] = False,
    ) -> None:
        """Fit the caption <-> playlist model and write RUN_DIR/text/ atomically."""
        from dynplayer.config import flatten, load_toml, resolve, section
        from dynplayer.text.model import TextConfig
        from dynplayer.text.train import train_text

        if calibrate_only:
            from dynplayer.errors import ArtifactError
            from dynplayer.text.confidence import write_calibration

            if not (run_dir / "text").is_dir():
                raise ArtifactError(f"{run_dir}: no text model (run `dynplayer train-text` "
                                    "first)")
            v = write_calibration(run_dir).validation
            typer.echo(f"wrote {run_dir / 'text' / 'confidence.json'}: on {v['queries']:,} "
                       f"validation captions {v['captions_nothing']:.1%} nothing close, "
                       f"{v['captions_weak']:.1%} weak; on {v['noise_queries']} random letter "
                       f"strings {v['noise_nothing']:.1%} nothing close")
            return

        cfg = TextConfig()
        if config is not None:
            table = section(load_toml(config), "text", config)
            cfg = resolve(cfg, None, [f"{k}={v}" for k, v in flatten(table).items()])
        sets = [s.removeprefix("text.") for s in set_ or []]
        if encoder is not None:
            sets.append(f"encoder={encoder}")
        cfg = resolve(cfg, None, sets)
        metrics = train_text(run_dir, cfg)
        typer.echo(f"wrote {run_dir / 'text'}: encoder {cfg.encoder}, "
                   f"{metrics['n_train_playlists']:,} training captions, best validation "
                   f"keyword->playlist Recall@10 {metrics['best_val_recall@10']:.4f}, "
                   f"{metrics['total_seconds']:.1f}s")

    @app.command()
    def search(
        run_dir: Annotated[Path, typer.Argument(help="Run directory with a text/ model")],
        query: Annotated[str | None, typer.Argument(help="Free text, e.g. \"rainy day jazz\"")]
        = None,
        k: Annotated[int, typer.Option("-k", "--k", help="Number of tracks")] = 20,
        queries: Annotated[Path | None, typer.Option(help="File with one query per line")]
        = None,
        jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON line per query")] = False,
        playlists: Annotated[int, typer.Option(help="Playlists to print")] = 10,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Search override, e.g. "
                                                       "top_playlists=50")] = None,
        max_per_artist: Annotated[int | None, typer.Option(
            help="At most this many tracks per artist (0: no cap; default: the text answers' "
                 "default, chosen on validation)")] = None,
        save: Annotated[Path | None, typer.Option(
            help="Also write the tracks as a playlist: FILE.m3u, .csv or .json (Spotify URIs; "
                 "with --queries, the first query's)")] = None,
    ) -> None:
        """Tracks, with their ids, for a free-text query, and the playlists they come from.

        Scored by the same function as the API (the exact recommender; the pgvector backend
        too, up to 50,000 playlists), so both give the same tracks and scores."""
        # (light imports: a bad argument is refused in well under a second)
        from dynplayer.config import parse_set_options
        from dynplayer.diversity import check_max_per_artist
        from dynplayer.errors import ArtifactError, QueryError
        from dynplayer.playlist_file import format_of
        from dynplayer.serve.limits import check_k
        from dynplayer.text.query import check_query

        # Every argument is checked before anything is loaded (loading takes seconds).
        if (query is None) == (queries is None):
            raise QueryError("give either a QUERY or --queries FILE")
        check_k(k)
        if playlists < 0:
            raise QueryError(f"--playlists must be 0 or more, got {playlists}")
        overrides = _search_overrides(parse_set_options(set_))
        check_max_per_artist(max_per_artist, "text")
        if save is not None:
            format_of(save)
        if queries is not None:
            try:
                lines = queries.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise QueryError(f"{queries}: cannot read the queries file ({exc})") from exc
            if not lines:
                raise QueryError(f"{queries}: the queries file is empty")
            # One answer per line, in order: a blank line is an error naming it, not skipped
            # (skipping it would shift every later answer off its question).
            texts, where = lines, [f"{queries}:{n}: " for n in range(1, len(lines) + 1)]
        else:
            assert query is not None
            texts, where = [query], [""]
        # Check every query before answering any, so a bad line leaves no partial output.
        for text, at in zip(texts, where, strict=True):
            try:
                check_query(text)
            except QueryError as err:
                raise QueryError(f"{at}{err}") from err
        from dynplayer.run import check_run_dir

        check_run_dir(run_dir)
        if not (run_dir / "text").is_dir():
            raise ArtifactError(f"{run_dir}: no text model (run `dynplayer train-text` first)")
        from dynplayer.api import Dynplayer

        model = Dynplayer.load(run_dir, **overrides)
        for i, text in enumerate(texts):
            result = model.search(text, k=k, max_per_artist=max_per_artist)
            if save is not None and i == 0:
                save_results(save, text, result)
            if jsonl:
                sys.stdout.write(json.dumps({"query": text, "tracks": result.track_ids,
                                             "scores": [round(t.score or 0.0, 6)
                                                        for t in result],
                                             "searched_as": result.searched_as,
                                             "confidence": result.confidence,
                                             "match": result.match},
                                            ensure_ascii=False) + "\n")
                continue
            typer.echo(f"query: {text}")
            if result.searched_as:
                typer.echo(f"searched as: {result.searched_as} (Korean loanwords bridged; "
                           "--set loanwords=false searches the text as typed)")
            if result.match in VERDICT_LINES:
                typer.echo(VERDICT_LINES[result.match].format(c=result.confidence or 0.0))
            shown = result.playlists[:playlists]
            typer.echo(f"playlists ({len(shown)} of the {len(result.playlists)} the tracks come "
                       "from, by similarity):")
            for hit in shown:
                typer.echo(f"  {hit.similarity:6.3f}  {hit.caption}  [{hit.pid}]")
            typer.echo(f"tracks (top {len(result)}):")
            for t in result:
                # playlists that share a caption are named once ("summer" x4, not four times)
                captions = list(Counter(t.because).items())
                because = ", ".join(f'"{c}"' + (f" x{n}" if n > 1 else "")
                                    for c, n in captions[:3])
                more = f" +{len(captions) - 3} more" if len(captions) > 3 else ""
                typer.echo(f"  {t.rank:3d}. {t.track_id}  {t.label}  "
                           f"(score {t.score or 0:.3f}; from {because}{more})")

    @bench_app.command("text")
    def bench_text(
        run_dir: Annotated[Path, typer.Argument(help="Run directory with a text/ model")],
        split: Annotated[str, typer.Option(help="val | test")] = "test",
        out: Annotated[Path | None, typer.Option(help="Write the tables (markdown) here")]
        = None,
        latency_queries: Annotated[int, typer.Option(help="Queries timed one at a time")]
        = 500,
        tune: Annotated[bool, typer.Option(help="The validation grid the defaults come from")]
        = False,
        pairs: Annotated[Path | None, typer.Option(
            help="JSON lines {query, reference}: only the top-50 overlap of each query with its "
                 "reference wording (e.g. docs/probes/ko-en.jsonl)")] = None,
    ) -> None:
        """Keyword -> playlist and keyword -> tracks tables, hubness, and query latency."""
        from dynplayer.commands.bench import check_writable
        from dynplayer.text.bench import run_bench

        if out is not None:
            check_writable(out)
        text = run_bench(run_dir, split=split, latency_queries=latency_queries, tune=tune,
                         pairs=pairs)
        typer.echo(text)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")


# what a text answer's verdict (`dynplayer.text.confidence`) makes the CLI say first
VERDICT_LINES = {
    "weak": "weak match: the captions nearest to this query are only loosely related "
            "(confidence {c:.2f}); the tracks below may miss what you meant",
    "nothing": "nothing close: no caption of this model is near this query (unknown words or "
               "noise; confidence {c:.2f}); the tracks below are the nearest anyway, not an "
               "answer",
}


def save_results(path: Path, name: str, result: Any, first: Sequence[Any] = ()) -> None:
    """Write `first` (seed tracks: id, name, artist) then the answer's tracks as a playlist
    file (`dynplayer.playlist_file`), and say where on stderr."""
    from dynplayer.playlist_file import Entry, write_playlist

    entries = [Entry(t.track_id, t.name, t.artist) for t in (*first, *result)]
    write_playlist(path, name, entries)
    typer.echo(f"saved {len(entries)} tracks to {path}", err=True)


def _search_overrides(sets: dict[str, str]) -> dict[str, Any]:
    """Only the search settings of TextConfig may change at query time."""
    from dynplayer.config import apply_overrides
    from dynplayer.errors import ConfigError
    from dynplayer.text.config import TextConfig

    if not sets:
        return {}
    allowed = {"retrieval", "caption_weight", "top_playlists", "sim_power", "qbnorm_beta",
               "prf_weight", "search_dims", "artist_weight", "genre_weight", "match_power",
               "loanwords"}
    bad = sorted(set(sets) - allowed)
    if bad:
        raise ConfigError(f"cannot change {', '.join(bad)} at search time "
                          f"(allowed: {', '.join(sorted(allowed))})")
    cfg = apply_overrides(TextConfig(), dict(sets))
    return {key: getattr(cfg, key) for key in sets}
