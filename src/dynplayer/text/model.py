"""The caption <-> playlist model: two residual projection heads into one space, CLIP-style loss.

Text side: frozen encoder vector -> ResidualProjection -> L2 norm. Playlist side: mean of its
L2-normalised (frozen) track vectors -> its own ResidualProjection -> L2 norm. The loss takes
features and the learnable logit scale (open_clip style) and returns named terms.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The settings and the numpy forward pass live apart, without torch (a search loads no torch).
from dynplayer.text.config import TextConfig, project_numpy

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)


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


__all__ = ["CaptionPlaylistModel", "LOGIT_SCALE_INIT", "ResidualProjection", "TextConfig",
           "clip_loss", "head_to_numpy", "project_numpy", "track_loss"]
