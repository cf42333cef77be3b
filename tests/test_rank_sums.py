"""The seeds' co-occurrence sums at a request's candidates equal those of a dense row."""

import numpy as np
import scipy.sparse as sp

from dynplayer.rank.sums import SeedEntries, seed_sums, slots


def test_sums_at_the_candidates_are_the_dense_rows_values() -> None:
    rng = np.random.default_rng(0)
    v = 400
    m = sp.random(v, v, density=0.05, random_state=1, dtype=np.float32, format="csr")
    m.data = np.round(m.data * 8).astype(np.float32) + 1.0  # counts, so sums tie often
    for n_seeds in (1, 7, 12):
        seeds = rng.integers(0, v, n_seeds).astype(np.int64)
        weights = rng.random(n_seeds).astype(np.float32)
        targets = np.unique(rng.integers(0, v, 300)).astype(np.int64)  # a playlist's candidates
        entries = SeedEntries(m, seeds)
        for w in (None, weights):
            dense = seed_sums(m, np.array([0, n_seeds]), seeds, w)
            got = entries.at(slots(v, targets), targets.shape[0], w)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, dense[0, targets])
        last = seed_sums(m, np.array([0, min(n_seeds, 5)]), seeds[-5:])
        np.testing.assert_array_equal(entries.at(slots(v, targets), targets.shape[0], last=5),
                                      last[0, targets])


def test_group_ranks_of_one_playlist_are_the_lexsort_ranks() -> None:
    from dynplayer.rank.features import group_ranks

    rng = np.random.default_rng(3)
    score = rng.integers(0, 5, 200).astype(np.float32)  # many ties: order by position
    one = np.zeros(200, np.int64)
    order = np.lexsort((-score, one))
    want = np.empty(200, np.float32)
    want[order] = np.arange(200)
    np.testing.assert_array_equal(group_ranks(one, score), want)
    two = np.repeat([0, 1], 100)
    got = group_ranks(two, score)
    assert got.max() == 99 and (np.sort(got[:100]) == np.arange(100)).all()


def test_row_sums_at_are_the_dense_rows_values() -> None:
    from dynplayer.rank.sums import row_sums_at

    rng = np.random.default_rng(5)
    v = 300
    m = sp.random(v, v, density=0.1, random_state=2, dtype=np.float32, format="csr")
    m.data = rng.random(m.nnz).astype(np.float32)  # not integers: the order of sums matters
    m.sort_indices()
    seeds = rng.integers(0, v, 40).astype(np.int64)
    seeds[5:9] = seeds[0]  # one artist for several seeds
    targets = rng.integers(0, v, 250).astype(np.int64)
    dense = seed_sums(m, np.array([0, seeds.shape[0]]), seeds)
    np.testing.assert_array_equal(row_sums_at(m, seeds, targets), dense[0, targets])
    # each distinct row once, times how often it is a seed: the same sums up to float64's
    # rounding (the served artist feature's form)
    distinct, times = np.unique(seeds, return_counts=True)
    np.testing.assert_allclose(row_sums_at(m, distinct, targets, times), dense[0, targets],
                               rtol=1e-6)


def test_top_unordered_is_argpartitions_set() -> None:
    from dynplayer.rank.picks import top_unordered

    rng = np.random.default_rng(3)
    for n, k in ((166_363, 300), (20_000, 100), (5_000, 300), (300, 300), (50, 10)):
        scores = rng.standard_normal(n).astype(np.float32)
        scores[rng.choice(n, min(25, n // 2), replace=False)] = -np.inf  # the seeds
        want = set(np.argpartition(-scores, k - 1)[:k].tolist()) if k < n else set(range(n))
        assert set(top_unordered(scores, k).tolist()) == want
    # a library: all but a few hundred tracks banned (-inf): the finite ones, then any -inf
    scores = np.full(166_363, -np.inf, dtype=np.float32)
    allowed = rng.choice(166_363, 200, replace=False)
    scores[allowed] = rng.random(200).astype(np.float32)
    got = top_unordered(scores, 300)
    assert got.shape[0] == 300 and set(allowed.tolist()) <= set(got.tolist())


def test_candidates_without_the_seeds() -> None:
    from dynplayer.rank.picks import without

    rng = np.random.default_rng(4)
    for _ in range(500):
        cols = np.unique(rng.integers(0, 60, rng.integers(0, 40)))
        seeds = rng.integers(-3, 70, rng.integers(0, 12))  # repeats, values outside
        np.testing.assert_array_equal(without(cols, seeds), cols[~np.isin(cols, seeds)])
