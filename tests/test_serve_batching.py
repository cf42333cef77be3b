"""Batching of concurrent requests: every caller gets its own answer, waiting requests share
calls, a batch's failure reaches every waiter of it and a request's own failure only its
caller, and a lone caller is answered at once. The encoder alone (`BatchingEncoder`) and whole
text requests (`text_batcher`: encode, playlist search and aggregate in one thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from dynplayer.serve.batching import BatchingEncoder, TextRequest, text_batcher


def vector_of(text: str) -> np.ndarray:
    """A deterministic vector per text (its characters' codes, padded)."""
    v = np.zeros(8, dtype=np.float32)
    codes = [ord(c) for c in text[:8]]
    v[: len(codes)] = codes
    return v


class SlowEncoder:
    """Takes `delay` seconds per call, whatever the batch size (like streaming the weights)."""

    def __init__(self, delay: float = 0.02, fail_on: str | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self.lock:
            self.calls.append(list(texts))
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError(f"cannot encode {self.fail_on!r}")
        return np.stack([vector_of(t) for t in texts])


def run_threads(batcher: BatchingEncoder, texts: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(texts))

    def work(text: str) -> None:
        start.wait()
        try:
            result: object = batcher.encode(text)
        except Exception as exc:
            result = exc
        with lock:
            out[text] = result

    threads = [threading.Thread(target=work, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a caller never got an answer"
    return out


def test_lone_query_is_encoded_at_once() -> None:
    enc = SlowEncoder(delay=0.0)
    batcher = BatchingEncoder(enc)
    np.testing.assert_array_equal(batcher.encode("jazz"), vector_of("jazz"))
    assert enc.calls == [["jazz"]] and batcher.batches == 1


def test_concurrent_queries_share_calls_and_get_their_own_vectors() -> None:
    # 0.2 s per call: the 23 threads released with the first one have ten times longer than
    # they need on a loaded machine to queue behind it (0.02 s left them a thin margin).
    enc = SlowEncoder(delay=0.2)
    batcher = BatchingEncoder(enc, max_batch=8)
    texts = [f"query {i:02d}" for i in range(24)]
    out = run_threads(batcher, texts)
    for t in texts:
        np.testing.assert_array_equal(out[t], vector_of(t))  # type: ignore[arg-type]
    assert sorted(t for call in enc.calls for t in call) == texts  # each encoded exactly once
    assert len(enc.calls) < len(texts)  # queries that waited were batched together
    assert max(len(c) for c in enc.calls) <= 8
    assert batcher.queries == len(texts) and batcher.batches == len(enc.calls)


def test_a_failing_batch_fails_its_callers_and_the_rest_go_on() -> None:
    enc = SlowEncoder(delay=0.01, fail_on="bad")
    batcher = BatchingEncoder(enc, max_batch=4)
    texts = ["bad"] + [f"good {i}" for i in range(11)]
    out = run_threads(batcher, texts)
    failed = {t for t, r in out.items() if isinstance(r, ValueError)}
    batch_of_bad = next(c for c in enc.calls if "bad" in c)
    assert failed == set(batch_of_bad)  # exactly the texts encoded with it
    for t in set(texts) - failed:
        np.testing.assert_array_equal(out[t], vector_of(t))  # type: ignore[arg-type]
    np.testing.assert_array_equal(batcher.encode("after"), vector_of("after"))  # not stuck


def test_wrong_row_count_is_an_error_not_a_misassignment() -> None:
    batcher = BatchingEncoder(lambda texts: np.zeros((len(texts) + 1, 4), np.float32))
    with pytest.raises(RuntimeError, match="2 vectors for 1 texts"):
        batcher.encode("x")


class ListSearcher:
    """Encodes lists (slowly, like the real encoder); `aggregate` returns what it was given,
    and fails for the query "broken"."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.seen: list[list[str]] = []
        self.lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self.lock:
            self.seen.append(list(texts))
        time.sleep(self.delay)
        return np.stack([vector_of(t) for t in texts])

    def aggregate(self, rows: np.ndarray, sims: np.ndarray, k: int,
                  query: str = "") -> tuple[str, int, list[int], list[float]]:
        if query == "broken":
            raise ValueError("cannot aggregate 'broken'")
        return query, k, rows.tolist(), sims.tolist()


def search_of(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Playlist 'rows' named by the query vector's first two codes."""
    return v[:2].astype(np.int64), v[:2] / 1000.0


def test_text_batcher_answers_each_request_with_its_own_search_and_aggregate() -> None:
    s = ListSearcher(delay=0.2)  # as above: time enough for the others to queue
    batcher = text_batcher(s, search_of, max_batch=8)
    texts = [f"q{i:02d}" for i in range(20)] + ["broken"]
    out: dict[str, object] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(texts))

    def work(i: int, text: str) -> None:
        start.wait()
        try:
            result: object = batcher.run(TextRequest(text, text, 10 + i))
        except Exception as exc:
            result = exc
        with lock:
            out[text] = result

    threads = [threading.Thread(target=work, args=(i, t)) for i, t in enumerate(texts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a caller never got an answer"
    for i, text in enumerate(texts[:-1]):
        v = vector_of(text)
        assert out[text] == (text, 10 + i, v[:2].astype(int).tolist(),
                             (v[:2] / 1000.0).tolist())
    # the failing request got its own error; the others of its batch were answered
    assert isinstance(out["broken"], ValueError)
    assert sorted(t for call in s.seen for t in call) == sorted(texts)  # each encoded once
    assert len(s.seen) < len(texts) and max(len(c) for c in s.seen) <= 8
    assert batcher.items == len(texts) and batcher.batches == len(s.seen)


def test_text_batcher_lone_request_and_encoder_failure() -> None:
    s = ListSearcher()
    batcher = text_batcher(s, search_of)
    assert batcher.run(TextRequest("jazz", "Jazz", 5))[:2] == ("Jazz", 5)
    assert s.seen == [["jazz"]] and batcher.batches == 1  # answered at once, encoded as given

    class Failing(ListSearcher):
        def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
            raise RuntimeError("encoder down")

    failing = text_batcher(Failing(), search_of)
    with pytest.raises(RuntimeError, match="encoder down"):
        failing.run(TextRequest("jazz", "jazz", 5))
    with pytest.raises(RuntimeError, match="encoder down"):  # not stuck after a failure
        failing.run(TextRequest("rock", "rock", 5))


def test_the_service_normalises_and_refuses_a_query_before_it_joins_a_batch(
        serve_catalog, text_searcher, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`Recommender.text_answer` encodes the normalised query (as `dynplayer search` does),
    answers as the searcher's own search does, and refuses a bad query without reaching the
    batch."""
    from dynplayer.errors import QueryError
    from dynplayer.serve.recommender import ExactRecommender

    seen: list[list[str]] = []
    encode = text_searcher.encode_queries

    def recording(texts: Sequence[str], *args: object) -> np.ndarray:
        seen.append(list(texts))
        return encode(texts, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(text_searcher, "encode_queries", recording)
    rec = ExactRecommender(serve_catalog, text_searcher, text_playlists=50)
    answer = rec.text_answer("  Rainy   DAY jazz ", 5)
    assert seen == [["rainy day jazz"]]
    alone = text_searcher.search("rainy day jazz", k=5)
    assert [t.track_id for t in answer.tracks] == [t.track_id for t in alone.tracks]
    with pytest.raises(QueryError, match="empty"):
        rec.text_answer("   ", 5)
    assert len(seen) == 2  # the searcher's own search; the bad query never reached a batch


def test_real_encoder_batched_equals_one_at_a_time() -> None:
    from dynplayer.text.encoders import make_encoder

    enc = make_encoder("use")
    texts = ["rainy day jazz", "신나는 여름 노래", "gym hype", "chill"]
    batched = enc.encode(texts)
    single = np.stack([enc.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
