"""`dynplayer library import`: read a library (a Subsonic server, a folder of audio files, or a
CSV / JSON-lines export), match it to the run's catalogue, apply the corrections fed back so
far, and store it with the run (`library.store`). Nothing is written when anything fails, and
a library none of whose tracks matches is an error, not an empty library."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dynplayer.errors import DataError
from dynplayer.library.match import Catalogue, MatchConfig, Matcher, summarize
from dynplayer.library.matchindex import load_catalogue
from dynplayer.library.records import LibraryPlaylist, LibraryTrack, read_table
from dynplayer.library.store import (
    Library,
    apply_corrections,
    check_name,
    read_corrections,
    save_library,
    stored_corrections,
)
from dynplayer.run import check_run_dir, run_version


@dataclass
class SourceRead:
    kind: str  # subsonic | folder | file
    location: str
    tracks: list[LibraryTrack]
    playlists: list[LibraryPlaylist]
    detail: dict[str, Any]


def read_source(source: str, credentials: Any = None) -> SourceRead:
    """The tracks and playlists of SOURCE: an http(s) URL is a Subsonic server (credentials
    from `credentials` or the environment), a folder is audio files, a file is CSV / JSON
    lines."""
    if source.startswith(("http://", "https://")):
        from dynplayer.library.subsonic import SubsonicClient, credentials_from_env

        client = SubsonicClient(source, credentials or credentials_from_env()).connect()
        tracks = client.songs()
        if not tracks:
            raise DataError("the server's library has no song with an artist and a title",
                            file=client.address.url)
        return SourceRead("subsonic", client.address.url, tracks, client.playlists(),
                          {"api_version": client.api_version, "server_type": client.server_type,
                           "open_subsonic": client.open_subsonic})
    path = Path(source)
    if path.is_dir():
        from dynplayer.library.tags import read_folder

        scan = read_folder(path)
        return SourceRead("folder", str(path.resolve()), scan.tracks, scan.playlists,
                          {"skipped": dict(scan.skipped)})
    if path.is_file():
        return SourceRead("file", str(path.resolve()), read_table(path), [], {})
    raise DataError("no such file or folder, and not a server URL (http://host:port)",
                    file=source)


@dataclass
class ImportReport:
    library: Library
    summary: dict[str, Any]
    seconds: dict[str, float]
    corrections: int


def import_library(run_dir: Path, source: str, *, name: str = "default",
                   corrections_file: Path | None = None, credentials: Any = None,
                   match_config: MatchConfig | None = None, catalogue: Catalogue | None = None,
                   log: Callable[[str], None] | None = None) -> ImportReport:
    """Read, match, correct and store one library (see the module docstring)."""
    check_name(name)
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    check_run_dir(run_dir)
    read = read_source(source, credentials)
    t_read = time.perf_counter()
    say(f"read {len(read.tracks):,} tracks and {len(read.playlists)} playlists from "
        f"{read.location} ({t_read - t0:.1f} s)")
    index = "given"
    if catalogue is None:  # the index stored with the run (built and stored when stale)
        loaded = load_catalogue(run_dir)
        catalogue, index = loaded.catalogue, "built" if loaded.built else "read"
        say(f"catalogue match index {index} ({loaded.seconds:.1f} s)")
    t_cat = time.perf_counter()
    cfg = match_config or MatchConfig()
    matches = Matcher(catalogue, cfg).match_all(read.tracks)
    t_match = time.perf_counter()
    lib = Library(name, Path(run_dir), {}, read.tracks, matches, read.playlists)
    known = lib.index()
    corrections = {k: v for k, v in stored_corrections(run_dir, name).items() if k in known}
    if corrections_file is not None:
        corrections.update(read_corrections(corrections_file, known, catalogue))
    n_corr = apply_corrections(lib, corrections, catalogue)
    summary = summarize(lib.matches)
    if summary["how"]["none"] == len(lib.tracks):
        raise DataError(f"none of the {len(lib.tracks):,} library tracks matched the catalogue "
                        f"of {run_dir} (not even by artist); is it the right run?",
                        file=read.location)
    lib.manifest = {
        "name": name,
        "source": {"kind": read.kind, "location": read.location, **read.detail},
        "imported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run_version": run_version(run_dir),
        "counts": summary, "playlists": len(read.playlists), "corrections": n_corr,
        "match_config": asdict(cfg), "catalogue_index": index,
        "seconds": {"read": round(t_read - t0, 3), "catalogue": round(t_cat - t_read, 3),
                    "match": round(t_match - t_cat, 3)},
    }
    save_library(run_dir, lib, corrections, catalogue)
    seconds = {**lib.manifest["seconds"], "total": round(time.perf_counter() - t0, 3)}
    return ImportReport(lib, summary, seconds, n_corr)


def correct_library(run_dir: Path, corrections_file: Path, name: str = "default") -> int:
    """Apply an edited review file (or any CSV with id, track_id) to a stored library and keep
    the corrections for later imports; returns how many tracks changed."""
    from dynplayer.library.store import load_library

    lib = load_library(run_dir, name)
    catalogue = load_catalogue(run_dir).catalogue
    known = lib.index()
    new = read_corrections(corrections_file, known, catalogue, lib.matches)
    corrections = {**stored_corrections(run_dir, name), **new}
    changed = apply_corrections(lib, new, catalogue)
    lib.manifest["counts"] = summarize(lib.matches)
    lib.manifest["corrections"] = len(corrections)
    save_library(run_dir, lib, corrections, catalogue)
    return changed


__all__ = ["ImportReport", "SourceRead", "correct_library", "import_library", "read_source"]
