"""The contract between text search (issue 5) and serving (issue 6).

`TextSearcher` (implemented in `dynplayer.text.search`) turns a query into a vector in the joint
space and ranks tracks from the most similar training playlists. Serving swaps the exact
playlist search for pgvector HNSW and reuses `aggregate` for the track ranking, so both paths
give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class PlaylistHit:
    pid: str
    caption: str
    similarity: float


@dataclass(frozen=True)
class TrackHit:
    track_id: str
    score: float
    because: list[PlaylistHit] = field(default_factory=list)  # contributing playlists, best first


@dataclass(frozen=True)
class SearchResult:
    query: str
    playlists: list[PlaylistHit]
    tracks: list[TrackHit]
    # How well the query matched the captions (`dynplayer.text.confidence`): a calibrated
    # confidence in [0, 1] and its verdict, "close", "weak" or "nothing" (None: not calibrated)
    confidence: float | None = None
    match: str | None = None


class TextSearcherProtocol(Protocol):
    playlist_pids: list[str]  # the searchable (training) playlists, row order of playlist_vectors
    playlist_captions: list[str]

    def encode_query(self, text: str) -> np.ndarray:
        """L2-normalised query vector (d,) in the space of `playlist_vectors`."""
        ...

    @property
    def playlist_vectors(self) -> np.ndarray:
        """float32 (P, d), L2-normalised: what the query is compared with by cosine."""
        ...

    def aggregate(self, playlist_rows: np.ndarray, similarities: np.ndarray, k: int,
                  query: str = "") -> SearchResult:
        """Rank tracks from the given top playlists (rows into playlist_vectors, best first)."""
        ...

    def search(self, text: str, k: int = 20) -> SearchResult:
        """Exact end to end: encode, top playlists by cosine, aggregate."""
        ...
