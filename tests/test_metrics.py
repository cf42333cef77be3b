"""Ranking metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynplayer.eval.metrics import (
    coverage,
    exposure_gini,
    gini,
    ndcg_at_k,
    r_precision,
    recall_at_k,
)

# Three playlists, ranked lists of 4: hits per rank, and how many tracks each holds out.
HITS = np.array([[1, 0, 1, 0],   # 2 held out: hits at ranks 1 and 3
                 [0, 0, 0, 0],   # 3 held out: no hits
                 [0, 1, 0, 0]],  # 1 held out (fewer than K): hit at rank 2
                dtype=bool)
N_REL = np.array([2, 3, 1])


def test_recall_hand_computed() -> None:
    # @2: 1/min(2,2), 0/min(2,3), 1/min(2,1)
    assert recall_at_k(HITS, N_REL, 2) == pytest.approx([0.5, 0.0, 1.0])
    # @4: 2/2, 0/3, 1/1 -- the denominator is min(K, |held out|), not |held out|
    assert recall_at_k(HITS, N_REL, 4) == pytest.approx([1.0, 0.0, 1.0])
    assert recall_at_k(HITS, N_REL, 1) == pytest.approx([1.0, 0.0, 0.0])


def test_ndcg_hand_computed() -> None:
    l2, l3 = math.log2(3), math.log2(4)
    row0 = (1 + 1 / l3) / (1 + 1 / l2)  # hits at 1 and 3; ideal: 2 hits at 1 and 2
    row2 = (1 / l2) / 1.0  # one hit at rank 2; ideal DCG over min(4, 1) = 1 item
    assert ndcg_at_k(HITS, N_REL, 4) == pytest.approx([row0, 0.0, row2])
    # @1: only rank 1 counts; ideal DCG over one item = 1
    assert ndcg_at_k(HITS, N_REL, 1) == pytest.approx([1.0, 0.0, 0.0])


def test_ndcg_perfect_list_is_one() -> None:
    hits = np.array([[1, 1, 1, 0, 0]], dtype=bool)
    assert ndcg_at_k(hits, np.array([3]), 5)[0] == pytest.approx(1.0)
    assert ndcg_at_k(hits, np.array([3]), 2)[0] == pytest.approx(1.0)


def test_r_precision_hand_computed() -> None:
    # R = |held out|: row0 looks at ranks 1-2 (1 hit), row1 at 1-3 (0), row2 at rank 1 (0)
    hits_at_r = np.array([(HITS[i, : N_REL[i]]).sum() for i in range(3)])
    assert r_precision(hits_at_r, N_REL) == pytest.approx([0.5, 0.0, 0.0])


def test_no_relevant_items_scores_zero() -> None:
    hits = np.zeros((1, 3), dtype=bool)
    assert recall_at_k(hits, np.array([0]), 3)[0] == 0.0
    assert ndcg_at_k(hits, np.array([0]), 3)[0] == 0.0


def test_coverage_and_gini() -> None:
    top = np.array([[0, 1], [0, 2]])
    assert coverage(top, 5) == pytest.approx(3 / 5)
    # exposure counts [2, 1, 1, 0, 0]: sorted [0,0,1,1,2], n=5, sum=4
    # G = sum (2i - 6) x_i / (5 * 4) = ((0)(1) + (2)(1) + (4)(2)) / 20 = 10/20
    assert exposure_gini(top, 5) == pytest.approx(0.5)
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    assert gini(np.array([3, 3, 3])) == pytest.approx(0.0)
    assert gini(np.zeros(3)) == 0.0
