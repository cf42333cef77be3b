"""How a training run's cost adapts to the corpus: the set term's softmax turns sampled above
a vocabulary size, and epochs are capped by a budget of playlists per member, so cost grows
with the data rather than with data x vocabulary."""

from __future__ import annotations

import math

from dynplayer.train.config import TrainConfig


def sampled_softmax(cfg: TrainConfig, n_items: int) -> bool:
    """Whether the set term scores sampled candidates instead of the whole vocabulary."""
    if cfg.set_softmax == "auto":
        return n_items > cfg.sampled_above
    return cfg.set_softmax == "sampled"


def epoch_cap(cfg: TrainConfig, n_playlists: int) -> int:
    """Epochs of one member: `epochs`, capped at ceil(playlist_budget / n_playlists) but not
    below `min_epochs` (nor above `epochs`)."""
    if cfg.playlist_budget <= 0 or n_playlists <= 0:
        return cfg.epochs
    cap = max(cfg.min_epochs, math.ceil(cfg.playlist_budget / n_playlists))
    return min(cfg.epochs, cap)
