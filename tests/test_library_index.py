"""The catalogue's match index stored with the run (`library.matchindex`): read back whole and
the same, reused by the next import, built again when the run's tracks change, never read half
written; and the batched fuzzy artist search answers as one search at a time does."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynplayer.data.corpus import load_corpus
from dynplayer.library import matchindex
from dynplayer.library.importer import import_library
from dynplayer.library.match import Catalogue, Matcher
from dynplayer.library.matchindex import encode, index_path, load_catalogue, read_index
from dynplayer.library.records import LibraryTrack
from dynplayer.library.simulate import perturb
from dynplayer.run import load_run, save_vectors


@pytest.fixture()
def run_copy(tmp_path: Path, track_run_dir: Path, copy_run: Any) -> Path:
    run_dir = copy_run(track_run_dir, tmp_path / "run")
    index_path(run_dir).unlink(missing_ok=True)
    return run_dir


def _library(path: Path, corpus: Any, n: int = 60) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "artist", "title"])
        w.writerows([f"t{i}", corpus.artists[i], corpus.track_names[i].upper()]
                    for i in range(n))
    return path


def _same(a: Catalogue, b: Catalogue) -> None:
    assert (a.track_ids, a.names, a.artists) == (b.track_ids, b.names, b.artists)
    assert a.popularity.tolist() == b.popularity.tolist()
    assert a.has_vector.tolist() == b.has_vector.tolist()
    assert (a.exact, a.by_artist, a.core, a.artist_list) == \
        (b.exact, b.by_artist, b.core, b.artist_list)


def _boom(*_args: Any) -> Catalogue:
    raise AssertionError("the index was built again")


def _disk_full(_fd: int) -> None:
    raise OSError("No space left on device")


def test_the_index_reads_back_whole(tmp_path: Path) -> None:
    cat = Catalogue(["a", "b", "c", "d"], ["Halo", None, "Déjà Vu (feat. Jay-Z)", "Halo"],
                    ["Beyoncé", "Queen", "Beyoncé & Jay-Z", None], np.array([3, 1, 2, 0]),
                    np.array([True, False, True, True]))
    path = tmp_path / "index.npz"
    path.write_bytes(encode(cat, "k1"))
    got = read_index(path, "k1")
    assert got is not None
    _same(cat, got)
    assert read_index(path, "another key") is None  # stale: not used


def test_the_second_import_reads_the_stored_index(run_copy: Path,
                                                  synthetic_corpus_dir: Path) -> None:
    src = _library(run_copy.parent / "lib.csv", load_corpus(synthetic_corpus_dir))
    first = import_library(run_copy, str(src))
    path = index_path(run_copy)
    assert first.library.manifest["catalogue_index"] == "built" and path.is_file()
    before = path.stat().st_mtime_ns
    second = import_library(run_copy, str(src))
    assert second.library.manifest["catalogue_index"] == "read"
    assert path.stat().st_mtime_ns == before
    assert [m.as_dict() for m in first.library.matches] == \
        [m.as_dict() for m in second.library.matches]
    loaded = load_catalogue(run_copy, build=_boom)  # current: the build is not called
    assert not loaded.built and loaded.stored
    _same(loaded.catalogue, matchindex.build_catalogue(run_copy,
                                                       matchindex.corpus_dir_of(run_copy)))


def test_the_index_is_built_again_when_the_runs_tracks_change(run_copy: Path) -> None:
    first = load_catalogue(run_copy)
    assert first.built and first.stored
    run = load_run(run_copy)
    dropped = run.ids[0]
    save_vectors(run_copy, run.vectors[1:], run.ids[1:])  # the run retrained without one track
    again = load_catalogue(run_copy)
    assert again.built and again.stored
    i = again.catalogue.id_index[dropped]
    assert first.catalogue.has_vector[i] and not again.catalogue.has_vector[i]
    assert not load_catalogue(run_copy, build=_boom).built  # and stored for the next import


def test_a_half_written_index_is_never_read(run_copy: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    whole = load_catalogue(run_copy)
    path = index_path(run_copy)
    data = path.read_bytes()
    # the stored index stale, and the writer of the new one dying half-way (disk full): the
    # old file is left whole, with no file of the writer's beside it; the import goes on
    monkeypatch.setattr(matchindex, "index_key", lambda *_args: "another key")
    monkeypatch.setattr(os, "fsync", _disk_full)
    failed = load_catalogue(run_copy)
    assert failed.built and not failed.stored
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")] == []
    monkeypatch.undo()
    # a truncated file (however it got there) is not read: built again and replaced whole
    path.write_bytes(data[: len(data) // 2])
    rebuilt = load_catalogue(run_copy)
    assert rebuilt.built and rebuilt.stored and path.read_bytes() == data
    _same(whole.catalogue, rebuilt.catalogue)


def test_batched_artist_search_answers_as_one_at_a_time(synthetic_corpus_dir: Path,
                                                        track_run_dir: Path) -> None:
    corpus = load_corpus(synthetic_corpus_dir)
    cat = matchindex.build_catalogue(track_run_dir, synthetic_corpus_dir)
    rng = np.random.default_rng(7)
    tracks = []
    for t in range(0, corpus.n_tracks, 3):
        a, title = perturb(corpus.artists[t], corpus.track_names[t], rng)
        if t % 2:  # a typo in the artist: no exact artist key, so fuzzy artist search
            a = a[:2] + a[3:] if len(a) > 6 else a + "x"
        tracks.append(LibraryTrack(str(t), a, title))
    one = Matcher(cat)
    singly = [one.match(t).as_dict() for t in tracks]  # no prepare(): searched one by one
    batched = [m.as_dict() for m in Matcher(cat).match_all(tracks)]
    assert batched == singly
    assert sum(m["how"] == "fuzzy" for m in batched) > 10


def test_bench_times_a_csv_import_cold_then_warm(run_copy: Path) -> None:
    import json

    from typer.testing import CliRunner

    from dynplayer.cli import app

    res = CliRunner().invoke(app, ["bench", "library", str(run_copy), "--libraries", "0",
                                   "--no-latency", "--import-tracks", "200", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout[res.stdout.index("{"):])["import"]
    assert (r["tracks"], r["decoys"]) == (200, 10)
    assert (r["cold"]["index"], r["warm"]["index"], r["index_stored"]) == ("built", "read", True)
    assert r["matching"]["tracks"] == 190 and r["matching"]["recall"] > 0.9
    assert not (run_copy / "library" / "bench-import").exists()
