"""The caption <-> playlist model: two residual projection heads into one space, CLIP-style loss.

Text side: frozen encoder vector -> ResidualProjection -> L2 norm. Playlist side: mean of its
L2-normalised (frozen) track vectors -> its own ResidualProjection -> L2 norm. The loss takes
features and the learnable logit scale (open_clip style) and returns named terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)


@dataclass(frozen=True)
class TextConfig:
    """Training and search settings of the text stage (`dynplayer train-text --set key=value`)."""

    encoder: str = "use"  # use | minilm | ngram
    embed_dim: int = 256
    hidden: int = 512
    dropout: float = 0.1
    epochs: int = 10
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


class ResidualProjection(nn.Module):
    """Two-layer MLP with a residual path: y = skip(x) + W2 dropout(gelu(W1 x)).

    `skip` is the identity when the dimensions agree, otherwise a bias-free linear map.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.skip: nn.Module = (nn.Identity() if in_dim == out_dim
                                else nn.Linear(in_dim, out_dim, bias=False))
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.fc2(self.drop(F.gelu(self.fc1(x))))


class CaptionPlaylistModel(nn.Module):
    """Both heads and the logit scale; `forward` returns L2-normalised features."""

    def __init__(self, text_dim: int, track_dim: int, cfg: TextConfig) -> None:
        super().__init__()
        self.text_head = ResidualProjection(text_dim, cfg.embed_dim, cfg.hidden, cfg.dropout)
        self.playlist_head = ResidualProjection(track_dim, cfg.embed_dim, cfg.hidden, cfg.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        self.track_logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(x), dim=-1)

    def encode_playlist(self, track_mean: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.playlist_head(track_mean), dim=-1)

    def forward(self, text: torch.Tensor,
                track_mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.encode_text(text), self.encode_playlist(track_mean), self.logit_scale


def clip_loss(text_features: torch.Tensor, playlist_features: torch.Tensor,
              logit_scale: torch.Tensor,
              caption_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE over a batch of (caption, playlist) pairs; features L2-normalised.

    logits = exp(logit_scale) * T P^T; row i's positive is column i. Pairs whose captions are
    identical (equal `caption_ids`) are not negatives of each other: those off-diagonal logits
    are masked out of both softmaxes.
    Returns {"text_to_playlist", "playlist_to_text", "contrastive_loss" (their mean)}.
    """
    logits = logit_scale.exp() * text_features @ playlist_features.T
    if caption_ids is not None:
        same = caption_ids[:, None] == caption_ids[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    t2p = F.cross_entropy(logits, labels)
    p2t = F.cross_entropy(logits.T, labels)
    return {"text_to_playlist": t2p, "playlist_to_text": p2t, "contrastive_loss": (t2p + p2t) / 2}


def track_loss(text_features: torch.Tensor, track_features: torch.Tensor,
               targets: torch.Tensor, logit_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Text -> track softmax over the whole vocabulary (features L2-normalised).

    logits = exp(logit_scale) T V^T; targets (batch, V) are the playlists' tracks (any
    non-negative weights). Loss = - sum_v y_v log softmax(logits)_v with y rows summing to 1.
    """
    logits = logit_scale.exp() * text_features @ track_features.T
    y = targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return {"text_to_track": -(y * F.log_softmax(logits, dim=1)).sum(dim=1).mean()}


# ---- numpy inference (queries must not pay torch's per-call overhead) -------------------------


def head_to_numpy(head: ResidualProjection, prefix: str) -> dict[str, np.ndarray]:
    out = {f"{prefix}.fc1.weight": head.fc1.weight, f"{prefix}.fc1.bias": head.fc1.bias,
           f"{prefix}.fc2.weight": head.fc2.weight, f"{prefix}.fc2.bias": head.fc2.bias}
    if isinstance(head.skip, nn.Linear):
        out[f"{prefix}.skip.weight"] = head.skip.weight
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in out.items()}


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(np.float32)


def project_numpy(weights: dict[str, Any], prefix: str, x: np.ndarray,
                  normalize: bool = True) -> np.ndarray:
    """The same forward pass as `ResidualProjection` (eval mode), in numpy; x is (n, in_dim)."""
    x = np.asarray(x, dtype=np.float32)
    h = _gelu(x @ weights[f"{prefix}.fc1.weight"].T + weights[f"{prefix}.fc1.bias"])
    y = h @ weights[f"{prefix}.fc2.weight"].T + weights[f"{prefix}.fc2.bias"]
    skip = weights.get(f"{prefix}.skip.weight")
    y = y + (x if skip is None else x @ skip.T)
    if normalize:
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return y.astype(np.float32)
