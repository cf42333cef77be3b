"""Seeded playlist-level train / validation / test split with held-out tracks."""

from __future__ import annotations

import numpy as np

from dynplayer.data.corpus import TEST, TRAIN, VAL


def split_playlists(
    n_playlists: int, *, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """int8 split label per playlist, drawn by a seeded permutation."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction + test_fraction must be in [0, 1)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_playlists)
    n_val = int(round(val_fraction * n_playlists))
    n_test = int(round(test_fraction * n_playlists))
    split = np.full(n_playlists, TRAIN, dtype=np.int8)
    split[order[:n_val]] = VAL
    split[order[n_val:n_val + n_test]] = TEST
    return split


def hold_out(
    occ_playlist: np.ndarray,
    occ_track: np.ndarray,
    split: np.ndarray,
    selected: np.ndarray,
    *,
    fraction: float,
    seed: int,
) -> np.ndarray:
    """Mark held-out occurrences: in each val/test playlist, `fraction` of its selected tracks.

    Held-out tracks are drawn at random (seeded) among the playlist's selected occurrences,
    rounded, and always leave at least one selected track visible and hold out at least one
    when the playlist has two or more. Unselected occurrences are never held out.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1], got {fraction}")
    rng = np.random.default_rng(seed + 1)
    n_occ = occ_track.shape[0]
    eligible = (split[occ_playlist] != TRAIN) & selected[occ_track]
    idx = np.flatnonzero(eligible)
    heldout = np.zeros(n_occ, dtype=bool)
    if idx.shape[0] == 0:
        return heldout
    # Random rank within each playlist: sort by (playlist, random key).
    key = rng.random(idx.shape[0])
    pl = occ_playlist[idx]
    order = np.lexsort((key, pl))
    idx, pl = idx[order], pl[order]
    starts = np.r_[0, np.flatnonzero(pl[1:] != pl[:-1]) + 1]
    sizes = np.diff(np.r_[starts, pl.shape[0]])
    rank = np.arange(pl.shape[0]) - np.repeat(starts, sizes)
    n_hold = np.round(sizes * fraction).astype(np.int64)
    if fraction > 0:  # fraction 0 means no hold-out at all, not "at least one"
        n_hold = np.clip(n_hold, 1, None)
    n_hold = np.where(sizes >= 2, np.minimum(n_hold, sizes - 1), 0)
    heldout[idx[rank < np.repeat(n_hold, sizes)]] = True
    return heldout
