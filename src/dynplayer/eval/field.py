"""The field's continuation protocol (RecSys Challenge 2018, Deezer APC-RTA) over the whole
catalogue: cases, categories and metrics.

Each evaluated playlist falls into one category (its seeds: none, the first n tracks, or n
tracks at random; with or without its name). The ground truth is every other distinct track of
the playlist, including tracks no model can know (never seen in training); a method answers
with up to 500 tracks. Metrics (per case, then averaged), as the challenge scores them:

- R-precision: the first |G| recommendations; each held-out track scores 1, and the artists of
  the first |G| recommendations that did not match a track, as a set, intersected with the
  artists of G, score 0.25 each; divided by |G|.
- NDCG over the 500: DCG = sum_i rel_i / log2(i + 1), IDCG = the same for min(|G|, 500) hits.
- Recommended-songs clicks: floor((rank of the first hit - 1) / 10), 51 without a hit.
- Recall@500: hits / |G| (a track no model can know is a miss for every model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.errors import ConfigError

N_RECS = 500
NO_HIT_CLICKS = 51


@dataclass(frozen=True)
class Category:
    """Which part of a playlist a method sees: `n_seeds` tracks (the first ones, or drawn at
    random with `random`), and its name when `title`."""

    name: str
    n_seeds: int
    title: bool
    random: bool = False

    def min_tracks(self) -> int:
        """Distinct tracks a playlist needs: the seeds plus at least max(5, n/4) to predict."""
        return self.n_seeds + max(5, math.ceil(self.n_seeds / 4))


def _cat(n: int, title: bool, random: bool = False) -> Category:
    if n == 0:
        return Category("title only", 0, True)
    which = f"{n} random" if random else f"first {n}"
    return Category(f"title + {which}" if title else which, n, title, random)


# The challenge set's ten categories (1,000 playlists each there).
CHALLENGE: tuple[Category, ...] = (
    _cat(0, True), _cat(1, True), _cat(5, True), _cat(5, False), _cat(10, True),
    _cat(10, False), _cat(25, True), _cat(25, True, random=True), _cat(100, True),
    _cat(100, True, random=True),
)
# Deezer APC-RTA's protocol: the first n = 1..10 tracks, no title.
FIRST_N: tuple[Category, ...] = tuple(_cat(n, False) for n in range(1, 11))
PROTOCOLS = {"challenge": CHALLENGE, "first-n": FIRST_N}


@dataclass
class FieldCases:
    """Evaluated playlists of one split: seeds and ground truth as corpus `track_idx`."""

    categories: tuple[Category, ...]
    playlist_idx: np.ndarray  # (n,) corpus playlist row
    pids: list[str]
    category: np.ndarray  # (n,) index into `categories`
    names: list[str | None]  # the playlist's name when its category gives it
    seed_indptr: np.ndarray  # (n + 1,)
    seed_tracks: np.ndarray  # corpus track_idx, distinct, in playlist order
    truth_indptr: np.ndarray
    truth_tracks: np.ndarray  # corpus track_idx, distinct, none a seed
    unqualified: int = 0  # playlists of the split no category could take
    # categories no playlist qualified for: name -> reason (a stated skip, not an error)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.playlist_idx.shape[0])

    def seeds(self, i: int) -> np.ndarray:
        return self.seed_tracks[self.seed_indptr[i]:self.seed_indptr[i + 1]]

    def truth(self, i: int) -> np.ndarray:
        return self.truth_tracks[self.truth_indptr[i]:self.truth_indptr[i + 1]]

    def subset(self, rows: np.ndarray) -> FieldCases:
        """The cases at `rows` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)

        def ragged(ip: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lens = np.diff(ip)[rows]
            new_ip = np.zeros(rows.shape[0] + 1, dtype=np.int64)
            np.cumsum(lens, out=new_ip[1:])
            idx = np.concatenate([np.arange(ip[r], ip[r + 1]) for r in rows]) \
                if rows.size else np.zeros(0, np.int64)
            return new_ip, vals[idx.astype(np.int64)]

        s_ip, s_tr = ragged(self.seed_indptr, self.seed_tracks)
        t_ip, t_tr = ragged(self.truth_indptr, self.truth_tracks)
        return FieldCases(self.categories, self.playlist_idx[rows],
                          [self.pids[r] for r in rows], self.category[rows],
                          [self.names[r] for r in rows], s_ip, s_tr, t_ip, t_tr,
                          self.unqualified, dict(self.skipped))

    def truth_matrix(self, n_tracks: int) -> sp.csr_matrix:
        data = np.ones(self.truth_tracks.shape[0], dtype=np.float32)
        return sp.csr_matrix((data, self.truth_tracks, self.truth_indptr),
                             shape=(self.n, n_tracks))


def distinct_in_order(corpus: Any, playlists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each playlist's distinct tracks in order of first appearance, as (indptr, track_idx)."""
    indptr = corpus.playlist_indptr
    out: list[np.ndarray] = []
    for p in playlists:
        tracks = corpus.occ_track[indptr[p]:indptr[p + 1]]
        pos = corpus.occ_position[indptr[p]:indptr[p + 1]]
        tracks = tracks[np.argsort(pos, kind="stable")]
        _, first = np.unique(tracks, return_index=True)
        out.append(tracks[np.sort(first)].astype(np.int64))
    ip = np.zeros(len(out) + 1, dtype=np.int64)
    np.cumsum([o.shape[0] for o in out], out=ip[1:])
    return ip, (np.concatenate(out) if out else np.zeros(0, np.int64))


def assign_categories(lengths: np.ndarray, has_name: np.ndarray,
                      categories: Sequence[Category], seed: int) -> np.ndarray:
    """Category index per playlist (-1: none qualifies), balanced like the challenge set.

    Categories are filled strictest first (most seeds), each with an equal share of the
    playlists drawn at random among those that qualify and are still free; the rest go one by
    one (at random) to the qualifying category with the fewest so far.
    """
    n = lengths.shape[0]
    rng = np.random.default_rng(seed)
    out = np.full(n, -1, dtype=np.int64)
    quota = math.ceil(n / max(len(categories), 1))
    ok = np.stack([(lengths >= c.min_tracks()) & (has_name | (not c.title))
                   for c in categories], axis=1) if categories else np.zeros((n, 0), bool)
    order = sorted(range(len(categories)),
                   key=lambda j: (-categories[j].n_seeds, not categories[j].random, j))
    for j in order:
        free = np.flatnonzero(ok[:, j] & (out < 0))
        take = rng.choice(free, size=min(quota, free.shape[0]), replace=False)
        out[take] = j
    counts = np.bincount(out[out >= 0], minlength=len(categories))
    for p in rng.permutation(np.flatnonzero(out < 0)):
        cands = np.flatnonzero(ok[p])
        if cands.size:
            j = int(cands[np.argmin(counts[cands])])
            out[p] = j
            counts[j] += 1
    return out


def field_cases(corpus: Any, split: int, categories: Sequence[Category] = CHALLENGE, *,
                seed: int = 0, max_playlists: int = 0) -> FieldCases:
    """The cases of one split (validation or test) of a prepared corpus.

    At most `max_playlists` playlists (a seeded sample; 0 = all). A category no playlist
    qualifies for is skipped with its reason in `skipped`.
    """
    if not categories:
        raise ConfigError("no evaluation category given")
    playlists = corpus.playlists_in(split)
    if max_playlists and playlists.shape[0] > max_playlists:
        pick = np.random.default_rng(seed).choice(playlists.shape[0], max_playlists,
                                                  replace=False)
        playlists = playlists[np.sort(pick)]
    ip, tracks = distinct_in_order(corpus, playlists)
    lengths = np.diff(ip)
    names = [(corpus.names[p] or "").strip() for p in playlists]
    has_name = np.array([bool(s) for s in names], dtype=bool)
    cat = assign_categories(lengths, has_name, categories, seed + 7)
    rng = np.random.default_rng(seed + 11)
    keep = np.flatnonzero(cat >= 0)
    s_parts: list[np.ndarray] = []
    t_parts: list[np.ndarray] = []
    for i in keep:
        c = categories[int(cat[i])]
        row = tracks[ip[i]:ip[i + 1]]
        if c.random:
            chosen = np.zeros(row.shape[0], dtype=bool)
            chosen[rng.choice(row.shape[0], c.n_seeds, replace=False)] = True
            s_parts.append(row[chosen])
            t_parts.append(row[~chosen])
        else:
            s_parts.append(row[:c.n_seeds])
            t_parts.append(row[c.n_seeds:])

    def pack(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        p_ip = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([x.shape[0] for x in parts], out=p_ip[1:])
        return p_ip, (np.concatenate(parts) if parts else np.zeros(0, np.int64))

    s_ip, s_tr = pack(s_parts)
    t_ip, t_tr = pack(t_parts)
    present = set(cat[keep].tolist())
    skipped = {c.name: f"no playlist of the split has the {c.min_tracks()} distinct tracks"
               + (" and a name" if c.title else "") + " it needs"
               for j, c in enumerate(categories) if j not in present}
    return FieldCases(tuple(categories), playlists[keep], [corpus.pids[p] for p in
                                                          playlists[keep]],
                      cat[keep], [names[i] if categories[int(cat[i])].title else None
                                  for i in keep], s_ip, s_tr, t_ip, t_tr,
                      unqualified=int((cat < 0).sum()), skipped=skipped)


# ---- metrics ------------------------------------------------------------------------------


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def field_metrics(recs: np.ndarray, cases: FieldCases, artist: np.ndarray,
                  head: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-case metrics of `recs` ((n, K) corpus track_idx, best first, -1 = nothing).

    `artist`: artist code per corpus track (-1 unknown); `head`: the tracks of the seed's
    top-5% vocabulary, for the share of recommendations (and of hits) outside it.
    """
    n, k = recs.shape
    n_tracks = int(artist.shape[0])
    truth = cases.truth_matrix(n_tracks)
    g = np.diff(cases.truth_indptr).astype(np.int64)
    valid = recs >= 0
    safe = np.where(valid, recs, 0)
    hits = np.zeros((n, k), dtype=bool)
    if n:
        hits = (np.asarray(truth[np.arange(n)[:, None], safe].todense()) > 0) & valid
    rank = np.arange(k)[None, :]
    in_r = rank < g[:, None]
    track_hits = (hits & in_r).sum(axis=1)
    # artist credit: distinct artists of the unmatched first-|G| recommendations that are
    # artists of G
    miss = in_r & valid & ~hits
    rows, cols = np.nonzero(miss)
    a = artist[safe[rows, cols]]
    known = a >= 0
    n_art = int(artist.max()) + 1 if artist.size and artist.max() >= 0 else 1
    rec_art = sp.csr_matrix((np.ones(int(known.sum()), np.float32), (rows[known], a[known])),
                            shape=(n, n_art))
    rec_art.data[:] = 1.0
    t_rows = np.repeat(np.arange(n), g)
    ta = artist[cases.truth_tracks]
    tk = ta >= 0
    truth_art = sp.csr_matrix((np.ones(int(tk.sum()), np.float32), (t_rows[tk], ta[tk])),
                              shape=(n, n_art))
    rec_art.sum_duplicates()
    rec_art.data[:] = 1.0
    truth_art.sum_duplicates()
    truth_art.data[:] = 1.0
    art_credit = np.asarray(rec_art.multiply(truth_art).sum(axis=1)).ravel()
    gf = np.maximum(g, 1).astype(np.float64)
    disc = _discounts(k)
    dcg = (hits * disc[None, :]).sum(axis=1)
    idcg = np.r_[0.0, np.cumsum(disc)][np.minimum(g, k)]
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), -1)
    out = {
        "r_precision": (track_hits + 0.25 * art_credit) / gf,
        "r_precision_tracks": track_hits / gf,
        "ndcg": np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0),
        "clicks": np.where(first >= 0, first // 10, NO_HIT_CLICKS).astype(np.float64),
        f"recall@{k}": hits.sum(axis=1) / gf,
        "recall@10": hits[:, :10].sum(axis=1) / np.minimum(gf, 10),
    }
    if head is not None:
        tail = valid & ~head[safe]
        out["tail_share"] = tail.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
        out["tail_hits"] = (hits & tail).sum(axis=1).astype(np.float64)
        out["tail_recs"] = tail.sum(axis=1).astype(np.float64)
        out["hits"] = hits.sum(axis=1).astype(np.float64)
    return out


HEADLINE = ("r_precision", "ndcg", "clicks", f"recall@{N_RECS}")


def summarize(per_case: dict[str, np.ndarray], recs: np.ndarray, cases: FieldCases,
              n_catalogue: int) -> dict[str, Any]:
    """Means over all cases and per category, coverage and the tail figures."""

    def agg(rows: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {"n_playlists": int(rows.shape[0])}
        for key in ("r_precision", "r_precision_tracks", "ndcg", "clicks",
                    *[k for k in per_case if k.startswith("recall@")]):
            out[key] = float(per_case[key][rows].mean()) if rows.size else 0.0
        if "tail_recs" in per_case:
            recs_n = float(per_case["tail_recs"][rows].sum())
            out["tail_share"] = float(per_case["tail_share"][rows].mean()) if rows.size else 0.0
            out["tail_precision"] = (float(per_case["tail_hits"][rows].sum()) / recs_n
                                     if recs_n else 0.0)
            hits = float(per_case["hits"][rows].sum())
            out["tail_hit_share"] = (float(per_case["tail_hits"][rows].sum()) / hits
                                     if hits else 0.0)
        return out

    result = agg(np.arange(cases.n))
    valid = recs[recs >= 0]
    result["coverage"] = float(np.unique(valid).shape[0] / max(n_catalogue, 1))
    result["categories"] = {c.name: agg(np.flatnonzero(cases.category == j))
                            for j, c in enumerate(cases.categories)
                            if (cases.category == j).any()}
    return result
