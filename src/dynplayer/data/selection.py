"""Which tracks a corpus trains on (its vocabulary), and the seed's reference vocabulary.

Rules (`DataConfig.select`):
- `min_playlists` (the default): every track in at least `min_playlists` *training* playlists,
  the whole catalogue a model can learn something about (counted on training playlists only,
  so validation and test playlists never decide what is trained).
- `top_share`: the seed's rule, the top `select_fraction` of tracks by distinct co-occurrence
  neighbours (counted over every playlist).
- `min_neighbours`: every track with at least `select_min_neighbours` neighbours.

Whatever the rule, the corpus also keeps the `top_share` set as its *head*: the vocabulary of
the seed's evaluation protocol, whose held-out tracks (`hold_out`) stay the same whichever rule
trains, so figures under that protocol remain comparable across rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dynplayer.config import DataConfig, from_dict
from dynplayer.data.cooccurrence import select_tracks

RULES = ("min_playlists", "top_share", "min_neighbours")
TRAIN = 0  # corpus.TRAIN (not imported: corpus imports nothing of this module's)


def training_support(occ_playlist: np.ndarray, occ_track: np.ndarray, split: np.ndarray,
                     n_tracks: int) -> np.ndarray:
    """(T,) int64: distinct training playlists holding each track."""
    keep = split[occ_playlist] == TRAIN
    key = occ_playlist[keep].astype(np.int64) * n_tracks + occ_track[keep]
    key = np.unique(key)
    return np.bincount(key % n_tracks, minlength=n_tracks).astype(np.int64)


def head_tracks(neighbours: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """The seed's vocabulary: the top `select_fraction` of tracks by neighbour count."""
    return select_tracks(neighbours, fraction=cfg.select_fraction)


def selected_tracks(neighbours: np.ndarray, support: np.ndarray | None,
                    cfg: DataConfig) -> np.ndarray:
    """(T,) bool: the tracks `cfg.select` keeps (`support` is needed by `min_playlists`)."""
    if cfg.select == "min_playlists":
        if support is None:
            raise ValueError("min_playlists needs the training support of each track")
        return support >= cfg.min_playlists
    if cfg.select == "min_neighbours":
        return select_tracks(neighbours, fraction=None,
                             min_neighbours=int(cfg.select_min_neighbours or 0))
    return select_tracks(neighbours, fraction=cfg.select_fraction)


def corpus_data_config(manifest: dict[str, Any]) -> DataConfig:
    """The data config a corpus was prepared with. A corpus from before the `select` key was
    prepared with the seed's rule (or `select_min_neighbours` when that was set)."""
    raw = dict(manifest.get("config", {}))
    if "select" not in raw:
        raw["select"] = ("min_neighbours" if raw.get("select_min_neighbours") is not None
                         else "top_share")
    return from_dict(DataConfig, raw)
