"""First stage of the two-stage ranking: the statistics every feature reads (`Sources`) and the
candidates of a batch of playlists (`retrieve`).

Candidates = the `n_embedding` tracks nearest the normalised mean of the seeds' vectors, united
with the `n_cooc` tracks that co-occur most often with the seeds in training playlists (a sparse
product, so it scales with the playlists, not the vocabulary squared). Seeds are never
candidates.

Ranker training examples must not be playlists the sources learned from (the embedding and the
co-occurrence counts would already "know" their held-out half): `dynplayer.rank.train` builds
shadow sources without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.data.cooccurrence import window_pairs
from dynplayer.rank.picks import best_positive, top_unordered, without
from dynplayer.rank.sums import SMALL_BATCH, SeedEntries, seed_sums, slots
from dynplayer.run import l2_normalize, unit_rows

N_EMBEDDING = 300
N_COOC = 200
N_EASE = 100
N_TITLE = 50  # tracks the text model finds for the playlist's name
LAST = 5  # "the last five seeds": order matters in a continuation


@dataclass
class Sources:
    """What the retrievers and features read, over one vocabulary of V tracks (run rows)."""

    vectors: np.ndarray  # (V, d) float32, L2-normalised
    cooc_playlist: sp.csr_matrix  # (V, V) float32: training playlists holding both, diag 0
    cooc_window: sp.csr_matrix  # (V, V) float32: pairs within `window` positions, diag 0
    popularity: np.ndarray  # (V,) float32: training playlists holding the track
    artist: np.ndarray  # (V,) int64 artist code, -1 unknown
    album: np.ndarray  # (V,) int64 album code, -1 unknown
    n_playlists: int
    window: int = 10
    # (E, E) float32 EASE weights over the vocabulary rows `ease_cols` (the E most popular
    # tracks: a dense matrix only fits for a part of a large vocabulary); None = without
    ease: np.ndarray | None = None
    ease_cols: np.ndarray | None = None
    # (A, A) float32 over the artist codes: training playlists holding both artists, divided
    # by sqrt(playlists holding each) (cosine); diag 0. None: not built (no artist known)
    artist_cooc: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        # A served request looks the candidates' artists up in the seeds' artists' rows
        # (`sums.row_sums_at`), which needs each row's columns sorted: sorted once here, for
        # built and loaded sources alike, before any request reads them.
        if self.artist_cooc is not None and not self.artist_cooc.has_sorted_indices:
            self.artist_cooc.sort_indices()

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])

    @cached_property
    def sqrt_popularity(self) -> np.ndarray:
        """sqrt(max(popularity, 1)): item-kNN's normaliser, computed once."""
        return np.sqrt(np.maximum(self.popularity, 1.0))

    @cached_property
    def ease_row(self) -> np.ndarray:
        """Vocabulary row -> its EASE row (-1: not an EASE track), computed once."""
        pos = np.full(self.n_items, -1, dtype=np.int64)
        if self.ease_cols is not None:
            pos[self.ease_cols] = np.arange(self.ease_cols.shape[0])
        return pos


def _codes(values: list[Any]) -> np.ndarray:
    index: dict[Any, int] = {}
    return np.array([-1 if v is None or v == "" else index.setdefault(v, len(index))
                     for v in values], dtype=np.int64)


def artist_cooccurrence(x: sp.csr_matrix, artist: np.ndarray) -> sp.csr_matrix | None:
    """Cosine-normalised artist x artist co-occurrence of the binary playlist x track matrix
    `x` (tracks -> `artist` codes, -1 unknown); None when no artist is known. At most as many
    entries as the track co-occurrence, which it aggregates."""
    known = np.flatnonzero(artist >= 0)
    if known.size == 0:
        return None
    n_art = int(artist.max()) + 1
    t = sp.csr_matrix((np.ones(known.size, np.float32), (known, artist[known])),
                      shape=(x.shape[1], n_art))
    a = (x @ t).tocsr()
    a.data[:] = 1.0
    c = (a.T @ a).tocsr().astype(np.float32)
    inv = (1.0 / np.sqrt(np.maximum(c.diagonal(), 1.0))).astype(np.float32)
    c.setdiag(0.0)
    c.eliminate_zeros()
    out: sp.csr_matrix = (sp.diags(inv) @ c @ sp.diags(inv)).tocsr().astype(np.float32)
    return out


def ease_subset(popularity: np.ndarray, max_items: int) -> np.ndarray:
    """Vocabulary rows EASE is fitted on: all, or the `max_items` most popular (ascending)."""
    if popularity.shape[0] <= max_items:
        return np.arange(popularity.shape[0], dtype=np.int64)
    top = np.argsort(-popularity, kind="stable")[:max_items]
    return np.sort(top).astype(np.int64)


def build_sources(vectors: np.ndarray, seq_indptr: np.ndarray, seq_cols: np.ndarray,
                  artists: list[str | None], albums: list[str | None],
                  window: int = 10, ease_lam: float | None = None,
                  ease_items: int = 20_000) -> Sources:
    """Sources from the ordered vocabulary rows of the training playlists (`Corpus.sequences`);
    with `ease_lam`, also the EASE weights over the `ease_items` most popular tracks (a dense
    E x E matrix)."""
    n_items = int(vectors.shape[0])
    n_pl = int(seq_indptr.shape[0] - 1)
    owner = np.repeat(np.arange(n_pl), np.diff(seq_indptr))
    x = sp.csr_matrix((np.ones(seq_cols.shape[0], np.float32), (owner, seq_cols)),
                      shape=(n_pl, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    cooc = (x.T @ x).tocsr().astype(np.float32)
    cooc.setdiag(0.0)
    cooc.eliminate_zeros()
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for left, right in window_pairs(owner, seq_cols, window):
        keep = left != right
        rows += [left[keep], right[keep]]
        cols += [right[keep], left[keep]]
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    win = sp.csr_matrix((np.ones(r.shape[0], np.float32), (r, c)), shape=(n_items, n_items))
    win.sum_duplicates()
    popularity = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
    ease = ease_cols = None
    if ease_lam is not None:
        from dynplayer.eval.peers import ease_weights

        ease_cols = ease_subset(popularity, ease_items)
        # C order: scipy copies a non-contiguous dense operand on every sparse product
        ease = np.ascontiguousarray(ease_weights(x[:, ease_cols], ease_lam), dtype=np.float32)
    artist = _codes(artists)
    return Sources(vectors=unit_rows(vectors), cooc_playlist=cooc, cooc_window=win,
                   popularity=popularity, artist=artist, album=_codes(albums),
                   n_playlists=n_pl, window=window, ease=ease, ease_cols=ease_cols,
                   artist_cooc=artist_cooccurrence(x, artist))


def subset_rows(indptr: np.ndarray, cols: np.ndarray, pos: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """A ragged (indptr, cols) array with each col mapped through `pos` (-1 = dropped)."""
    mapped = pos[cols]
    keep = mapped >= 0
    rows = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    new_ip = np.zeros_like(indptr)
    np.cumsum(np.bincount(rows[keep], minlength=indptr.shape[0] - 1), out=new_ip[1:])
    return new_ip, mapped[keep]


def ease_over_subset(src: Sources, ip: np.ndarray, sc: np.ndarray) -> np.ndarray:
    """(n, E) EASE scores of the seeds over the EASE tracks (`Sources.ease_cols`, in order)."""
    assert src.ease is not None and src.ease_cols is not None
    if src.ease_cols.shape[0] == src.n_items:
        return seed_sums(src.ease, ip, sc)
    return seed_sums(src.ease, *subset_rows(ip, sc, src.ease_row))


def _ease_everywhere(src: Sources, sub: np.ndarray) -> np.ndarray:
    """(n, V) from `ease_over_subset`'s (n, E): NaN for the tracks outside the EASE ones."""
    assert src.ease_cols is not None
    if src.ease_cols.shape[0] == src.n_items:
        return sub
    out = np.full((sub.shape[0], src.n_items), np.nan, dtype=np.float32)
    out[:, src.ease_cols] = sub
    return out


def ease_scores(src: Sources, ip: np.ndarray, sc: np.ndarray) -> np.ndarray:
    """(n, V) EASE scores of the seeds over the EASE tracks; NaN for the others."""
    return _ease_everywhere(src, ease_over_subset(src, ip, sc))


@dataclass
class Queries:
    """A batch of n playlists to continue: each playlist's seeds (vocabulary rows), distinct,
    in playlist order (the last one is the most recent)."""

    seed_indptr: np.ndarray
    seed_cols: np.ndarray
    # (n, V) the text model's scores of every track for each playlist's name, NaN rows where
    # there is none (`rank.title`); None: no names at all
    title: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.seed_indptr.shape[0] - 1)

    @property
    def n_seeds(self) -> np.ndarray:
        return np.diff(self.seed_indptr)

    def seed_matrix(self, n_items: int, last: int | None = None) -> sp.csr_matrix:
        """(n, V) binary seeds, or only each playlist's `last` most recent seeds."""
        ip, cols = self.seed_indptr, self.seed_cols
        if last is not None:
            ip, cols = last_seeds(ip, cols, last)
        rows = np.repeat(np.arange(self.n), np.diff(ip))
        return sp.csr_matrix((np.ones(cols.shape[0], np.float32), (rows, cols)),
                             shape=(self.n, n_items))

    def slice(self, start: int, stop: int) -> Queries:
        ip = self.seed_indptr[start:stop + 1]
        return Queries(ip - ip[0], self.seed_cols[ip[0]:ip[-1]],
                       None if self.title is None else self.title[start:stop])


def last_seeds(indptr: np.ndarray, cols: np.ndarray, last: int) -> tuple[np.ndarray, np.ndarray]:
    """The final `last` entries of each row of a ragged (indptr, cols) array."""
    counts = np.minimum(np.diff(indptr), last)
    new_ip = np.zeros_like(indptr)
    np.cumsum(counts, out=new_ip[1:])
    starts = np.repeat(indptr[1:] - counts, counts)
    offset = np.arange(int(new_ip[-1])) - np.repeat(new_ip[:-1], counts)
    return new_ip, cols[starts + offset]


def ordered_distinct(indptr: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's distinct values, ordered by their last occurrence (vectorised)."""
    n = indptr.shape[0] - 1
    rows = np.repeat(np.arange(n), np.diff(indptr))
    pos = np.arange(cols.shape[0])
    # the last occurrence of each (row, col): sort by (row, col, -pos), keep the first of each
    order = np.lexsort((-pos, cols, rows))
    r, c = rows[order], cols[order]
    first = np.ones(r.shape[0], dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    keep = order[first]
    keep.sort()  # back to playlist order (positions are increasing within a row)
    new_ip = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=n), out=new_ip[1:])
    return new_ip, cols[keep].astype(np.int64)


def split_queries(seq_indptr: np.ndarray, seq_cols: np.ndarray, n_items: int,
                  heldout_fraction: float, seed: int) -> tuple[Queries, sp.csr_matrix]:
    """Seeds and held-out tracks of whole playlists, split like the evaluation protocol.

    Each playlist's distinct tracks are split at random: `heldout_fraction` held out (at least
    one, leaving at least one seed; the caller drops playlists with fewer than two). Returns the
    queries (seeds in playlist order) and the held-out (n, V) matrix.
    """
    n = seq_indptr.shape[0] - 1
    rng = np.random.default_rng(seed)
    d_ip, d_cols = ordered_distinct(seq_indptr, seq_cols)
    sizes = np.diff(d_ip)
    rows = np.repeat(np.arange(n), sizes)
    key = np.asarray(rng.random(d_cols.shape[0]))  # random rank of each track in its playlist
    order = np.lexsort((key, rows))
    rank = np.empty(d_cols.shape[0], dtype=np.int64)
    rank[order] = np.arange(d_cols.shape[0]) - np.repeat(d_ip[:-1], sizes)
    n_hold = np.clip(np.round(sizes * heldout_fraction).astype(np.int64), 1, None)
    n_hold = np.minimum(n_hold, np.maximum(sizes - 1, 0))
    held = rank < np.repeat(n_hold, sizes)
    seed_ip = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[~held], minlength=n), out=seed_ip[1:])
    heldout = sp.csr_matrix((np.ones(int(held.sum()), np.float32), (rows[held], d_cols[held])),
                            shape=(n, n_items))
    return Queries(seed_ip, d_cols[~held]), heldout


@dataclass
class Retrieval:
    """The candidates of a batch (flat, sorted by playlist) and the retrievers' scores."""

    rows: np.ndarray  # (m,) playlist of each candidate, ascending
    cols: np.ndarray  # (m,) vocabulary row of each candidate
    dense: dict[str, np.ndarray]  # name -> (n, V) scores the features gather from
    # name -> (m,) scores of the candidates alone: a served request's features that no
    # retriever picks by (`sums.SeedEntries.at`); a batch has them all in `dense`
    at: dict[str, np.ndarray] = field(default_factory=dict)

    def gather(self, key: str) -> np.ndarray:
        """The `key` scores of every candidate."""
        if key in self.at:
            return self.at[key]
        return self.dense[key][self.rows, self.cols]


def recency_weights(indptr: np.ndarray, half_life: float) -> np.ndarray | None:
    """One weight per seed, 1 for each playlist's last seed and halved every `half_life` seeds
    before it (seeds in playlist order); None for `half_life` 0 (every seed alike)."""
    if half_life <= 0:
        return None
    counts = np.diff(indptr)
    back = np.repeat(indptr[1:] - 1, counts) - np.arange(int(indptr[-1]))
    return np.power(0.5, back / float(half_life)).astype(np.float32)


def seed_mean(vectors: np.ndarray, indptr: np.ndarray, cols: np.ndarray,
              half_life: float = 0.0) -> np.ndarray:
    """(n, d) unit vector of each playlist's seeds' mean, recency-weighted with `half_life`."""
    w = recency_weights(indptr, half_life)
    if w is None:
        n_seeds = np.maximum(np.diff(indptr), 1).astype(np.float32)[:, None]
        return l2_normalize(seed_sums(vectors, indptr, cols) / n_seeds)
    return l2_normalize(seed_sums(vectors, indptr, cols, w))


def retrieve(src: Sources, q: Queries, n_embedding: int = N_EMBEDDING,
             n_cooc: int = N_COOC, n_ease: int = N_EASE, n_title: int = N_TITLE,
             allowed: np.ndarray | None = None, half_life: float = 0.0) -> Retrieval:
    """Candidates and per-retriever scores for a batch (keep n x V small: batches of ~256).

    `allowed` (bool, V): each retriever picks its top tracks among these only (a listener's
    library, `dynplayer.library`); the features are computed as usual. `half_life`: the
    embedding retriever's mean weights the recent seeds more (`recency_weights`)."""
    ip, sc = q.seed_indptr, q.seed_cols
    mean = seed_mean(src.vectors, ip, sc, half_life)
    emb = mean @ src.vectors.T
    pop = src.sqrt_popularity
    # item-kNN: sum over seeds of cooc / sqrt(pop_seed pop_track), the cosine of their columns
    knn_w = (1.0 / pop[sc]).astype(np.float32)
    # Scores only features read (no retriever picks by them): for a served request, summed at
    # its candidates alone once they are known, from the seed rows' entries gathered once.
    late = (q.n <= SMALL_BATCH and isinstance(src.cooc_playlist, sp.csr_matrix)
            and isinstance(src.cooc_window, sp.csr_matrix))
    if late:  # each playlist's sums in float64 (counts: exact), read at its candidates below
        pl_rows = [SeedEntries(src.cooc_playlist, sc[ip[i]:ip[i + 1]]) for i in range(q.n)]
        pl: list[np.ndarray] | np.ndarray = [e.dense() for e in pl_rows]
        dense = {"emb": emb}
    else:
        pl = seed_sums(src.cooc_playlist, ip, sc)
        dense = {"emb": emb, "pl": pl,
                 "knn": seed_sums(src.cooc_playlist, ip, sc, knn_w) / pop[None, :],
                 "win": seed_sums(src.cooc_window, ip, sc),
                 "win_last": seed_sums(src.cooc_window, *last_seeds(ip, sc, LAST))}

    seed_rows = np.repeat(np.arange(q.n), q.n_seeds)
    banned = None if allowed is None else ~np.asarray(allowed, dtype=bool)
    # Each retriever's picks per playlist (vocabulary rows; any order, repeats allowed), then
    # their union without the seeds and the banned tracks: no (n, V) mask to scan.
    picks: list[list[np.ndarray]] = [[] for _ in range(q.n)]
    masked = emb.copy()
    masked[seed_rows, q.seed_cols] = -np.inf
    if banned is not None:
        masked[:, banned] = -np.inf
    k = min(n_embedding, src.n_items)
    for i in range(q.n):
        picks[i].append(top_unordered(masked[i], k))
    for i in range(q.n):  # co-occurrence: the best of the tracks that co-occur at all
        # in place: the sums are read at candidates only, never a seed or a banned track
        row = pl[i]
        row[q.seed_cols[ip[i]:ip[i + 1]]] = 0.0  # not a pick (only positive sums are)
        if banned is not None:
            row[banned] = -np.inf
        picks[i].append(best_positive(row, n_cooc))
    ease_sub = None
    if src.ease is not None:
        ease_sub = ease_over_subset(src, ip, sc)
        if not late:
            dense["ease"] = _ease_everywhere(src, ease_sub)
        if n_ease > 0:
            for i, top in enumerate(_ease_top(src, ease_sub, q, n_ease, banned)):
                picks[i].append(top)
    if q.title is not None:
        dense["title"] = q.title
        if n_title > 0:
            masked = np.nan_to_num(q.title, nan=-np.inf)
            masked[seed_rows, q.seed_cols] = -np.inf
            for i in range(q.n):
                picks[i].append(best_positive(masked[i], n_title))
    rows_out, cols_out = [], []
    for i in range(q.n):
        cols = np.unique(np.concatenate(picks[i])) if picks[i] else np.zeros(0, np.int64)
        cols = without(cols, q.seed_cols[ip[i]:ip[i + 1]])
        if banned is not None:
            cols = cols[~banned[cols]]
        rows_out.append(np.full(cols.shape[0], i, dtype=np.int64))
        cols_out.append(cols.astype(np.int64))
    rows = np.concatenate(rows_out) if rows_out else np.zeros(0, np.int64)
    cols = np.concatenate(cols_out) if cols_out else np.zeros(0, np.int64)
    at: dict[str, np.ndarray] = {}
    if late:
        at = _late_sums(src, q, rows, cols, pl_rows, knn_w)
        bounds = np.searchsorted(rows, np.arange(q.n + 1))
        at["pl"] = np.concatenate([pl[i][cols[bounds[i]:bounds[i + 1]]] for i in range(q.n)]
                                  ).astype(np.float32) if q.n else np.zeros(0, np.float32)
        if ease_sub is not None:
            er = src.ease_row[cols]
            ok = er >= 0
            at["ease"] = np.full(rows.shape[0], np.nan, dtype=np.float32)
            at["ease"][ok] = ease_sub[rows[ok], er[ok]]
    return Retrieval(rows=rows, cols=cols, dense=dense, at=at)


def _late_sums(src: Sources, q: Queries, rows: np.ndarray, cols: np.ndarray,
               pl_rows: list[SeedEntries], knn_w: np.ndarray) -> dict[str, np.ndarray]:
    """The item-kNN and window scores of a served request's candidates (`Retrieval.at`), the
    same values as the batch's dense rows at those candidates."""
    ip, sc = q.seed_indptr, q.seed_cols
    names = ("knn", "win", "win_last")
    at = {key: np.zeros(rows.shape[0], dtype=np.float32) for key in names}
    bounds = np.searchsorted(rows, np.arange(q.n + 1))
    for i in range(q.n):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        if lo == hi:
            continue
        slot = slots(src.n_items, cols[lo:hi])  # each playlist's candidates are distinct
        win = SeedEntries(src.cooc_window, sc[ip[i]:ip[i + 1]])
        at["knn"][lo:hi] = pl_rows[i].at(slot, hi - lo, knn_w[ip[i]:ip[i + 1]])
        at["win"][lo:hi] = win.at(slot, hi - lo)
        at["win_last"][lo:hi] = win.at(slot, hi - lo, last=LAST)
    at["knn"] /= src.sqrt_popularity[cols]
    return at


def _ease_top(src: Sources, sub: np.ndarray, q: Queries, n_ease: int,
              banned: np.ndarray | None) -> list[np.ndarray]:
    """Per playlist, its n_ease best EASE tracks (not a seed, not banned), from its EASE
    scores `sub` over the EASE tracks (`ease_over_subset`), which hold every finite score."""
    v, ip = src.n_items, q.seed_indptr
    k = min(n_ease, v)
    cols = src.ease_cols if src.ease_cols is not None else np.arange(v)
    out = []
    for i in range(q.n):
        row = np.nan_to_num(sub[i], nan=-np.inf)
        at = src.ease_row[q.seed_cols[ip[i]:ip[i + 1]]] if src.ease_cols is not None else \
            q.seed_cols[ip[i]:ip[i + 1]]
        row[at[at >= 0]] = -np.inf  # the seeds among the EASE tracks
        if banned is not None:
            row[banned[cols]] = -np.inf
        if int(np.isfinite(row).sum()) < k or k >= cols.shape[0]:
            # fewer finite scores than k: a top k over every track takes -inf ones too
            masked = np.nan_to_num(_ease_everywhere(src, sub[i:i + 1])[0], nan=-np.inf)
            masked[q.seed_cols[ip[i]:ip[i + 1]]] = -np.inf
            if banned is not None:
                masked[banned] = -np.inf
            out.append(np.argpartition(-masked, k - 1)[:k] if k < v else np.arange(v))
            continue
        out.append(cols[top_unordered(row, k)])
    return out
