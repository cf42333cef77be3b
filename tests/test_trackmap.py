"""The map of the track space (issue 13): planted genres come out as separate clusters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dynplayer.data.corpus import Corpus
from dynplayer.store.catalog import build_catalog
from dynplayer.store.trackmap import project_tracks, track_genres


def _same_genre_neighbour_share(xy: np.ndarray, genres: list[str | None]) -> float:
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    nearest = d.argmin(axis=1)
    return float(np.mean([genres[i] == genres[j] for i, j in enumerate(nearest)]))


def test_map_separates_the_planted_genres(synthetic_corpus_dir: Path, tmp_path: Path,
                                          synthetic_corpus: Corpus) -> None:
    # SVD vectors of the planted corpus (16-d): genres lie apart in them, but not along any
    # two directions, which is what the map has to undo.
    from conftest import make_svd_run

    catalog = build_catalog(make_svd_run(synthetic_corpus_dir, tmp_path / "svd"))
    row = {t: i for i, t in enumerate(synthetic_corpus.track_ids)}
    genres = track_genres(synthetic_corpus, np.array([row[t] for t in catalog.track_ids]))
    assert set(genres) == {"rock", "jazz", "hip hop", "edm", "classical", "metal", "k-pop",
                           "country"}
    m = project_tracks(catalog.vectors, catalog.popularity, limit=300)
    assert m.rows.shape == (300,) and m.xy.shape == (300, 2)
    pop = catalog.popularity[m.rows]
    assert (np.diff(pop) <= 0).all() and pop[0] == catalog.popularity.max()  # popular first
    assert m.xy.min() >= 0 and m.xy.max() <= 1 and np.isclose(m.xy.max(axis=0).max(), 1)
    shown = [genres[r] for r in m.rows]
    laid_out = _same_genre_neighbour_share(m.xy, shown)
    pca = project_tracks(catalog.vectors, catalog.popularity, limit=300, layout=False)
    pca_share = _same_genre_neighbour_share(pca.xy, shown)
    # The nearest dot on the map is a track of the same planted genre for nearly every track,
    # far more often than PCA's two axes alone manage.
    assert laid_out > 0.95 and laid_out > pca_share + 0.15, (laid_out, pca_share)
    assert 0 < pca.explained < 1
    again = project_tracks(catalog.vectors, catalog.popularity, limit=300)
    assert np.array_equal(again.xy, m.xy)  # deterministic


def test_map_of_tiny_and_unlabelled_catalogs(synthetic_corpus: Corpus) -> None:
    m = project_tracks(np.eye(2, 4, dtype=np.float32), np.array([1, 5]))
    assert m.rows.tolist() == [1, 0] and np.allclose(m.xy, 0.5)
    assert project_tracks(np.zeros((0, 4), np.float32), np.zeros(0, np.int64)).rows.size == 0
    labelled = track_genres(synthetic_corpus, np.array([0, -1]))
    assert labelled[0] is not None and labelled[1] is None
    bare = Corpus(**{**synthetic_corpus.__dict__, "genre_label": None, "genre_classes": [],
                     "track_genres": [[] for _ in synthetic_corpus.track_ids]})
    assert track_genres(bare, np.array([0, 1])) == [None, None]


@pytest.mark.parametrize("limit", [1, 2])
def test_map_limit_below_three_tracks_is_centred(limit: int) -> None:
    m = project_tracks(np.eye(5, 4, dtype=np.float32), np.arange(5), limit=limit)
    assert m.rows.tolist() == [4, 3][:limit] and np.allclose(m.xy, 0.5)
