"""Artist variety: at most n tracks per artist in an answer, applied last to a ranked list.

Continuation, similar tracks and text answers rank a *pool* of candidates larger than k
(`pool_size`), then `cap_per_artist` walks it best first and skips a track whose artist already
has n tracks in the answer; when the pool holds too few artists to fill k that way, the best
skipped tracks fill the rest, so an answer is never shorter for it (and stays in score order).
Tracks without an artist count as artists of their own. The defaults per answer kind
(`DEFAULTS`) were chosen on the validation split with `dynplayer bench diversity`
(docs/benchmarks.md): the tightest cap whose Recall@10 stays within `TOLERANCE` of the uncapped
ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dynplayer.errors import QueryError

KINDS = ("continue", "similar", "text")
# n per kind, 0 = no cap; chosen on validation (MPD slices) by `dynplayer bench diversity`:
# continuation 0.3362 -> 0.3305 Recall@10 (-1.7%), 7.32 -> 7.58 distinct artists in the top
# 10; similar 0.1233 -> 0.1214 (-1.5%), 7.42 -> 7.70; text: even 5 per artist cost 3.1%.
DEFAULTS: dict[str, int] = {"continue": 4, "similar": 5, "text": 0}
TOLERANCE = 0.02  # the Recall@10 a default may cost, relative to no cap
POOL_FACTOR = 4  # candidates ranked per answer track when a cap is on
MAX_PER_ARTIST_LIMIT = 50


def check_max_per_artist(n: int | None, kind: str) -> int:
    """The cap to apply: `n` (0 = none), or the default of `kind` when None."""
    if n is None:
        return DEFAULTS[kind]
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_PER_ARTIST_LIMIT:
        raise QueryError(f"max_per_artist must be an integer from 0 (no cap) to "
                         f"{MAX_PER_ARTIST_LIMIT}, got {n!r}")
    return n


def pool_size(k: int, n: int, available: int | None = None) -> int:
    """How many ranked candidates an answer of k needs before the cap: k without a cap,
    else POOL_FACTOR x k (at most `available`)."""
    want = k if n <= 0 else k * POOL_FACTOR
    return want if available is None else max(0, min(want, available))


def artist_codes(artists: Sequence[str | None]) -> np.ndarray:
    """An integer per artist (case and surrounding spaces ignored); a missing artist gets a
    code of its own, so unknown artists are never capped together."""
    seen: dict[str, int] = {}
    out = np.empty(len(artists), dtype=np.int64)
    for i, a in enumerate(artists):
        key = a.strip().casefold() if a else ""
        if not key:
            out[i] = -1 - i
            continue
        out[i] = seen.setdefault(key, len(seen))
    return out


def cap_per_artist(codes: np.ndarray, n: int, k: int) -> np.ndarray:
    """Positions into a ranked pool (best first, one artist code per candidate) of the answer,
    in pool order: the first k candidates whose artist has fewer than n before them in the
    answer and, if that leaves the answer short, the best of the skipped ones. n <= 0: the
    first k."""
    codes = np.asarray(codes, dtype=np.int64)
    m = codes.shape[0]
    if n <= 0 or m == 0:
        return np.arange(min(k, m))
    # each candidate's place among its artist's candidates (0 = the artist's best), vectorised
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, m]))
    within = np.empty(m, dtype=np.int64)
    within[order] = np.arange(m) - group_start
    kept = np.flatnonzero(within < n)
    if kept.shape[0] >= k:
        return kept[:k]
    skipped = np.flatnonzero(within >= n)
    out: np.ndarray = np.sort(np.concatenate([kept, skipped[:k - kept.shape[0]]]))
    return out


def diversify(artists: Sequence[str | None], n: int, k: int) -> list[int]:
    """`cap_per_artist` over a pool given by its artists' names."""
    return [int(i) for i in cap_per_artist(artist_codes(artists), n, k)]


def distinct_artists(codes: np.ndarray, k: int = 10) -> int:
    """Distinct artists among the first k of a ranked list (unknown artists count apart)."""
    return int(np.unique(np.asarray(codes)[:k]).shape[0])


__all__ = ["DEFAULTS", "KINDS", "MAX_PER_ARTIST_LIMIT", "POOL_FACTOR", "artist_codes",
           "cap_per_artist", "check_max_per_artist", "distinct_artists", "diversify",
           "pool_size"]
