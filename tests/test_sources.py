"""Readers: MPD (full and reduced, gzip or not), Melon, JSON lines + track file, real data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from dynplayer.data.sources import read_corpus, sniff_format
from dynplayer.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "data"
A, B, C = "0UaMYEvWZi0ZqiDOoHU3YI", "6I9VzXrHxO9rA9A5euc8Ak", "0WqIKmW4BTrj3eJFmnCKMv"
D, E = "1AWQoqb9bSvzTjaLralEkT", "1lzr43nnXAijIGYnCT8M8H"


def playlist_tracks(corpus: object, p: int) -> list[str]:
    from dynplayer.data.corpus import Corpus

    assert isinstance(corpus, Corpus)
    ptr = corpus.playlist_indptr
    return [corpus.track_ids[t] for t in corpus.occ_track[ptr[p]:ptr[p + 1]]]


def test_mpd_full_fields_uncompressed() -> None:
    c = read_corpus([FIX / "mpd_full"])
    assert c.pids == ["0", "1"] and c.names == ["Throwbacks", "Awesome Playlist"]
    assert c.descriptions == ["", "good vibes only"]
    assert playlist_tracks(c, 0) == [A, B, C, A]  # a repeat keeps its position
    assert playlist_tracks(c, 1) == [D, B, E]
    assert c.occ_position.tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert c.track_ids == [A, B, C, D, E]
    assert c.albums[c.track_ids.index(C)] == "Dangerously In Love"
    assert c.artists[c.track_ids.index(C)] == "Beyoncé"
    assert c.caption(1) == "awesome playlist good vibes only"
    assert c.sources == ["mpd", "mpd"]


def test_mpd_reduced_gzip_and_mixed_directories() -> None:
    c = read_corpus([FIX / "mpd_reduced"])
    assert c.pids == ["2", "3"]
    assert playlist_tracks(c, 0) == [E, D, E]
    assert c.track_names[c.track_ids.index(E)] == "Yeah!" and c.albums == [None] * 4
    assert c.caption(1) == "road trip 🚗 windows down"
    both = read_corpus([FIX / "mpd_full", FIX / "mpd_reduced" / "sample_reduced_fields.json.gz"])
    assert both.n_playlists == 4 and both.n_occurrences == 12 and both.n_tracks == 5
    # The full fields of the first file give the album even for the reduced occurrences.
    assert both.albums[both.track_ids.index(E)] == "Confessions"


def test_melon_native() -> None:
    c = read_corpus([FIX / "melon" / "sample_melon.json"])
    assert c.pids == ["61281", "10532", "76951"]
    assert c.names == ["여행같은 음악", "", "추억의 노래"]
    assert c.tags[0] == ["운동", "힙합"]
    assert playlist_tracks(c, 0) == ["525514", "129701", "383374", "562083"]
    assert c.n_tracks == 7 and c.n_occurrences == 9
    assert c.caption(1) == "잔잔한"  # no title: the tags are the caption
    assert c.track_names == [None] * 7


def test_jsonl_with_track_file() -> None:
    c = read_corpus([FIX / "jsonl" / "playlists.jsonl"], tracks=[FIX / "jsonl" / "tracks.jsonl"])
    assert c.pids == ["a1", "7", "a3"]  # integer pids become strings; extra fields ignored
    assert playlist_tracks(c, 2) == ["t2", "t5", "t1"]
    assert "t9" not in c.track_ids  # only in the track file: dropped
    t1, t2, t4 = (c.track_ids.index(x) for x in ("t1", "t2", "t4"))
    assert c.track_names[t1] == "Gymnopédie No.1" and c.track_genres[t1] == ["classical",
                                                                            "impressionism"]
    assert c.artists[t2] == "Nils Frahm" and c.track_names[t2] is None and c.track_genres[t2] == []
    assert c.albums[t4] == "Spaces"
    assert c.descriptions == ["", "no title here", ""]
    assert c.caption(0) == "sunday morning chill"


def test_jsonl_gzip_and_sniffing(tmp_path: Path) -> None:
    gz = tmp_path / "playlists.data"  # no telling suffix: content decides
    gz.write_bytes(gzip.compress((FIX / "jsonl" / "playlists.jsonl").read_bytes()))
    assert sniff_format(gz) == "jsonl"
    assert read_corpus([gz]).n_occurrences == 8
    assert sniff_format(FIX / "melon" / "sample_melon.json") == "melon"
    # The committed fixture has a neutral name, so its content decides; a copy named like an MPD
    # slice checks the name rule too.
    assert sniff_format(FIX / "mpd_full" / "sample_full_fields.json") == "mpd"
    named = tmp_path / "mpd.slice.0-1.json"
    named.write_text((FIX / "mpd_full" / "sample_full_fields.json").read_text())
    assert sniff_format(named) == "mpd"


def test_same_pid_in_two_sources_is_kept_apart(tmp_path: Path) -> None:
    f = tmp_path / "more.jsonl"
    f.write_text(json.dumps({"pid": 0, "name": "x", "tracks": ["t1"]}) + "\n")
    c = read_corpus([FIX / "mpd_full", f])
    assert c.pids == ["0", "1", "jsonl:0"]


def test_corrupt_gzip_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "mpd.slice.0-9.json.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="cannot read file"):
        read_corpus([bad])


@pytest.mark.realdata
def test_real_mpd_counts(shared_data: Path) -> None:
    c = read_corpus([shared_data / "mpd"])
    assert (c.n_playlists, c.n_occurrences, c.n_tracks) == (7071, 696957, 201730)
    pl_per_track = np.bincount(
        np.unique(c.occ_playlist.astype(np.int64) * c.n_tracks + c.occ_track) % c.n_tracks,
        minlength=c.n_tracks)
    # ../shared/data/README.md's "23,939 tracks that occur in 5 or more playlists" counts
    # occurrences (a repeat within a playlist counts twice); by distinct playlists it is 23,572.
    assert int((c.occurrence_count >= 5).sum()) == 23939
    assert int((pl_per_track >= 5).sum()) == 23572
    assert sum(1 for d in c.descriptions if d) == 702
    assert all(c.names) and all(len(t) == 22 for t in c.track_ids)


@pytest.mark.realdata
def test_real_melon_val_counts(shared_data: Path) -> None:
    c = read_corpus([shared_data / "melon" / "val.json.gz"])
    assert (c.n_playlists, c.n_occurrences, c.n_tracks) == (1802, 82976, 47873)
    assert c.sources[0] == "melon"


def test_long_first_line_jsonl_without_telling_name(tmp_path: Path) -> None:
    f = tmp_path / "export.json"
    tracks = [f"track-{i:05d}" for i in range(600)]  # a first line far longer than 4 KiB
    f.write_text(json.dumps({"pid": "x", "name": "long", "tracks": tracks}) + "\n")
    assert sniff_format(f) == "jsonl"
    assert read_corpus([tmp_path]).n_occurrences == 600


def test_directory_skips_crawl_state(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text(json.dumps({"pid": 1, "name": "a", "tracks": ["t"]}) + "\n")
    (tmp_path / "c.jsonl.state.json").write_text('{\n "version": 1\n}\n')
    assert read_corpus([tmp_path]).pids == ["1"]
