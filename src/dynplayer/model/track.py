"""The track encoder: one embedding row per vocabulary track, L2-normalised on the way out."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0


class TrackEncoder(nn.Module):
    """Embedding table (n_tracks x dim) with a fixed or learnable temperature.

    Outputs are L2-normalised (normalize=True everywhere); `logit_scale` holds log(1 / tau), as
    in CLIP, and is clamped to at most 100 when used.
    """

    def __init__(self, n_tracks: int, dim: int, *, temperature: float = 0.07,
                 learnable_temperature: bool = False, sparse: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_tracks, dim, sparse=sparse)
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)),
                                        requires_grad=learnable_temperature)

    def forward(self, track_rows: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised vectors of the given vocabulary rows, or of all rows when None.

        Training goes through forward (not `table`) so DistributedDataParallel sees the call.
        """
        if track_rows is None:
            return self.table()
        return F.normalize(self.embedding(track_rows), dim=-1)

    def table(self) -> torch.Tensor:
        """All L2-normalised vectors (n_tracks x dim)."""
        return F.normalize(self.embedding.weight, dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    @staticmethod
    def pool(vectors: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
        """Normalised mean of `vectors` grouped by `rows` (how a playlist is represented)."""
        total = torch.zeros(n_rows, vectors.shape[1], dtype=vectors.dtype,
                            device=vectors.device).index_add(0, rows, vectors)
        return F.normalize(total, dim=-1)
