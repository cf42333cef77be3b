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

import re
from collections.abc import Sequence

import numpy as np
from rapidfuzz import fuzz, process

from dynplayer.names import fold, fold_many_cached

FUZZY_MIN_CHARS = 4  # shorter queries match too much by edit distance; substring only
FUZZY_CUTOFF = 80.0  # partial ratio (0-100): one typo in a 5-10 letter word stays above it
class TrackMatcher:
    """Folded names and artists of one model version's tracks, most popular first."""

    def __init__(self, names: Sequence[str | None], artists: Sequence[str | None],
                 popularity: Sequence[int] | np.ndarray) -> None:
        pop = np.asarray(popularity, dtype=np.int64)
        # Most played first, ties by row: the order of every answer below.
        self.order = np.lexsort((np.arange(pop.shape[0]), -pop))
        rows = self.order.tolist()
        # "name artist" folded as one string: the same words as fold(name) + fold(artist)
        folded = fold_many_cached([f"{names[i] or ''} {artists[i] or ''}" for i in rows])
        self._folded = folded
        # One text of every folded string, a line each (folding leaves no newline): a phrase
        # is found in all of them by one regular-expression scan, and each hit's line is its
        # rank. (Fixed-width numpy string arrays of the same took ~300 MB at 166k tracks.)
        self._text = "\n".join(folded)
        lengths = np.fromiter(map(len, folded), np.int64, count=len(folded)) + 1
        self._starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])

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
            for scorer in (fuzz.partial_ratio, fuzz.partial_token_sort_ratio)[:len(words)]:
                for _, score, rank in process.extract(phrase, self._folded, scorer=scorer,
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


def holds_words(q: str, name: str | None, artist: str | None) -> bool:
    """Whether the track's name and artist hold every word of `q` (folded): false for the near
    misses `TrackMatcher.search` gives when nothing matched."""
    text = f"{fold(name)} {fold(artist)}"
    return all(w in text for w in fold(q).split())


__all__ = ["TrackMatcher", "fold", "holds_words"]
