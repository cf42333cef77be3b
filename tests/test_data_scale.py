"""MPD-shaped synthetic slices: the shape of the MPD, written in its download's layout, read by
`dynplayer prepare` unchanged; a truncated slice among many is one line naming it (with
--lenient: skipped and counted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dynplayer.data.corpus import load_corpus
from dynplayer.data.synthetic import mpd_shaped, write_mpd_slices
from test_data_bad_input import assert_one_line_error, run


def test_mpd_shaped_corpus_has_the_mpd_tail() -> None:
    """About half of the catalogue in a single playlist, half in two or more (1.13M of the
    MPD's 2.26M at 1M playlists), holding under 3% of the occurrences."""
    c = mpd_shaped(10_000, seed=1)
    key = np.unique(c.occ_playlist.astype(np.int64) * c.n_tracks + c.occ_track)
    per_track = np.bincount(key % c.n_tracks, minlength=c.n_tracks)
    used = per_track[per_track > 0]
    assert 2.1 <= used.shape[0] / c.n_playlists <= 2.4
    assert 0.45 <= float(np.mean(used == 1)) <= 0.55
    occ = np.bincount(c.occ_track, minlength=c.n_tracks)
    assert occ[per_track == 1].sum() < 0.03 * occ.sum()
    assert 62 <= c.n_occurrences / c.n_playlists <= 67
    # tail tracks belong to their playlist's genre and to one of its artists
    tail = [t for t in range(c.n_tracks) if c.track_ids[t].startswith("u")]
    assert tail and all(c.track_names[t].startswith("Tail track") for t in tail[:50])


def test_mpd_shaped_corpus_has_the_mpd_shape() -> None:
    c = mpd_shaped(3000, seed=1, tail=False)
    key = c.occ_playlist.astype(np.int64) * c.n_tracks + c.occ_track
    assert np.unique(key).shape[0] == c.n_occurrences  # distinct tracks per playlist
    assert 60 <= c.n_occurrences / c.n_playlists <= 67  # MPD: 66.3 (Poisson 66, min 5)
    per_playlist = np.unique(c.occ_track).shape[0] / c.n_playlists
    assert 1.8 <= per_playlist <= 2.3  # MPD: 2.26 catalogue tracks per playlist
    counts = np.sort(np.bincount(c.occ_track))[::-1]
    # Zipf within cells: the top 1% of tracks hold over 5x their uniform share (flatter than
    # the MPD, whose head is heavier).
    assert counts[: len(counts) // 100].sum() > 0.05 * counts.sum()
    assert all(c.names[p] for p in range(0, 3000, 97))  # every playlist has a caption


@pytest.fixture(scope="module")
def slices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mpd") / "data"
    write_mpd_slices(mpd_shaped(1200, seed=2), out, per_slice=100, compress=False)
    return out


def test_slices_have_the_download_layout_and_prepare_reads_them(
        slices: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    names = sorted(p.name for p in slices.iterdir())
    assert len(names) == 12 and names[0] == "mpd.slice.0-99.json"
    first = json.loads((slices / "mpd.slice.0-99.json").read_text())
    assert first["info"]["slice"] == "0-99" and len(first["playlists"]) == 100
    track = first["playlists"][0]["tracks"][0]
    assert set(track) == {"pos", "artist_name", "track_uri", "artist_uri", "track_name",
                          "album_uri", "duration_ms", "album_name"}
    assert track["pos"] == 0 and len(track["track_uri"].rsplit(":", 1)[1]) == 22
    code, _, err = run(capsys, monkeypatch, "prepare", str(slices), "--out",
                       str(tmp_path / "c"))
    assert code == 0, err
    assert load_corpus(tmp_path / "c").n_playlists == 1200


def test_a_truncated_slice_among_many(
        slices: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    bad_dir = tmp_path / "data"
    bad_dir.mkdir()
    for p in slices.iterdir():
        (bad_dir / p.name).write_bytes(p.read_bytes())
    bad = bad_dir / "mpd.slice.500-599.json"
    bad.write_bytes(bad.read_bytes()[: 5000])  # a download cut short
    code, _, err = run(capsys, monkeypatch, "prepare", str(bad_dir), "--out",
                       str(tmp_path / "strict"))
    assert_one_line_error(code, err, str(bad), "malformed JSON")
    assert not (tmp_path / "strict").exists()
    code, _, err = run(capsys, monkeypatch, "prepare", str(bad_dir), "--out",
                       str(tmp_path / "lenient"), "--lenient")
    assert code == 0, err
    corpus = load_corpus(tmp_path / "lenient")
    assert corpus.n_playlists == 1100
    assert corpus.manifest["skipped"]["total"] == 1
    assert str(bad) not in corpus.manifest["source_files"]
