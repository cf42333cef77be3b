"""The track encoder: one embedding row per vocabulary track, plus optional shared parts (the
track's artist, its album) added before the output is L2-normalised."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0


class TrackEncoder(nn.Module):
    """Embedding table (n_tracks x dim), optional shared parts, fixed or learnable temperature.

    A track's vector is normalize(own row + the row of each shared part it has), so a track
    seen in few playlists borrows its artist's position and an artist's row places a track no
    playlist holds yet. `parts` are int code arrays over the tracks (-1: unknown, which adds
    nothing). Outputs are L2-normalised (normalize=True everywhere); `logit_scale` holds
    log(1 / tau), as in CLIP, and is clamped to at most 100 when used.
    """

    def __init__(self, n_tracks: int, dim: int, *, temperature: float = 0.07,
                 learnable_temperature: bool = False, sparse: bool = False,
                 parts: Sequence[np.ndarray] = ()) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_tracks, dim, sparse=sparse)
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)),
                                        requires_grad=learnable_temperature)
        self.parts: list[nn.Embedding] = []
        for i, codes in enumerate(parts):
            codes = np.asarray(codes, dtype=np.int64)
            n_codes = int(codes.max()) + 1 if codes.size and codes.max() >= 0 else 0
            # the last row is "unknown": zero, and its gradient is dropped (padding_idx)
            emb = nn.Embedding(n_codes + 1, dim, padding_idx=n_codes, sparse=sparse)
            nn.init.zeros_(emb.weight)
            self.add_module(f"part{i}", emb)
            self.parts.append(emb)
            self.register_buffer(f"codes{i}", torch.as_tensor(
                np.where(codes >= 0, codes, n_codes), dtype=torch.long))

    def _codes(self, i: int) -> torch.Tensor:
        out: torch.Tensor = getattr(self, f"codes{i}")
        return out

    def raw(self, track_rows: torch.Tensor) -> torch.Tensor:
        out = self.embedding(track_rows)
        for i, emb in enumerate(self.parts):
            out = out + emb(self._codes(i)[track_rows])
        return out

    def forward(self, track_rows: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised vectors of the given vocabulary rows, or of all rows when None.

        Training goes through forward (not `table`) so DistributedDataParallel sees the call.
        """
        if track_rows is None:
            return self.table()
        return F.normalize(self.raw(track_rows), dim=-1)

    def table(self) -> torch.Tensor:
        """All L2-normalised vectors (n_tracks x dim)."""
        w = self.embedding.weight
        for i, emb in enumerate(self.parts):
            w = w + emb.weight[self._codes(i)]
        return F.normalize(w, dim=-1)

    def part_table(self, i: int) -> torch.Tensor:
        """The L2-normalised rows of shared part `i` (one per code; the unknown row dropped):
        the vector of a track known only by that part."""
        return F.normalize(self.parts[i].weight[:-1], dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    @staticmethod
    def pool(vectors: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
        """Normalised mean of `vectors` grouped by `rows` (how a playlist is represented)."""
        total = torch.zeros(n_rows, vectors.shape[1], dtype=vectors.dtype,
                            device=vectors.device).index_add(0, rows, vectors)
        return F.normalize(total, dim=-1)
