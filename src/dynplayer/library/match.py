"""Match a library to the catalogue: ids where both sides have them, else artist + title keys
(`library.tagkeys`) exactly, else fuzzily within the artist's tracks, else the artist alone.

The catalogue is every track of the run's corpus, with or without a vector (which tracks have
one is the run's business: `library.placement` places the others by their artist). Among
catalogue tracks with the same keys (a single and its album version) the one with a vector,
then the most played, is taken. Fuzzy scores are rapidfuzz ratios (0-100) of the keys; the
cut-offs were chosen on a labelled set of training-split tracks (`dynplayer bench library
--tune`, docs/benchmarks.md), never on the tracks the benchmark evaluates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from dynplayer.ids import normalize_track_id
from dynplayer.library.records import LibraryTrack
from dynplayer.library.tagkeys import artist_keys, core_title, identity, title_keys

HOWS = ("id", "exact", "fuzzy", "artist", "none")


@dataclass(frozen=True)
class MatchConfig:
    """Fuzzy cut-offs (rapidfuzz ratio, 0-100), chosen with `bench library --tune`."""

    # `bench library --tune` on MPD (3,000 labelled training-split tracks + 600 decoys): the
    # highest recall with <= 0.5% wrong and <= 1% decoys matched: 0.9987 recall, 0.03% wrong
    artist_cutoff: float = 85.0  # a library artist close to a catalogue artist's key
    title_cutoff: float = 83.0  # a core title close to one of that artist's core titles
    margin: float = 3.0  # another song scoring within this of the best: "ambiguous"
    fuzzy_artists: int = 3  # catalogue artists tried for one library artist


@dataclass(frozen=True)
class Match:
    """Where one library track landed in the catalogue."""

    how: str  # id | exact | fuzzy | artist | none
    track_id: str | None = None  # the catalogue track (None for artist / none)
    score: float = 0.0  # 1.0 for id and exact; the fuzzy ratio / 100 otherwise
    status: str = "unmatched"  # matched | ambiguous | unmatched
    artist: str | None = None  # the catalogue artist (as the catalogue writes it)
    alternatives: tuple[str, ...] = field(default=())  # other catalogue ids when ambiguous

    def as_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "how": self.how, "score": round(self.score, 4),
                "status": self.status, "artist": self.artist,
                "alternatives": list(self.alternatives)}


@dataclass
class MatchKeys:
    """The catalogue's names as matching keys (`build_keys`); stored with the run by
    `library.matchindex` so an import does not fold 200,000 names again."""

    exact: dict[tuple[str, str], list[int]]  # (artist key, title key) -> catalogue rows
    by_artist: dict[str, list[int]]  # artist key -> its rows, in catalogue order
    core: list[str]  # each row's core title key ("" without a name or an artist)


def build_keys(names: list[str | None], artists: list[str | None]) -> MatchKeys:
    """Every catalogue row under each of its artist keys and title keys (`library.tagkeys`)."""
    exact: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_artist: dict[str, list[int]] = defaultdict(list)
    core: list[str] = [""] * len(names)
    keys_of: dict[str, list[str]] = {}
    titles_of: dict[str, list[str]] = {}  # a fifth of the names repeat ("Intro", "Home")
    for i, (name, artist) in enumerate(zip(names, artists, strict=True)):
        if not name or not artist:
            continue
        akeys = keys_of.get(artist)
        if akeys is None:
            akeys = keys_of[artist] = artist_keys(artist)
        tkeys = titles_of.get(name)
        if tkeys is None:
            tkeys = titles_of[name] = title_keys(name)
        core[i] = tkeys[-1] if tkeys else ""
        for a in akeys:
            by_artist[a].append(i)
            for t in tkeys:
                exact[(a, t)].append(i)
    return MatchKeys(dict(exact), dict(by_artist), core)


class Catalogue:
    """The catalogue's names indexed for matching: the keys built from the names (`keys`, else
    `build_keys`, a few seconds at 200k tracks) or read from the run (`library.matchindex`)."""

    def __init__(self, track_ids: list[str], names: list[str | None],
                 artists: list[str | None], popularity: np.ndarray, has_vector: np.ndarray,
                 extra_ids: dict[str, int] | None = None, keys: MatchKeys | None = None
                 ) -> None:
        self.track_ids = track_ids
        self.names = names
        self.artists = artists
        self.popularity = np.asarray(popularity, dtype=np.int64)
        self.has_vector = np.asarray(has_vector, dtype=bool)
        self.id_index: dict[str, int] = {t: i for i, t in enumerate(track_ids)}
        self.id_index.update(extra_ids or {})  # ISRC / MusicBrainz ids when the corpus has them
        self.keys = keys if keys is not None else build_keys(names, artists)
        self.exact = self.keys.exact
        self.by_artist = self.keys.by_artist
        self.core = self.keys.core
        self.artist_list = list(self.by_artist)
        self._titles: dict[str, list[str]] = {}

    def best(self, rows: list[int]) -> int:
        """Of tracks that are the same song: the one with a vector, then the most played."""
        return min(rows, key=lambda i: (not self.has_vector[i], -self.popularity[i], i))

    def artist_name(self, key: str) -> str | None:
        """How the catalogue writes the artist of `key` (its most played track's)."""
        rows = self.by_artist.get(key)
        if not rows:
            return None
        return self.artists[self.best(rows)]

    def titles_of(self, akey: str) -> list[str]:
        got = self._titles.get(akey)
        if got is None:
            got = self._titles[akey] = [self.core[i] for i in self.by_artist[akey]]
        return got


def catalogue_of(run: Any, corpus: Any) -> Catalogue:
    """The catalogue of a run: its corpus's tracks; `has_vector` from the run's ids."""
    index = run.index_of()
    has = np.array([t in index for t in corpus.track_ids], dtype=bool)
    return Catalogue(list(corpus.track_ids), list(corpus.track_names), list(corpus.artists),
                     corpus.occurrence_count, has)


class Matcher:
    """Matches library tracks to one catalogue with one `MatchConfig`."""

    def __init__(self, catalogue: Catalogue, cfg: MatchConfig | None = None) -> None:
        self.cat = catalogue
        self.cfg = cfg or MatchConfig()
        self._artists: dict[str, list[tuple[str, float]]] = {}
        self._near: dict[str, list[tuple[str, float]]] = {}  # one key -> its fuzzy artists
        self._akeys: dict[str | None, list[str]] = {}
        self._by_length: tuple[np.ndarray, np.ndarray] | None = None

    def match_all(self, tracks: list[LibraryTrack]) -> list[Match]:
        self.prepare(tracks)
        return [self.match(t) for t in tracks]

    def prepare(self, tracks: list[LibraryTrack]) -> None:
        """Fuzzy-search at once every distinct artist key that `match` would search for (an
        artist none of whose keys the catalogue has, on a track no id matched): the same
        answers as one search at a time, in a fraction of the time on a large library."""
        want: dict[str, None] = {}
        for t in tracks:
            akeys = self.artist_keys(t.artist)
            if akeys and not any(a in self.cat.by_artist for a in akeys) \
                    and self._by_id(t) is None:
                want.update((k, None) for k in akeys if k not in self._near)
        self._search(list(want))

    def artist_keys(self, artist: str | None) -> list[str]:
        got = self._akeys.get(artist)
        if got is None:
            got = self._akeys[artist] = artist_keys(artist)
        return got

    def _by_id(self, t: LibraryTrack) -> int | None:
        cat = self.cat
        for raw in (t.track_id, t.isrc, t.mbid):
            if raw:
                i = cat.id_index.get(normalize_track_id(raw))
                if i is None and raw.upper() != raw:
                    i = cat.id_index.get(raw.upper())
                if i is not None:
                    return i
        return None

    def match(self, t: LibraryTrack) -> Match:
        cat = self.cat
        i = self._by_id(t)
        if i is not None:
            return Match("id", cat.track_ids[i], 1.0, "matched", cat.artists[i])
        akeys, tkeys = self.artist_keys(t.artist), title_keys(t.title)
        for a in akeys:
            for k in tkeys:
                rows = cat.exact.get((a, k))
                if rows:
                    i = cat.best(rows)
                    return Match("exact", cat.track_ids[i], 1.0, "matched", cat.artists[i])
        artists = self.candidate_artists(akeys)
        if not artists:
            return Match("none")
        return self._fuzzy(core_title(t.title), artists)

    def candidate_artists(self, akeys: list[str]) -> list[tuple[str, float]]:
        """Catalogue artist keys for a library artist and their ratio (100 when exact)."""
        exact = [(a, 100.0) for a in akeys if a in self.cat.by_artist]
        if exact:
            return exact
        key = akeys[0] if akeys else ""
        if not key:
            return []
        got = self._artists.get(key)
        if got is None:
            self._search([k for k in akeys if k not in self._near])
            found: dict[str, float] = {}
            for k in akeys:
                for name, score in self._near[k]:
                    found[name] = max(score, found.get(name, 0.0))
            got = self._artists[key] = sorted(found.items(), key=lambda x: -x[1])
        return got

    def _search(self, keys: list[str], chunk: int = 64) -> None:
        """For each key, the `fuzzy_artists` catalogue artist keys of the highest ratio >=
        `artist_cutoff`, ties in catalogue order (what `process.extract` answers), into
        `_near`. One `cdist` per query length over only the catalogue keys of a length that
        can reach the cut-off (ratio <= 200 min(a, b) / (a + b))."""
        if not keys:
            return
        names, cut = self.cat.artist_list, self.cfg.artist_cutoff
        if self._by_length is None:
            lengths = np.array([len(n) for n in names], dtype=np.int64)
            order = np.argsort(lengths, kind="stable")
            self._by_length = (order, lengths[order])
        order, sorted_len = self._by_length
        by_len: dict[int, list[str]] = defaultdict(list)
        for k in keys:
            by_len[len(k)].append(k)
        for n, ks in by_len.items():
            if cut > 0:
                lo = int(np.floor(cut * n / (200.0 - cut))) - 1
                hi = int(np.ceil(n * (200.0 - cut) / cut)) + 1
                cols = np.sort(order[np.searchsorted(sorted_len, lo, "left"):
                                     np.searchsorted(sorted_len, hi, "right")])
            else:
                cols = np.arange(len(names))
            choices = [names[j] for j in cols.tolist()]
            for s in range(0, len(ks), chunk):
                part = ks[s:s + chunk]
                if not choices:
                    self._near.update((k, []) for k in part)
                    continue
                scores = process.cdist(part, choices, scorer=fuzz.ratio, score_cutoff=cut,
                                       dtype=np.float64, workers=1)
                for k, row in zip(part, scores, strict=True):
                    hit = np.flatnonzero(row >= cut).tolist()
                    top = sorted(hit, key=lambda j: (-row[j], j))[:self.cfg.fuzzy_artists]
                    self._near[k] = [(choices[j], float(row[j])) for j in top]

    def _fuzzy(self, core: str, artists: list[tuple[str, float]]) -> Match:
        cat, cfg = self.cat, self.cfg
        cands: list[tuple[float, float, int]] = []  # (title score, artist score, row)
        for akey, a_score in artists:
            rows = cat.by_artist[akey]
            for _, score, j in process.extract(core, cat.titles_of(akey), scorer=fuzz.ratio,
                                               score_cutoff=cfg.title_cutoff - cfg.margin,
                                               limit=8):
                cands.append((float(score), a_score, rows[j]))
        top_artist = artists[0]
        if cands:
            cands.sort(key=lambda c: (-c[0], -c[1], not cat.has_vector[c[2]],
                                      -cat.popularity[c[2]]))
            t_score, a_score, i = cands[0]
            if t_score >= cfg.title_cutoff:
                # the same song under several ids is one answer; another song close behind
                # makes it ambiguous (kept, and listed for review)
                ident = identity(cat.artists[i], cat.names[i])
                same = [c[2] for c in cands if c[0] >= t_score - 1e-9
                        and identity(cat.artists[c[2]], cat.names[c[2]]) == ident]
                i = cat.best(same)
                rivals = [cat.track_ids[c[2]] for c in cands
                          if c[0] >= t_score - cfg.margin
                          and identity(cat.artists[c[2]], cat.names[c[2]]) != ident]
                status = "ambiguous" if rivals else "matched"
                return Match("fuzzy", cat.track_ids[i], min(t_score, a_score) / 100.0, status,
                             cat.artists[i], tuple(dict.fromkeys(rivals))[:5])
        return Match("artist", None, top_artist[1] / 100.0, "unmatched",
                     cat.artist_name(top_artist[0]))


def summarize(matches: list[Match]) -> dict[str, Any]:
    """Counts by `how` and by `status`."""
    hows = {h: 0 for h in HOWS}
    status = {"matched": 0, "ambiguous": 0, "unmatched": 0}
    for m in matches:
        hows[m.how] += 1
        status[m.status] += 1
    return {"tracks": len(matches), "how": hows, "status": status}


__all__ = ["HOWS", "Catalogue", "Match", "MatchConfig", "MatchKeys", "Matcher", "build_keys",
           "catalogue_of", "summarize"]
