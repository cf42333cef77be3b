"""Which track a user means: one resolver for every entry point that takes a track by id or by
name (`dynplayer similar` and `recommend`, `Dynplayer.similar / recommend / track`).

A known id, `spotify:track:ID` or track link is that track. Anything else is a name, looked up
with the API's track search (`TrackMatcher`: case, accents, word order, a typo) and ranked by how
well it matches: the whole title without its version ("Hey Jude - Remastered 2015" is "hey
jude"; "(feat. ...)" dropped), or title and artist ("feeling good nina simone"), before the
query's words as whole words, before a part of a word, before a near miss. Versions of one song
by one artist count as one song (the most played version is taken). When two different songs
match equally well and the less played one is played at least half as often as the other, the
name is ambiguous: the error lists what it could mean and how to choose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dynplayer.errors import QueryError
from dynplayer.ids import normalize_track_id
from dynplayer.serve.track_search import TrackMatcher, fold

RESOLVE_CUTOFF = 90.0  # near misses a name may resolve to (the autocomplete's is 80)
CANDIDATES = 50  # matches of the track search weighed
AMBIGUOUS_SHARE = 0.5  # a second song played >= this share of the first's: ambiguous
SHOWN = 5  # candidates an ambiguous name lists

# " - Remastered 2015", " - Radio Edit", "(feat. X)", "[Live]": a version, not the song
_VERSION = re.compile(r"\s+-\s+.*$|\s*[(\[][^)\]]*[)\]]")


class UnknownTrackName(QueryError):
    """No track has this id, and none is named so."""


class AmbiguousTrackName(QueryError):
    """Several songs fit the name about equally well; the message lists them."""


@dataclass(frozen=True)
class Resolved:
    row: int  # the track meant (a row of the names given)
    by_name: bool  # found by its name (not an id)
    others: list[int] = field(default_factory=list)  # other songs the name fits as well


def song_title(name: str | None) -> str:
    """The folded title without its version: 'Hey Jude - Remastered 2015' -> 'hey jude'."""
    return fold(_VERSION.sub("", name or "")) or fold(name)


class TrackResolver:
    """Ids, names, artists and popularity of one model's tracks, and the matcher over them."""

    def __init__(self, ids: Sequence[str], names: Sequence[str | None],
                 artists: Sequence[str | None], popularity: Sequence[int] | np.ndarray,
                 matcher: TrackMatcher | None = None) -> None:
        self.ids = ids
        self.row_of = {t: i for i, t in enumerate(ids)}
        self.names = names
        self.artists = artists
        self.popularity = np.asarray(popularity, dtype=np.int64)
        self.matcher = matcher or TrackMatcher(names, artists, self.popularity)

    def _level(self, row: int, phrase: str, words: list[str]) -> int:
        """3: the title (with or without its version, and with or without the artist) is the
        query; 2: the query's words are whole words of title + artist; 1: parts of words;
        0: a near miss."""
        title, full = song_title(self.names[row]), fold(self.names[row])
        artist = fold(self.artists[row])
        if phrase in {title, full, f"{title} {artist}", f"{artist} {title}", f"{full} {artist}",
                      f"{artist} {full}"}:
            return 3
        text = f" {full} {artist} "
        if all(f" {w} " in text for w in words):
            return 2
        return 1 if all(w in text for w in words) else 0

    def resolve(self, q: str) -> Resolved:
        """The track `q` means: a known id (or its URI or link), else a name (below)."""
        row = self.row_of.get(normalize_track_id(q))
        return Resolved(row, False) if row is not None else self.resolve_name(q)

    def resolve_name(self, q: str) -> Resolved:
        """The track the name `q` means; UnknownTrackName / AmbiguousTrackName otherwise."""
        words = fold(q).split()
        rows = self.matcher.search(q, CANDIDATES, RESOLVE_CUTOFF) if words else []
        if not rows:
            raise UnknownTrackName(f"no track with the id or name {q!r} in this model")
        phrase = " ".join(words)
        level = {r: self._level(r, phrase, words) for r in rows}
        best = max(level.values())
        top = sorted((r for r in rows if level[r] == best),
                     key=lambda r: (-int(self.popularity[r]), r))
        songs: dict[tuple[str, str], int] = {}  # one song: its most played version first
        for r in top:
            songs.setdefault((song_title(self.names[r]), fold(self.artists[r])), r)
        first, *others = songs.values()
        if others and self.popularity[others[0]] >= AMBIGUOUS_SHARE * self.popularity[first]:
            shown = "; ".join(self.describe(r) for r in [first, *others][:SHOWN])
            more = f" and {len(others) + 1 - SHOWN} more" if len(others) + 1 > SHOWN else ""
            raise AmbiguousTrackName(
                f"{q!r} could mean {len(others) + 1} tracks: {shown}{more}; give a track id, "
                f"or add the artist (\"{phrase} {fold(self.artists[first]) or 'ARTIST'}\")")
        return Resolved(first, True, others)

    def describe(self, row: int) -> str:
        """'"Hey Jude - Remastered 2015" by The Beatles (0aym2LBJBk9DAYuHHutrIl)'."""
        by = f" by {self.artists[row]}" if self.artists[row] else ""
        return f"\"{self.names[row] or '?'}\"{by} ({self.ids[row]})"


__all__ = ["AmbiguousTrackName", "Resolved", "TrackResolver", "UnknownTrackName", "song_title"]
