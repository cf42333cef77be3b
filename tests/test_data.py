"""Neighbours, selection, split, genre labels, stats and the synthetic generator."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dynplayer import cli
from dynplayer.config import DataConfig
from dynplayer.data.cooccurrence import cooccurrence_matrix, neighbour_counts, select_tracks
from dynplayer.data.corpus import TEST, TRAIN, VAL, Corpus, load_corpus
from dynplayer.data.genres import assign_genre_labels, attach_genres, load_artist_genres
from dynplayer.data.prepare import derive
from dynplayer.data.split import hold_out, split_playlists
from dynplayer.data.synthetic import SyntheticSpec, generate, planted_groups

FIX = Path(__file__).parent / "fixtures" / "data"


def brute_force_neighbours(playlists: list[list[int]], n_tracks: int, window: int) -> np.ndarray:
    """Reference: for every position, the other tracks within `window` positions, as sets."""
    nbrs: list[set[int]] = [set() for _ in range(n_tracks)]
    for tracks in playlists:
        for i, t in enumerate(tracks):
            for j in range(max(0, i - window), min(len(tracks), i + window + 1)):
                if tracks[j] != t:
                    nbrs[t].add(tracks[j])
    return np.array([len(s) for s in nbrs], dtype=np.int64)


def as_occurrences(playlists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    occ_playlist = np.repeat(np.arange(len(playlists)), [len(p) for p in playlists])
    occ_track = np.concatenate([np.asarray(p) for p in playlists])
    return occ_playlist.astype(np.int32), occ_track.astype(np.int32)


def test_neighbours_hand_computed() -> None:
    # window 2. Playlist boundaries must not link 4 (end of p0) with 5 (start of p1); the repeat
    # of 0 in p0 and the self-pair 3,3 in p1 must not count.
    playlists = [[0, 1, 2, 0, 4], [5, 3, 3, 1]]
    pl, tr = as_occurrences(playlists)
    got = neighbour_counts(pl, tr, 6, window=2)
    # 0: {1,2,4}; 1: {0,2} in p0 + {3} in p1 (5 is 3 positions away); 2: {0,1,4}; 3: {5,1};
    # 4: {2,0}; 5: {3}
    assert got.tolist() == [3, 3, 3, 2, 2, 1]
    assert got.tolist() == brute_force_neighbours(playlists, 6, 2).tolist()


@pytest.mark.parametrize("window", [1, 3, 10])
@pytest.mark.parametrize("max_pairs", [10**9, 50, 7])
def test_neighbours_match_brute_force(window: int, max_pairs: int) -> None:
    rng = np.random.default_rng(window * 100 + max_pairs % 97)
    n_tracks = 60
    # Short and long playlists, popular tracks repeated within a playlist, unused track ids.
    playlists = [list(rng.zipf(1.3, size=int(rng.integers(1, 30))) % (n_tracks - 5))
                 for _ in range(80)]
    pl, tr = as_occurrences(playlists)
    got = neighbour_counts(pl, tr, n_tracks, window, max_pairs_in_memory=max_pairs)
    assert np.array_equal(got, brute_force_neighbours(playlists, n_tracks, window))
    mat = cooccurrence_matrix(pl, tr, n_tracks, window)
    assert np.array_equal(np.diff(mat.indptr), got)


def test_neighbours_reject_unsorted_occurrences() -> None:
    with pytest.raises(ValueError, match="sorted"):
        neighbour_counts(np.array([1, 0]), np.array([0, 1]), 2)


def test_select_tracks_fraction_and_minimum() -> None:
    nb = np.array([5, 9, 9, 1, 0, 7, 9, 3, 2, 4])
    assert np.flatnonzero(select_tracks(nb, fraction=0.2)).tolist() == [1, 2]  # tie: low index
    assert np.flatnonzero(select_tracks(nb, fraction=0.25)).tolist() == [1, 2, 6]  # ceil(2.5)
    assert np.flatnonzero(select_tracks(nb, fraction=None, min_neighbours=5)).tolist() == [
        0, 1, 2, 5, 6]
    with pytest.raises(ValueError):
        select_tracks(nb, fraction=0.0)


def test_split_is_seeded() -> None:
    a = split_playlists(1000, val_fraction=0.1, test_fraction=0.15, seed=3)
    assert np.array_equal(a, split_playlists(1000, val_fraction=0.1, test_fraction=0.15, seed=3))
    b = split_playlists(1000, val_fraction=0.1, test_fraction=0.15, seed=4)
    assert not np.array_equal(a, b)
    assert [(a == s).sum() for s in (TRAIN, VAL, TEST)] == [750, 100, 150]


def test_hold_out_rule() -> None:
    # Playlists: 0 train (4 selected), 1 val (4 selected + 1 unselected), 2 test (1 selected),
    # 3 test (3 selected).
    occ_playlist = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 3, 3, 3])
    occ_track = np.array([0, 1, 2, 3, 0, 1, 9, 2, 3, 4, 5, 6, 7])
    split = np.array([TRAIN, VAL, TEST, TEST], dtype=np.int8)
    selected = np.ones(10, dtype=bool)
    selected[9] = False
    h = hold_out(occ_playlist, occ_track, split, selected, fraction=0.5, seed=0)
    assert not h[:4].any()  # train: nothing held out
    assert h[4:9].sum() == 2 and not h[6]  # half of 4 selected; the unselected never
    assert not h[9]  # a single selected track stays visible
    assert h[10:].sum() == 2  # round(1.5) = 2, and at least one stays visible
    again = hold_out(occ_playlist, occ_track, split, selected, fraction=0.5, seed=0)
    assert np.array_equal(h, again)
    assert not hold_out(occ_playlist, occ_track, split, selected, fraction=0.0, seed=0).any()


def test_derive_is_deterministic_and_counts_survivors() -> None:
    spec = SyntheticSpec(n_playlists=400, n_tracks=300, seed=1)
    cfg = DataConfig(select="top_share", select_fraction=0.2, seed=5)
    a, b = derive(generate(spec), cfg), derive(generate(spec), cfg)
    assert a.split is not None and b.split is not None and a.heldout is not None
    assert np.array_equal(a.split, b.split) and np.array_equal(a.heldout, b.heldout)
    c = derive(generate(spec), DataConfig(select="top_share", select_fraction=0.2, seed=6))
    assert c.split is not None and not np.array_equal(a.split, c.split)
    counts = a.manifest["counts"]
    assert a.selected is not None
    assert counts["selected_tracks"] == int(np.ceil(0.2 * a.n_tracks)) == int(a.selected.sum())
    sel_occ = a.selected[a.occ_track]
    assert counts["selected_occurrences"] == int(sel_occ.sum())
    assert counts["playlists_with_selected_tracks"] == len(set(a.occ_playlist[sel_occ]))


def test_synthetic_planted_structure() -> None:
    c = generate(SyntheticSpec(n_playlists=500, n_tracks=400, seed=2, noise=0.0,
                               mood_affinity=1.0))
    groups = planted_groups(c)
    # Without noise every playlist stays inside one (genre, mood) cell, and its caption names
    # the cell's genre and mood.
    ptr = c.playlist_indptr
    for p in range(0, c.n_playlists, 25):
        cells = set(groups[c.occ_track[ptr[p]:ptr[p + 1]]].tolist())
        assert len(cells) == 1
        assert c.tags[p][0] in c.track_names[c.occ_track[ptr[p]]]
    # Artists carry their track's genre label.
    genre_of_artist: dict[str | None, set[str]] = {}
    for a, g in zip(c.artists, c.track_genres, strict=True):
        genre_of_artist.setdefault(a, set()).update(g)
    assert all(len(g) == 1 for g in genre_of_artist.values())
    big = generate(SyntheticSpec(n_playlists=20_000, n_tracks=5_000, mean_length=66, seed=0))
    assert abs(big.n_occurrences / big.n_playlists - 66) < 1.0


def test_genre_rule(tmp_path: Path) -> None:
    csv_path = tmp_path / "data_w_genres.csv.gz"
    rows = [
        "genres,artists,popularity",
        '"[\'dance pop\', \'pop\']",Britney  Spears,80',
        "pop,Missy Elliott,70",
        '"[\'rock\', \'pop\']",Queen,90',
        "[],Nobody,1",
        "\"['children\\'s music']\",Kids Band,5",
    ]
    csv_path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    mapping = load_artist_genres(csv_path)
    assert mapping["britney spears"] == ["dance pop", "pop"]  # case and spaces normalised
    assert "nobody" not in mapping
    corpus = Corpus(
        pids=["p"], names=["x"], descriptions=[""], tags=[[]], sources=["t"],
        occ_playlist=np.zeros(6, np.int32), occ_position=np.arange(6, dtype=np.int32),
        occ_track=np.arange(6, dtype=np.int32),
        track_ids=[f"t{i}" for i in range(6)], track_names=[None] * 6,
        artists=["BRITNEY SPEARS", "missy elliott", "Queen", "Queen", "Nobody", None],
        albums=[None] * 6, track_genres=[[] for _ in range(6)])
    assert attach_genres(corpus, mapping) == 4
    corpus.selected = np.ones(6, dtype=bool)
    # pop is on 4 selected tracks, rock on 2, dance pop on 1: with 2 classes, pop and rock.
    # Queen has rock and pop: the more frequent class (pop) wins; Britney's dance pop is not a
    # class, so she is pop too.
    assign_genre_labels(corpus, n_classes=2)
    assert corpus.genre_classes == ["pop", "rock"]
    assert corpus.genre_label is not None
    assert corpus.genre_label.tolist() == [0, 0, 0, 0, -1, -1]
    assign_genre_labels(corpus, n_classes=1)
    assert corpus.genre_label.tolist() == [0, 0, 0, 0, -1, -1]
    corpus.track_genres[2] = ["rock"]
    assign_genre_labels(corpus, n_classes=2)
    assert corpus.genre_classes == ["pop", "rock"] and corpus.genre_label.tolist()[2] == 1


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["dynplayer", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code in (0, None)


def test_stats_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "c"
    run_cli(monkeypatch, "prepare", str(FIX / "mpd_full"), str(FIX / "mpd_reduced"), "--out",
            str(out), "--set", "select=top_share", "--set", "select_fraction=0.4",
            "--set", "window=1")
    capsys.readouterr()
    run_cli(monkeypatch, "stats", str(out), "--json")
    stats = json.loads(capsys.readouterr().out)
    assert {k: stats[k] for k in ("playlists", "occurrences", "tracks", "selected_tracks")} == {
        "playlists": 4, "occurrences": 12, "tracks": 5, "selected_tracks": 2}
    # window 1: A-B, B-C, C-A | D-B, B-E | E-D, D-E | C-A -> A{B,C} B{A,C,D,E} C{A,B} D{B,E}
    # E{B,D}: B has 4 neighbours, the others 2; top 40% = B and A (tie broken by index).
    corpus = load_corpus(out)
    assert corpus.neighbour_count is not None and corpus.selected is not None
    assert corpus.neighbour_count.tolist() == [2, 4, 2, 2, 2]
    assert np.flatnonzero(corpus.selected).tolist() == [0, 1]
    assert stats["caption_coverage"]["description"] == 0.5
    assert stats["tracks_in_5_or_more_playlists"] == 0
    assert stats["playlist_length"]["max"] == 4
    for png in ("popularity", "neighbours"):
        assert Path(stats["plots"][png]).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.realdata
def test_real_prepare_and_stats(shared_data: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "mpd"
    run_cli(monkeypatch, "prepare", str(shared_data / "mpd"), "--out", str(out),
            "--artist-genres", str(shared_data / "artist-genres" / "data_w_genres.csv.gz"))
    capsys.readouterr()
    run_cli(monkeypatch, "stats", str(out), "--json", "--plots", str(tmp_path / "plots"))
    stats = json.loads(capsys.readouterr().out)
    assert {k: stats[k] for k in ("playlists", "occurrences", "tracks", "selected_tracks",
                                  "head_tracks", "train_playlists", "val_playlists",
                                  "test_playlists")} == {
        "playlists": 7071, "occurrences": 696957, "tracks": 201730,
        "selected_tracks": 166363,  # in >= 1 of the 5,303 training playlists (the default)
        "head_tracks": 10087,  # ceil(5% of 201,730): the seed protocol's vocabulary
        "train_playlists": 5303, "val_playlists": 707, "test_playlists": 1061}
    assert stats["caption_coverage"]["name"] == 1.0
    assert stats["caption_coverage"]["description"] == round(702 / 7071, 4)
    corpus = load_corpus(out)
    assert len(corpus.genre_classes) == 51 and corpus.genre_classes[0] == "pop"
    assert corpus.manifest["artist_genre_matches"] > 100_000
    # About 21,000 of the 23,939 frequent tracks match an artist (../shared/data/README.md).
    frequent = corpus.occurrence_count >= 5
    matched = np.array([bool(g) for g in corpus.track_genres])
    assert 20_000 < int((frequent & matched).sum()) < 22_500


def test_save_corpus_failing_mid_write_keeps_the_old_one(tmp_path: Path) -> None:
    from dynplayer.data.corpus import save_corpus

    good = derive(generate(SyntheticSpec(n_playlists=50, n_tracks=40, seed=0)),
                  DataConfig(select="top_share", select_fraction=1.0))
    out = tmp_path / "corpus"
    save_corpus(good, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = derive(generate(SyntheticSpec(n_playlists=60, n_tracks=40, seed=1)),
                    DataConfig(select="top_share", select_fraction=1.0))
    # The three Parquet files are written, then the manifest fails to serialise.
    broken.manifest["not_json"] = {1, 2}
    with pytest.raises(TypeError, match="not JSON serializable"):
        save_corpus(broken, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no temporary debris
    assert load_corpus(out).n_playlists == 50
