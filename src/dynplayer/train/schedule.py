"""The step budget and learning-rate schedule: pure functions of the config and the step."""

from __future__ import annotations

import math

from dynplayer.config import budget_epochs
from dynplayer.train.config import TrainConfig
from dynplayer.train.sampling import TrainingData


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up over `warmup` of the steps, then cosine decay to lr * lr_min."""
    warm = int(cfg.warmup * total)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.lr * (cfg.lr_min + (1 - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * progress)))


def steps_per_epoch(cfg: TrainConfig, data: TrainingData) -> int:
    n = data.n_occurrences if cfg.objective == "pairwise" else data.n_playlists
    return max(1, math.ceil(n / cfg.batch_size))


def epoch_cap(cfg: TrainConfig, n_playlists: int) -> int:
    """Epochs of one member: `epochs`, capped at floor(playlist_budget / n_playlists) but not
    below `min_epochs` (nor above `epochs`), so training cost grows with the corpus, not with
    corpus x epochs: the MPD slices keep 30, a million playlists get one."""
    return budget_epochs(cfg.epochs, cfg.playlist_budget, n_playlists, cfg.min_epochs)


def members(cfg: TrainConfig, n_playlists: int) -> int:
    """Members of the ensemble: `seeds`, or one when the training set has at least
    `ensemble_below` playlists (0: no limit)."""
    if cfg.ensemble_below > 0 and n_playlists >= cfg.ensemble_below:
        return 1
    return cfg.seeds


def planned_epochs(cfg: TrainConfig, data: TrainingData) -> tuple[int, int]:
    """(epochs, total steps) of one member: `steps` when given, else the capped epochs."""
    spe = steps_per_epoch(cfg, data)
    if cfg.steps > 0:
        return math.ceil(cfg.steps / spe), cfg.steps
    epochs = epoch_cap(cfg, data.n_playlists)
    return epochs, epochs * spe
