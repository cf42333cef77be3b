"""The text stage's settings (`TextConfig`) and the numpy forward pass of a projection head
(`project_numpy`): all that searching with a trained text model needs, without importing torch
(which `text.model`, the training side, does: 1.5-3 s of a one-shot `dynplayer search`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynplayer.topk import rows_per_chunk


@dataclass(frozen=True)
class TextConfig:
    """Training and search settings of the text stage (`dynplayer train-text --set key=value`)."""

    encoder: str = "use"  # use | minilm | ngram
    embed_dim: int = 256
    hidden: int = 512
    dropout: float = 0.1
    epochs: int = 10
    # Epochs are capped so the fit sees at most this many training playlists (floor(budget /
    # training playlists), at least one; 0 = no cap), as the track model's are: the MPD slices
    # (5,303) keep `epochs`, 1M synthetic playlists get one (at 250k, validation Recall@10
    # was best after the first of 10 epochs, 0.0330, and never above it).
    playlist_budget: int = 1_000_000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    track_loss_weight: float = 0.0  # weight of the text -> track softmax term (0 = CLIP only)
    track_keep_min: float = 0.5  # playlist side sees a random 50-100% of its tracks per epoch
    seed: int = 0
    # Validation (model selection) on at most this many playlists, a seeded sample when the
    # split is larger: Recall@10 among them costs val x val (the MPD slices have 707).
    val_playlists: int = 10_000
    # search (the defaults are the best on the MPD validation split; see docs/benchmarks.md)
    retrieval: str = "hybrid"  # joint | caption | hybrid
    caption_weight: float = 0.5  # hybrid: share of the caption-caption cosine in the similarity
    top_playlists: int = 50  # as the reference and serving's default; 100 was +0.002 R@50 (noise)
    sim_power: float = 4.0  # track score = sum occurrence x similarity ** sim_power
    qbnorm_beta: float = 0.0  # > 0: query-bank (dynamic inverted softmax) normalisation
    # > 0: pseudo-relevance feedback in the track model's space re-ranks the tracks of the top
    # playlists: score = s / max(s) + prf_weight * max(cos(q, track), 0), q = the
    # similarity^sim_power-weighted mean of those playlists' mean track vectors (0 = off)
    prf_weight: float = 5.0
    # > 0: the search space (playlist matrix and queries) projected on its first search_dims
    # principal directions (uncentred PCA of the playlist rows and their captions' query-side
    # vectors, computed when the searcher loads; `text.space.search_projection`): fewer bytes
    # per HNSW distance and per exact product; 0 = the full space. 256 of the hybrid's 768:
    # MPD validation keyword -> tracks Recall@50 1.000x of the full space (`bench text`).
    search_dims: int = 256
    # > 0: the query's words in each track's artist name / genres (`text.metadata`) add
    # weight x match ** match_power to its score, so "bryson tiller" or "reggaeton" reach the
    # artist's / genre's tracks even when no retrieved playlist holds them (0 = off). Chosen
    # on the MPD validation split: a plateau around 4 / 4 / 2 (docs/benchmarks.md).
    artist_weight: float = 4.0
    genre_weight: float = 4.0
    match_power: float = 2.0
    # Korean loanwords in a query replaced by the English words of the captions and genres
    # they sound like ("발라드" -> "ballad"; `text.loanwords`); text without Hangul is
    # untouched. Only with the USE encoder, whose similarities its thresholds were set with.
    loanwords: bool = True


def val_sample(cfg: TextConfig, n: int) -> np.ndarray:
    """Positions (sorted) of the validation playlists the fit selects on and the calibration
    reads: all `n`, or a seeded sample of `val_playlists` when there are more."""
    if 0 < cfg.val_playlists < n:
        return np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.val_playlists,
                                                              replace=False))
    return np.arange(n)


def text_epochs(cfg: TextConfig, n_playlists: int) -> int:
    """Epochs of the caption <-> playlist fit over `n_playlists` training playlists."""
    from dynplayer.config import budget_epochs
    from dynplayer.errors import ConfigError

    if cfg.epochs < 1:
        raise ConfigError(f"text config key 'epochs': must be >= 1 (got {cfg.epochs})")
    if cfg.playlist_budget < 0:
        raise ConfigError("text config key 'playlist_budget': must be >= 0 (got "
                          f"{cfg.playlist_budget})")
    return budget_epochs(cfg.epochs, cfg.playlist_budget, n_playlists)


# ---- numpy inference (queries must not pay torch's per-call overhead) -------------------------


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(np.float32)


def project_numpy(weights: dict[str, Any], prefix: str, x: np.ndarray,
                  normalize: bool = True) -> np.ndarray:
    """The same forward pass as `ResidualProjection` (eval mode), in numpy; x is (n, in_dim).

    Many rows go a block at a time (at most SCORE_CHUNK hidden activations): the whole
    catalogue's 494k tracks through a head in one piece held 3.3 GB of temporaries."""
    x = np.asarray(x, dtype=np.float32)
    step = rows_per_chunk(int(weights[f"{prefix}.fc1.weight"].shape[0]))
    if x.shape[0] <= step:
        return _project_rows(weights, prefix, x, normalize)
    out = np.empty((x.shape[0], projected_dim(weights, prefix)), dtype=np.float32)
    for start, block in project_blocks(weights, prefix, x, normalize):
        out[start:start + block.shape[0]] = block
    return out


def projected_dim(weights: dict[str, Any], prefix: str) -> int:
    """The width of a head's output."""
    return int(weights[f"{prefix}.fc2.weight"].shape[0])


def project_blocks(weights: dict[str, Any], prefix: str, x: np.ndarray,
                   normalize: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """`project_numpy(weights, prefix, x)` a block of rows at a time: (first row, block), for
    a caller that writes each block out (a whole-catalogue run's tracks through a head are
    written to disk without the whole result in memory)."""
    x = np.asarray(x, dtype=np.float32)
    step = rows_per_chunk(int(weights[f"{prefix}.fc1.weight"].shape[0]))
    for start in range(0, x.shape[0], step):
        yield start, _project_rows(weights, prefix, x[start:start + step], normalize)


def _project_rows(weights: dict[str, Any], prefix: str, x: np.ndarray,
                  normalize: bool) -> np.ndarray:
    h = _gelu(x @ weights[f"{prefix}.fc1.weight"].T + weights[f"{prefix}.fc1.bias"])
    y = h @ weights[f"{prefix}.fc2.weight"].T + weights[f"{prefix}.fc2.bias"]
    skip = weights.get(f"{prefix}.skip.weight")
    y = y + (x if skip is None else x @ skip.T)
    if normalize:
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return y.astype(np.float32)


__all__ = ["TextConfig", "project_blocks", "project_numpy", "projected_dim", "text_epochs",
           "val_sample"]
