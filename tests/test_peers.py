"""Every peer on a planted corpus ranks the planted neighbours first; EASE matches its formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dynplayer.errors import ConfigError
from dynplayer.eval.peers import (
    PEERS,
    TrainData,
    ease_weights,
    make_peer,
    parse_peers,
    tune_peer,
)
from dynplayer.eval.protocol import evaluate_scorer, make_eval_set, top_k_masked

N_GROUPS, GROUP = 4, 10  # 40 tracks in 4 planted groups of 10
SMALL = {
    "popularity": {},
    "itemknn": {},
    "ease": {"lam": 10.0},
    "als": {"factors": 4, "iterations": 10, "regularization": 0.1},  # rank of the plant
    "bpr": {"factors": 8, "iterations": 60, "learning_rate": 0.05},
    "item2vec": {"dim": 16, "epochs": 30},
}


def planted(n_playlists: int = 600, length: int = 6, seed: int = 0) -> TrainData:
    """Each playlist draws `length` distinct tracks from one group, in random order."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, N_GROUPS, n_playlists)
    cols = np.concatenate([g * GROUP + rng.choice(GROUP, length, replace=False) for g in groups])
    rows = np.repeat(np.arange(n_playlists), length)
    m = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)),
                      shape=(n_playlists, N_GROUPS * GROUP))
    indptr = np.arange(0, n_playlists * length + 1, length)
    return TrainData(m, indptr, cols.astype(np.int64))


@pytest.fixture(scope="module")
def data() -> TrainData:
    return planted()


def _queries() -> sp.csr_matrix:
    """Per group, a playlist that has seen two of its tracks."""
    rows = np.repeat(np.arange(N_GROUPS), 2)
    cols = np.array([[g * GROUP, g * GROUP + 1] for g in range(N_GROUPS)]).ravel()
    return sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)),
                         shape=(N_GROUPS, N_GROUPS * GROUP))


@pytest.mark.parametrize("name", [n for n in PEERS if n != "popularity"])
def test_peer_ranks_planted_neighbours_first(data: TrainData, name: str) -> None:
    peer = make_peer(name, threads=1, **SMALL[name]).fit(data)
    q = _queries()
    scores = peer.score(q)
    assert scores.shape == (N_GROUPS, N_GROUPS * GROUP)
    top = top_k_masked(scores, q, GROUP - 2)  # the 8 unseen tracks of the group
    assert ((top // GROUP) == np.arange(N_GROUPS)[:, None]).all(), name


def test_popularity_ranks_by_training_count() -> None:
    m = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], np.float32))
    peer = make_peer("popularity").fit(TrainData(m))
    s = peer.score(sp.csr_matrix((2, 4), dtype=np.float32))
    assert s.tolist() == [[3, 2, 1, 0], [3, 2, 1, 0]]


def test_ease_woodbury_matches_direct_inverse() -> None:
    rng = np.random.default_rng(1)
    for n, v in ((30, 50), (80, 20)):  # fewer playlists than tracks (Woodbury), and more
        x = sp.csr_matrix((rng.random((n, v)) < 0.2).astype(np.float32))
        lam = 5.0
        p = np.linalg.inv(x.T.toarray() @ x.toarray() + lam * np.eye(v))
        b = np.eye(v) - p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        assert ease_weights(x, lam) == pytest.approx(b, abs=2e-4)


def test_tuning_picks_best_on_validation_and_reuses_fits(data: TrainData) -> None:
    held_rows = np.repeat(np.arange(N_GROUPS), GROUP - 2)
    held_cols = np.array([g * GROUP + np.arange(2, GROUP) for g in range(N_GROUPS)]).ravel()
    held = sp.csr_matrix((np.ones(held_rows.shape[0], np.float32), (held_rows, held_cols)),
                         shape=(N_GROUPS, N_GROUPS * GROUP))
    val = make_eval_set(_queries(), held)
    calls: list[float] = []

    def evaluate(peer: object) -> float:
        r = float(evaluate_scorer(peer.score, val, ks=(10,))["recall@10"])  # type: ignore
        calls.append(r)
        return r

    # keeping 1 neighbour per track scores at most 2 tracks per query: worse than keeping all
    tuned = tune_peer("itemknn", data, evaluate, [{"neighbours": 1}, {"neighbours": None}])
    assert tuned.params == {"neighbours": None, "shrinkage": 0.0}
    assert [row["neighbours"] for row in tuned.validation] == [1, None]
    assert calls[1] > calls[0]
    # item2vec: two scorings of one fit
    t2 = tune_peer("item2vec", data, evaluate,
                   [{"dim": 16, "epochs": 5, "scoring": s} for s in ("cosine", "in_out")],
                   threads=1)
    assert t2.validation[0]["fit_seconds"] == t2.validation[1]["fit_seconds"]


def test_parse_peers() -> None:
    assert parse_peers("all") == list(PEERS)
    assert parse_peers("none") == []
    assert parse_peers("ease, als") == ["ease", "als"]
    with pytest.raises(ConfigError, match="unknown peer.*foo"):
        parse_peers("ease,foo")
