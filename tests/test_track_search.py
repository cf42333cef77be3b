"""Track lookup by name or artist (`TrackMatcher`): case-, accent- and typo-tolerant, and the
same tracks in the same order from the exact and the pgvector backend and the API route."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from dynplayer.serve.recommender import ExactRecommender, PgvectorRecommender, Recommender
from dynplayer.serve.track_search import TrackMatcher, fold
from dynplayer.store.catalog import Catalog

NAMES = [("Halo", "Beyoncé"), ("Crazy In Love", "Beyoncé"), ("La vie en rose", "Édith Piaf"),
         ("La Vie En Rose - Single Version", "Louis Armstrong"), ("Hoppípolla", "Sigur Rós"),
         ("Beyond The Sea", "Bobby Darin"), ("Don't Know Why", "Norah Jones"),
         ("좋은 날", "아이유"), ("Déjà Vu", "Beyoncé")]
POP = [50, 90, 40, 60, 10, 30, 70, 20, 5]


def test_fold_drops_case_accents_and_punctuation() -> None:
    assert fold("Beyoncé") == "beyonce"
    assert fold("  Déjà   Vu! ") == "deja vu"
    assert fold("Don't Know Why") == "don t know why"
    assert fold("아이유") == fold("아이유") != ""  # other scripts are transliterated, not lost
    assert fold(None) == ""


@pytest.fixture(scope="module")
def matcher() -> TrackMatcher:
    return TrackMatcher([n for n, _ in NAMES], [a for _, a in NAMES], POP)


@pytest.mark.parametrize("q, first", [
    ("beyonce", [1, 0, 8]),  # every Beyoncé track, most played first
    ("BEYONCÉ", [1, 0, 8]),
    ("deja vu", [8]),
    ("la vie en rose", [3, 2]),
    ("edith piaf", [2]),
    ("halo beyonce", [0]),  # words in another order than the name's
    ("beyonse halo", [0]),  # a typo, and the other order
    ("la vie en rsoe", [3, 2]),  # a typo in a phrase
    ("norha jones", [6]),
    ("sigur ros", [4]),
    ("아이유", [7]),
])
def test_queries_find_their_tracks(matcher: TrackMatcher, q: str, first: list[int]) -> None:
    assert matcher.search(q, limit=10)[:len(first)] == first


def test_no_match_and_punctuation(matcher: TrackMatcher) -> None:
    assert matcher.search("%", 5) == [] and matcher.search("_", 5) == []
    assert matcher.search("zzzzqqq", 5) == []
    assert matcher.search("xyz", 5) == []  # short: substring only, no fuzzy guesses
    assert matcher.search("beyonce", 2) == [1, 0]  # the limit holds


# ---- over SCAN_MAX strings: the word index, forced on here by scan_max=0 ---------------------

QUERIES = ["beyonce", "BEYONCÉ", "deja vu", "la vie en rose", "edith piaf", "halo beyonce",
           "beyonse halo", "la vie en rsoe", "norha jones", "sigur ros", "아이유", "%", "_",
           "zzzzqqq", "xyz", "e", "be", "la vie", "vie en", "ie en ro", "n ro", "a"]


def test_the_index_answers_as_the_scan_on_the_small_catalogue(matcher: TrackMatcher) -> None:
    indexed = TrackMatcher([n for n, _ in NAMES], [a for _, a in NAMES], POP, scan_max=0)
    assert matcher.word_index() is None and indexed.word_index() is not None
    for q in QUERIES:
        for limit in (1, 2, 10):
            assert indexed.search(q, limit) == matcher.search(q, limit), (q, limit)


SYLLABLES = ["ka", "lo", "mi", "ren", "sol", "da", "vi", "to", "ber", "na", "qu", "el", "ro",
             "fa", "gun", "tri", "ze", "po", "ly", "dex", "an", "or"]
PLANTED = [("La vie en rose", "Édith Piaf"), ("Halo", "Beyoncé"),
           ("Mr. Brightside", "The Killers"), ("Bohemian Rhapsody", "Queen"),
           ("Wonderwall", "Oasis"), ("Dancing Queen", "ABBA"), ("Hey Jude", "The Beatles")]


@pytest.fixture(scope="module")
def generated() -> tuple[list[str], list[str], list[int]]:
    """3,000 generated "name artist" pairs (word-like, Zipf-frequent words, two or more words
    each) with the planted songs among them, a few with a cover by another artist."""
    import random

    rng = random.Random(7)
    words = sorted({"".join(rng.choices(SYLLABLES, k=rng.randint(2, 3))) for _ in range(500)})
    weights = [1 / (i + 1) for i in range(len(words))]
    names = [" ".join(rng.choices(words, weights, k=rng.randint(2, 4))).title()
             for _ in range(3000)]
    artists = [" ".join(rng.choices(words, weights, k=rng.randint(1, 2))).title()
               for _ in range(3000)]
    pop = [rng.randint(0, 100) for _ in range(3000)]
    for i, (name, artist) in enumerate(PLANTED):
        names[100 * i + 7], artists[100 * i + 7], pop[100 * i + 7] = name, artist, 60
        names[100 * i + 8], pop[100 * i + 8] = name, 5  # a cover, played less
    return names, artists, pop


def test_typos_find_the_full_scans_first_hit_among_candidates(
        generated: tuple[list[str], list[str], list[int]]) -> None:
    full = TrackMatcher(*generated)
    few = TrackMatcher(*generated, scan_max=0, fuzzy_candidates=50)
    for q, row in [("la vie en rsoe", 7), ("beyonse halo", 107), ("mr brgihtside", 207),
                   ("bohemain rhapsody", 307), ("wondrewall", 407), ("dancing qeuen abba", 507),
                   ("the beatels hey jude", 607), ("mr brgiht", 207), ("wondre", 407)]:
        first = full.search(q, 10)[:1]
        assert first == [row] and few.search(q, 10)[:1] == first, q


def test_typos_of_generated_names_find_the_full_scans_first_hit(
        generated: tuple[list[str], list[str], list[int]]) -> None:
    """Two letters swapped in the middle of a name (as `bench serve` makes its typos). The
    generated words share syllables, so many strings score alike: a third are candidates."""
    full = TrackMatcher(*generated)
    indexed = TrackMatcher(*generated, scan_max=0, fuzzy_candidates=1000)
    names = generated[0]
    compared = 0
    for row in range(0, 3000, 37):
        q = names[row]
        i = len(q) // 2
        q = q[:i - 1] + q[i] + q[i - 1] + q[i + 1:]
        first = full.search(q, 10)[:1]
        if first and not all(w in fold(names[first[0]] + " " + generated[1][first[0]])
                             for w in fold(q).split()):  # a near miss
            compared += 1
            assert indexed.search(q, 10)[:1] == first, q
    assert compared > 40


def test_the_index_finds_what_the_scan_finds(
        generated: tuple[list[str], list[str], list[int]]) -> None:
    """Where a query's words are found (a phrase, a word's part, all words in any order), the
    index's answer is the full scan's: every rank, in the same order."""
    import random

    full, indexed = TrackMatcher(*generated), TrackMatcher(*generated, scan_max=0)
    texts = [fold(f"{n} {a}") for n, a in zip(*generated[:2], strict=True)]
    rng = random.Random(3)
    for _ in range(400):
        text = texts[rng.randrange(len(texts))]
        start = rng.randrange(len(text))
        q = text[start:start + rng.randint(1, 14)]
        if rng.random() < 0.3:
            q = " ".join(reversed(q.split()))
        limit = rng.choice([1, 3, 10, 50])
        assert indexed.search(q, limit) == full.search(q, limit), (q, limit)


def test_the_word_index_finds_parts_and_prefixes() -> None:
    from dynplayer.serve.word_index import WordIndex, edits1

    index = WordIndex(["la vie en rose edith piaf", "rosebud", "primrose lane", "a", ""])
    words = [index.word(i) for i in range(len(index.keys))]
    assert words == sorted(words) == ["a", "edith", "en", "la", "lane", "piaf", "primrose",
                                      "rose", "rosebud", "vie"]
    for part in ["rose", "ros", "e", "a", "se", "zz"]:  # numpy (short) and re (longer) alike
        assert [words[i] for i in index.containing(part)] == [w for w in words if part in w]
        assert [words[i] for i in index.containing(part, at_end=True)] == \
            [w for w in words if w.endswith(part)]
    lo, hi = index.prefixed(["rose", "ro", "la", "x"])
    assert [words[a:b] for a, b in zip(lo, hi, strict=True)] == \
        [["rose", "rosebud"], ["rose", "rosebud"], ["la", "lane"], []]
    assert index.find(["rose", "ros", "vie"]) == [7, -1, 9]
    assert index.ranks(index.containing("rose")).tolist() == [0, 1, 2]
    assert "rose" in edits1("rsoe") and "beyonce" in edits1("beyonse")


# ---- both backends answer alike --------------------------------------------------------------

@pytest.fixture(scope="module")
def named_catalog(serve_catalog: Catalog) -> Catalog:
    """The serving test catalog with a few tracks renamed to accented names."""
    names, artists = list(serve_catalog.names), list(serve_catalog.artists)
    pop = np.array(serve_catalog.popularity, copy=True)
    for i, ((n, a), p) in enumerate(zip(NAMES, POP, strict=True)):
        names[i], artists[i], pop[i] = n, a, 10_000 + p
    return dataclasses.replace(serve_catalog, version="named-catalog", names=names,
                               artists=artists, popularity=pop)


@pytest.fixture(scope="module")
def backends(new_database: object, named_catalog: Catalog
             ) -> Iterator[tuple[Recommender, Recommender, str]]:
    from dynplayer.store.db import index_catalog, open_pool

    url = new_database("track_search")  # type: ignore[operator]
    index_catalog(url, named_catalog)
    pool = open_pool(url, min_size=1, max_size=2)
    try:
        yield ExactRecommender(named_catalog), PgvectorRecommender(pool, named_catalog.version), url
    finally:
        pool.close()


@pytest.mark.db
@pytest.mark.parametrize("q", ["beyonce", "Beyoncé", "BEYONCE", "deja vu", "la vie en rose",
                               "beyonse halo", "piaf", "Artist 1", "track 12", "jazz", "아이유"])
def test_exact_and_pgvector_find_the_same(backends: tuple[Recommender, Recommender, str],
                                          named_catalog: Catalog, q: str) -> None:
    exact, pgvec, _ = backends
    a, b = exact.search_tracks(q, limit=10), pgvec.search_tracks(q, limit=10)
    assert a == b and a, q


@pytest.mark.db
def test_api_route_is_accent_insensitive(backends: tuple[Recommender, Recommender, str],
                                         named_catalog: Catalog) -> None:
    """`GET /v1/tracks/search?q=beyonce` (the web page's autocomplete) finds Beyoncé's songs:
    it missed them (ILIKE is accent-sensitive)."""
    from dynplayer.serve.app import create_app
    from dynplayer.settings import Settings

    _, pgvec, _ = backends
    app = create_app(Settings(backend="pgvector", version_poll=0), recommender=pgvec)
    with TestClient(app) as client:
        r = client.get("/v1/tracks/search", params={"q": "beyonce"})
        assert r.status_code == 200, r.text
        assert [t["name"] for t in r.json()["tracks"]] == ["Crazy In Love", "Halo", "Déjà Vu"]


@pytest.mark.db
def test_api_route_says_when_it_found_only_near_misses(
        backends: tuple[Recommender, Recommender, str], named_catalog: Catalog) -> None:
    """An unknown song showed near misses as if they were matches: the answer now says
    `near_misses` (the page prints "no exact match"), on both backends."""
    from dynplayer.serve.app import create_app
    from dynplayer.settings import Settings

    for rec in backends[:2]:
        app = create_app(Settings(backend="pgvector", version_poll=0), recommender=rec)
        with TestClient(app) as client:
            near = client.get("/v1/tracks/search", params={"q": "beyonse halo"}).json()
            exact = client.get("/v1/tracks/search", params={"q": "beyonce"}).json()
            none = client.get("/v1/tracks/search", params={"q": "zzzzqqqq"}).json()
        assert near["near_misses"] is True and near["tracks"][0]["name"] == "Halo"
        assert exact["near_misses"] is False and exact["tracks"]
        assert none == {"q": "zzzzqqqq", "tracks": [], "near_misses": False}


def test_fold_many_folds_as_fold_does() -> None:
    """The matcher folds a catalogue in one pass; every name must fold as `fold` folds it."""
    from dynplayer.names import fold, fold_many

    texts = ["Beyoncé", "아이유", "Hey Jude - Remastered 2015", "AC/DC", "  ", "", None,
             "Line\nBreak", "Sigur Rós — Hoppípolla", "ＦＵＬＬ", "İstanbul", "straße",
             "x\u0301y", "日本語", "Tab\tchar", "MiXeD CaSe!!", "a\rb", "\u2028sep"]
    assert fold_many(texts) == [fold(t) for t in texts]
    assert fold_many([]) == []
