"""Co-occurrence neighbours: tracks within `window` positions of each other in a playlist.

Everything is vectorised over occurrence arrays: for each offset d the pairs (track at i,
track at i + d) inside one playlist are formed at once. Distinct neighbours are counted by
de-duplicating unordered pairs, processed in ranges of the smaller track index so that the
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


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Distinct values of `keys`, sorted; sorts `keys` in place.

    numpy >= 2.3 routes `np.unique` through a hash table that is ~10x slower than sorting for
    tens of millions of int64 keys, so the hot path sorts and compares neighbours instead.
    """
    if keys.shape[0] == 0:
        return keys
    keys.sort()
    first = np.empty(keys.shape[0], dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def neighbour_counts(
    occ_playlist: np.ndarray,
    occ_track: np.ndarray,
    n_tracks: int,
    window: int = 10,
    *,
    max_pairs_in_memory: int = 100_000_000,
) -> np.ndarray:
    """Number of distinct other tracks each track co-occurs with within `window` positions.

    Occurrences must be sorted by playlist, then position. Each unordered pair {lo, hi} of
    distinct tracks is formed from the occurrences of `lo` (its neighbours with a larger index),
    de-duplicated by sorting, and credited to both tracks. When more than `max_pairs_in_memory`
    pairs would be formed, tracks are processed in contiguous index ranges (via an inverted
    index of occurrences by track), each range forming at most about that many pairs, so memory
    stays bounded (about 20 bytes per pair) at full MPD scale without forming any pair twice.
    """
    occ_playlist = np.ascontiguousarray(occ_playlist)
    occ_track = np.ascontiguousarray(occ_track)
    n_occ = occ_track.shape[0]
    counts = np.zeros(n_tracks, dtype=np.int64)
    if n_occ == 0 or window < 1 or n_tracks < 2:
        return counts
    if n_occ > 1 and np.any(occ_playlist[1:] < occ_playlist[:-1]):
        raise ValueError("occurrences must be sorted by playlist")
    per_track = np.bincount(occ_track, minlength=n_tracks).astype(np.int64)
    # Pairs formed for a track: its occurrences times 2 * window (an upper bound).
    load = per_track * (2 * window)
    if int(load.sum()) <= max_pairs_in_memory:
        ranges = [(0, n_tracks)]
        order = None
    else:
        cum = np.cumsum(load)
        ranges = []
        a = 0
        while a < n_tracks:
            base = int(cum[a - 1]) if a else 0
            b = int(np.searchsorted(cum, base + max_pairs_in_memory, side="right"))
            b = max(b, a + 1)
            ranges.append((a, min(b, n_tracks)))
            a = b
        order = np.argsort(occ_track, kind="stable")
        track_ptr = np.zeros(n_tracks + 1, dtype=np.int64)
        np.cumsum(per_track, out=track_ptr[1:])
    for a, b in ranges:
        if order is None:
            occ = np.arange(n_occ, dtype=np.int64)
        else:
            occ = order[track_ptr[a]:track_ptr[b]]
        if occ.shape[0] == 0:
            continue
        own = occ_track[occ].astype(np.int64)
        own_pl = occ_playlist[occ]
        keys_list: list[np.ndarray] = []
        for d in range(-window, window + 1):
            if d == 0:
                continue
            j = occ + d
            ok = (j >= 0) & (j < n_occ)
            j_ok = j[ok]
            other = occ_track[j_ok].astype(np.int64)
            lo = own[ok]
            keep = (occ_playlist[j_ok] == own_pl[ok]) & (other > lo)
            keys_list.append((lo[keep] - a) * n_tracks + other[keep])
        keys = _sorted_unique(np.concatenate(keys_list))
        del keys_list
        lo_idx = keys // n_tracks
        counts[a:b] += np.bincount(lo_idx, minlength=b - a)
        counts += np.bincount(keys - lo_idx * n_tracks, minlength=n_tracks)
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
