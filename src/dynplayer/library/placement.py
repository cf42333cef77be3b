"""Where a library track without a vector of its own goes in the track space.

A catalogue track the run has no vector for, but that occurs in training playlists, is placed
by them (`context_vectors`: the normalised sum of those playlists' mean track vectors, the
`context` fold-in of `dynplayer update`). A track whose title is not in the catalogue (or whose
catalogue track is in no training playlist) is placed by its artist: `artist_vector` is the one
place that is decided, so a run that learns artist vectors (issue 22's shared artist parts)
can answer there without touching the rest; today it is the L2-normalised mean of the vectors
of the run's tracks by that artist (as the catalogue writes the artist, compared case- and
accent-insensitively through `tagkeys.artist_key`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import scipy.sparse as sp

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
        self.corpus = corpus
        self._means: tuple[sp.csc_matrix, np.ndarray] | None = None

    def _playlist_means(self) -> tuple[sp.csc_matrix, np.ndarray]:
        """(training playlists x corpus tracks, binary CSC; each playlist's mean vector)."""
        if self._means is None:
            from dynplayer.rank.stage import source_playlists

            c, run = self.corpus, self.run
            pls = source_playlists(c, run)
            row_of = np.full(c.n_playlists, -1, dtype=np.int64)
            row_of[pls] = np.arange(pls.size)
            keep = row_of[c.occ_playlist] >= 0
            x = sp.csr_matrix((np.ones(int(keep.sum()), np.float32),
                               (row_of[c.occ_playlist[keep]], c.occ_track[keep])),
                              shape=(pls.size, c.n_tracks))
            x.data[:] = 1.0
            index = run.index_of()
            vec_of = np.array([index.get(t, -1) for t in c.track_ids], dtype=np.int64)
            has = np.flatnonzero(vec_of >= 0)
            xv = x[:, has]
            xv.data[:] = 1.0
            n = np.maximum(np.asarray(xv.sum(axis=1)).ravel(), 1.0)
            means = np.asarray(xv @ run.vectors[vec_of[has]]) / n[:, None]
            self._means = (x.tocsc(), means.astype(np.float32))
        return self._means

    def context_vectors(self, track_idx: np.ndarray) -> np.ndarray:
        """(n, d) float32 places of corpus tracks by the training playlists holding them:
        L2-normalised sum of those playlists' mean track vectors; zero rows where none."""
        x, means = self._playlist_means()
        out = np.asarray(x[:, np.asarray(track_idx, dtype=np.int64)].T @ means,
                         dtype=np.float32)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return np.where(norm > 0, out / np.maximum(norm, 1e-12), 0.0).astype(np.float32)

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
