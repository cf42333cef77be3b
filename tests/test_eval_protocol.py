"""The continuation protocol: masking, exact metrics through `evaluate_scorer`, split files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from dynplayer.data.corpus import TEST, Corpus
from dynplayer.errors import DataError
from dynplayer.eval.protocol import (
    corpus_eval_set,
    embedding_scorer,
    evaluate_scorer,
    load_split_file,
    make_eval_set,
    top_k_masked,
)


def _csr(rows: list[list[int]], n: int) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [j for row in rows for j in row]
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(rows), n))


def test_evaluate_scorer_hand_computed() -> None:
    # 6 items; playlist A sees {0}, holds out {1, 2}; playlist B sees {3}, holds out {4}.
    es = make_eval_set(_csr([[0], [3]], 6), _csr([[1, 2], [4]], 6), ["A", "B"])
    order = np.array([0, 3, 1, 5, 4, 2])  # fixed ranking for every playlist: 0 3 1 5 4 2

    def scorer(vis: sp.csr_matrix) -> np.ndarray:
        s = np.empty(6, np.float32)
        s[order] = np.arange(6, 0, -1)
        return np.tile(s, (vis.shape[0], 1))

    m = evaluate_scorer(scorer, es, ks=(1, 2))
    # A (0 masked): 3 1 5 4 2 -> hits at ranks 2, 5; B (3 masked): 0 1 5 4 2 -> hit at rank 4
    assert m["recall@1"] == pytest.approx(0.0)
    assert m["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["ndcg@2"] == pytest.approx(((1 / math.log2(3)) / (1 + 1 / math.log2(3))) / 2)
    assert m["r_precision"] == pytest.approx((1 / 2 + 0 / 1) / 2)
    assert m["n_playlists"] == 2


def test_visible_tracks_never_recommended(synthetic_corpus: Corpus) -> None:
    es = corpus_eval_set(synthetic_corpus, TEST)
    assert es.n > 50

    def visible_first(vis: sp.csr_matrix) -> np.ndarray:  # the worst case for masking
        return np.asarray(vis.toarray() * 10.0 + np.random.default_rng(0).random(vis.shape))

    top = top_k_masked(visible_first(es.visible), es.visible, 50)
    vis = es.visible.toarray().astype(bool)
    assert not np.take_along_axis(vis, top, axis=1).any()
    m = evaluate_scorer(visible_first, es)
    assert m["recall@10"] < 0.2  # random order among the rest

    def oracle(vis: sp.csr_matrix) -> np.ndarray:
        return np.asarray(es.heldout.toarray()[: vis.shape[0]], dtype=np.float32)

    perfect = evaluate_scorer(oracle, es, batch_size=es.n)
    assert perfect["recall@10"] == pytest.approx(1.0)
    assert perfect["ndcg@50"] == pytest.approx(1.0)
    assert perfect["r_precision"] == pytest.approx(1.0)


def test_evaluation_in_score_budget_chunks_matches_one_batch(
        synthetic_corpus: Corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches are cut to the score budget (a whole catalogue: 494k tracks x 1,024 playlists
    held 12 GiB at once); the metrics are the same as from one batch."""
    from dynplayer import topk

    es = corpus_eval_set(synthetic_corpus, TEST)
    v = np.random.default_rng(0).standard_normal((es.visible.shape[1], 8)).astype(np.float32)
    whole = evaluate_scorer(embedding_scorer(v), es, per_playlist=True)
    monkeypatch.setattr(topk, "SCORE_CHUNK", 3 * es.visible.shape[1])  # 3 playlists a batch
    seen: list[int] = []
    score = embedding_scorer(v)

    def counting(vis: sp.csr_matrix) -> np.ndarray:
        seen.append(vis.shape[0])
        return score(vis)

    chunked = evaluate_scorer(counting, es, per_playlist=True)
    assert max(seen) == 3 and sum(seen) == es.n
    for key, value in whole.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(chunked[key], value)
        else:
            assert chunked[key] == value, key


def test_heldout_also_visible_is_dropped_and_empty_rows_skipped() -> None:
    es = make_eval_set(_csr([[0, 1], [], [2]], 4), _csr([[1, 3], [0], [2]], 4), ["a", "b", "c"])
    assert es.pids == ["a"]  # b has nothing visible; c's only held-out track is visible
    assert es.skipped == 2
    assert es.heldout.toarray().tolist() == [[0, 0, 0, 1]]


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_split_file_drops_and_counts_unknown_tracks(tmp_path: Path) -> None:
    ids = ["t0", "t1", "t2", "t3"]
    f = _write(tmp_path / "split.jsonl", [
        {"pid": 7, "visible": ["t0", "zz", "t1"], "heldout": ["t2", "yy", "xx"]},
        "",
        {"pid": "p2", "visible": ["nope"], "heldout": ["t3"]},  # nothing visible is known
        {"pid": "p3", "visible": ["t3"], "heldout": ["t0"], "extra": 1},
    ])
    es = load_split_file(f, ids)
    assert es.pids == ["7", "p3"]
    assert es.visible.toarray().tolist() == [[1, 1, 0, 0], [0, 0, 0, 1]]
    assert es.heldout.toarray().tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]
    assert es.dropped_unknown == {"visible": 2, "heldout": 2, "playlists": 1}
    m = evaluate_scorer(lambda v: np.tile(np.arange(4, 0, -1, dtype=np.float32),
                                          (v.shape[0], 1)), es, ks=(1,))
    # 7: ranking t2 t3 -> hit at 1; p3: t0 t1 t2 -> hit at 1
    assert m["recall@1"] == pytest.approx(1.0)
    assert m["dropped_unknown"]["heldout"] == 2


@pytest.mark.parametrize(("line", "needle"), [
    ("{not json", "split.jsonl:2: not valid JSON"),
    ('["a"]', "split.jsonl:2: expected a JSON object"),
    ('{"visible": [], "heldout": []}', "split.jsonl:2, field 'pid': missing"),
    ('{"pid": 1, "heldout": []}', "split.jsonl:2, field 'visible': missing"),
    ('{"pid": 1, "visible": "t0", "heldout": []}', "field 'visible': must be a list"),
    ('{"pid": 1, "visible": ["t0"], "heldout": [null]}', "field 'heldout': item 0"),
    ('{"pid": [1], "visible": [], "heldout": []}', "field 'pid': must be a string"),
    ('{"pid": 0, "visible": [], "heldout": []}', "field 'pid': duplicate pid '0'"),
    ('{"pid": 1, "visible": [' + "9" * 5000 + '], "heldout": []}',
     "split.jsonl:2: not valid JSON (an integer with more than 4,300 digits)"),
    ('{"pid": 1, "visible": ' + "[" * 100_000 + "]" * 100_000 + ', "heldout": []}',
     "split.jsonl:2: not valid JSON (nested too deeply)"),
])
def test_split_file_bad_lines_name_file_line_and_field(tmp_path: Path, line: str,
                                                       needle: str) -> None:
    f = tmp_path / "split.jsonl"
    f.write_text(json.dumps({"pid": 0, "visible": ["t0"], "heldout": ["t1"]}) + "\n" + line)
    with pytest.raises(DataError) as err:
        load_split_file(f, ["t0", "t1"])
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_split_file_accepts_spotify_uris_and_links(tmp_path: Path) -> None:
    f = _write(tmp_path / "split.jsonl", [
        {"pid": 1, "visible": ["spotify:track:t0", "https://open.spotify.com/track/t1?si=x"],
         "heldout": ["spotify:track:t2"]}])
    es = load_split_file(f, ["t0", "t1", "t2"])
    assert es.visible.toarray().tolist() == [[1, 1, 0]] and es.dropped_unknown["visible"] == 0
    assert es.heldout.toarray().tolist() == [[0, 0, 1]]


def test_split_file_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_split_file(tmp_path / "absent.jsonl", ["t0"])
    with pytest.raises(DataError, match="no playlists"):
        load_split_file(_write(tmp_path / "e.jsonl", [""]), ["t0"])
