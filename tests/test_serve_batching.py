"""The micro-batching query encoder: every caller gets its own vector, waiting queries share
calls, a failure reaches every waiter, and a lone caller is answered at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from dynplayer.serve.batching import BatchingEncoder
from dynplayer.serve.recommender import query_encoder


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


def test_query_encoder_batches_searchers_that_encode_lists() -> None:
    class ListSearcher:
        def __init__(self) -> None:
            self.seen: list[list[str]] = []

        def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
            self.seen.append(list(texts))
            return np.stack([vector_of(t) for t in texts])

    s = ListSearcher()
    encode = query_encoder(s)  # type: ignore[arg-type]
    np.testing.assert_array_equal(encode("  Rainy   DAY jazz "), vector_of("rainy day jazz"))
    assert s.seen == [["rainy day jazz"]]  # normalised as `dynplayer search` does
    from dynplayer.errors import QueryError

    with pytest.raises(QueryError, match="empty"):
        encode("   ")
    assert len(s.seen) == 1  # a bad query never reaches the batch


def test_real_encoder_batched_equals_one_at_a_time() -> None:
    from dynplayer.text.encoders import make_encoder

    enc = make_encoder("use")
    texts = ["rainy day jazz", "신나는 여름 노래", "gym hype", "chill"]
    batched = enc.encode(texts)
    single = np.stack([enc.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
