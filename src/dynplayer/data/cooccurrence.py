"""Co-occurrence neighbours: tracks within `window` positions of each other in a playlist.

Everything is vectorised over occurrence arrays: for each offset d = 1..window the pairs
(track at i, track at i + d) inside one playlist are formed at once. Distinct neighbours are
counted by de-duplicating unordered pairs, partitioned by the smaller track index so that the
memory held at once stays bounded at MPD scale (66M occurrences).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp


def window_pairs(
    occ_playlist: np.ndarray, occ_track: np.ndarray, window: int, start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (left, right) track arrays for every offset 1..window within [start, stop).

    Occurrences must be sorted by playlist, then position.
    """
    stop = occ_track.shape[0] if stop is None else stop
    pl = occ_playlist[start:stop]
    tr = occ_track[start:stop]
    for d in range(1, window + 1):
        if d >= tr.shape[0]:
            break
        same = pl[d:] == pl[:-d]
        yield tr[:-d][same], tr[d:][same]


def neighbour_counts(
    occ_playlist: np.ndarray,
    occ_track: np.ndarray,
    n_tracks: int,
    window: int = 10,
    *,
    max_pairs_in_memory: int = 60_000_000,
) -> np.ndarray:
    """Number of distinct other tracks each track co-occurs with within `window` positions."""
    occ_playlist = np.asarray(occ_playlist)
    occ_track = np.asarray(occ_track).astype(np.int64)
    n_occ = occ_track.shape[0]
    counts = np.zeros(n_tracks, dtype=np.int64)
    if n_occ == 0 or window < 1:
        return counts
    est_pairs = n_occ * window
    n_parts = max(1, int(np.ceil(est_pairs / max_pairs_in_memory)))
    # Chunk the occurrences (cut at playlist boundaries) so each chunk's pairs fit in memory;
    # partition unordered pairs by lo % n_parts so each partition can be de-duplicated alone.
    chunk = max(1, n_occ // n_parts)
    bounds = [0]
    while bounds[-1] < n_occ:
        nxt = min(n_occ, bounds[-1] + chunk)
        if nxt < n_occ:  # move to the next playlist start
            p = occ_playlist[nxt]
            nxt = int(np.searchsorted(occ_playlist, p, side="left"))
            if nxt <= bounds[-1]:
                nxt = int(np.searchsorted(occ_playlist, p, side="right"))
        bounds.append(nxt)
    for part in range(n_parts):
        keys_list: list[np.ndarray] = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            for left, right in window_pairs(occ_playlist, occ_track, window, a, b):
                lo = np.minimum(left, right)
                hi = np.maximum(left, right)
                keep = lo != hi
                if n_parts > 1:
                    keep &= (lo % n_parts) == part
                keys_list.append(np.unique(lo[keep] * n_tracks + hi[keep]))
            if keys_list and sum(k.shape[0] for k in keys_list) > max_pairs_in_memory:
                keys_list = [np.unique(np.concatenate(keys_list))]
        if not keys_list:
            continue
        keys = np.unique(np.concatenate(keys_list))
        counts += np.bincount(keys // n_tracks, minlength=n_tracks)
        counts += np.bincount(keys % n_tracks, minlength=n_tracks)
    return counts


def cooccurrence_matrix(
    occ_playlist: np.ndarray, occ_track: np.ndarray, n_tracks: int, window: int = 10,
    *, binary: bool = True,
) -> sp.csr_matrix:
    """Symmetric track x track matrix of co-occurrence within `window` (diagonal zero)."""
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for left, right in window_pairs(occ_playlist, occ_track, window):
        keep = left != right
        rows += [left[keep], right[keep]]
        cols += [right[keep], left[keep]]
    if rows:
        r = np.concatenate(rows)
        c = np.concatenate(cols)
    else:
        r = c = np.zeros(0, dtype=np.int64)
    mat = sp.csr_matrix((np.ones(r.shape[0], dtype=np.float32), (r, c)),
                        shape=(n_tracks, n_tracks))
    mat.sum_duplicates()
    if binary:
        mat.data[:] = 1.0
    return mat


def select_tracks(
    neighbours: np.ndarray, *, fraction: float | None = 0.05, min_neighbours: int | None = None
) -> np.ndarray:
    """Boolean mask of the tracks kept for training.

    With `min_neighbours`, keep every track with at least that many neighbours; otherwise keep
    the top `fraction` by neighbour count (ties at the cut broken by lower track index, so the
    result is deterministic and exactly ceil(fraction * n) tracks).
    """
    n = neighbours.shape[0]
    mask = np.zeros(n, dtype=bool)
    if min_neighbours is not None:
        mask[neighbours >= min_neighbours] = True
        return mask
    if fraction is None or not (0.0 < fraction <= 1.0):
        raise ValueError(f"select fraction must be in (0, 1], got {fraction}")
    k = max(1, int(np.ceil(fraction * n)))
    order = np.lexsort((np.arange(n), -neighbours))
    mask[order[:k]] = True
    return mask
