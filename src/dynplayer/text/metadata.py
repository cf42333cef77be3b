"""The query's words in the candidate tracks' own metadata: artist names and genres.

Playlist retrieval finds tracks through captions that look like the query; it cannot see that
"bryson tiller" is an artist or "reggaeton" a genre. For each field, a track's *match* is the
idf-weighted share of the query's distinct words found in that field (1: every word, as in a
query that is the artist's name; unknown words count against it with the highest idf). Search
adds `artist_weight * match_artist ** match_power + genre_weight * match_genre ** match_power`
to the aggregated score (scaled to at most 1 + prf_weight), so a matching track can also enter
the list when no retrieved playlist holds it.

Words are folded: NFKD with combining marks dropped, then NFC, lower case, so 'Beyoncé'
matches 'beyonce' and Hangul stays Hangul (track search's `fold` transliterates instead, which
suits fuzzy names but would let a romanised Korean word match an English one here).
Measured on the MPD slices (validation only for the weights): keyword ->
tracks Recall@50 0.1670 -> 0.1836 (docs/benchmarks.md).
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from dynplayer.text.bm25 import tokenize

FIELDS = ("artist", "genre")


def fold_words(text: str) -> list[str]:
    """Lower-cased word tokens with accents removed (any script kept)."""
    if text.isascii():  # nothing to decompose (most names): 10x faster, the same words
        words = tokenize(text)
        return [t for t in words if any(c.isalnum() for c in t)]
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    words = tokenize(unicodedata.normalize("NFC", bare))
    return [t for t in words if any(c.isalnum() for c in t)]


class FieldIndex:
    """Word -> tracks postings of one metadata field, with each word's idf over the tracks."""

    def __init__(self, docs: Sequence[str]) -> None:
        self.vocab: dict[str, int] = {}
        # Names repeat (an artist's tracks): fold each distinct one once, then expand the
        # word x distinct-name postings to the tracks with one sparse product (a loop over
        # 166k tracks' words took 0.9 s of a CLI search).
        code: dict[str, int] = {}
        doc_code = np.fromiter((code.setdefault(d, len(code)) for d in docs), np.int64,
                               count=len(docs))
        rows: list[int] = []
        cols: list[int] = []
        for c, doc in enumerate(code):
            for w in dict.fromkeys(fold_words(doc)):
                rows.append(self.vocab.setdefault(w, len(self.vocab)))
                cols.append(c)
        n_docs = len(docs)
        words = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                              shape=(len(self.vocab), len(code)))
        spread = sp.csr_matrix((np.ones(n_docs, np.float32), (doc_code, np.arange(n_docs))),
                               shape=(len(code), n_docs))
        self.postings = (words @ spread).tocsr()
        self.postings.sort_indices()
        df = np.diff(self.postings.indptr)
        self.idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        # a word no track has: the rarest possible (df 0)
        self.unknown_idf = float(np.log(1.0 + (n_docs + 0.5) / 0.5))

    @classmethod
    def cached(cls, docs: Sequence[str]) -> FieldIndex:
        """`FieldIndex(docs)`, remembered in the data directory's cache (`dynplayer.cache`)
        under a hash of the docs: building both fields over 166k tracks took ~1 s of every
        one-shot `search`."""
        from dynplayer.cache import array_to_lines, key_of, lines_to_array, remembered

        def dump(f: FieldIndex) -> bytes:
            buf = io.BytesIO()
            np.savez(buf, words=lines_to_array(list(f.vocab)),
                     indptr=f.postings.indptr, indices=f.postings.indices, idf=f.idf,
                     shape=np.array(f.postings.shape, np.int64),
                     unknown_idf=np.array([f.unknown_idf], np.float64))
            return buf.getvalue()

        def load(data: bytes) -> FieldIndex:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                shape = tuple(int(x) for x in z["shape"])
                words = array_to_lines(z["words"], shape[0])
                indices, indptr = z["indices"], z["indptr"]
                out = cls.__new__(cls)
                out.vocab = {w: i for i, w in enumerate(words)}
                out.postings = sp.csr_matrix(
                    (np.ones(indices.shape[0], np.float32), indices, indptr), shape=shape)
                out.idf = z["idf"].astype(np.float32)
                out.unknown_idf = float(z["unknown_idf"][0])
            if shape != (len(words), len(docs)) or out.idf.shape != (len(words),):
                raise ValueError("a cached index of other docs")
            return out

        return remembered("metadata-index", key_of(["field-index-1", "\x1f".join(docs)]),
                          lambda: cls(docs), dump, load)

    def match(self, words: Sequence[str]) -> np.ndarray:
        """(n_docs,) float32: each track's idf-weighted share of the distinct `words`."""
        out = np.zeros(self.postings.shape[1], np.float32)
        tracks, share = self.match_sparse(words)
        out[tracks] = share
        return out

    def match_sparse(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`match` where it is not 0: (sorted track indices, their float32 shares). A search
        touches only the tracks holding a word of the query, not the whole catalogue."""
        n_docs = self.postings.shape[1]
        distinct = list(dict.fromkeys(words))
        known = [self.vocab[w] for w in distinct if w in self.vocab]
        total = sum(float(self.idf[i]) for i in known) + self.unknown_idf * (
            len(distinct) - len(known))
        if not known or total <= 0:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        ptr, idx = self.postings.indptr, self.postings.indices.astype(np.int32, copy=False)
        if len(known) == 1:  # one word's postings: sorted and distinct already
            i = known[0]
            tracks = idx[ptr[i]:ptr[i + 1]]
            return tracks, np.full(tracks.shape[0], float(self.idf[i]) / total, np.float32)
        tracks = np.concatenate([idx[ptr[i]:ptr[i + 1]] for i in known])
        weights = np.repeat(self.idf[known], np.diff(ptr)[known])
        if tracks.shape[0] * 8 > n_docs:
            # a common word (a genre held by many tracks): one bincount over the tracks is
            # cheaper than sorting its postings
            dense = np.bincount(tracks, weights=weights, minlength=n_docs)
            held = np.flatnonzero(dense).astype(np.int32)
            return held, (dense[held] / total).astype(np.float32)
        held, inverse = np.unique(tracks, return_inverse=True)
        return held, (np.bincount(inverse, weights=weights) / total).astype(np.float32)


def sparse_sum(parts: Sequence[tuple[np.ndarray, np.ndarray]],
               n: int) -> tuple[np.ndarray, np.ndarray]:
    """The sum of sparse float32 vectors of length n, each (distinct indices, values), in
    order: (sorted indices, values). Through a dense vector when they are large (sorting a
    common genre's postings costs more than touching n floats)."""
    if sum(t.shape[0] for t, _ in parts) * 8 > n:
        dense = np.zeros(n, np.float32)
        mask = np.zeros(n, bool)
        for t, v in parts:
            dense[t] += v
            mask[t] = True
        held = np.flatnonzero(mask).astype(np.int32)
        return held, dense[held]
    tracks = np.concatenate([t for t, _ in parts])
    held, inverse = np.unique(tracks, return_inverse=True)
    values = np.zeros(held.shape[0], np.float32)
    start = 0
    for _, v in parts:
        np.add.at(values, inverse[start:start + v.shape[0]], v)
        start += v.shape[0]
    return held, values


class MetadataMatch:
    """Both fields over the vocabulary (track order = the searcher's)."""

    def __init__(self, artists: Sequence[str | None], genres: Sequence[Sequence[str]]) -> None:
        self.n_tracks = len(artists)
        self.fields = {"artist": FieldIndex.cached([a or "" for a in artists]),
                       "genre": FieldIndex.cached([" ; ".join(g) for g in genres])}

    @property
    def empty(self) -> bool:
        return all(not f.vocab for f in self.fields.values())

    def scores(self, query: str, weights: dict[str, float], power: float) -> np.ndarray:
        """(V,) float32: sum over fields of weight x match ** power (0 where nothing matches)."""
        out = np.zeros(self.n_tracks, np.float32)
        tracks, values, _ = self.sparse(query, weights, power)
        out[tracks] = values
        return out

    def sparse(self, query: str, weights: dict[str, float], power: float
               ) -> tuple[np.ndarray, np.ndarray, bool]:
        """`scores` where not 0 (sorted track indices, float32 values), and `complete`, from
        one pass over the query's postings."""
        words = fold_words(query)
        empty = np.zeros(0, np.int32), np.zeros(0, np.float32), False
        if not words:
            return empty
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        full = False
        for name, index in self.fields.items():
            tracks, share = index.match_sparse(words)
            full = full or float(share.max(initial=0.0)) >= 1.0 - 1e-6
            w = weights.get(name, 0.0)
            if w > 0 and tracks.shape[0]:
                parts.append((tracks, np.float32(w) * share ** np.float32(power)))
        if not parts:
            return *empty[:2], full
        if len(parts) == 1:
            return *parts[0], full
        return *sparse_sum(parts, self.n_tracks), full

    def complete(self, query: str) -> bool:
        """Does one track's artist name, or its genres, hold every word of `query`?"""
        return self.sparse(query, {}, 1.0)[2]

    def batch(self, queries: Sequence[str], weights: dict[str, float],
              power: float) -> np.ndarray:
        """(n, V) `scores` of many queries (the benchmark's batched path)."""
        if not queries:
            return np.zeros((0, self.n_tracks), np.float32)
        return np.stack([self.scores(q, weights, power) for q in queries])


__all__ = ["FIELDS", "FieldIndex", "MetadataMatch", "fold_words", "sparse_sum"]
