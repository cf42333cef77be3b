"""The words of a track matcher's folded "name artist" strings, each with the strings holding
it: what lets `TrackMatcher` answer over millions of names without reading every one.

Built once from the folded strings (lower-case ASCII words between single spaces) in their
rank order. The distinct words are kept sorted in one newline-joined text (a regular
expression finds the words holding a part in one scan of that text, a few MB, instead of
every string's tens of MB), with the first 8 bytes of each as a big-endian integer (so the
words starting with a prefix are one `np.searchsorted` range), and for each word the ranks of
the strings holding it (int32, ascending, one array for all words). At 2M strings of ~7 words
that is ~50 MB of ranks; the Python strings themselves are not copied.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

import numpy as np
from rapidfuzz import fuzz

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"  # every character of a folded word
KEY_BYTES = 8
CHUNK = 100_000  # strings tokenised at once while building (bounds the temporary lists)
PREFIX_MIN = 3  # a typed word's variants this long or longer also match as word prefixes
SHORT_PART = 3  # parts this short are sought in the words by numpy, longer by `re`


def edits1(word: str) -> set[str]:
    """The strings one deletion, adjacent swap, substitution or insertion away from `word`
    (in the folded alphabet; ~73 per letter)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in ALPHABET}
    out |= {a + c + b for a, b in splits for c in ALPHABET}
    out.discard("")
    return out


def _key(s: str) -> int:
    return int.from_bytes(s[:KEY_BYTES].encode("ascii").ljust(KEY_BYTES, b"\0"), "big")


class WordIndex:
    """Distinct words of `folded` (sorted) and, for each, the ranks of the strings holding it."""

    def __init__(self, folded: Sequence[str]) -> None:
        n = self.n = len(folded)
        seen: set[str] = set()
        for i in range(0, n, CHUNK):
            seen.update(" ".join(folded[i:i + CHUNK]).split())
        vocab = sorted(seen)
        del seen
        ids = {w: i for i, w in enumerate(vocab)}
        word_ids, ranks = [], []
        for i in range(0, n, CHUNK):
            chunk = folded[i:i + CHUNK]
            tokens = " ".join(chunk).split()
            word_ids.append(np.fromiter(map(ids.__getitem__, tokens), np.int32, len(tokens)))
            per = np.fromiter((s.count(" ") + 1 if s else 0 for s in chunk), np.int64,
                              len(chunk))
            ranks.append(np.repeat(np.arange(i, i + len(chunk), dtype=np.int32), per))
        del ids, tokens
        wid, rank = np.concatenate(word_ids), np.concatenate(ranks)
        del word_ids, ranks
        order = np.argsort(wid, kind="stable")  # by word, each word's strings in rank order
        wid, rank = wid[order], rank[order]
        del order
        keep = np.ones(len(wid), bool)  # a word twice in one string ("artist 12 ... 12")
        keep[1:] = (wid[1:] != wid[:-1]) | (rank[1:] != rank[:-1])
        self.postings = rank[keep]
        self.indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(wid[keep], minlength=len(vocab)))]).astype(np.int64)
        del wid, rank, keep
        self.text = ("\n".join(vocab) + "\n").encode("ascii")
        self.raw = np.frombuffer(self.text, np.uint8)  # the same bytes, for numpy
        lengths = np.fromiter(map(len, vocab), np.int64, len(vocab))
        del vocab
        self.starts = np.concatenate([[0], np.cumsum(lengths + 1)]).astype(np.int64)
        raw = self.raw
        keys = np.zeros(len(lengths), np.uint64)
        for j in range(KEY_BYTES):  # word i's first 8 bytes, zero-padded, as one integer
            b = np.where(lengths > j, raw[np.minimum(self.starts[:-1] + j, len(raw) - 1)], 0)
            keys = (keys << np.uint64(8)) | b.astype(np.uint64)
        self.keys = keys
        df = np.diff(self.indptr)
        self.idf = np.log(n / np.maximum(df, 1)).astype(np.float32)

    def nbytes(self) -> int:
        return (len(self.text) + self.postings.nbytes + self.indptr.nbytes
                + self.starts.nbytes + self.keys.nbytes + self.idf.nbytes)

    def word(self, i: int) -> str:
        return self.text[self.starts[i]:self.starts[i + 1] - 1].decode("ascii")

    def prefixed(self, prefixes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each prefix, the ids [lo, hi) of the words starting with it (the word itself
        first, when it is one)."""
        k = np.array([_key(p) for p in prefixes], np.uint64)
        span = np.array([256 ** (KEY_BYTES - min(len(p), KEY_BYTES)) for p in prefixes],
                        np.uint64)
        lo = np.searchsorted(self.keys, k, "left")
        hi = np.searchsorted(self.keys, k + span, "left")
        for j, p in enumerate(prefixes):
            if len(p) > KEY_BYTES and lo[j] < hi[j]:  # the key holds 8 bytes: bisect the rest
                a, b = int(lo[j]), int(hi[j])
                lo[j] = bisect.bisect_left(range(len(self.keys)), p, a, b, key=self.word)
                hi[j] = bisect.bisect_left(range(len(self.keys)), p + "{", a, b, key=self.word)
        return lo, hi

    def find(self, words: Sequence[str]) -> list[int]:
        """The id of each word, -1 for one that no string holds."""
        lo, hi = self.prefixed(words)
        return [a if a < b and self.word(a) == w else -1
                for w, a, b in zip(words, lo.tolist(), hi.tolist(), strict=True)]

    def df(self, i: int) -> int:
        """How many strings hold word `i`."""
        return int(self.indptr[i + 1] - self.indptr[i])

    def volume(self, ids: np.ndarray) -> int:
        """How many ranks the words `ids` hold together (a string counted once a word)."""
        return int((self.indptr[ids + 1] - self.indptr[ids]).sum())

    def containing(self, part: str, *, at_end: bool = False) -> np.ndarray:
        """Ids (sorted) of the words holding `part` (ending with it, with `at_end`)."""
        b = part.encode("ascii")
        if len(b) > SHORT_PART:  # few matches: one regular-expression scan
            pattern = re.compile(re.escape(b) + (b"$" if at_end else b""), re.MULTILINE)
            pos: list[int] | np.ndarray = [m.start() for m in pattern.finditer(self.text)]
        else:  # in many words (a letter, a digit): compared in numpy, not listed match by match
            raw, m = self.raw, len(self.raw) - len(b)  # (no match starts at the final newline)
            hit = raw[:m] == b[0]
            for j in range(1, len(b) + at_end):
                hit &= raw[j:j + m] == (b[j] if j < len(b) else ord("\n"))
            pos = np.flatnonzero(hit)
        ids = np.searchsorted(self.starts, pos, "right") - 1  # ascending, a word maybe twice
        return ids[np.concatenate([[True], ids[1:] != ids[:-1]])] if len(ids) else ids

    def ranks(self, ids: np.ndarray | range) -> np.ndarray:
        """Ranks (sorted, unique) of the strings holding any of the words `ids`."""
        if isinstance(ids, range):  # a prefix range: its ranks are one slice
            got = self.postings[self.indptr[ids.start]:self.indptr[ids.stop]]
            return got if len(ids) == 1 else self._unique(got)
        ids = np.asarray(ids, np.int64)
        if len(ids) == 1:
            return self.postings[self.indptr[ids[0]]:self.indptr[ids[0] + 1]]
        lo, hi = self.indptr[ids], self.indptr[ids + 1]
        lens = hi - lo
        total = int(lens.sum())
        if not total:
            return np.zeros(0, np.int32)
        at = np.repeat(lo - np.cumsum(lens) + lens, lens) + np.arange(total)
        return self._unique(self.postings[at])

    def _unique(self, ranks: np.ndarray) -> np.ndarray:
        if len(ranks) * 8 < self.n:  # (sorted, not np.unique: its hash path is slower)
            ranks = np.sort(ranks)
            return ranks[np.concatenate([[True], ranks[1:] != ranks[:-1]])] if len(ranks) \
                else ranks
        mask = np.zeros(self.n, bool)
        mask[ranks] = True
        return np.flatnonzero(mask).astype(np.int32)

    def intersect(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The ranks in both sorted rank arrays, sorted."""
        if len(a) > len(b):
            a, b = b, a
        if len(a) * 64 < len(b):
            return a[np.isin(a, b, assume_unique=True)]
        mask = np.zeros(self.n, bool)
        mask[b] = True
        return a[mask[a]]

    def candidates(self, words: Sequence[str], k: int) -> np.ndarray:
        """Ranks (sorted) of the `k` strings most likely to be near misses of `words`: those
        holding the most of them, each counted by its IDF (the rarer, the more it says) times
        its similarity (fuzz.ratio) to the word of the string it matched: that word itself, one
        edit away (a typo: "rsoe" -> "rose"), or, for the last word (perhaps still being
        typed), a word starting with it or with one of its one-edit variants. Ties: the more
        popular (lower rank) first."""
        score = np.zeros(self.n, np.float32)
        for w in dict.fromkeys(words):
            variants = sorted(edits1(w) | {w})
            lo, hi = self.prefixed(variants)
            features = []  # (weight, start, stop) of a slice of postings
            for v, a, b in zip(variants, lo.tolist(), hi.tolist(), strict=True):
                if a == b:
                    continue
                sim = fuzz.ratio(w, v) / 100
                exact = self.word(a) == v
                if exact:
                    features.append((sim * float(self.idf[a]), int(self.indptr[a]),
                                     int(self.indptr[a + 1])))
                if w == words[-1] and len(v) >= PREFIX_MIN and (b > a + 1 or not exact):
                    p0, p1 = int(self.indptr[a]), int(self.indptr[b])
                    features.append((sim * float(np.log(self.n / (p1 - p0))), p0, p1))
            best = np.zeros(self.n, np.float32)  # this word's best feature in each string
            for weight, p0, p1 in sorted(features):  # the heaviest assigned last
                if weight > 0:
                    best[self.postings[p0:p1]] = weight
            score += best
        found = np.flatnonzero(score)
        if len(found) <= k:
            return found
        s = score[found]
        kth = np.partition(s, len(s) - k)[len(s) - k]
        above = found[s > kth]
        tied = found[s == kth][:k - len(above)]
        return np.sort(np.concatenate([above, tied]))


__all__ = ["WordIndex", "edits1"]
