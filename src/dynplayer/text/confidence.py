"""How well a text query matched the model's captions: a confidence calibrated on validation and a
verdict, so that noise ("asdkjh qwpoe zzxv") is not ranked as if it were an answer.

Two signals, both free at query time:

- the *match* m = 2 s_1 - s_50: the best playlist's cosine with the query plus its margin over
  the 50th (the similarities the search already computed, on either backend). A query that
  names something the captions say stands out from the crowd; noise lands in a flat region.
- *unknown words*: every Latin-script word of the query is outside the model's vocabulary
  (training captions, every corpus track's name and artist, the genres; `text/words.txt`).
  Text in other scripts (Korean on an English model) gives no lexical evidence either way.

`confidence` = P(the top 20 holds a track of the playlist whose caption was the query), a
logistic fit on [m, unknown] over the validation captions (calibrated there: observed and
predicted agree by decile on test, `dynplayer bench text --confidence`). The verdict:

- "nothing" (nothing close): every word unknown and m below the validation captions' 20th
  percentile;
- "weak": otherwise m below their 5th percentile;
- "close": the rest, and any query whose words all name one artist or genre of the catalogue
  (the metadata match is then complete: "bryson tiller").

The percentiles were chosen on validation with seeded random letter strings as the noise
(`calibrate`): at most ~1% of validation captions "nothing close". The hand-written probe
docs/probes/nothing-close.jsonl (keyboard mashes, off-topic requests, artists absent from the
catalogue, other scripts) measures what it flags, and was not used to choose anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.text.metadata import fold_words

MATCH_DEPTH = 50  # the match compares the best playlist with the 50th
NOTHING_QUANTILE = 0.20  # unknown words and a match below this share of validation captions
WEAK_QUANTILE = 0.05
HIT_K = 20
VERDICTS = ("close", "weak", "nothing")
_LATIN = re.compile("^[a-z0-9]+$")


def match_score(similarities: np.ndarray) -> float:
    """m = 2 s_1 - s_n, n = min(len, 50), of one query's playlist similarities (best first)."""
    s = np.asarray(similarities, dtype=np.float64).ravel()
    if s.size == 0:
        return 0.0
    return float(2.0 * s[0] - s[min(s.size, MATCH_DEPTH) - 1])


class Vocabulary:
    """The words a model knows; `unknown(query)`: every Latin-script word of it is not one."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = frozenset(words)

    @classmethod
    def from_texts(cls, texts: Iterable[str | None]) -> Vocabulary:
        out: set[str] = set()
        for t in texts:
            if t:
                out.update(fold_words(t))
        return cls(out)

    def unknown(self, query: str) -> bool:
        latin = [w for w in fold_words(query) if _LATIN.match(w)]
        return bool(latin) and not any(w in self.words for w in latin)

    def save(self, path: Path) -> None:
        from dynplayer.run import atomic_write_bytes

        atomic_write_bytes(path, "\n".join(sorted(self.words)).encode("utf-8"))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls(w for w in path.read_text(encoding="utf-8").splitlines() if w)


@dataclass(frozen=True)
class Calibration:
    """Logistic confidence and verdict thresholds, fitted on a validation split."""

    intercept: float
    w_match: float
    w_unknown: float
    weak_below: float
    nothing_below: float
    validation: dict[str, Any] = field(default_factory=dict)

    def confidence(self, match: float, unknown: bool) -> float:
        z = self.intercept + self.w_match * match + self.w_unknown * float(unknown)
        return float(1.0 / (1.0 + np.exp(-z)))

    def verdict(self, match: float, unknown: bool, full_match: bool = False) -> str:
        if full_match:
            return "close"
        if unknown and match < self.nothing_below:
            return "nothing"
        return "weak" if match < self.weak_below else "close"

    def judge(self, similarities: np.ndarray, query: str, vocabulary: Vocabulary,
              full_match: bool = False) -> tuple[float, str]:
        m = match_score(similarities)
        unknown = vocabulary.unknown(query)
        return round(self.confidence(m, unknown), 4), self.verdict(m, unknown, full_match)

    def save(self, path: Path) -> None:
        from dynplayer.run import atomic_write_json

        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> Calibration:
        d = json.loads(path.read_text())
        return cls(**{k: d[k] for k in ("intercept", "w_match", "w_unknown", "weak_below",
                                         "nothing_below")}, validation=d.get("validation", {}))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3,
                 iters: int = 50) -> np.ndarray:
    """Weights (bias first) of an L2-regularised logistic regression, by Newton's method."""
    xb = np.c_[np.ones(x.shape[0]), np.asarray(x, dtype=np.float64)]
    w = np.zeros(xb.shape[1])
    y = np.asarray(y, dtype=np.float64)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + l2 * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + l2 * np.eye(xb.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def noise_queries(n: int = 200, seed: int = 0) -> list[str]:
    """Seeded random lower-case letter strings of 1-3 words: the noise the thresholds are
    chosen against (never the hand-written probe)."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    return [" ".join("".join(rng.choice(letters, int(rng.integers(3, 9))))
                     for _ in range(int(rng.integers(1, 4)))) for _ in range(n)]


def fit_calibration(match: np.ndarray, unknown: np.ndarray, hit: np.ndarray,
                    noise_match: np.ndarray, noise_unknown: np.ndarray) -> Calibration:
    """The calibration from validation captions (their match, unknown words, and whether the
    top 20 hit their playlist) and the noise strings' match and unknown words."""
    match, unknown = np.asarray(match, float), np.asarray(unknown, bool)
    w = fit_logistic(np.c_[match, unknown], np.asarray(hit, bool))
    weak = float(np.quantile(match, WEAK_QUANTILE))
    nothing = float(np.quantile(match, NOTHING_QUANTILE))
    cal = Calibration(float(w[0]), float(w[1]), float(w[2]), weak, nothing)
    verdicts = [cal.verdict(m, u) for m, u in zip(match, unknown, strict=True)]
    noise = [cal.verdict(m, u) for m, u in zip(noise_match, noise_unknown, strict=True)]
    return Calibration(**{**asdict(cal), "validation": {
        "queries": int(match.shape[0]), "hit_rate": round(float(np.mean(hit)), 4),
        **{f"captions_{v}": round(verdicts.count(v) / max(len(verdicts), 1), 4)
           for v in VERDICTS},
        "noise_queries": len(noise),
        **{f"noise_{v}": round(noise.count(v) / max(len(noise), 1), 4) for v in VERDICTS}}})


def model_vocabulary(captions: Sequence[str], corpus: Any | None,
                     tracks: dict[str, list[Any]]) -> Vocabulary:
    """Training captions, the corpus's track names and artists (else the vocabulary tracks'),
    and the genres."""
    names = corpus.track_names if corpus is not None else tracks["name"]
    artists = corpus.artists if corpus is not None else tracks["artist"]
    genres = [" ".join(g) for g in tracks.get("genres") or []]
    return Vocabulary.from_texts([*captions, *names, *artists, *genres])


def calibrate(searcher: Any) -> tuple[Calibration, Vocabulary]:
    """Fit the calibration of a loaded `TextSearcher` on its run's validation captions (as
    search sees them: Korean loanwords bridged), against `noise_queries`."""
    from dynplayer.text.evaluate import prepare_eval
    from dynplayer.text.search import check_query

    ev = prepare_eval(searcher, "val")
    # At most `val_playlists` validation captions (a seeded sample; the MPD slices' 707 all):
    # a handful of weights and two quantiles need no more, and at 1M playlists the 100,000
    # captions' searches over 1M playlists ran past 11 minutes, where all before took 3.5.
    from dynplayer.text.config import val_sample

    keep = val_sample(searcher.cfg, len(ev.queries))  # the fit's validation sample
    queries = [ev.queries[i] for i in keep.tolist()]
    relevant_rows = ev.relevant[keep]
    vocabulary = model_vocabulary(searcher.playlist_captions, ev.data.corpus,
                                  {"name": searcher.track_names,
                                   "artist": searcher.track_artists,
                                   "genres": searcher.track_genres})
    col = {t: i for i, t in enumerate(searcher.track_ids)}

    def signals(queries: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        texts = [check_query(q) for q in queries]
        rows, sims = searcher.top_playlists(searcher.encode_queries(texts))
        match = np.array([match_score(s) for s in sims])
        unknown = np.array([vocabulary.unknown(q) for q in texts])
        return match, unknown, rows, sims

    match, unknown, rows, sims = signals(queries)
    hit = np.zeros(len(queries), dtype=bool)
    for i, q in enumerate(queries):
        found = searcher.aggregate(rows[i], sims[i], HIT_K, query=q).tracks
        relevant = set(relevant_rows[i].indices.tolist())
        hit[i] = any(col[t.track_id] in relevant for t in found)
    noise_match, noise_unknown, _, _ = signals(noise_queries())
    return fit_calibration(match, unknown, hit, noise_match, noise_unknown), vocabulary


def write_calibration(run_dir: Path, text_dir: Path | None = None) -> Calibration:
    """Calibrate the text model of RUN_DIR (or the one being written in `text_dir`) and write
    confidence.json and words.txt beside it."""
    from dynplayer.text.search import TextSearcher

    d = Path(text_dir) if text_dir is not None else Path(run_dir) / "text"
    searcher = TextSearcher.load(run_dir, text_dir=d)
    cal, vocabulary = calibrate(searcher)
    vocabulary.save(d / "words.txt")
    cal.save(d / "confidence.json")
    return cal


__all__ = ["MATCH_DEPTH", "VERDICTS", "Calibration", "Vocabulary", "fit_calibration",
           "calibrate", "fit_logistic", "match_score", "model_vocabulary", "noise_queries",
           "write_calibration"]
