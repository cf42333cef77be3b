"""The library feature on the planted synthetic corpus: tag keys, reading exports and folders,
matching perturbed tags, storing and correcting, and the answers (mix, continue, search,
discover) restricted to the library, through the CLI too."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from dynplayer.cli import app
from dynplayer.data.corpus import TEST, load_corpus
from dynplayer.errors import DataError, QueryError
from dynplayer.library.match import Catalogue, MatchConfig, Matcher
from dynplayer.library.records import LibraryTrack, read_table
from dynplayer.library.simulate import perturb
from dynplayer.library.tagkeys import artist_keys, core_title, identity, title_keys
from dynplayer.run import load_run

runner = CliRunner()


def main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         *args: str) -> tuple[int, str]:
    """`dynplayer ARGS` through the console entry point (one-line errors, exit 2):
    (exit code, stdout + stderr)."""
    import sys

    from dynplayer import cli

    monkeypatch.setattr(sys, "argv", ["dynplayer", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out + err


def test_tag_keys_fold_the_ways_real_tags_differ() -> None:
    assert title_keys("Let It Be - Remastered 2009") == ["let it be remastered 2009",
                                                         "let it be"]
    assert core_title("Halo (Live)") == core_title("HALO") == "halo"
    assert core_title("Work (feat. Drake)") == core_title("Work ft. Drake") == "work"
    assert core_title("01 - One More Time") == "one more time"
    assert core_title("99 Problems") == "99 problems"  # a number that is the title stays
    assert artist_keys("The Beatles") == artist_keys("Beatles, The") == ["beatles"]
    assert artist_keys("Beyoncé") == ["beyonce"]
    assert artist_keys("Simon & Garfunkel")[0] == artist_keys("Simon and Garfunkel")[0]
    assert artist_keys("Rihanna feat. Drake")[-1] == "rihanna"
    assert identity("Daft Punk", "One More Time - Radio Edit") == ("daft punk", "one more time")


def test_reading_exports_names_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "lib.csv"
    good.write_text("id,artist,title,album,isrc\n1,A,Song,,US1\n2,B,Other,Alb,\n")
    tracks = read_table(good)
    assert [t.id for t in tracks] == ["1", "2"] and tracks[0].isrc == "US1"
    jl = tmp_path / "lib.jsonl"
    jl.write_text('{"id": 7, "artist": "A", "title": "S"}\n\n{"id": "8", "artist": "B"}\n')
    with pytest.raises(DataError, match=r"lib.jsonl:3.*field 'title'"):
        read_table(jl)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,artist,title\n1,A,S\n1,B,T\n")
    with pytest.raises(DataError, match="duplicate id '1'"):
        read_table(dup)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,x\n")
    with pytest.raises(DataError, match=r"bad.csv:1.*lacks artist, title"):
        read_table(bad)


def _catalogue(corpus: Any, run: Any) -> Catalogue:
    from dynplayer.library.match import catalogue_of

    return catalogue_of(run, corpus)


def test_matching_perturbed_tags_finds_the_planted_tracks(synthetic_corpus_dir: Path,
                                                          track_run_dir: Path) -> None:
    corpus = load_corpus(synthetic_corpus_dir)
    cat = _catalogue(corpus, load_run(track_run_dir))
    m = Matcher(cat)
    rng = np.random.default_rng(3)
    right = 0
    for t in range(corpus.n_tracks):
        a, title = perturb(corpus.artists[t], corpus.track_names[t], rng)
        got = m.match(LibraryTrack(str(t), a, title))
        right += got.track_id == corpus.track_ids[t]
    assert right >= 0.95 * corpus.n_tracks
    # id first; a known artist with an unknown title is placed by the artist; else none
    tid = corpus.track_ids[5]
    assert m.match(LibraryTrack("x", "Nobody", "Nothing", track_id=f"spotify:track:{tid}")
                   ).how == "id"
    by_artist = m.match(LibraryTrack("y", corpus.artists[5], "A Song Nobody Wrote"))
    assert (by_artist.how, by_artist.track_id, by_artist.artist) == \
        ("artist", None, corpus.artists[5])
    assert m.match(LibraryTrack("z", "Zzyzx Qwerty", "Nothing At All")).how == "none"
    # a typo in the title: fuzzy; cut-offs above its score turn it down to the artist
    small = Catalogue(["a", "b", "c"], ["Bohemian Rhapsody", "Bohemian Like You", "Halo"],
                      ["Queen", "Queen", "Beyoncé"], np.array([5, 1, 3]), np.ones(3, bool))
    typo = LibraryTrack("w", "queen", "Bohemain Rhapsody - Remastered 2011")
    got = Matcher(small).match(typo)
    assert (got.how, got.track_id, got.status) == ("fuzzy", "a", "matched")
    assert Matcher(small, MatchConfig(title_cutoff=99.5)).match(typo).how == "artist"


def _write_library(path: Path, corpus: Any, rows: list[int], extra: list[tuple[str, str]]
                   ) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "artist", "title", "album"])
        for t in rows:
            w.writerow([f"lib{t}", corpus.artists[t], corpus.track_names[t].upper(), ""])
        for i, (a, title) in enumerate(extra):
            w.writerow([f"x{i}", a, title, ""])


@pytest.fixture(scope="module")
def library_run(tmp_path_factory: pytest.TempPathFactory, track_run_dir: Path,
                copy_run: Any, synthetic_corpus_dir: Path) -> tuple[Path, Any]:
    """A copy of the session run with a library of 200 catalogue tracks (names upper-cased)
    and two tracks the catalogue lacks, imported through the CLI."""
    run_dir = copy_run(track_run_dir, tmp_path_factory.mktemp("librun") / "run")
    corpus = load_corpus(synthetic_corpus_dir)
    src = run_dir.parent / "lib.csv"
    _write_library(src, corpus, list(range(0, 400, 2)),
                   [(corpus.artists[1], "Unheard Song"), ("Zzyzx Qwerty", "Nothing")])
    res = runner.invoke(app, ["library", "import", str(run_dir), str(src), "--jsonl"])
    assert res.exit_code == 0, res.output
    return run_dir, corpus


def test_import_stores_the_library_and_prints_each_match(library_run: tuple[Path, Any]
                                                         ) -> None:
    run_dir, corpus = library_run
    d = run_dir / "library" / "default"
    assert {p.name for p in d.iterdir()} >= {"manifest.json", "tracks.jsonl", "matches.csv",
                                             "playlists.jsonl", "corrections.csv"}
    lines = [json.loads(x) for x in (d / "tracks.jsonl").read_text().splitlines()]
    by_id = {x["id"]: x for x in lines}
    assert by_id["lib4"]["track_id"] == corpus.track_ids[4] and by_id["lib4"]["how"] == "exact"
    assert by_id["x0"]["how"] == "artist" and by_id["x1"]["how"] == "none"
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["counts"]["how"]["exact"] == 200
    review = list(csv.DictReader((d / "matches.csv").open()))
    assert review[0]["status"] == "unmatched"  # what needs a look comes first


def test_mix_is_restricted_capped_and_explained(library_run: tuple[Path, Any]) -> None:
    from dynplayer.library.answers import LibraryModel

    run_dir, corpus = library_run
    model = LibraryModel.load(run_dir, text=False)
    seed = "lib10"
    genre = corpus.track_genres[10][0]
    ans = model.mix([seed], k=20, per_artist=1)
    assert len(ans.tracks) == 20 and seed not in ans.tracks
    assert all(t in model.id_index for t in ans.tracks)  # library tracks only
    artists = [model.library.tracks[model.id_index[t]].artist for t in ans.tracks]
    assert len(set(artists)) == len(artists)  # at most one per artist
    # planted: the seed's genre dominates its continuation
    genres = [corpus.track_genres[int(t[3:])][0] for t in ans.tracks if t.startswith("lib")]
    assert sum(g == genre for g in genres) >= 12
    assert len(ans.because) == 20 and all(b["why"] for b in ans.because)
    assert any(b.get("playlists") for b in ans.because)
    # an artist as the seed: every library track of it is a seed
    by_artist = model.mix([corpus.artists[10]], k=5)
    assert by_artist.resolved[0].startswith("artist ") and seed in by_artist.seeds
    with pytest.raises(QueryError, match="no library id"):
        model.mix(["no such thing at all"])


def test_cli_mix_jsonl_and_bad_seed(library_run: tuple[Path, Any],
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, _ = library_run
    res = runner.invoke(app, ["library", "mix", str(run_dir), "lib10", "-k", "5", "--jsonl"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(out["tracks"]) == 5 and len(out["because"]) == 5
    for args, said in ((["nothing like it"], "no library id"),
                       (["lib10", "--library", "x"], "no library named 'x'"),
                       (["lib10", "--save", "M"], "not imported from a Subsonic server")):
        code, text = main(capsys, monkeypatch, "library", "mix", str(run_dir), *args)
        assert code == 2 and said in text and len(text.strip().splitlines()) == 1, text


def test_corrections_are_applied_and_kept(library_run: tuple[Path, Any], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dynplayer.library.store import load_library

    run_dir, corpus = library_run
    fix = tmp_path / "fix.csv"
    fix.write_text(f"id,track_id\nx0,{corpus.track_ids[1]}\nlib4,none\n")
    res = runner.invoke(app, ["library", "correct", str(run_dir), str(fix)])
    assert res.exit_code == 0 and "2 tracks corrected" in res.output
    lib = load_library(run_dir)
    got = {t.id: m for t, m in zip(lib.tracks, lib.matches, strict=True)}
    assert got["x0"].track_id == corpus.track_ids[1] and got["x0"].how == "id"
    assert got["lib4"].how == "none"
    bad = tmp_path / "bad.csv"
    bad.write_text("id,track_id\nx0,not-a-track\n")
    code, text = main(capsys, monkeypatch, "library", "correct", str(run_dir), str(bad))
    assert code == 2 and "bad.csv:2" in text and "track_id" in text


def test_discover_and_search_answer_with_because(library_run: tuple[Path, Any],
                                                 serve_run_dir: Path, copy_run: Any,
                                                 tmp_path: Path) -> None:
    from dynplayer.library.answers import LibraryModel
    from dynplayer.library.explore import discover, search

    run_dir, corpus = library_run
    model = LibraryModel.load(run_dir, text=False)
    found = discover(model, ["lib10"], k=10)
    owned = {m.track_id for m in model.library.matches}
    assert found.tracks and not owned & set(found.tracks)
    assert all(b["why"] for b in found.because)
    # free text needs the text model: the served run has one
    served = copy_run(serve_run_dir, tmp_path / "served")
    src = tmp_path / "lib.csv"
    _write_library(src, corpus, list(range(0, 400, 2)), [])
    assert runner.invoke(app, ["library", "import", str(served), str(src)]).exit_code == 0
    text_model = LibraryModel.load(served)
    ans = search(text_model, "jazz", k=10)
    genres = [corpus.track_genres[int(t[3:])][0] for t in ans.tracks]
    assert len(ans.tracks) == 10 and genres.count("jazz") >= 7
    assert any(b.get("playlists") for b in ans.because)


def test_import_errors_are_one_line(tmp_path: Path, library_run: tuple[Path, Any],
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, _ = library_run
    nothing = tmp_path / "none.csv"
    nothing.write_text("id,artist,title\n1,Zzyzx Qwerty,Nothing\n")
    empty = tmp_path / "audio"
    empty.mkdir()
    (empty / "a.mp3").write_bytes(b"not audio")
    monkeypatch.setenv("DYNPLAYER_SUBSONIC_USER", "u")
    monkeypatch.setenv("DYNPLAYER_SUBSONIC_PASSWORD", "pw-never-shown")
    for source, said in ((nothing, "none of the 1 library tracks matched"),
                         (empty, "no audio file with readable artist and title"),
                         ("http://127.0.0.1:1", "cannot reach the server"),
                         ("ftp://x", "no such file or folder")):
        code, text = main(capsys, monkeypatch, "library", "import", str(run_dir), str(source),
                          "--name", "n")
        errors = [x for x in text.splitlines() if x.startswith("dynplayer: error:")]
        assert code == 2 and len(errors) == 1 and said in errors[0], text
        assert "Traceback" not in text and "pw-never-shown" not in text
    assert not (run_dir / "library" / "n").exists()


def test_folder_import_reads_tags_and_m3u(tmp_path: Path, library_run: tuple[Path, Any]
                                          ) -> None:
    from dynplayer.library.supysonic import write_mp3
    from dynplayer.library.tags import read_folder

    _, corpus = library_run
    music = tmp_path / "music"
    for t in (2, 4, 6):
        write_mp3(music / "a" / f"{t}.mp3", corpus.artists[t], corpus.track_names[t], "Alb")
    (music / "mine.m3u").write_text("#EXTM3U\na/4.mp3\na/2.mp3\nmissing.mp3\n")
    scan = read_folder(music)
    assert [t.id for t in scan.tracks] == ["a/2.mp3", "a/4.mp3", "a/6.mp3"]
    assert scan.tracks[0].artist == corpus.artists[2] and scan.tracks[0].album == "Alb"
    assert scan.playlists[0].name == "mine" and scan.playlists[0].tracks == ["a/4.mp3",
                                                                             "a/2.mp3"]
    assert TEST == 2
