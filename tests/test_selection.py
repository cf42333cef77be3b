"""Which tracks a corpus trains on (data/selection.py): the whole-catalogue default, the
seed's rule kept as a setting, the head every rule keeps for the seed protocol, bad values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dynplayer.config import DataConfig
from dynplayer.data.corpus import TRAIN, load_corpus, save_corpus
from dynplayer.data.prepare import derive
from dynplayer.data.selection import corpus_data_config, training_support
from dynplayer.data.synthetic import SyntheticSpec, generate
from dynplayer.errors import ConfigError
from dynplayer.update.merge import selected_now


def _corpus(**cfg: object):  # type: ignore[no-untyped-def]
    c = generate(SyntheticSpec(n_playlists=400, n_tracks=600, seed=2))
    return derive(c, DataConfig(seed=2, **cfg))  # type: ignore[arg-type]


def _support_by_hand(c) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.zeros(c.n_tracks, dtype=np.int64)
    for p in c.playlists_in(TRAIN):
        for t in set(c.occ_track[c.occ_playlist == p].tolist()):
            out[t] += 1
    return out


def test_default_keeps_every_track_of_a_training_playlist() -> None:
    c = _corpus()
    support = _support_by_hand(c)
    assert np.array_equal(training_support(c.occ_playlist, c.occ_track, c.split, c.n_tracks),
                          support)
    assert np.array_equal(c.selected, support >= 1)
    assert (support == 0).any()  # tracks only in validation / test playlists stay out
    # the head is the seed's rule: the top 5% by neighbour count, a subset of what trains here
    assert c.head is not None and c.head.sum() == int(np.ceil(0.05 * c.n_tracks))
    assert c.selected.sum() > c.head.sum()
    # held-out tracks come from the head only, whatever the rule
    assert c.heldout is not None and c.head[c.occ_track[c.heldout]].all()
    assert np.array_equal(c.vocab(), np.flatnonzero(support >= 1))
    two = _corpus(min_playlists=2)
    assert np.array_equal(two.selected, support >= 2) and two.selected.sum() < c.selected.sum()


def test_top_share_is_the_seed_rule_and_the_split_does_not_move() -> None:
    seed = _corpus(select="top_share")
    whole = _corpus(min_playlists=3)
    assert np.array_equal(seed.selected, seed.head)
    assert np.array_equal(seed.head, whole.head)
    # same playlists split, same held-out tracks: the seed protocol compares across rules
    assert np.array_equal(seed.split, whole.split)
    assert np.array_equal(seed.heldout, whole.heldout)
    assert np.array_equal(whole.selected, _support_by_hand(whole) >= 3)


def test_the_rule_travels_with_the_corpus(tmp_path: Path) -> None:
    c = _corpus(min_playlists=3)
    save_corpus(c, tmp_path / "c")
    back = load_corpus(tmp_path / "c")
    assert np.array_equal(back.head, c.head) and np.array_equal(back.selected, c.selected)
    assert corpus_data_config(back.manifest).min_playlists == 3
    assert np.array_equal(selected_now(back), c.selected)  # what `update` re-derives
    # a corpus written before the rule existed was prepared with the seed's rule
    old = corpus_data_config({"config": {"select_fraction": 0.05}})
    assert old.select == "top_share"


@pytest.mark.parametrize(("sets", "message"), [
    ({"min_playlists": 0}, "min_playlists must be >= 1"),
    ({"select": "most"}, "select must be one of min_playlists, top_share, min_neighbours"),
    ({"select_min_neighbours": 4}, "select_min_neighbours is read only with select = "
                                   "min_neighbours"),
])
def test_bad_selection_values_are_one_line_errors(sets: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _corpus(**sets)


def test_a_corpus_from_before_the_rule_still_loads_as_the_seeds(tmp_path: Path) -> None:
    """A corpus written before `select` and the `head` column: its selected tracks are its head
    (it was prepared with the seed's rule), and `update` keeps re-deriving it that way."""
    import json

    import pyarrow.parquet as pq

    c = _corpus(select="top_share")
    save_corpus(c, tmp_path / "c")
    tracks = pq.read_table(tmp_path / "c" / "tracks.parquet").drop(["head"])
    pq.write_table(tracks, tmp_path / "c" / "tracks.parquet")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    del manifest["config"]["select"], manifest["config"]["min_playlists"]
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    old = load_corpus(tmp_path / "c")
    assert np.array_equal(old.head, old.selected) and np.array_equal(old.selected, c.selected)
    assert np.array_equal(old.head_vocab(), old.vocab())
    assert np.array_equal(selected_now(old), c.selected)
