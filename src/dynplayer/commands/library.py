"""`dynplayer library ...`: a listener's own music (import, correct, mix, search, continue,
discover, list) and `bench library`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dynplayer.commands.bench import bench_app

library_app = typer.Typer(help="Your own music: import a library (Subsonic server, folder, "
                          "CSV / JSON lines), then mixes, text playlists, continuations and "
                          "discoveries from it, written back to the server.",
                          no_args_is_help=True)

RunArg = Annotated[Path, typer.Argument(help="Run directory (dynplayer train)")]
LibraryOpt = Annotated[str, typer.Option("--library", help="The library's name")]
KOpt = Annotated[int, typer.Option("-k", "--k", help="Tracks in the answer (1-200)")]
JsonlOpt = Annotated[bool, typer.Option("--jsonl", help="One JSON line: {tracks, because, ...}")]
SaveOpt = Annotated[str | None, typer.Option(
    "--save", help="Write the answer to the library's server as the playlist "
    "'Dynplayer: NAME' (credentials from DYNPLAYER_SUBSONIC_USER / _PASSWORD or _API_KEY)")]
DryOpt = Annotated[bool, typer.Option("--dry-run", help="With --save: show the change, write "
                                      "nothing")]


def register(app: typer.Typer) -> None:
    app.add_typer(library_app, name="library")


@library_app.command("import")
def import_cmd(
    run_dir: RunArg,
    source: Annotated[str, typer.Argument(help="A Subsonic server URL (http://host:port), a "
                                          "folder of audio files, or a CSV / JSON-lines file")],
    name: Annotated[str, typer.Option("--name", help="Name to store the library under")]
    = "default",
    jsonl: Annotated[bool, typer.Option("--jsonl", help="Print one JSON line per library "
                                        "track: {id, track_id, how, score, ...}")] = False,
    corrections: Annotated[Path | None, typer.Option(
        help="An edited matches.csv (id, track_id) to apply")] = None,
) -> None:
    """Read a library, match it to the run's catalogue, and store it with the run."""
    from dynplayer.library.importer import import_library

    report = import_library(run_dir, source, name=name, corrections_file=corrections,
                            log=lambda m: typer.echo(m, err=True))
    lib = report.library
    if jsonl:
        for t, m in zip(lib.tracks, lib.matches, strict=True):
            typer.echo(json.dumps({"id": t.id, "track_id": m.track_id, "how": m.how,
                                   "score": round(m.score, 4), "status": m.status,
                                   "artist": m.artist}, ensure_ascii=False))
    s = report.summary
    how = ", ".join(f"{k} {v:,}" for k, v in s["how"].items())
    typer.echo(f"library {name!r}: {s['tracks']:,} tracks ({how}); "
               f"{s['status']['matched']:,} matched, {s['status']['ambiguous']:,} ambiguous, "
               f"{s['status']['unmatched']:,} unmatched; {len(lib.playlists)} playlists; "
               f"{report.corrections} corrections applied; {report.seconds['total']:.1f} s",
               err=jsonl)
    typer.echo(f"review and correct: {lib.path / 'matches.csv'} (then `dynplayer library "
               f"correct {run_dir} FILE --library {name}`)", err=jsonl)


@library_app.command("correct")
def correct_cmd(
    run_dir: RunArg,
    file: Annotated[Path, typer.Argument(help="The review file matches.csv, edited: set "
                                        "track_id to a catalogue id, or to none")],
    library: LibraryOpt = "default",
) -> None:
    """Feed corrected matches back; they are kept and applied again on every re-import."""
    from dynplayer.library.importer import correct_library

    n = correct_library(run_dir, file, library)
    typer.echo(f"library {library!r}: {n} track{'s' * (n != 1)} corrected")


@library_app.command("list")
def list_cmd(run_dir: RunArg,
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """The libraries stored with the run, with their match counts."""
    from dynplayer.library.store import list_libraries, load_library

    out: list[dict[str, Any]] = []
    for name in list_libraries(run_dir):
        m = load_library(run_dir, name).manifest
        out.append({"name": name, "source": m.get("source"), "counts": m.get("counts"),
                    "playlists": m.get("playlists"), "imported_at": m.get("imported_at")})
    if as_json:
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    for lib in out:
        c = lib["counts"]
        typer.echo(f"{lib['name']}: {c['tracks']:,} tracks, {c['status']['matched']:,} matched, "
                   f"{c['status']['ambiguous']:,} ambiguous, {c['status']['unmatched']:,} "
                   f"unmatched; from {lib['source']['location']} ({lib['imported_at']})")
    if not out:
        typer.echo("no library (dynplayer library import RUN_DIR SOURCE)")


def _model(run_dir: Path, library: str, text: bool = False) -> Any:
    from dynplayer.library.answers import LibraryModel

    return LibraryModel.load(run_dir, library, text=text)


def _check_save(model: Any, save: str | None, dry_run: bool) -> None:
    """--save / --dry-run are checked before anything is computed or printed."""
    from dynplayer.errors import DynplayerError, QueryError

    if dry_run and save is None:
        raise QueryError("--dry-run goes with --save NAME")
    if save is not None:
        from dynplayer.library.writeback import playlist_name

        playlist_name(save)
        if model.library.source_url() is None:
            raise DynplayerError(f"the library {model.library.name!r} was not imported from a "
                                 "Subsonic server, so there is no server to write a playlist to")


def _emit(model: Any, answer: Any, jsonl: bool, save: str | None, dry_run: bool) -> None:
    if jsonl:
        typer.echo(json.dumps(answer.as_dict(), ensure_ascii=False))
    else:
        if answer.resolved:
            typer.echo("seeds: " + "; ".join(answer.resolved))
        if answer.searched_as:
            typer.echo(f"searched as: {answer.searched_as}")
        tracks = model.library.tracks
        for n, (lib_id, b) in enumerate(zip(answer.tracks, answer.because, strict=True), 1):
            if answer.kind == "discover":
                label = f"{b.get('name') or lib_id} - {b.get('artist') or '?'}"
            else:
                t = tracks[model.id_index[lib_id]]
                label = f"{t.title} - {t.artist}"
            typer.echo(f"{n:>3}. {label[:70]:<70}  {b.get('why', '')}")
            for p in b.get("playlists", [])[:2]:
                typer.echo(f"       because: {p['caption'] or p['pid']}")
        typer.echo(f"({answer.method}, {answer.ms:.0f} ms)")
    if save is not None:
        from dynplayer.library.writeback import save_playlist

        change = save_playlist(model.library, save, answer.tracks, dry_run=dry_run)
        typer.echo(change.describe(), err=jsonl)


@library_app.command("mix")
def mix_cmd(
    run_dir: RunArg,
    seeds: Annotated[list[str], typer.Argument(help="Library ids or names: a track "
                                               "(\"artist - title\" or a title), an album, an "
                                               "artist")],
    library: LibraryOpt = "default", k: KOpt = 20,
    per_artist: Annotated[int, typer.Option(help="At most this many tracks per artist "
                                            "(0: no cap)")] = 2,
    jsonl: JsonlOpt = False, save: SaveOpt = None, dry_run: DryOpt = False,
) -> None:
    """An instant mix from your library: tracks that continue the seeds, no repeats."""
    model = _model(run_dir, library)
    _check_save(model, save, dry_run)
    _emit(model, model.mix(seeds, k, per_artist), jsonl, save, dry_run)


@library_app.command("search")
def search_cmd(
    run_dir: RunArg,
    text: Annotated[str, typer.Argument(help="Free text, e.g. \"rainy day jazz\"")],
    library: LibraryOpt = "default", k: KOpt = 20,
    per_artist: Annotated[int, typer.Option(help="At most this many tracks per artist "
                                            "(0: no cap)")] = 3,
    jsonl: JsonlOpt = False, save: SaveOpt = None, dry_run: DryOpt = False,
) -> None:
    """A playlist from your library for free text, with the playlists behind each track."""
    from dynplayer.library.explore import search

    model = _model(run_dir, library, text=True)
    _check_save(model, save, dry_run)
    _emit(model, search(model, text, k, per_artist), jsonl, save, dry_run)


@library_app.command("continue")
def continue_cmd(
    run_dir: RunArg,
    playlist: Annotated[str, typer.Argument(help="One of your playlists: its id or name")],
    library: LibraryOpt = "default", k: KOpt = 20,
    per_artist: Annotated[int, typer.Option(help="At most this many tracks per artist "
                                            "(0: no cap)")] = 0,
    jsonl: JsonlOpt = False, save: SaveOpt = None, dry_run: DryOpt = False,
) -> None:
    """Continue one of your playlists (read at import) from your library."""
    model = _model(run_dir, library)
    _check_save(model, save, dry_run)
    _emit(model, model.continue_playlist(playlist, k, per_artist), jsonl, save, dry_run)


@library_app.command("discover")
def discover_cmd(
    run_dir: RunArg,
    seeds: Annotated[list[str], typer.Argument(help="Library ids or names (as for mix)")],
    library: LibraryOpt = "default", k: KOpt = 20,
    per_artist: Annotated[int, typer.Option(help="At most this many tracks per artist "
                                            "(0: no cap)")] = 2,
    jsonl: JsonlOpt = False,
) -> None:
    """Catalogue tracks you do not own that fit a mix, with the playlists behind them."""
    from dynplayer.library.explore import discover

    model = _model(run_dir, library)
    _emit(model, discover(model, seeds, k, per_artist), jsonl, None, False)


@bench_app.command("library")
def bench_library_cmd(
    run_dir: RunArg,
    libraries: Annotated[int, typer.Option(help="Simulated libraries")] = 20,
    playlists: Annotated[int, typer.Option(help="Test playlists per library")] = 25,
    unrelated: Annotated[int, typer.Option(help="Unrelated catalogue tracks per library")]
    = 2000,
    tune: Annotated[bool, typer.Option(help="First choose the match cut-offs on the labelled "
                                       "set (training-split tracks only)")] = False,
    server: Annotated[bool, typer.Option(help="Also time an import of --server-tracks songs "
                                         "from a local Supysonic (root, Debian package)")]
    = False,
    server_tracks: Annotated[int, typer.Option(help="Songs of the server library")] = 20000,
    import_tracks: Annotated[int, typer.Option(
        help="Also time `library import` of a CSV library of this many tracks (perturbed "
             "catalogue tags, 5% decoys): with no stored match index, then with it; 0: not")]
    = 0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    split: Annotated[str, typer.Option(help="Playlists to evaluate: test | val (to choose "
                                       "settings)")] = "test",
    placed_penalty: Annotated[float | None, typer.Option(
        help="Cosine penalty of tracks placed by playlists or artist (default: the built-in)")]
    = None,
    latency: Annotated[bool, typer.Option(help="Time mixes on a 20,000-track library")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the tables (markdown) here")] = None,
) -> None:
    """Matching precision / recall on perturbed tags, library continuation beside
    library-restricted peers, mix latency, (--server) the import from a real server, and
    (--import-tracks) the import of a CSV library, cold and warm."""
    from dynplayer.library.bench import BenchConfig, render, run_bench

    cfg = BenchConfig(libraries=libraries, playlists=playlists, unrelated=unrelated,
                      tune=tune, server=server, server_tracks=server_tracks,
                      import_tracks=import_tracks, seed=seed,
                      split=split, placed_penalty=placed_penalty,
                      latency_mixes=200 if latency else 0)
    if split not in ("test", "val"):
        from dynplayer.errors import ConfigError

        raise ConfigError(f"--split must be test or val, got {split!r}")
    report = run_bench(run_dir, cfg, log=lambda m: typer.echo(m, err=True))
    text = render(report)
    typer.echo(json.dumps(report, indent=2) if as_json else text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
