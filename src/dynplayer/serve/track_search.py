"""Track lookup by name or artist: case-, accent- and typo-tolerant, the same on every backend.

`beyonce` finds Beyoncé, `LA VIE EN ROSE` finds La Vie En Rose, `beyonse halo` still finds Halo:
names are folded (unidecode transliteration, lower case, punctuation to spaces) once per model
version, then (1) tracks whose folded "name artist" holds the folded query, those where it
starts a word first ("psy": PSY before "Tipsy"), most played first; (2) when those are fewer
than asked, tracks holding every query word in any order; (3) only when nothing matched so
far, near misses by rapidfuzz's partial ratio (a typo or two), best first.
The exact and the pgvector recommender both answer from this in memory (the names are a few MB
even at MPD scale), so the API, the web page's autocomplete, the CLI and the Python API find
the same tracks in the same order.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from rapidfuzz import fuzz, process

from dynplayer.names import fold, fold_many_cached

if TYPE_CHECKING:
    from dynplayer.store.track_names import TrackNames

FUZZY_MIN_CHARS = 4  # shorter queries match too much by edit distance; substring only
FUZZY_CUTOFF = 80.0  # partial ratio (0-100): one typo in a 5-10 letter word stays above it

@dataclass(frozen=True)
class MatcherState:
    """What a `TrackMatcher` derives from its names: the rows most played first, and their
    folded "name artist" strings in that order (with their words sorted, when known)."""

    order: np.ndarray
    folded: list[str]
    sorted_words: list[str] | None = None


class TrackMatcher:
    """Folded names and artists of one model version's tracks, most popular first."""

    def __init__(self, names: Sequence[str | None], artists: Sequence[str | None],
                 popularity: Sequence[int] | np.ndarray, *,
                 state: MatcherState | None = None) -> None:
        """`state`: this matcher's `state()` for the same names, read back (`store.track_names`
        keeps it in the data directory's cache), instead of folding them again."""
        if state is None:
            pop = np.asarray(popularity, dtype=np.int64)
            # Most played first, ties by row: the order of every answer below.
            order = np.lexsort((np.arange(pop.shape[0]), -pop))
            rows = order.tolist()
            # "name artist" folded as one string: the same words as fold(name) + fold(artist)
            state = MatcherState(order, fold_many_cached(
                [f"{names[i] or ''} {artists[i] or ''}" for i in rows]))
        self.order = state.order
        folded = self._folded = state.folded
        if state.sorted_words is not None:
            self.__dict__["_sorted_words"] = state.sorted_words
        # One text of every folded string, a line each (folding leaves no newline): a phrase
        # is found in all of them by one regular-expression scan, and each hit's line is its
        # rank. (Fixed-width numpy string arrays of the same took ~300 MB at 166k tracks.)
        self._text = "\n".join(folded)
        lengths = np.fromiter(map(len, folded), np.int64, count=len(folded)) + 1
        self._starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])

    @cached_property
    def _sorted_words(self) -> list[str]:
        """Each folded string with its words sorted: rapidfuzz's partial token-sort ratio is
        the partial ratio of the sorted words, so they are sorted once, not on every search."""
        return [" ".join(sorted(f.split())) for f in self._folded]

    def state(self) -> MatcherState:
        return MatcherState(self.order, self._folded, self._sorted_words)

    def _holding(self, phrase: str) -> tuple[np.ndarray, np.ndarray]:
        """Ranks (sorted) of the strings holding `phrase`, and of those where it starts a word
        (at the string's start, or after a space)."""
        text = self._text
        pos = [m.start() for m in re.finditer(re.escape(phrase), text)]
        at_word = [p for p in pos if p == 0 or text[p - 1] in " \n"]
        line = self._starts
        return (np.unique(np.searchsorted(line, pos, side="right") - 1),
                np.unique(np.searchsorted(line, at_word, side="right") - 1))

    def _all_words(self, words: list[str]) -> np.ndarray:
        """Ranks (sorted) of the strings holding every one of `words`: the rarest-looking
        (longest) word scanned, the others tested on its hits alone."""
        ordered = sorted(dict.fromkeys(words), key=len, reverse=True)
        hit = self._holding(ordered[0])[0]
        folded = self._folded
        for w in ordered[1:]:
            hit = np.array([r for r in hit.tolist() if w in folded[r]], dtype=np.int64)
        return hit

    def search(self, q: str, limit: int, cutoff: float = FUZZY_CUTOFF) -> list[int]:
        """Rows (into the sequences given) of the best `limit` matches for `q`; near misses
        must score `cutoff` or more (0-100; over 100: none)."""
        words = fold(q).split()
        if not words:
            return []
        phrase = " ".join(words)
        hits, at_word = self._holding(phrase)
        # where the phrase starts a word first ("psy": PSY before "Tipsy"), each most played
        # first
        starts = np.isin(hits, at_word, assume_unique=True)
        ranks = np.concatenate([hits[starts], hits[~starts]])[:limit].tolist()
        if len(ranks) < limit and len(words) > 1:  # every word, in any order ("halo beyonce")
            hit = self._all_words(words)
            taken = set(ranks)
            ranks += [r for r in hit.tolist() if r not in taken][:limit - len(ranks)]
        if not ranks and len(phrase) >= FUZZY_MIN_CHARS and cutoff <= 100:  # a typo, then
            taken = set(ranks)
            # partial ratio: typos in a phrase ("la vie en rsoe"); on sorted words too, for
            # words in another order ("beyonse halo" -> "halo beyonce")
            best: dict[int, float] = {}
            # (the token-sort ratio as the partial ratio of sorted words: the same scores)
            passes = [(phrase, self._folded), (" ".join(sorted(words)), self._sorted_words)]
            for query, choices in passes[:len(words)]:
                for _, score, rank in process.extract(query, choices, scorer=fuzz.partial_ratio,
                                                      score_cutoff=cutoff,
                                                      limit=limit + len(ranks)):
                    best[rank] = max(score, best.get(rank, 0.0))
            # best score first, then the more popular (its rank) first
            for rank, _ in sorted(best.items(), key=lambda m: (-m[1], m[0])):
                if rank not in taken:
                    ranks.append(rank)
                    taken.add(rank)
                if len(ranks) == limit:
                    break
        return [int(self.order[r]) for r in ranks]


def matcher_for(names: TrackNames) -> TrackMatcher:
    """The matcher over a run's `track_names`, its state remembered in the data directory's
    cache beside them (a one-shot command skips folding and sorting 166k names)."""
    if not names.key:
        return TrackMatcher(names.names, names.artists, names.popularity)
    from dynplayer.cache import array_to_lines, key_of, lines_to_array, remembered

    def build() -> MatcherState:
        return TrackMatcher(names.names, names.artists, names.popularity).state()

    def dump(st: MatcherState) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, order=st.order, folded=lines_to_array(st.folded),
                 sorted=lines_to_array(st.sorted_words or []))
        return buf.getvalue()

    def load(data: bytes) -> MatcherState:
        n = len(names.ids)
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            order = z["order"].astype(np.int64)
            folded = array_to_lines(z["folded"], n)
            words = array_to_lines(z["sorted"], n)
        if order.shape != (n,):
            raise ValueError("a matcher of other names")
        return MatcherState(order, folded, words)

    state = remembered("track-matcher", key_of([names.key, "matcher-1"]), build, dump, load)
    return TrackMatcher(names.names, names.artists, names.popularity, state=state)


def holds_words(q: str, name: str | None, artist: str | None) -> bool:
    """Whether the track's name and artist hold every word of `q` (folded): false for the near
    misses `TrackMatcher.search` gives when nothing matched."""
    text = f"{fold(name)} {fold(artist)}"
    return all(w in text for w in fold(q).split())


__all__ = ["MatcherState", "TrackMatcher", "fold", "holds_words", "matcher_for"]
