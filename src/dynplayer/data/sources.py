"""Readers for playlist collections: MPD slices, Melon JSON, and the JSON-lines interchange format.

Every reader feeds a `CorpusBuilder`; bad records raise `DataError` naming the file, the line or
playlist and the field (or are skipped and counted with --lenient).
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from dynplayer.data.builder import CorpusBuilder, SkipLog
from dynplayer.data.corpus import Corpus
from dynplayer.data.json_errors import JSON_ERRORS, json_problem
from dynplayer.errors import DataError
from dynplayer.ids import normalize_track_id

FORMATS = ("auto", "mpd", "melon", "jsonl")
_DATA_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


def _is_gzip(path: Path) -> bool:
    """Gzip by content (magic bytes), not by name, so a renamed file still reads."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"\x1f\x8b"
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from exc


def _open_text(path: Path) -> IO[str]:
    try:
        if _is_gzip(path):
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from exc


def _read_bytes(path: Path) -> bytes:
    """The whole file, decompressed; one-line errors for unreadable or empty files."""
    try:
        raw = Path(path).read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise DataError(f"cannot read file: {reason}", file=str(path)) from exc
    if not raw.strip():
        raise DataError("file is empty", file=str(path))
    return raw


def expand_inputs(inputs: Iterable[Path]) -> list[Path]:
    """Files named directly, plus the playlist files inside named directories (sorted)."""
    files: list[Path] = []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir()
                if f.is_file() and f.name.endswith(_DATA_SUFFIXES) and not f.name.startswith(".")
                and "genre_gn_all" not in f.name and not f.name.endswith(".state.json")
            )
            if not found:
                raise DataError("directory holds no playlist files (*.json, *.jsonl, *.gz)",
                                file=str(p))
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise DataError("no such file or directory", file=str(p))
    return files


def _first_line(path: Path, limit: int = 64 << 20) -> str:
    """The first non-blank line of a text file (read up to `limit` characters)."""
    try:
        with _open_text(path) as fh:
            for line in fh:
                if line.strip():
                    return line[:limit]
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read file: {exc}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=str(path)) from exc
    return ""


def sniff_format(path: Path) -> str:
    """Guess the format from the name and the first non-blank characters."""
    name = path.name.lower()
    if ".jsonl" in name or ".ndjson" in name:
        return "jsonl"
    if name.startswith("mpd.slice"):
        return "mpd"
    try:
        with _open_text(path) as fh:
            head = fh.read(4096)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read file: {exc}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=str(path)) from exc
    stripped = head.lstrip()
    if not stripped:
        raise DataError("file is empty", file=str(path))
    if stripped.startswith("["):
        if "plylst_title" in head or '"songs"' in head:
            return "melon"
    if stripped.startswith("{"):
        if '"playlists"' in head[:2000] and '"info"' in head[:2000]:
            return "mpd"
        try:
            json.loads(_first_line(path))  # in full: one playlist line can exceed any head
            return "jsonl"
        except JSON_ERRORS:  # JSONDecodeError, huge ints, deep nesting
            if '"playlists"' in head:
                return "mpd"
    raise DataError(
        "unknown format (expected an MPD slice, a Melon JSON list or playlist JSON lines); "
        "name it with --format mpd|melon|jsonl",
        file=str(path),
    )


def _load_json(path: Path) -> Any:
    raw = _read_bytes(path)
    try:
        # orjson parses an MPD slice 2.5x faster; anything it rejects (bad input, NaN, huge
        # integers) goes through json, which accepts what it should and names what is wrong.
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise DataError(json_problem(exc), file=str(path), line=exc.lineno) from exc
    except JSON_ERRORS as exc:
        raise DataError(json_problem(exc), file=str(path)) from exc


def _str_field(rec: dict[str, Any], key: str, *, where: str, line: int | None, pid: str | None,
               required: bool, allow_none: bool = True) -> str:
    if key not in rec:
        if required:
            raise DataError("missing field", file=where, line=line, playlist=pid, field=key)
        return ""
    value = rec[key]
    if value is None and allow_none:
        return ""
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", file=where, line=line,
                        playlist=pid, field=key)
    return value


def _pid(rec: dict[str, Any], key: str, where: str, line: int | None) -> str:
    if key not in rec:
        raise DataError("missing field", file=where, line=line, field=key)
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise DataError("expected a non-empty string or integer id", file=where, line=line,
                        field=key)
    return str(value)


# ---- MPD -----------------------------------------------------------------------------------

def _mpd_track_id(uri: Any, where: str, pid: str, i: int) -> str:
    if not isinstance(uri, str) or not uri:
        raise DataError(f"track {i}: expected a 'spotify:track:<id>' string", file=where,
                        playlist=pid, field="tracks.track_uri")
    tid = normalize_track_id(uri)
    if tid == uri.strip():  # not a Spotify URI or link: the id is after the last colon
        tid = tid.rsplit(":", 1)[-1]
    if not tid:
        raise DataError(f"track {i}: empty track id in {uri!r}", file=where, playlist=pid,
                        field="tracks.track_uri")
    return tid


def _mpd_register(builder: CorpusBuilder, cache: dict[str, int], t: Any, where: str, pid: str,
                  i: int) -> int:
    """Validate one MPD track entry and register it (the slow path, once per new uri)."""
    if not isinstance(t, dict) or "track_uri" not in t:
        raise DataError(f"track {i} has no track_uri", file=where, playlist=pid,
                        field="tracks.track_uri")
    uri = t["track_uri"]
    tid = _mpd_track_id(uri, where, pid, i)
    meta = []
    for key in ("track_name", "artist_name", "album_name"):
        v = t.get(key)
        meta.append(v if isinstance(v, str) else None)
    idx = builder.track(tid, meta[0], meta[1], meta[2])
    cache[uri] = idx
    return idx


def read_mpd(path: Path, builder: CorpusBuilder) -> None:
    """An MPD slice: {"info": ..., "playlists": [...]}, full or reduced track fields."""
    where = str(path)
    data = _load_json(path)
    if not isinstance(data, dict) or "playlists" not in data:
        raise DataError("not an MPD slice (no top-level 'playlists')", file=where,
                        field="playlists")
    playlists = data["playlists"]
    if not isinstance(playlists, list):
        raise DataError("expected a list", file=where, field="playlists")
    source = "mpd"
    # uri -> track_idx, so a known track costs one dict lookup (no parsing, no call).
    cache: dict[str, int] = builder.cache("mpd")
    get = cache.get
    for n, rec in enumerate(playlists):
        try:
            if not isinstance(rec, dict):
                raise DataError(f"playlist #{n} is not an object", file=where, field="playlists")
            pid = _pid(rec, "pid", where, None)
            name = _str_field(rec, "name", where=where, line=None, pid=pid, required=True)
            desc = _str_field(rec, "description", where=where, line=None, pid=pid, required=False)
            tracks = rec.get("tracks")
            if tracks is None:
                raise DataError("missing field", file=where, playlist=pid, field="tracks")
            if not isinstance(tracks, list):
                raise DataError("expected a list", file=where, playlist=pid, field="tracks")
            try:
                idxs = [get(t["track_uri"], -1) for t in tracks]
            except (TypeError, KeyError):  # a malformed entry: find and name it below
                idxs = [-1] * len(tracks)
            if -1 in idxs:
                for i, t in enumerate(tracks):
                    if idxs[i] == -1:
                        idxs[i] = _mpd_register(builder, cache, t, where, pid, i)
            builder.add_playlist(pid, name, desc, [], idxs, source=source, where=where)
        except DataError as err:
            builder.skip.fail(err)


# ---- Melon ---------------------------------------------------------------------------------

def read_melon(path: Path, builder: CorpusBuilder) -> None:
    """Melon native JSON: a list of {"id", "plylst_title", "tags", "songs", ...}."""
    where = str(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError("not a Melon playlist file (expected a JSON list)", file=where)
    cache: dict[Any, int] = builder.cache("melon")
    get = cache.get
    for n, rec in enumerate(data):
        try:
            if not isinstance(rec, dict):
                raise DataError(f"record #{n} is not an object", file=where)
            pid = _pid(rec, "id", where, None)
            title = _str_field(rec, "plylst_title", where=where, line=None, pid=pid,
                               required=True)
            tags = rec.get("tags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise DataError("expected a list of strings", file=where, playlist=pid,
                                field="tags")
            songs = rec.get("songs")
            if songs is None:
                raise DataError("missing field", file=where, playlist=pid, field="songs")
            if not isinstance(songs, list):
                raise DataError("expected a list", file=where, playlist=pid, field="songs")
            try:
                idxs = [get(s, -1) for s in songs]
            except TypeError:  # an unhashable entry: find and name it below
                idxs = [-1] * len(songs)
            if any(s.__class__ is bool for s in songs):
                # true/false would hit the cached song ids 1/0 (True == 1): name it below
                idxs = [-1 if isinstance(s, bool) else i for s, i in zip(songs, idxs,
                                                                         strict=True)]
            if -1 in idxs:
                for i, s in enumerate(songs):
                    if idxs[i] != -1:
                        continue
                    if isinstance(s, bool) or not isinstance(s, (int, str)) or s == "":
                        raise DataError(f"song {i}: expected an id", file=where, playlist=pid,
                                        field="songs")
                    idxs[i] = cache[s] = builder.track(str(s))
            builder.add_playlist(pid, title, "", list(tags), idxs, source="melon", where=where)
        except DataError as err:
            builder.skip.fail(err)


# ---- JSON lines ----------------------------------------------------------------------------

def _iter_json_lines(path: Path,
                     builder: CorpusBuilder) -> Iterator[tuple[int, dict[str, Any], bool]]:
    """(line number, record, whether the line holds a JSON true/false) per non-blank line;
    lines that are not a JSON object are failed (skipped and counted with --lenient)."""
    where = str(path)
    seen_any = False
    try:
        with _open_text(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                seen_any = True
                try:
                    rec = json.loads(raw)
                except JSON_ERRORS as exc:  # but not UnicodeDecodeError: the file
                    if isinstance(exc, UnicodeDecodeError):  # is not text; say so below
                        raise
                    builder.skip.fail(DataError(json_problem(exc), file=where, line=lineno))
                    continue
                if not isinstance(rec, dict):
                    builder.skip.fail(DataError("expected a JSON object", file=where,
                                                line=lineno))
                    continue
                # A JSON true is the int 1 to a dict (True == 1, same hash), so a track list
                # on a line that holds one is checked entry by entry (a substring test is cheap).
                yield lineno, rec, "true" in raw or "false" in raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read file: {exc}", file=where) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=where) from exc
    if not seen_any:
        raise DataError("file is empty", file=where)


def _genres(rec: dict[str, Any], where: str, line: int) -> list[str]:
    g = rec.get("genres")
    if g is None:
        return []
    if not isinstance(g, list) or not all(isinstance(x, str) for x in g):
        raise DataError("expected a list of strings or null", file=where, line=line,
                        field="genres")
    return g


def read_jsonl(path: Path, builder: CorpusBuilder) -> None:
    """Playlist JSON lines, or the companion track file (lines with "track_id", no "tracks")."""
    where = str(path)
    cache: dict[Any, int] = builder.cache("jsonl")
    get = cache.get
    for lineno, rec, has_bools in _iter_json_lines(path, builder):
        try:
            if "track_id" in rec and "tracks" not in rec and "pid" not in rec:
                tid = rec["track_id"]
                if not isinstance(tid, str) or not normalize_track_id(tid):
                    raise DataError("expected a non-empty string", file=where, line=lineno,
                                    field="track_id")
                tid = normalize_track_id(tid)
                meta = {}
                for key in ("track_name", "artist", "album"):
                    v = rec.get(key)
                    if v is not None and not isinstance(v, str):
                        raise DataError("expected a string or null", file=where, line=lineno,
                                        field=key)
                    meta[key] = v
                builder.track(tid, meta["track_name"], meta["artist"], meta["album"],
                              _genres(rec, where, lineno))
                continue
            pid = _pid(rec, "pid", where, lineno)
            name = _str_field(rec, "name", where=where, line=lineno, pid=pid, required=True)
            desc = _str_field(rec, "description", where=where, line=lineno, pid=pid,
                              required=False)
            tags = rec.get("tags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise DataError("expected a list of strings", file=where, line=lineno,
                                playlist=pid, field="tags")
            tracks = rec.get("tracks")
            if tracks is None:
                raise DataError("missing field", file=where, line=lineno, playlist=pid,
                                field="tracks")
            if not isinstance(tracks, list):
                raise DataError("expected a list of track ids", file=where, line=lineno,
                                playlist=pid, field="tracks")
            try:
                idxs = [get(t, -1) for t in tracks]
            except TypeError:  # an unhashable entry: find and name it below
                idxs = [-1] * len(tracks)
            if has_bools:
                idxs = [-1 if isinstance(t, bool) else i for t, i in zip(tracks, idxs,
                                                                          strict=True)]
            if -1 in idxs:
                for i, t in enumerate(tracks):
                    if idxs[i] != -1:
                        continue
                    if isinstance(t, bool) or not isinstance(t, (str, int)) or \
                            (isinstance(t, str) and not normalize_track_id(t)):
                        raise DataError(f"track {i}: expected a track id, got {t!r:.40}",
                                        file=where, line=lineno, playlist=pid, field="tracks")
                    idxs[i] = cache[t] = builder.track(normalize_track_id(str(t)))
            builder.add_playlist(pid, name, desc, list(tags), idxs, source="jsonl", where=where,
                                 line=lineno)
        except DataError as err:
            builder.skip.fail(err)


READERS = {"mpd": read_mpd, "melon": read_melon, "jsonl": read_jsonl}


def read_corpus(
    inputs: Iterable[Path], *, fmt: str = "auto", lenient: bool = False,
    tracks: Iterable[Path] = (), progress: bool | None = None,
    builder: CorpusBuilder | None = None,
) -> Corpus:
    """Read every input (files or directories) into one Corpus (no selection or split yet).

    Progress (files/s, ETA) goes to stderr when it is a terminal, unless `progress` says.
    `builder` replaces the default one (`dynplayer update` passes one that also rejects the
    playlist ids a run already holds).
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")
    builder = builder if builder is not None else CorpusBuilder(SkipLog(lenient=lenient))
    files = expand_inputs(inputs)
    if not files:
        raise DataError("no input files given")
    # Track files first so playlists pick up metadata (order does not change track_idx meaning).
    for f in list(tracks):
        try:
            read_jsonl(Path(f), builder)
        except DataError as err:  # a whole track file unreadable: fatal unless --lenient
            builder.skip.fail(err)
            continue
        builder.source_files.append(str(f))
    show = sys.stderr.isatty() if progress is None else progress
    t0 = last = time.monotonic()
    for n, f in enumerate(files, start=1):
        try:
            kind = sniff_format(f) if fmt == "auto" else fmt
            READERS[kind](f, builder)
        except DataError as err:
            # A whole file that cannot be read (empty, unreadable, malformed, unknown format):
            # fatal by default; with --lenient it is skipped and counted like a bad record.
            builder.skip.fail(err)
            continue
        finally:
            now = time.monotonic()
            if show and (now - last > 1.0 or n == len(files)):
                last = now
                rate = n / max(now - t0, 1e-9)
                print(f"\rread {n}/{len(files)} files, {len(builder.pids):,} playlists "
                      f"({rate:.1f} files/s, ETA {(len(files) - n) / rate:.0f} s)",
                      end="\n" if n == len(files) else "", file=sys.stderr, flush=True)
        builder.source_files.append(str(f))
    return builder.build()
