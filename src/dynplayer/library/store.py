"""A library stored with its run: RUN_DIR/library/NAME/, written to a temporary sibling and
swapped in (a failed import leaves the previous library as it was).

  manifest.json     source (kind, location: a server URL or a path, never a credential), API
                    version, counts by `how` and `status`, the match cut-offs, timings
  tracks.jsonl      one line per library track: its tags (a catalogue id the source carried:
                    `source_track_id`), its match (track_id, how, score, status, artist,
                    alternatives) and `corrected`
  playlists.jsonl   the listener's playlists: {id, name, tracks: [library ids], comment}
  matches.csv       the review file: one row per track with what it matched; edit `track_id`
                    (a catalogue id, or `none`) and feed it back with `dynplayer library correct`
  corrections.csv   the corrections fed back so far (id, track_id), applied again on re-import
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynplayer.errors import ArtifactError, DataError
from dynplayer.ids import normalize_track_id
from dynplayer.library.match import Catalogue, Match
from dynplayer.library.records import LibraryPlaylist, LibraryTrack
from dynplayer.run import atomic_directory

LIBRARY_DIR = "library"
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REVIEW_FIELDS = ["id", "artist", "title", "album", "status", "how", "score", "track_id",
                 "catalogue_artist", "catalogue_title", "alternatives"]


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DataError(f"library name {name!r} must be 1-64 letters, digits, '_', '-' or '.' "
                        "(starting with a letter or digit)")
    return name


def library_dir(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / LIBRARY_DIR / check_name(name)


@dataclass
class Library:
    """A stored library: its tracks, their matches, the listener's playlists."""

    name: str
    path: Path
    manifest: dict[str, Any]
    tracks: list[LibraryTrack]
    matches: list[Match]
    playlists: list[LibraryPlaylist] = field(default_factory=list)
    corrected: set[str] = field(default_factory=set)

    def index(self) -> dict[str, int]:
        return {t.id: i for i, t in enumerate(self.tracks)}

    def source_url(self) -> str | None:
        src = self.manifest.get("source", {})
        return src.get("location") if src.get("kind") == "subsonic" else None


def save_library(run_dir: Path, lib: Library, corrections: dict[str, str | None],
                 catalogue: Catalogue | None = None) -> Path:
    """Write the library directory atomically (see the module docstring)."""
    out = library_dir(run_dir, lib.name)
    with atomic_directory(out) as tmp:
        lines = [json.dumps({**_tags(t), **m.as_dict(), "corrected": t.id in lib.corrected},
                            ensure_ascii=False)
                 for t, m in zip(lib.tracks, lib.matches, strict=True)]
        (tmp / "tracks.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (tmp / "playlists.jsonl").write_text(
            "".join(json.dumps(p.as_dict(), ensure_ascii=False) + "\n" for p in lib.playlists),
            encoding="utf-8")
        (tmp / "matches.csv").write_text(review_csv(lib, catalogue), encoding="utf-8")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["id", "track_id"])
        for i, tid in corrections.items():
            w.writerow([i, tid or "none"])
        (tmp / "corrections.csv").write_text(buf.getvalue(), encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps({**lib.manifest,
                                                       "format_version": FORMAT_VERSION},
                                                      indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    lib.path = out
    return out


def _tags(t: LibraryTrack) -> dict[str, Any]:
    """The track's tags; a catalogue id its source carried is `source_track_id` (`track_id`
    is the match's)."""
    d = t.as_dict()
    if "track_id" in d:
        d["source_track_id"] = d.pop("track_id")
    return d


def review_csv(lib: Library, catalogue: Catalogue | None) -> str:
    """The review file: ambiguous first, then unmatched, then matched (each in library order)."""
    order = {"ambiguous": 0, "unmatched": 1, "matched": 2}
    rows = sorted(range(len(lib.tracks)), key=lambda i: (order[lib.matches[i].status], i))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(REVIEW_FIELDS)
    for i in rows:
        t, m = lib.tracks[i], lib.matches[i]
        c_artist = c_title = ""
        if catalogue is not None and m.track_id is not None:
            j = catalogue.id_index.get(m.track_id)
            if j is not None:
                c_artist, c_title = catalogue.artists[j] or "", catalogue.names[j] or ""
        elif m.how == "artist":
            c_artist = m.artist or ""
        w.writerow([t.id, t.artist, t.title, t.album or "", m.status, m.how, f"{m.score:.3f}",
                    m.track_id or "", c_artist, c_title, "|".join(m.alternatives)])
    return buf.getvalue()


def load_library(run_dir: Path, name: str = "default") -> Library:
    d = library_dir(run_dir, name)
    if not (d / "manifest.json").exists():
        have = list_libraries(run_dir)
        hint = f" (this run has: {', '.join(have)})" if have else \
            " (import one with `dynplayer library import`)"
        raise ArtifactError(f"{run_dir}: no library named {name!r}{hint}")
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        tracks, matches, corrected = [], [], set()
        for line in (d / "tracks.jsonl").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            tracks.append(LibraryTrack(**{k: obj.get(k) for k in (
                "id", "artist", "title", "album", "isrc", "mbid")},
                track_id=obj.get("source_track_id")))
            matches.append(Match(obj["how"], obj.get("track_id"), float(obj.get("score", 0)),
                                 obj.get("status", "unmatched"), obj.get("artist"),
                                 tuple(obj.get("alternatives") or ())))
            if obj.get("corrected"):
                corrected.add(obj["id"])
        playlists = [LibraryPlaylist(**json.loads(line)) for line in
                     (d / "playlists.jsonl").read_text(encoding="utf-8").splitlines()
                     if line.strip()]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{d}: damaged library ({type(exc).__name__}: {exc}); import it "
                            "again") from exc
    return Library(name, d, manifest, tracks, matches, playlists, corrected)


def list_libraries(run_dir: Path) -> list[str]:
    root = Path(run_dir) / LIBRARY_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").exists()
                  and not p.name.startswith("."))


def read_corrections(path: Path, known: dict[str, int], catalogue: Catalogue,
                     current: list[Match] | None = None) -> dict[str, str | None]:
    """Corrections from a CSV with `id` and `track_id` (the review file, edited): a row whose
    track_id differs from the current match (`none` or empty: not in the catalogue) is one.
    An unknown library id or catalogue id is a DataError naming the line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read ({exc})", file=str(path)) from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "id" not in header or "track_id" not in header:
        raise DataError("the header must name id and track_id", file=str(path), line=1)
    out: dict[str, str | None] = {}
    for row in reader:
        row = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k}
        where: dict[str, Any] = {"file": str(path), "line": reader.line_num}
        lib_id = row.get("id", "")
        if lib_id not in known:
            raise DataError(f"no library track with id {lib_id!r}", field="id", **where)
        raw = row.get("track_id", "")
        tid = None if raw.lower() in ("", "none") else normalize_track_id(raw)
        if tid is not None and tid not in catalogue.id_index:
            raise DataError(f"{raw!r} is not a track of the catalogue", field="track_id",
                            **where)
        if current is not None and current[known[lib_id]].track_id == tid and \
                not (tid is None and raw.lower() == "none"
                     and current[known[lib_id]].how != "none"):
            continue
        out[lib_id] = tid
    return out


def stored_corrections(run_dir: Path, name: str) -> dict[str, str | None]:
    path = library_dir(run_dir, name) / "corrections.csv"
    if not path.exists():
        return {}
    out: dict[str, str | None] = {}
    for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))):
        out[row["id"]] = None if row["track_id"] in ("", "none") else row["track_id"]
    return out


def apply_corrections(lib: Library, corrections: dict[str, str | None],
                      catalogue: Catalogue) -> int:
    """Replace the matches of corrected tracks (how `id` for a given catalogue id, `none` for
    none); returns how many tracks of the library they touched."""
    index = lib.index()
    n = 0
    for lib_id, tid in corrections.items():
        i = index.get(lib_id)
        if i is None:
            continue
        if tid is None:
            lib.matches[i] = Match("none")
        else:
            j = catalogue.id_index[tid]
            lib.matches[i] = Match("id", catalogue.track_ids[j], 1.0, "matched",
                                   catalogue.artists[j])
        lib.corrected.add(lib_id)
        n += 1
    return n


__all__ = ["LIBRARY_DIR", "Library", "apply_corrections", "check_name", "library_dir",
           "list_libraries", "load_library", "read_corrections", "review_csv",
           "save_library", "stored_corrections"]
