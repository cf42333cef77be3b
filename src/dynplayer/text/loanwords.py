"""Korean loanwords -> the English words a model's captions use: a query-side bridge.

The multilingual encoder knows native Korean words ("슬픈 노래" finds sad songs on an English
model) but not many loanwords: it puts "발라드" (ballad) nearer "swish" than "ballad", so on the
MPD model "잔잔한 발라드" found country songs. A loanword is a spelling of the English sound, so
the bridge compares sounds. Each Hangul word and each English word of the model's vocabulary
(caption words, genre words) gets a *phonetic key*: consonant classes (b/p/f/v -> P, d/t -> T,
g/k/c -> K, j/z/ch -> J, s/sh -> S, l/r -> L, m, n, ng, h) with every vowel run one V, Korean's
inserted vowel ㅡ dropped, an r before a consonant and a silent final e dropped, repeats merged:
발라드 and ballad are both PVLVT, 재즈 and jazz JVJ, 일렉트로닉 and electronic VLVKTLVNVK.

A key match is only a candidate: 노래 (song) shares NVLV with "nearly". A candidate is accepted
when score = cos(encoder(Korean word), encoder(English word)) + 0.05 ln(1 + caption df of the
English word) - 0.15 (key one edit away) reaches a threshold that falls as keys grow longer and
chance matches rarer: 0.70 (3 symbols), 0.55 (4-5), 0.40 (6+); keys of 2 symbols never match,
one edit away only from 5 symbols. These were set on a word list of 56 loanwords and 59 native
words that is in neither probe (tests/fixtures/loanword_dev.json; with the MPD slices' words:
29 right, 3 to another word, no native word rewritten; 0.65 for 3 symbols rewrote 잠, sleep,
as "jam"; a test holds at least 27 right, at most 3 wrong, none rewritten). A word the
model's own captions use at least as often as the English one is left alone (on a Korean model
the encoder knows 재즈 from its captions). A word with no match may be a loanword with a Korean
suffix (로맨틱한): its longest matching prefix is bridged, then the rest, which is kept as typed
when nothing in it matches.

Compounds with a Latin letter are spelled with the letter's Korean name: 케이팝 is K-pop (케이 =
K + 팝 = pop), 알앤비 R&B, 이디엠 EDM. Neither the key nor the encoder knows them (USE puts 케이팝
at cosine 0.41 from "kpop"), so a word that starts with letter names (`LETTER_NAMES`) is read
as those letters followed by the rest, whose key must be an English word's key exactly; the
joined spelling ("kpop", "rnb", "edm", "dj") is accepted only when a caption of the model (one
is enough: the letter parse is specific) or its genre words hold it, so the evidence is the
vocabulary itself. A letter compound is tried
before the sound match, and a word spelled entirely with three or more letter names is an
acronym: bridged to it or left as typed, never matched by sound (비티에스, BTS, sounded like
"vibes", 오디오 like "youtu").

A bridged word replaces the Korean one in the query ("잔잔한 발라드" -> "잔잔한 ballad"), which
then goes through retrieval, the metadata match and the feedback as typed. Text without Hangul
is returned unchanged, so English queries score exactly as before. Measured with `dynplayer
bench text RUN --pairs` (the top-50 overlap with an English wording), MPD model: the tuning
probe docs/probes/ko-en.jsonl 0.470 -> 0.648, the held-out docs/probes/ko-en-holdout.jsonl
(written before the bridge) 0.413 -> 0.677; docs/benchmarks.md.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import numpy as np

HANGUL_WORD = re.compile("[\uac00-\ud7a3]+")
_LATIN_WORD = re.compile("[a-z]{3,}")
_SYMBOL = re.compile("NG|[A-Z]")

# Hangul syllable = 0xAC00 + (initial * 21 + medial) * 28 + final
_INITIAL = ["K", "K", "N", "T", "T", "L", "M", "P", "P", "S", "S", "", "J", "J", "J", "K", "T",
            "P", "H"]
_EU = 18  # the medial ㅡ: the vowel Korean inserts between English consonants (드 = d)
_FINAL = ["", "K", "K", "K", "N", "N", "N", "T", "L", "LK", "LM", "LP", "LS", "LT", "LP", "L",
          "M", "P", "PS", "T", "T", "NG", "T", "T", "K", "T", "P", "T"]
_VOWELS = set("aeiouy")
_DIGRAPHS = {"ph": "P", "ck": "K", "sh": "S", "th": "T", "gh": "", "ng": "NG", "nk": "NGK",
             "qu": "KV"}
_LETTERS = {**dict.fromkeys("bpfv", "P"), **dict.fromkeys("dt", "T"),
            **dict.fromkeys("gkq", "K"), **dict.fromkeys("jz", "J"), "s": "S", "x": "KS",
            "l": "L", "m": "M", "n": "N", "h": "H", "w": "V"}

# acceptance (see the module docstring): thresholds by key length, the df prior, the edit cost
THRESHOLDS = {3: 0.70, 4: 0.55, 5: 0.55}
LONG_THRESHOLD = 0.40  # 6 symbols or more
DF_PRIOR = 0.05
EDIT_COST = 0.15
MIN_CAPTION_DF = 2  # caption words used by fewer playlists are not candidates
MIN_GENRE_TRACKS = 5
# Korean names of the Latin letters (앤, "and", joins R&B: 알앤비)
LETTER_NAMES = {"에이": "a", "비": "b", "씨": "c", "시": "c", "디": "d", "이": "e", "에프": "f",
                "지": "g", "쥐": "g", "에이치": "h", "에치": "h", "아이": "i", "제이": "j",
                "케이": "k", "엘": "l", "엠": "m", "엔": "n", "앤": "n", "오": "o", "피": "p",
                "큐": "q", "알": "r", "아르": "r", "에스": "s", "티": "t", "유": "u", "브이": "v",
                "더블유": "w", "더블류": "w", "엑스": "x", "와이": "y", "제트": "z"}
_LONGEST_NAME = max(len(n) for n in LETTER_NAMES)


def _merge(symbols: str) -> str:
    out: list[str] = []
    for s in _SYMBOL.findall(symbols):
        if not out or out[-1] != s:
            out.append(s)
    return "".join(out)


def n_symbols(key: str) -> int:
    return len(_SYMBOL.findall(key))


def hangul_key(word: str) -> str | None:
    """The phonetic key of a word of Hangul syllables, or None for anything else."""
    out = []
    for ch in word:
        c = ord(ch) - 0xAC00
        if not 0 <= c < 11172:
            return None
        initial, medial, final = c // 588, (c % 588) // 28, c % 28
        out.append(_INITIAL[initial] + ("" if medial == _EU else "V") + _FINAL[final])
    return _merge("".join(out)) or None


def english_key(word: str) -> str | None:
    """The phonetic key of a lower-case Latin word, or None for anything else."""
    w = word.lower()
    if not re.fullmatch("[a-z]{2,}", w):
        return None
    out: list[str] = []
    i = 0
    while i < len(w):
        c, nxt = w[i], w[i + 1:i + 2]
        if w[i:i + 2] == "ch":  # chr- is k (christmas), else j (church)
            out.append("K" if w[i + 2:i + 3] == "r" else "J")
            i += 2
            continue
        if w[i:i + 2] in _DIGRAPHS:
            out.append(_DIGRAPHS[w[i:i + 2]])
            i += 2
            continue
        if c in _VOWELS:
            out.append("V")
        elif c == "r":  # silent before a consonant or at the end (party = 파티)
            out.append("L" if nxt and nxt in _VOWELS else "")
        elif c == "c":
            out.append("S" if nxt and nxt in "eiy" else "K")
        elif c == "g" and nxt and nxt in "eiy":
            out.append("J")
        else:
            out.append(_LETTERS.get(c, ""))
        i += 1
    key = _merge("".join(out))
    silent_e = len(w) > 3 and w.endswith("e") and w[-2] not in _VOWELS
    if silent_e and key.endswith("V"):
        key = key[:-1]
    return key or None


def letter_prefixes(word: str) -> list[tuple[str, str]]:
    """Every way `word` starts with Korean letter names: (the letters, the rest of the word)."""
    out: list[tuple[str, str]] = []

    def walk(letters: str, i: int) -> None:
        for j in range(i + 1, min(len(word), i + _LONGEST_NAME) + 1):
            letter = LETTER_NAMES.get(word[i:j])
            if letter is not None:
                out.append((letters + letter, word[j:]))
                walk(letters + letter, j)

    walk("", 0)
    return out


def threshold(key: str) -> float | None:
    n = n_symbols(key)
    return None if n < 3 else THRESHOLDS.get(n, LONG_THRESHOLD)


class LoanwordBridge:
    """Hangul words -> English vocabulary words by phonetic key and encoder similarity."""

    def __init__(self, caption_df: Counter[str], genre_words: Iterable[str],
                 encode: Callable[[Sequence[str]], np.ndarray], cache_size: int = 4096) -> None:
        self.caption_df = caption_df
        vocab = {w for w, n in caption_df.items()
                 if n >= MIN_CAPTION_DF and _LATIN_WORD.fullmatch(w)}
        self.genre_words = set(genre_words)
        vocab |= {w for w in self.genre_words if _LATIN_WORD.fullmatch(w)}
        self.by_key: dict[str, list[str]] = {}
        for w in sorted(vocab):
            k = english_key(w)
            if k:
                self.by_key.setdefault(k, []).append(w)
        self._keys = list(self.by_key)
        self._encode = encode
        self.word = lru_cache(maxsize=cache_size)(self._word)

    @classmethod
    def from_texts(cls, captions: Sequence[str], genre_df: dict[str, int],
                   encode: Callable[[Sequence[str]], np.ndarray]) -> LoanwordBridge:
        from dynplayer.text.bm25 import tokenize

        df: Counter[str] = Counter()
        for c in captions:
            df.update(set(tokenize(c)))
        return cls(df, [w for w, n in genre_df.items() if n >= MIN_GENRE_TRACKS], encode)

    def candidates(self, key: str) -> list[tuple[str, int]]:
        """English words with this key (0 edits), or from 5 symbols also one edit away (1)."""
        out = [(w, 0) for w in self.by_key.get(key, [])]
        if n_symbols(key) >= 5:
            from rapidfuzz import process
            from rapidfuzz.distance import Levenshtein

            near = process.extract(key, self._keys, scorer=Levenshtein.distance,
                                   score_cutoff=1, limit=None)
            out += [(w, 1) for k, d, _ in near if d == 1 for w in self.by_key[k]]
        return out

    def _word(self, korean: str) -> str | None:
        """The accepted English word for one Hangul word, or None."""
        key = hangul_key(korean)
        if key is None or (limit := threshold(key)) is None:
            return None
        found = self.candidates(key)
        if not found:
            return None
        vecs = np.asarray(self._encode([korean] + [w for w, _ in found]), dtype=np.float64)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        cos = vecs[1:] @ vecs[0]
        score, word = max((float(c) + DF_PRIOR * math.log1p(self.caption_df[w]) - EDIT_COST * d,
                           w) for c, (w, d) in zip(cos, found, strict=True))
        if score < limit or self.caption_df[korean] >= max(self.caption_df[word], 1):
            return None
        return word

    def known(self, word: str) -> bool:
        """Is `word` (Latin letters) a word of a caption or a genre?"""
        return self.caption_df[word] >= 1 or word in self.genre_words

    def letter_compound(self, korean: str) -> str | None:
        """The acronym or letter compound a Hangul word spells with letter names (이디엠 -> edm,
        케이팝 -> kpop), when the vocabulary holds it (the most frequent one), else None."""
        found: list[str] = []
        for letters, rest in letter_prefixes(korean):
            if not rest:
                found += [letters] if len(letters) >= 2 else []
            elif (key := hangul_key(rest)) is not None:
                found += [letters + w for w in self.by_key.get(key, [])]
        found = [w for w in found if self.known(w)]
        if not found:
            return None
        word = max(found, key=lambda w: (self.caption_df[w], w))
        return None if self.caption_df[korean] >= max(self.caption_df[word], 1) else word

    def one(self, korean: str) -> str | None:
        """One Hangul word (or part of one) as a letter compound, else by its sound."""
        return self.letter_compound(korean) or self.word(korean)

    def words(self, korean: str) -> list[str]:
        """English words for a Hangul word: itself bridged, else its longest bridged prefix
        followed by the rest, bridged the same way or kept as typed (뮤직토크쇼 -> music 토크쇼,
        로맨틱한 -> romantic 한: no word of the query is dropped); [] when nothing in it is
        bridged."""
        w = self.letter_compound(korean)
        if w:
            return [w]
        if any(len(letters) >= 3 and not rest for letters, rest in letter_prefixes(korean)):
            return []  # an acronym the vocabulary does not hold
        w = self.word(korean)
        if w:
            return [w]
        for cut in range(len(korean) - 1, 0, -1):
            w = self.one(korean[:cut])
            if w:
                rest = korean[cut:]
                return [w, *(self.words(rest) or [rest])]
        return []

    def rewrite(self, text: str) -> str:
        """`text` with each bridged Hangul word replaced by its English words."""
        if not HANGUL_WORD.search(text):
            return text
        return HANGUL_WORD.sub(lambda m: " ".join(self.words(m.group(0))) or m.group(0), text)


__all__ = ["HANGUL_WORD", "LETTER_NAMES", "LoanwordBridge", "english_key", "hangul_key",
           "letter_prefixes", "n_symbols"]
