"""Real data: a corpus from ../shared/data/mpd (a slice of it, to stay fast) and a trained track
model (`dynplayer train`'s default objective, init and schedule; one member instead of two, to
stay under 10 s), indexed in the embedded PostgreSQL; HNSW top-50 lists overlap the exact ones
>= 0.99."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynplayer.config import DataConfig
from dynplayer.data.corpus import TEST
from dynplayer.data.prepare import prepare
from dynplayer.serve.recommender import ExactRecommender, PgvectorRecommender
from dynplayer.serve.recommender import Recommender as _Rec
from dynplayer.store.catalog import Catalog, build_catalog
from dynplayer.store.db import index_catalog, open_pool
from dynplayer.train.config import TrainConfig
from dynplayer.train.loop import train_run

pytestmark = [pytest.mark.realdata, pytest.mark.db]
SLICES = 200  # of 932 files: about 1,500 playlists


@pytest.fixture(scope="module")
def mpd_catalog(shared_data: Path,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalog, Any]:
    files = sorted((shared_data / "mpd").glob("mpd.slice.*"))[:SLICES]
    corpus_dir = tmp_path_factory.mktemp("mpd") / "corpus"
    corpus = prepare(files, corpus_dir, DataConfig(select="top_share", select_fraction=0.1))
    run_dir = tmp_path_factory.mktemp("mpdrun") / "run"
    train_run(corpus_dir, run_dir, TrainConfig(seeds=1), progress=False)
    return build_catalog(run_dir), corpus


@pytest.fixture(scope="module")
def pair(new_database: Any,
         mpd_catalog: tuple[Catalog, Any]) -> Iterator[tuple[_Rec, _Rec]]:
    catalog, _ = mpd_catalog
    url = new_database("mpd")
    index_catalog(url, catalog)
    pool = open_pool(url, min_size=1, max_size=2)
    pool.wait()
    yield ExactRecommender(catalog), PgvectorRecommender(pool, catalog.version)
    pool.close()


def test_hnsw_top50_overlaps_exact(pair: tuple[_Rec, _Rec],
                                   mpd_catalog: tuple[Catalog, Any]) -> None:
    exact, hnsw = pair
    catalog, corpus = mpd_catalog
    assert len(catalog.track_ids) > 1000
    rng = np.random.default_rng(0)
    sample = rng.choice(len(catalog.track_ids), 200, replace=False)
    overlaps = []
    for i in sample:
        a = [t.track_id for t in exact.similar(catalog.track_ids[i], 50)]
        b = [t.track_id for t in hnsw.similar(catalog.track_ids[i], 50)]
        overlaps.append(len(set(a) & set(b)) / 50)
    known = set(catalog.track_ids)
    indptr = corpus.playlist_indptr
    for p in corpus.playlists_in(TEST)[:100]:
        seeds = [corpus.track_ids[t] for t in corpus.occ_track[indptr[p]:indptr[p + 1]]
                 if corpus.track_ids[t] in known][:10]
        if not seeds:
            continue
        a = [t.track_id for t in exact.continue_playlist(seeds, 50).tracks]
        b = [t.track_id for t in hnsw.continue_playlist(seeds, 50).tracks]
        overlaps.append(len(set(a) & set(b)) / 50)
    assert len(overlaps) > 250
    assert float(np.mean(overlaps)) >= 0.99, np.mean(overlaps)
