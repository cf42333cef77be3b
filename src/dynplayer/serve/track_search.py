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

Up to `SCAN_MAX` tracks each step reads every folded string. Over it (a 1M-playlist catalogue
has 2M tracks: seconds a query that way) a word index (`serve.word_index`, built on the first
search) gives each step its candidates: (1) and (2) read only the strings holding the query's
words and answer the same; (3) scores with the same scorers only the `FUZZY_CANDIDATES`
strings holding the most of the query's words (or words one typo away, or starting with the
last), counted by rarity, so a near miss with none of those words is no longer found.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from rapidfuzz import fuzz, process

from dynplayer.names import fold, fold_many_cached
from dynplayer.serve.word_index import WordIndex

if TYPE_CHECKING:
    from dynplayer.store.track_names import TrackNames

FUZZY_MIN_CHARS = 4  # shorter queries match too much by edit distance; substring only
FUZZY_CUTOFF = 80.0  # partial ratio (0-100): one typo in a 5-10 letter word stays above it
# Over this many strings a word index narrows every step instead of a scan of each string
# (a near-miss scan of 2M strings took seconds); at or under it, nothing changes.
SCAN_MAX = 250_000
FUZZY_CANDIDATES = 20_000  # strings scored for near misses above SCAN_MAX
VERIFY_MAX = 20_000  # candidates few enough to read one by one (above SCAN_MAX)
POSTINGS_PER_READ = 20  # numpy handles ~20 ranks in the time Python reads one string

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
                 state: MatcherState | None = None, scan_max: int = SCAN_MAX,
                 fuzzy_candidates: int = FUZZY_CANDIDATES) -> None:
        """`state`: this matcher's `state()` for the same names, read back (`store.track_names`
        keeps it in the data directory's cache), instead of folding them again. Over
        `scan_max` strings a word index, built on the first search, finds the candidates of
        each step, and near misses are sought among `fuzzy_candidates` strings only."""
        self._scan_max, self._fuzzy_candidates = scan_max, fuzzy_candidates
        self._index: WordIndex | None = None
        self._index_lock = threading.Lock()
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

    def word_index(self) -> WordIndex | None:
        """The word index over the strings, built on first use (~10 s at 2M strings); none at
        or under `scan_max` strings, where each step scans them all."""
        if len(self._folded) <= self._scan_max:
            return None
        with self._index_lock:
            if self._index is None:
                self._index = WordIndex(self._folded)
            return self._index

    def _holding_indexed(self, index: WordIndex, phrase: str,
                         limit: int) -> tuple[np.ndarray, np.ndarray]:
        """`_holding` from the word index, as far as a search of `limit` needs: the same
        first `limit` ranks. A word is held by the strings with a word holding it; a phrase
        by some of those with its inner words whole, a word starting with its last and one
        ending with its first (the rarest of these first, until few enough to read), read in
        rank order until `limit` hold it at a word's start."""
        words = phrase.split(" ")
        if len(words) == 1:
            lo, hi = index.prefixed(words)
            at_word = index.ranks(range(int(lo[0]), int(hi[0])))
            if len(at_word) >= limit:  # the answer, without the (long) list of every hit
                return at_word, at_word
            return index.ranks(index.containing(phrase)), at_word
        inner = index.find(words[1:-1])
        if min(inner, default=0) < 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        lo, hi = index.prefixed(words[-1:])
        narrowing = [range(i, i + 1) for i in sorted(set(inner), key=index.df)]
        narrowing.append(range(int(lo[0]), int(hi[0])))
        cand = index.ranks(narrowing[0])
        for ids in narrowing[1:]:
            if len(cand) <= VERIFY_MAX:
                break
            cand = index.intersect(cand, index.ranks(ids))
        if len(cand) > VERIFY_MAX:
            cand = index.intersect(cand, index.ranks(index.containing(words[0], at_end=True)))
        pattern, spaced = re.compile(re.escape(phrase)), " " + phrase
        held, starting = [], []
        folded = self._folded
        for r in cand.tolist():
            s = folded[r]
            if phrase in s:
                held.append(r)
                # at a word's start, where the one scan of every string finds it (it skips
                # an occurrence overlapping one found: "a a" in "a a a")
                if (s.startswith(phrase) or spaced in s) and any(
                        p == 0 or s[p - 1] == " " for p in (m.start() for m in
                                                            pattern.finditer(s))):
                    starting.append(r)
                    if len(starting) == limit:  # the answer: these, before any other hit
                        break
        return np.array(held, np.int64), np.array(starting, np.int64)

    def _all_words_indexed(self, index: WordIndex, words: list[str], want: int,
                           taken: set[int]) -> list[int]:
        """The first `want` ranks not `taken` of `_all_words(words)`, from the word index: the
        strings holding the longest word, narrowed by the next longest while too many to read,
        but by none whose ranks outnumber those strings POSTINGS_PER_READ times (a letter,
        a digit: in most words): reading them costs less."""
        distinct = list(dict.fromkeys(words))
        whole = {w: index.df(i) if i >= 0 else 0 for w, i in zip(distinct, index.find(distinct),
                                                                  strict=True)}
        # the longest first; of equal length, the rarer as a whole word
        ordered = sorted(distinct, key=lambda w: (-len(w), whole[w]))
        cand = index.ranks(index.containing(ordered[0]))
        unread = []
        for w in ordered[1:]:
            ids = index.containing(w) if len(cand) > VERIFY_MAX else None
            if ids is None or index.volume(ids) > POSTINGS_PER_READ * len(cand):
                unread.append(w)
            else:
                cand = index.intersect(cand, index.ranks(ids))
        folded, out = self._folded, []
        for r in cand.tolist():
            if r not in taken and all(w in folded[r] for w in unread):
                out.append(r)
                if len(out) == want:
                    break
        return out

    def _near_misses(self, phrase: str, words: list[str], limit: int, cutoff: float,
                     index: WordIndex | None) -> list[int]:
        """Ranks of the best `limit` strings by rapidfuzz's partial ratio of `phrase` (and of
        its sorted words to theirs), scoring `cutoff` or more: of every string, or above
        `scan_max` of the index's candidates (the same scores, so the same order)."""
        # partial ratio: typos in a phrase ("la vie en rsoe"); on sorted words too, for
        # words in another order ("beyonse halo" -> "halo beyonce")
        # (the token-sort ratio as the partial ratio of sorted words: the same scores)
        queries = [phrase, " ".join(sorted(words))][:len(words)]
        rank_of: list[int] | None = None
        if index is None:
            choices = [self._folded, self._sorted_words][:len(queries)]
        else:  # candidates in rank order: rapidfuzz's ties (by position) stay by rank
            rank_of = index.candidates(words, self._fuzzy_candidates).tolist()
            choices = [[of[r] for r in rank_of] for of in
                       [self._folded, self._sorted_words][:len(queries)]]
        best: dict[int, float] = {}
        for query, among in zip(queries, choices, strict=True):
            for _, score, i in process.extract(query, among, scorer=fuzz.partial_ratio,
                                               score_cutoff=cutoff, limit=limit):
                rank = i if rank_of is None else rank_of[i]
                best[rank] = max(score, best.get(rank, 0.0))
        # best score first, then the more popular (its rank) first
        return [r for r, _ in sorted(best.items(), key=lambda m: (-m[1], m[0]))][:limit]

    def search(self, q: str, limit: int, cutoff: float = FUZZY_CUTOFF) -> list[int]:
        """Rows (into the sequences given) of the best `limit` matches for `q`; near misses
        must score `cutoff` or more (0-100; over 100: none)."""
        words = fold(q).split()
        if not words:
            return []
        phrase = " ".join(words)
        index = self.word_index()
        hits, at_word = (self._holding(phrase) if index is None
                         else self._holding_indexed(index, phrase, limit))
        # where the phrase starts a word first ("psy": PSY before "Tipsy"), each most played
        # first
        starts = np.isin(hits, at_word, assume_unique=True)
        ranks = np.concatenate([hits[starts], hits[~starts]])[:limit].tolist()
        if len(ranks) < limit and len(words) > 1:  # every word, in any order ("halo beyonce")
            taken = set(ranks)
            if index is None:
                hit = self._all_words(words)
                ranks += [r for r in hit.tolist() if r not in taken][:limit - len(ranks)]
            else:
                ranks += self._all_words_indexed(index, words, limit - len(ranks), taken)
        if not ranks and len(phrase) >= FUZZY_MIN_CHARS and cutoff <= 100:  # a typo, then
            ranks = self._near_misses(phrase, words, limit, cutoff, index)
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
