"""Co-occurrence neighbours: tracks within `window` positions of each other in a playlist.

Everything is vectorised over occurrence arrays: for each offset d the pairs (track at i,
track at i + d) inside one playlist are formed at once. Distinct neighbours are counted by
de-duplicating unordered pairs; at MPD scale (66M occurrences) the pairs are bucketed by the
smaller track index through temporary files so the memory held at once stays bounded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


def _pair_keys(pl: np.ndarray, tr: np.ndarray, window: int, n_tracks: int) -> np.ndarray:
    """Distinct unordered pairs lo * n_tracks + hi (lo < hi) within `window` in one slice.

    The slice must hold whole playlists. Pairs come from shifted views (no gathers), one
    offset at a time, so the work is sequential over memory.
    """
    keys_list: list[np.ndarray] = []
    for d in range(1, window + 1):
        if d >= tr.shape[0]:
            break
        left, right = tr[:-d], tr[d:]
        keep = (pl[d:] == pl[:-d]) & (left != right)
        a = left[keep].astype(np.int64)
        b = right[keep].astype(np.int64)
        lo = np.minimum(a, b)
        np.maximum(a, b, out=b)
        lo *= n_tracks
        lo += b
        keys_list.append(lo)
        del a, b, keep
    if not keys_list:
        return np.zeros(0, dtype=np.int64)
    return _sorted_unique(np.concatenate(keys_list))


def _credit(keys: np.ndarray, n_tracks: int, counts: np.ndarray) -> None:
    """Add one neighbour to both tracks of every (distinct) pair key."""
    lo = keys // n_tracks
    counts += np.bincount(lo, minlength=n_tracks)
    counts += np.bincount(keys - lo * n_tracks, minlength=n_tracks)


def neighbour_counts(
    occ_playlist: np.ndarray,
    occ_track: np.ndarray,
    n_tracks: int,
    window: int = 10,
    *,
    max_pairs_in_memory: int = 100_000_000,
    tmp_dir: str | Path | None = None,
) -> np.ndarray:
    """Number of distinct other tracks each track co-occurs with within `window` positions.

    Occurrences must be sorted by playlist, then position. Every unordered pair {lo, hi} of
    distinct tracks within the window becomes the key lo * n_tracks + hi; distinct keys are
    found by sorting and each credits both tracks.

    When more than `max_pairs_in_memory` pairs could be formed (full MPD: 66M occurrences,
    ~660M pairs, 5 GB of keys), the occurrences are processed in chunks of whole playlists;
    each chunk's distinct keys are split by ranges of `lo` into bucket files in a temporary
    directory (under `tmp_dir`), and each bucket is then de-duplicated on its own. A pair
    always lands in the bucket of its `lo`, so no pair is counted twice, and memory holds at
    most about one chunk or one bucket of keys at once (~16 bytes per pair).
    """
    occ_playlist = np.ascontiguousarray(occ_playlist)
    occ_track = np.ascontiguousarray(occ_track)
    n_occ = occ_track.shape[0]
    counts = np.zeros(n_tracks, dtype=np.int64)
    if n_occ == 0 or window < 1 or n_tracks < 2:
        return counts
    if n_occ > 1 and np.any(occ_playlist[1:] < occ_playlist[:-1]):
        raise ValueError("occurrences must be sorted by playlist")
    if n_occ * window <= max_pairs_in_memory:
        _credit(_pair_keys(occ_playlist, occ_track, window, n_tracks), n_tracks, counts)
        return counts

    # Bucket ranges of lo: a track is lo in at most 2 * window pairs per occurrence.
    load = np.cumsum(np.bincount(occ_track, minlength=n_tracks).astype(np.int64) * 2 * window)
    bounds = [0]
    while bounds[-1] < n_tracks:
        base = int(load[bounds[-1] - 1]) if bounds[-1] else 0
        nxt = int(np.searchsorted(load, base + max_pairs_in_memory, side="right"))
        bounds.append(min(n_tracks, max(nxt, bounds[-1] + 1)))
    key_bounds = np.asarray(bounds, dtype=np.int64) * n_tracks
    chunk = max(1, max_pairs_in_memory // window)
    spill = Path(tempfile.mkdtemp(prefix="dynplayer-pairs-", dir=tmp_dir))
    try:
        files = [spill / f"bucket{i}.bin" for i in range(len(bounds) - 1)]
        start = 0
        while start < n_occ:
            stop = min(n_occ, start + chunk)
            if stop < n_occ:  # cut at a playlist start so no window spans two chunks
                p = occ_playlist[stop]
                stop = int(np.searchsorted(occ_playlist, p, side="left"))
                if stop <= start:
                    stop = int(np.searchsorted(occ_playlist, p, side="right"))
            keys = _pair_keys(occ_playlist[start:stop], occ_track[start:stop], window, n_tracks)
            cuts = np.searchsorted(keys, key_bounds)
            for i, f in enumerate(files):
                if cuts[i + 1] > cuts[i]:
                    with open(f, "ab") as fh:
                        keys[cuts[i]:cuts[i + 1]].tofile(fh)
            del keys
            start = stop
        for f in files:
            if f.exists():
                _credit(_sorted_unique(np.fromfile(f, dtype=np.int64)), n_tracks, counts)
                f.unlink()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
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
