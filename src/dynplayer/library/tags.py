"""A folder of audio files as a library: tags read with mutagen, .m3u / .m3u8 files as playlists.

A file's library id is its path relative to the folder (with `/`). Files mutagen does not
recognise, and audio files without an artist and a title tag, are counted and skipped; a folder
where no file has both is a one-line error.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynplayer.errors import DataError
from dynplayer.library.records import MAX_FIELD, LibraryPlaylist, LibraryTrack

AUDIO_SUFFIXES = {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".wma",
                  ".wav", ".aif", ".aiff", ".ape", ".wv", ".mpc", ".dsf"}
PLAYLIST_SUFFIXES = {".m3u", ".m3u8"}


@dataclass
class FolderScan:
    tracks: list[LibraryTrack]
    playlists: list[LibraryPlaylist]
    skipped: Counter[str] = field(default_factory=Counter)  # why -> files


def _first(tags: Any, *keys: str) -> str | None:
    for key in keys:
        try:
            value = tags.get(key)
        except (KeyError, ValueError):
            continue
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            text = str(value).replace("\x00", " ").strip()
            if text:
                return text[:MAX_FIELD]
    return None


def read_file_tags(path: Path, rel: str) -> LibraryTrack | str:
    """The track of one audio file, or why it was skipped ("unreadable", "no tags")."""
    import mutagen

    try:
        audio = mutagen.File(path, easy=True)
    except Exception:  # noqa: BLE001 (mutagen raises many kinds for damaged files)
        return "unreadable"
    if audio is None:
        return "unreadable"
    tags = audio.tags or {}
    artist = _first(tags, "artist", "albumartist")
    title = _first(tags, "title")
    if not artist or not title:
        return "no artist or title tag"
    return LibraryTrack(id=rel, artist=artist, title=title, album=_first(tags, "album"),
                        isrc=_first(tags, "isrc"),
                        mbid=_first(tags, "musicbrainz_trackid"))


def _read_m3u(path: Path, root: Path, known: dict[str, str]) -> LibraryPlaylist | None:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return None
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        target = (path.parent / line).resolve() if not os.path.isabs(line) else Path(line)
        rel = known.get(str(target))
        if rel is not None:
            ids.append(rel)
    rel_path = path.relative_to(root).as_posix()
    return LibraryPlaylist(id=rel_path, name=path.stem, tracks=ids)


def read_folder(folder: Path) -> FolderScan:
    """Every audio file under `folder` (recursively, in path order) and its .m3u playlists."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError("not a folder", file=str(root))
    tracks: list[LibraryTrack] = []
    skipped: Counter[str] = Counter()
    playlist_files: list[Path] = []
    known: dict[str, str] = {}
    looked = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            suffix = path.suffix.lower()
            if suffix in PLAYLIST_SUFFIXES:
                playlist_files.append(path)
                continue
            if suffix not in AUDIO_SUFFIXES:
                continue
            looked += 1
            rel = path.relative_to(root).as_posix()
            got = read_file_tags(path, rel)
            if isinstance(got, str):
                skipped[got] += 1
                continue
            tracks.append(got)
            known[str(path.resolve())] = rel
    if not tracks:
        why = ", ".join(f"{n} {k}" for k, n in skipped.most_common()) or "no audio files"
        raise DataError(f"no audio file with readable artist and title tags ({looked} audio "
                        f"files looked at: {why})", file=str(root))
    playlists = [p for f in playlist_files if (p := _read_m3u(f, root, known)) is not None]
    return FolderScan(tracks, playlists, skipped)


__all__ = ["AUDIO_SUFFIXES", "FolderScan", "read_file_tags", "read_folder"]
