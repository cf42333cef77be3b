"""Accumulates playlists from any source into a `Corpus`, validating as it goes."""

from __future__ import annotations

import html
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynplayer.data.corpus import Corpus
from dynplayer.errors import DataError


@dataclass
class SkipLog:
    """Records skipped records under --lenient (counted in the manifest) or raises."""

    lenient: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def fail(self, err: DataError) -> None:
        if not self.lenient:
            raise err
        # Count by kind of problem: drop the per-record detail (column, index, first-seen place)
        # so one bad column in a million lines is one key, not a million.
        kind = re.sub(r"\d+", "N", err.reason.split(" (")[0].split(": ")[0])
        self.counts[f"{err.field or 'record'}: {kind}"] += 1
        if len(self.examples) < 20:
            self.examples.append(str(err))

    def as_dict(self) -> dict[str, Any]:
        return {"total": int(sum(self.counts.values())), "by_reason": dict(self.counts),
                "examples": list(self.examples)}


def _unescape(text: str | None) -> str | None:
    """`html.unescape`, None kept (it returns at once when there is no '&')."""
    return None if text is None else html.unescape(text)


class CorpusBuilder:
    """Collects playlists and track metadata; `build()` returns a Corpus without split."""

    def __init__(self, skip: SkipLog | None = None) -> None:
        self.skip = skip or SkipLog()
        self._track_idx: dict[str, int] = {}
        self.track_ids: list[str] = []
        self.track_names: list[str | None] = []
        self.artists: list[str | None] = []
        self.albums: list[str | None] = []
        self.track_genres: list[list[str]] = []
        self.pids: list[str] = []
        self._pid_seen: dict[tuple[str, str], str] = {}
        self._pid_used: set[str] = set()
        self.names: list[str] = []
        self.descriptions: list[str] = []
        self.tags: list[list[str]] = []
        self.sources: list[str] = []
        self._occ_track = array("i")
        self._occ_playlist = array("i")
        self._occ_position = array("i")
        self.source_files: list[str] = []
        self._caches: dict[str, dict[Any, int]] = {}

    def cache(self, name: str) -> dict[Any, int]:
        """A reader's own raw-key -> track_idx map (e.g. MPD uri), shared across its files."""
        return self._caches.setdefault(name, {})

    def track(
        self,
        track_id: str,
        name: str | None = None,
        artist: str | None = None,
        album: str | None = None,
        genres: list[str] | None = None,
    ) -> int:
        """Return the track_idx for `track_id`, registering it; fills metadata not yet known.

        HTML entities in the names (`&amp;`, `&#x27;`, as MPD exports hold) are decoded here."""
        name, artist, album = _unescape(name), _unescape(artist), _unescape(album)
        idx = self._track_idx.get(track_id)
        if idx is None:
            idx = len(self.track_ids)
            self._track_idx[track_id] = idx
            self.track_ids.append(track_id)
            self.track_names.append(name)
            self.artists.append(artist)
            self.albums.append(album)
            self.track_genres.append(list(genres) if genres else [])
            return idx
        if name is not None and self.track_names[idx] is None:
            self.track_names[idx] = name
        if artist is not None and self.artists[idx] is None:
            self.artists[idx] = artist
        if album is not None and self.albums[idx] is None:
            self.albums[idx] = album
        if genres and not self.track_genres[idx]:
            self.track_genres[idx] = list(genres)
        return idx

    def add_playlist(
        self,
        pid: str,
        name: str,
        description: str,
        tags: list[str],
        track_idxs: list[int],
        *,
        source: str,
        where: str,
        line: int | None = None,
    ) -> bool:
        """Add one playlist (tracks already registered). Returns False if it was skipped."""
        if not track_idxs:
            self.skip.fail(DataError("playlist has no tracks", file=where, line=line,
                                     playlist=pid, field="tracks"))
            return False
        key = (source, pid)
        if key in self._pid_seen:
            self.skip.fail(DataError(f"duplicate playlist id (first seen in {self._pid_seen[key]})",
                                     file=where, line=line, playlist=pid, field="pid"))
            return False
        self._pid_seen[key] = where if line is None else f"{where}:{line}"
        name, description = html.unescape(name), html.unescape(description)
        tags = [html.unescape(t) for t in tags]
        # Ids are unique per source; the same id from two sources (MPD pid 7, Melon id 7) is
        # kept apart by prefixing the later one with its source.
        stored = pid if pid not in self._pid_used else f"{source}:{pid}"
        self._pid_used.add(stored)
        p = len(self.pids)
        self.pids.append(stored)
        self.names.append(name)
        self.descriptions.append(description)
        self.tags.append(tags)
        self.sources.append(source)
        n = len(track_idxs)
        self._occ_track.extend(track_idxs)
        self._occ_playlist.extend([p] * n)
        self._occ_position.extend(range(n))
        return True

    def build(self) -> Corpus:
        if not self.pids:
            raise DataError("no playlists were read from the input (every record was empty or "
                            "skipped)")
        used = np.zeros(len(self.track_ids), dtype=bool)
        occ_track = np.frombuffer(self._occ_track, dtype=np.int32).copy()
        used[occ_track] = True
        if not used.all():
            # Tracks only known from a track file: drop them so every track occurs somewhere.
            remap = np.cumsum(used) - 1
            occ_track = remap[occ_track].astype(np.int32)
            keep = np.flatnonzero(used)
            pick = keep.tolist()
            self.track_ids = [self.track_ids[i] for i in pick]
            self.track_names = [self.track_names[i] for i in pick]
            self.artists = [self.artists[i] for i in pick]
            self.albums = [self.albums[i] for i in pick]
            self.track_genres = [self.track_genres[i] for i in pick]
        return Corpus(
            pids=self.pids,
            names=self.names,
            descriptions=self.descriptions,
            tags=self.tags,
            sources=self.sources,
            occ_playlist=np.frombuffer(self._occ_playlist, dtype=np.int32).copy(),
            occ_position=np.frombuffer(self._occ_position, dtype=np.int32).copy(),
            occ_track=occ_track,
            track_ids=self.track_ids,
            track_names=self.track_names,
            artists=self.artists,
            albums=self.albums,
            track_genres=self.track_genres,
            manifest={"skipped": self.skip.as_dict(), "source_files": self.source_files},
        )
