"""Training data as precomputed sparse structures, and vectorised batch sampling.

Two kinds of batch: a *set* batch (playlists split at random into context and targets) and a
*pair* batch (an anchor occurrence and one positive within the window of the same playlist).
No Python loop runs per pair or per occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from dynplayer.data.corpus import TEST, TRAIN, VAL, Corpus
from dynplayer.errors import ArtifactError


@dataclass
class TrainingData:
    """Training playlists over the vocabulary.

    seq_indptr/seq_cols: ordered vocabulary rows per playlist (repeats kept) for pairs;
    set_indptr/set_cols: distinct vocabulary rows per playlist for set batches;
    only playlists with at least two distinct vocabulary tracks are kept.
    """

    n_items: int
    seq_indptr: np.ndarray
    seq_cols: np.ndarray
    set_indptr: np.ndarray
    set_cols: np.ndarray
    item_logq: np.ndarray  # log of each item's share of occurrences (pair sampling probability)
    neighbours: sp.csr_matrix | None = None  # items within the window of each other
    # Each item's share of the distinct (playlist, item) pairs: how often it is a set target.
    item_set_share: np.ndarray | None = None
    # Shared parts: name ("artist", "album") -> (code per item, -1 unknown; the code names)
    parts: dict[str, tuple[np.ndarray, list[str]]] | None = None
    # Position of each set_cols entry's first occurrence in its playlist (prefix contexts)
    set_first: np.ndarray | None = None

    @property
    def n_playlists(self) -> int:
        return int(self.set_indptr.shape[0] - 1)

    @property
    def n_occurrences(self) -> int:
        return int(self.seq_cols.shape[0])


def training_playlists(corpus: Corpus, *, full: bool) -> np.ndarray:
    """Train playlists; with `full`, every playlist except the validation ones."""
    splits = (TRAIN, TEST) if full else (TRAIN,)
    return np.sort(np.concatenate([corpus.playlists_in(s) for s in splits]))


def build_training_data(corpus: Corpus, *, full: bool = False, window: int = 10,
                        neighbours: bool = True) -> TrainingData:
    """Sequences of the training playlists over `corpus.vocab()` (all tracks of each one)."""
    vocab = corpus.vocab()
    if vocab.shape[0] == 0:
        raise ArtifactError("the corpus has an empty vocabulary (no selected tracks); "
                            "prepare it with a looser selection")
    playlists = training_playlists(corpus, full=full)
    indptr, cols = corpus.sequences(playlists, part="all", vocab=vocab)
    n_items = int(vocab.shape[0])
    # Distinct items per playlist, sorted: the set view.
    rows = np.repeat(np.arange(playlists.shape[0]), np.diff(indptr))
    mat = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)),
                        shape=(playlists.shape[0], n_items))
    mat.sum_duplicates()
    keep = np.diff(mat.indptr) >= 2
    if not keep.any():
        raise ArtifactError("no training playlist has two or more vocabulary tracks; "
                            "nothing to learn from")
    mat = mat[np.flatnonzero(keep)]
    mat.sort_indices()
    lengths = np.diff(indptr)[keep]
    seq_indptr = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=seq_indptr[1:])
    seq_cols = cols[np.repeat(keep, np.diff(indptr))].astype(np.int64)
    counts = np.bincount(seq_cols, minlength=n_items).astype(np.float64)
    item_logq = np.log(np.maximum(counts, 0.5) / counts.sum())
    data = TrainingData(n_items=n_items, seq_indptr=seq_indptr, seq_cols=seq_cols,
                        set_indptr=mat.indptr.astype(np.int64),
                        set_cols=mat.indices.astype(np.int64), item_logq=item_logq,
                        item_set_share=np.bincount(mat.indices, minlength=n_items)
                        / max(1, mat.indices.shape[0]))
    if neighbours:
        data.neighbours = window_neighbours(seq_indptr, seq_cols, n_items, window)
    seq_rows = np.repeat(np.arange(lengths.shape[0]), lengths)
    keys, first = np.unique(seq_rows * n_items + seq_cols, return_index=True)
    # unique keys are (row, item) ascending: the set view's order (rows, sorted indices)
    data.set_first = (first - seq_indptr[seq_rows[first]]).astype(np.int64)
    data.parts = {"artist": metadata_codes([corpus.artists[t] for t in vocab]),
                  "album": metadata_codes([_album_key(corpus, t) for t in vocab])}
    return data


def metadata_codes(values: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Integer codes of metadata values (-1 for missing) and the value of each code."""
    index: dict[str, int] = {}
    codes = np.array([-1 if not v else index.setdefault(v, len(index)) for v in values],
                     dtype=np.int64)
    return codes, list(index)


def _album_key(corpus: Corpus, t: int) -> str | None:
    """An album is its name under its artist (two artists' "Greatest Hits" are two albums)."""
    album = corpus.albums[t]
    return f"{corpus.artists[t] or ''}\x1f{album}" if album else None


def window_neighbours(indptr: np.ndarray, cols: np.ndarray, n_items: int,
                      window: int) -> sp.csr_matrix:
    """Boolean item x item matrix: the two items occur within `window` positions somewhere.

    Built one offset at a time and merged as sparse matrices, so peak memory follows the
    number of distinct neighbour pairs rather than occurrences x window. Each pair is kept
    once (smaller item first) while merging and mirrored at the end, in booleans (5 bytes an
    entry): at 250k playlists (115M entries) the float32 build that merged both halves every
    offset peaked at three times the final matrix.
    """
    pl = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    n = cols.shape[0]
    half = sp.csr_matrix((n_items, n_items), dtype=bool)
    repeated = np.zeros(n_items, dtype=bool)  # a track again within the window: its own pair
    for d in range(1, window + 1):  # a loop over offsets, not over pairs
        same = pl[d:] == pl[: n - d]
        a, b = cols[: n - d][same], cols[d:][same]
        del same
        repeated[a[a == b]] = True
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        del a, b
        off = lo != hi
        step = sp.csr_matrix((np.ones(int(off.sum()), bool), (lo[off], hi[off])),
                             shape=(n_items, n_items))
        del lo, hi, off
        step.sum_duplicates()
        half = half + step
        del step
    full = half + half.T.tocsr()
    del half
    if repeated.any():
        own = np.flatnonzero(repeated)
        full = full + sp.csr_matrix((np.ones(own.shape[0], bool), (own, own)),
                                    shape=(n_items, n_items))
    full.sum_duplicates()
    full.sort_indices()
    return full


@dataclass
class SetBatch:
    """Playlists of one step split into context (the anchor's tracks) and targets, as COO."""

    n: int
    context_rows: np.ndarray
    context_cols: np.ndarray
    target_rows: np.ndarray
    target_cols: np.ndarray


def set_batch(data: TrainingData, playlists: np.ndarray, rng: np.random.Generator,
              subset_min: float, subset_max: float, prefix: float = 0.0) -> SetBatch:
    """A context share drawn uniformly in [subset_min, subset_max] per playlist; context gets
    round(share * n) of its distinct tracks (at least 1, at most n - 1), chosen at random, or
    for a `prefix` share of the playlists its first ones in playlist order (a continuation
    asked from a playlist's beginning)."""
    starts = data.set_indptr[playlists]
    sizes = data.set_indptr[playlists + 1] - starts
    rows = np.repeat(np.arange(playlists.shape[0]), sizes)
    offsets = np.arange(rows.shape[0]) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    cols = data.set_cols[np.repeat(starts, sizes) + offsets]
    share = rng.uniform(subset_min, subset_max, playlists.shape[0])
    n_ctx = np.clip(np.round(share * sizes).astype(np.int64), 1, sizes - 1)
    # Random rank within each playlist: order by (row, random key).
    key = rng.random(rows.shape[0])
    if prefix > 0 and data.set_first is not None:
        use_prefix = np.asarray(rng.random(playlists.shape[0]) < prefix)
        pos = data.set_first[np.repeat(starts, sizes) + offsets]
        key = np.where(use_prefix[rows], pos.astype(np.float64), key)
    order = np.lexsort((key, rows))
    rank = np.empty_like(order)
    rank[order] = offsets  # rows are contiguous, so offsets double as in-row positions
    is_ctx = rank < np.repeat(n_ctx, sizes)
    return SetBatch(n=int(playlists.shape[0]), context_rows=rows[is_ctx],
                    context_cols=cols[is_ctx], target_rows=rows[~is_ctx],
                    target_cols=cols[~is_ctx])


@dataclass
class Candidates:
    """The items a sampled set-to-track step scores: sorted, distinct vocabulary rows and the
    log of the probability that each one is in a step's candidate set (for the log-Q
    correction)."""

    items: np.ndarray
    logq: np.ndarray

    def positions(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `items`, found) of each vocabulary row in `cols`."""
        pos = np.minimum(np.searchsorted(self.items, cols), self.items.shape[0] - 1)
        return pos, self.items[pos] == cols


def set_candidates(data: TrainingData, batch: SetBatch, rng: np.random.Generator,
                   n_negatives: int) -> Candidates:
    """The batch's distinct targets plus `n_negatives` items drawn uniformly without
    replacement from the vocabulary.

    Inclusion probability of item j: pi_j = 1 - (1 - S/V) * exp(-T * share_j), with T the
    batch's target count, share_j the item's share of (playlist, item) pairs (targets are
    about such draws; the exponential is the Poisson approximation of T draws) and S/V the
    uniform part. The uniform part keeps rare items among the negatives; the targets bring
    the popular ones. With S >= V every item is a candidate and pi = 1 (the full softmax).
    """
    v = data.n_items
    s = min(n_negatives, v)
    share = data.item_set_share
    if share is None:
        share = np.bincount(data.set_cols, minlength=v) / max(1, data.set_cols.shape[0])
    negatives = rng.choice(v, size=s, replace=False) if s < v else np.arange(v)
    items = np.union1d(batch.target_cols, negatives).astype(np.int64)
    if s >= v:
        return Candidates(items=items, logq=np.zeros(items.shape[0], dtype=np.float32))
    t = batch.target_cols.shape[0]
    pi = 1.0 - (1.0 - s / v) * np.exp(-t * share[items])
    return Candidates(items=items, logq=np.log(pi).astype(np.float32))


@dataclass
class PairBatch:
    anchors: np.ndarray
    positives: np.ndarray
    mask: np.ndarray | None  # (B, B) bool: drop positive j as a negative of anchor i


def pair_batch(data: TrainingData, occurrences: np.ndarray, rng: np.random.Generator,
               window: int, *, mask_false_negatives: bool = True) -> PairBatch:
    """Anchor = the given occurrences; positive = a uniformly drawn other occurrence of the same
    playlist within `window` positions. False negatives: the same positive item twice, a
    positive equal to another anchor's item, or a known window neighbour of the anchor."""
    pl = np.searchsorted(data.seq_indptr, occurrences, side="right") - 1
    lo = np.maximum(data.seq_indptr[pl], occurrences - window)
    hi = np.minimum(data.seq_indptr[pl + 1] - 1, occurrences + window)
    span = hi - lo  # candidates excluding the anchor itself; >= 1 since playlists have >= 2
    pick = lo + np.floor(rng.random(occurrences.shape[0]) * span).astype(np.int64)
    pick = np.where(pick >= occurrences, pick + 1, pick)
    anchors = data.seq_cols[occurrences]
    positives = data.seq_cols[pick]
    mask = None
    if mask_false_negatives:
        mask = (positives[None, :] == positives[:, None]) | (positives[None, :] == anchors[:, None])
        if data.neighbours is not None:
            mask |= data.neighbours[anchors][:, positives].toarray() > 0
        np.fill_diagonal(mask, False)
    return PairBatch(anchors=anchors, positives=positives, mask=mask)


def pair_anchor_pool(data: TrainingData) -> np.ndarray:
    """Occurrences that can anchor a pair (all: every kept playlist has >= 2 occurrences)."""
    return np.arange(data.n_occurrences, dtype=np.int64)


__all__ = ["VAL", "Candidates", "PairBatch", "SetBatch", "TrainingData", "build_training_data",
           "pair_batch", "set_batch", "set_candidates", "training_playlists"]
