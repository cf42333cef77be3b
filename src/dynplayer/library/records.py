"""A listener's library as Dynplayer reads it: one `LibraryTrack` per file or server song, and the
listener's own playlists; read from a CSV or JSON-lines export here (a folder of audio files:
`library.tags`; a Subsonic server: `library.subsonic`).

CSV / JSON lines fields: `id` (the library's own id, required, unique), `artist`, `title`
(required, non-empty), and optionally `album`, `isrc`, `mbid` (MusicBrainz recording id) and
`track_id` (a catalogue id such as a Spotify URI, from a streaming export). Unknown fields are
ignored. A bad record is a `DataError` naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dynplayer.errors import DataError

MAX_FIELD = 1000  # characters: longer is not a tag


@dataclass(frozen=True)
class LibraryTrack:
    """One track of a listener's library (its tags; no catalogue knowledge)."""

    id: str
    artist: str
    title: str
    album: str | None = None
    isrc: str | None = None
    mbid: str | None = None
    track_id: str | None = None  # a catalogue id the source carries (a streaming export)

    def as_dict(self) -> dict[str, Any]:
        # the fields by hand: dataclasses.asdict deep-copies, ~1 s for a 20,000-track library
        return {k: v for k in _TRACK_FIELDS if (v := getattr(self, k)) is not None}


_TRACK_FIELDS = tuple(f.name for f in fields(LibraryTrack))


@dataclass(frozen=True)
class LibraryPlaylist:
    """A playlist of the listener's (from the server or an .m3u file): library ids in order."""

    id: str
    name: str
    tracks: list[str] = field(default_factory=list)
    comment: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "tracks": list(self.tracks),
                "comment": self.comment}


def _text(value: Any, where: dict[str, Any], name: str, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError("missing or empty", field=name, **where)
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "id":
        value = str(value)
    if not isinstance(value, str):
        raise DataError(f"must be text, got {type(value).__name__}", field=name, **where)
    if "\x00" in value or len(value) > MAX_FIELD:
        raise DataError(f"not a tag (NUL character or over {MAX_FIELD} characters)",
                        field=name, **where)
    return value.strip()


def track_from_record(obj: Any, where: dict[str, Any]) -> LibraryTrack:
    """A `LibraryTrack` from one record (a dict of the fields above); DataError when bad."""
    if not isinstance(obj, dict):
        raise DataError("each record must be an object with id, artist and title", **where)
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    values = {name: _text(lowered.get(name), where, name, name in ("id", "artist", "title"))
              for name in ("id", "artist", "title", "album", "isrc", "mbid", "track_id")}
    return LibraryTrack(**values)  # type: ignore[arg-type]


def _open_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror or exc})", file=str(path)) from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError("damaged gzip file", file=str(path)) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from exc


def read_jsonl(path: Path) -> list[LibraryTrack]:
    """One JSON object per line (blank lines skipped)."""
    out = []
    for line_no, line in enumerate(_open_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where: dict[str, Any] = {"file": str(path), "line": line_no}
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON ({exc.msg})", **where) from exc
        out.append(track_from_record(obj, where))
    return _checked(out, path)


def read_csv(path: Path) -> list[LibraryTrack]:
    """A CSV (or tab-separated) file with a header row naming the fields."""
    text = _open_text(path)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [f for f in ("id", "artist", "title") if f not in header]
    if missing:
        raise DataError(f"the header lacks {', '.join(missing)} (it has: "
                        f"{', '.join(header) or 'nothing'})", file=str(path), line=1)
    out = []
    try:
        for row in reader:
            where: dict[str, Any] = {"file": str(path), "line": reader.line_num}
            if None in row:
                raise DataError("more fields than the header names", **where)
            out.append(track_from_record(row, where))
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", file=str(path), line=reader.line_num) from exc
    return _checked(out, path)


def _checked(tracks: list[LibraryTrack], path: Path) -> list[LibraryTrack]:
    if not tracks:
        raise DataError("no library tracks in the file", file=str(path))
    seen: set[str] = set()
    for i, t in enumerate(tracks, start=1):
        if t.id in seen:
            raise DataError(f"duplicate id {t.id!r} (record {i})", file=str(path), field="id")
        seen.add(t.id)
    return tracks


def read_table(path: Path, *, jsonl: bool | None = None) -> list[LibraryTrack]:
    """A CSV or JSON-lines file, told apart by its content (a first character `{`) unless
    `jsonl` says."""
    if jsonl is None:
        jsonl = _open_text(path).lstrip()[:1] == "{"
    return read_jsonl(path) if jsonl else read_csv(path)


__all__ = ["LibraryPlaylist", "LibraryTrack", "read_csv", "read_jsonl", "read_table",
           "track_from_record"]
