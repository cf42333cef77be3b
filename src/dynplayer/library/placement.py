"""Where a library track without a vector of its own goes in the track space: by its artist.

`artist_vector` is the one place this is decided, so a run that learns artist vectors (issue
22's shared artist parts) can answer here without touching the rest: today it is the
L2-normalised mean of the vectors of the run's tracks by that artist (as the catalogue writes
the artist, compared case- and accent-insensitively through `tagkeys.artist_key`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from dynplayer.data.corpus import Corpus
from dynplayer.library.tagkeys import artist_key
from dynplayer.run import Run


class ArtistPlacement:
    """Artist -> the run rows of the artist's tracks, built once per run and corpus."""

    def __init__(self, run: Run, corpus: Corpus) -> None:
        self.run = run
        rows: dict[str, list[int]] = defaultdict(list)
        index = run.index_of()
        for t, artist in zip(corpus.track_ids, corpus.artists, strict=True):
            r = index.get(t)
            if r is not None and artist:
                rows[artist_key(artist)].append(r)
        self.rows = {k: np.asarray(v, dtype=np.int64) for k, v in rows.items()}

    def artist_vector(self, artist: str) -> np.ndarray | None:
        """The artist's place: the normalised mean of its tracks' vectors, or None when the
        run has no track of that artist."""
        rows = self.rows.get(artist_key(artist))
        if rows is None or rows.size == 0:
            return None
        v = self.run.vectors[rows].mean(axis=0)
        n = float(np.linalg.norm(v))
        return (v / n).astype(np.float32) if n > 0 else None


__all__ = ["ArtistPlacement"]
