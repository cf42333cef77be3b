"""The second stage under the field's protocol (rank/field.py): training splits shaped like the
challenge's categories, queries from field cases, and the field's metrics over candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynplayer.eval.field import Category, FieldCases
from dynplayer.rank.field import (
    TRAIN_SPLITS,
    case_queries,
    category_queries,
    field_candidate_metrics,
    first_distinct,
    min_length,
)


def test_first_distinct_keeps_first_appearances() -> None:
    ip, cols = first_distinct(np.array([0, 5, 7]), np.array([3, 1, 3, 2, 1, 4, 4]))
    assert ip.tolist() == [0, 3, 4] and cols.tolist() == [3, 1, 2, 4]


def test_category_queries_split_every_playlist_into_seeds_and_the_rest() -> None:
    rng = np.random.default_rng(0)
    lengths = [3, 12, 40, 130, 300]
    rows = [rng.permutation(400)[:n] for n in lengths]
    ip = np.r_[0, np.cumsum(lengths)]
    q, held, choice = category_queries(ip, np.concatenate(rows), 400, seed=1)
    for i, row in enumerate(rows):
        seeds = q.seed_cols[q.seed_indptr[i]:q.seed_indptr[i + 1]]
        rest = held[i].indices
        assert set(seeds) | set(rest) == set(row) and not set(seeds) & set(rest)
        kind, n = TRAIN_SPLITS[choice[i]]
        assert len(row) >= min_length(kind, n)
        if kind == "first":
            assert seeds.tolist() == row[:n].tolist()
        # seeds keep playlist order
        pos = {t: j for j, t in enumerate(row.tolist())}
        assert [pos[t] for t in seeds.tolist()] == sorted(pos[t] for t in seeds.tolist())
    assert TRAIN_SPLITS[choice[0]][0] == "half"  # 3 tracks: too short for any other split


def test_case_queries_keep_cases_with_a_known_seed_and_count_every_truth_track() -> None:
    # corpus tracks 0..9; the vocabulary holds 2, 3, 5, 7 (rows 0..3)
    col_of = np.full(10, -1)
    col_of[[2, 3, 5, 7]] = np.arange(4)
    cases = FieldCases((Category("x", 2, False),), np.arange(3), ["a", "b", "c"],
                       np.zeros(3, np.int64), [None] * 3, np.array([0, 2, 4, 5]),
                       np.array([2, 9, 8, 9, 7]), np.array([0, 3, 5, 6]),
                       np.array([3, 1, 5, 0, 2, 3]))
    keep, q, held, n_rel = case_queries(cases, col_of, 4)
    assert keep.tolist() == [0, 2]  # case 1's seeds (8, 9) are both unknown
    assert q.seed_cols.tolist() == [0, 3] and q.seed_indptr.tolist() == [0, 1, 2]
    assert n_rel.tolist() == [3, 1]  # |G| counts tracks outside the vocabulary too
    assert held[0].indices.tolist() == [1, 2] and held[1].indices.tolist() == [1]


def test_field_candidate_metrics_by_hand() -> None:
    # one playlist, |G| = 4, two of them candidates; candidate order by score: hit, miss, hit
    rows = np.zeros(3, dtype=np.int64)
    y = np.array([1.0, 0.0, 1.0])
    scores = np.array([0.9, 0.5, 0.1])
    m = field_candidate_metrics(rows, y, np.array([4]), scores)
    idcg = sum(1 / math.log2(i + 2) for i in range(4))
    assert m["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert m["r_precision"] == pytest.approx(2 / 4)
    assert m["recall@10"] == pytest.approx(2 / 4)
