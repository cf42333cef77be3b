"""The field's protocol (eval/field.py): metrics against values worked out by hand, categories
as the challenge builds them, and the listers' contracts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynplayer.config import DataConfig
from dynplayer.data.corpus import TEST, TRAIN, VAL
from dynplayer.data.prepare import derive
from dynplayer.data.synthetic import SyntheticSpec, generate
from dynplayer.eval.field import (
    CHALLENGE,
    FIRST_N,
    NO_HIT_CLICKS,
    Category,
    FieldCases,
    assign_categories,
    field_cases,
    field_metrics,
    summarize,
)
from dynplayer.eval.field_run import catalogue, popularity_lister, title_lister


def _cases(truths: list[list[int]], seeds: list[list[int]] | None = None) -> FieldCases:
    seeds = seeds or [[] for _ in truths]

    def pack(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        ip = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=ip[1:])
        return ip, np.array([t for r in rows for t in r], dtype=np.int64)

    s_ip, s_tr = pack(seeds)
    t_ip, t_tr = pack(truths)
    n = len(truths)
    cat = (Category("x", 0, True),)
    return FieldCases(cat, np.arange(n), [str(i) for i in range(n)], np.zeros(n, np.int64),
                      [None] * n, s_ip, s_tr, t_ip, t_tr)


def test_metrics_match_values_worked_out_by_hand() -> None:
    # 10 tracks; artists: 0,1 -> A(0); 2,3 -> B(1); 4 -> C(2); 5..9 -> D(3); track 9 unknown
    artist = np.array([0, 0, 1, 1, 2, 3, 3, 3, 3, -1])
    # case 0: truth {0, 2, 4} (|G| = 3); recs 1 (artist A, a truth artist), 2 (hit), 5, 0 (hit)
    # case 1: truth {9}; recs 1, 2: no hit
    cases = _cases([[0, 2, 4], [9]])
    recs = np.array([[1, 2, 5, 0, -1], [1, 2, -1, -1, -1]])
    m = field_metrics(recs, cases, artist)
    # R-precision of case 0: the first 3 recs are 1, 2, 5: one hit (2); unmatched artists
    # {A, D} intersect the truth artists {A, B, C} = {A}: (1 + 0.25) / 3
    assert m["r_precision"][0] == pytest.approx(1.25 / 3)
    assert m["r_precision_tracks"][0] == pytest.approx(1 / 3)
    # NDCG: hits at ranks 2 and 4 over the ideal of 3 hits
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"][0] == pytest.approx(dcg / idcg)
    assert m["clicks"].tolist() == [0.0, float(NO_HIT_CLICKS)]
    assert m["recall@5"].tolist() == pytest.approx([2 / 3, 0.0])
    # case 1: the unknown artist of track 9 earns nothing; rec 1 is not a truth artist
    assert m["r_precision"][1] == 0.0 and m["ndcg"][1] == 0.0


def test_clicks_count_pages_of_ten() -> None:
    artist = np.zeros(30, dtype=np.int64)
    cases = _cases([[25]])
    recs = np.arange(30)[None, :]  # the hit at rank 26 (1-based) -> page 2 (0-based)
    assert field_metrics(recs, cases, artist)["clicks"].tolist() == [2.0]


def test_tail_figures_and_coverage() -> None:
    artist = np.arange(6)
    head = np.array([True, True, False, False, False, False])
    cases = _cases([[0, 2], [3]])
    recs = np.array([[0, 2, 4], [1, 5, 3]])
    pc = field_metrics(recs, cases, artist, head)
    s = summarize(pc, recs, cases, n_catalogue=10)
    # tail recs: 2, 4 | 5, 3 -> 4 of 6 slots; tail hits: 2 | 3 -> 2 of 4 hits... of 3 hits
    assert s["tail_precision"] == pytest.approx(2 / 4)
    assert s["tail_hit_share"] == pytest.approx(2 / 3)
    assert s["coverage"] == pytest.approx(6 / 10)


def test_categories_fill_strictest_first_and_respect_names_and_lengths() -> None:
    lengths = np.array([200] * 30 + [40] * 30 + [8] * 40)
    has_name = np.ones(100, dtype=bool)
    has_name[-5:] = False
    cat = assign_categories(lengths, has_name, CHALLENGE, seed=0)
    # The 5 nameless 8-track playlists qualify for nothing: every category without a title
    # needs at least 5 seeds + 5 to predict.
    assert Category("first 5", 5, False).min_tracks() == 10
    assert (cat[-5:] == -1).all() and (cat[:-5] >= 0).all()
    for p, j in enumerate(cat[:-5]):
        c = CHALLENGE[j]
        assert lengths[p] >= c.min_tracks() and (has_name[p] or not c.title)
    counts = np.bincount(cat[cat >= 0], minlength=len(CHALLENGE))
    # 10 per category where enough playlists qualify: the two 100-seed ones take 10 of the
    # 30 long playlists each, and the rest balance over what each playlist qualifies for
    assert counts[8] == counts[9] == 10
    assert counts.max() - counts[counts > 0].min() <= 10


@pytest.fixture(scope="module")
def corpus():  # type: ignore[no-untyped-def]
    c = generate(SyntheticSpec(n_playlists=500, n_tracks=300, seed=4))
    derive(c, DataConfig(seed=4))
    return c


def test_cases_hold_every_other_track_including_unknown_ones(corpus) -> None:  # type: ignore[no-untyped-def]
    cases = field_cases(corpus, TEST, CHALLENGE, seed=0)
    assert cases.n > 0 and cases.n + cases.unqualified == corpus.playlists_in(TEST).shape[0]
    indptr = corpus.playlist_indptr
    for i in range(cases.n):
        p = cases.playlist_idx[i]
        tracks = set(corpus.occ_track[indptr[p]:indptr[p + 1]].tolist())
        seeds, truth = cases.seeds(i), cases.truth(i)
        c = cases.categories[cases.category[i]]
        assert len(seeds) == c.n_seeds and not set(seeds) & set(truth)
        assert set(seeds) | set(truth) == tracks  # every track, known to a model or not
        assert (cases.names[i] is not None) == c.title
    # the first-n protocol: the first n distinct tracks in playlist order
    first = field_cases(corpus, VAL, FIRST_N, seed=1)
    p = first.playlist_idx[0]
    occ = slice(indptr[p], indptr[p + 1])
    order = corpus.occ_track[occ][np.argsort(corpus.occ_position[occ], kind="stable")]
    distinct = list(dict.fromkeys(order.tolist()))
    n = first.categories[first.category[0]].n_seeds
    assert first.seeds(0).tolist() == distinct[:n]


def test_a_category_no_playlist_qualifies_for_is_a_stated_skip(corpus) -> None:  # type: ignore[no-untyped-def]
    huge = (Category("first 5", 5, False), Category("first 1000", 1000, False))
    cases = field_cases(corpus, TEST, huge, seed=0)
    assert "first 1000" in cases.skipped and "1250 distinct tracks" in cases.skipped["first 1000"]
    assert set(cases.category.tolist()) == {0}


def test_listers_never_recommend_seeds_or_tracks_outside_the_catalogue(corpus) -> None:  # type: ignore[no-untyped-def]
    cat = catalogue(corpus)
    train = corpus.playlists_in(TRAIN)
    assert set(cat.tolist()) == set(corpus.occ_track[np.isin(corpus.occ_playlist,
                                                             train)].tolist())
    cases = field_cases(corpus, TEST, CHALLENGE, seed=0)
    pop = popularity_lister(corpus, cat)
    for lister in (pop, title_lister(corpus, pop)):
        recs = lister(cases)
        assert recs.shape == (cases.n, 500)
        for i in range(cases.n):
            r = recs[i][recs[i] >= 0]
            assert len(set(r.tolist())) == r.shape[0]
            assert not set(r.tolist()) & set(cases.seeds(i).tolist())
            assert set(r.tolist()) <= set(cat.tolist())
