"""Evaluation on a slice of the real MPD data: peers and an SVD stand-in on the same split."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynplayer.config import DataConfig
from dynplayer.data.prepare import prepare
from dynplayer.eval.runner import EvalOptions, evaluate_run
from test_eval_command import svd_run

pytestmark = pytest.mark.realdata


def test_mpd_slice_peers_beat_popularity(shared_data: Path, tmp_path: Path) -> None:
    files = sorted((shared_data / "mpd").glob("mpd.slice.*.json.gz"))[:60]
    corpus_dir = tmp_path / "mpd"
    prepare(files, corpus_dir, DataConfig(select="top_share", select_fraction=0.2),
            artist_genres=shared_data / "artist-genres" / "data_w_genres.csv.gz")
    run = svd_run(corpus_dir, tmp_path / "run", dim=32)
    res = evaluate_run(run, EvalOptions(peers=["popularity", "itemknn"], split="val",
                                        threads=1, hubness=False),
                       log=None)
    m = res["methods"]
    assert res["split"]["n_playlists"] > 30
    # co-occurrence carries real signal: item-kNN and the SVD run beat popularity clearly
    assert m["itemknn"]["recall@10"] > 2 * m["popularity"]["recall@10"]
    assert m["dynplayer"]["recall@10"] > m["popularity"]["recall@10"]
    assert res["probe"]["dynplayer"]["top1"] > res["probe"]["random"]["top1"]
    assert (run / "eval" / "report.html").exists()
