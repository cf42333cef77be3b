"""A playlist as a file a music app can import: M3U, CSV or JSON, with Spotify URIs.

One writer for the CLI (`--save FILE` on `search`, `similar`, `recommend`) and the API
(`POST /v1/playlists/export`, which the web page's export buttons call), so both give the same
bytes. A track id that is a Spotify id (22 base-62 characters, bare, `spotify:track:ID` or an
open.spotify.com link) gets its URI; other catalogs' ids (Melon song numbers) are kept as they
are, with no URI.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dynplayer.errors import QueryError
from dynplayer.ids import normalize_track_id

FORMATS = ("m3u", "csv", "json")
MEDIA_TYPES = {"m3u": "audio/x-mpegurl", "csv": "text/csv", "json": "application/json"}
SUFFIXES = {".m3u": "m3u", ".m3u8": "m3u", ".csv": "csv", ".json": "json"}
_SPOTIFY_ID = re.compile("[0-9A-Za-z]{22}")


@dataclass(frozen=True)
class Entry:
    track_id: str
    name: str | None = None
    artist: str | None = None


def spotify_uri(track_id: str) -> str | None:
    """`spotify:track:ID` for a Spotify track id (in any of its spellings), else None."""
    tid = normalize_track_id(track_id)
    return f"spotify:track:{tid}" if _SPOTIFY_ID.fullmatch(tid) else None


def format_of(path: Path) -> str:
    """The format a file name asks for (.m3u / .m3u8, .csv, .json); a QueryError otherwise."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise QueryError(f"{path}: cannot tell the playlist format from the file name; use "
                         f"{', '.join(SUFFIXES)}")
    return fmt


def _title(e: Entry) -> str:
    return f"{e.artist or 'unknown artist'} - {e.name or e.track_id}"


def render(name: str, entries: Sequence[Entry], fmt: str) -> str:
    """The playlist `name` holding `entries` (in order) as M3U, CSV or JSON text."""
    if fmt not in FORMATS:
        raise QueryError(f"unknown playlist format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "json":
        tracks = [{"position": i, "track_id": e.track_id, "spotify_uri": spotify_uri(e.track_id),
                   "name": e.name, "artist": e.artist} for i, e in enumerate(entries, 1)]
        return json.dumps({"name": name, "tracks": tracks}, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["position", "track_id", "spotify_uri", "name", "artist"])
        for i, e in enumerate(entries, 1):
            writer.writerow([i, e.track_id, spotify_uri(e.track_id) or "", e.name or "",
                             e.artist or ""])
        return buf.getvalue()
    # Extended M3U: players and playlist importers read the #EXTINF title; the location is the
    # track's open.spotify.com link (a URL every importer accepts), else its id.
    lines = ["#EXTM3U", f"#PLAYLIST:{' '.join(name.split())}"]
    for e in entries:
        uri = spotify_uri(e.track_id)
        lines.append(f"#EXTINF:-1,{' '.join(_title(e).split())}")
        lines.append(f"https://open.spotify.com/track/{uri.rsplit(':', 1)[1]}" if uri
                     else e.track_id)
    return "\n".join(lines) + "\n"


def write_playlist(path: Path, name: str, entries: Sequence[Entry]) -> Path:
    """Write the playlist to `path` in the format its suffix names, atomically."""
    from dynplayer.run import atomic_write_bytes

    text = render(name, entries, format_of(path))
    atomic_write_bytes(Path(path), text.encode("utf-8"))
    return Path(path)


__all__ = ["FORMATS", "MEDIA_TYPES", "Entry", "format_of", "render", "spotify_uri",
           "write_playlist"]
