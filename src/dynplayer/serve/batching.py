"""Micro-batching of text-query encoding across concurrent requests.

The USE encoder streams 13.5 MB of dense weights through the CPU for every call, whether it
encodes one query or eight: on the 2-core dev machine one query costs about 2 ms and a batch of
eight about 5 ms (a scratch measurement, not a repo benchmark). Under concurrent load the service
therefore encodes whatever queries are waiting in one call instead of one call each.

There is no timer and no background thread. A request that finds no batch in flight encodes at
once (so a lone request waits for nothing); requests that arrive while a batch is being encoded
queue up, and when that batch finishes one of them is woken to encode the whole queue as the
next batch. Every query's vector is exactly what it would be alone, up to float rounding.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

EncodeMany = Callable[[Sequence[str]], np.ndarray]


class _Item:
    __slots__ = ("done", "error", "lead", "text", "vector")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.lead = False  # woken to encode the queue, not with a result
        self.done = threading.Event()


class BatchingEncoder:
    """`encode(text)` for many threads at once, batching the queries that wait.

    `encode_many` maps a list of (already validated) texts to a (n, d) array, row i for text i.
    """

    def __init__(self, encode_many: EncodeMany, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._encode_many = encode_many
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Item] = []
        self._busy = False  # a thread is encoding a batch
        self.batches = 0  # statistics (the tests read them)
        self.queries = 0

    def encode(self, text: str) -> np.ndarray:
        item = _Item(text)
        with self._lock:
            self._queue.append(item)
            lead = not self._busy
            self._busy = True
        while not lead:
            item.done.wait()
            if not item.lead:
                break
            item.lead, lead = False, True
            item.done.clear()
        if lead:
            self._drain(item)
        if item.error is not None:
            raise item.error
        assert item.vector is not None
        return item.vector

    def _drain(self, mine: _Item) -> None:
        """Encode batches until this thread's own query is answered, then hand the queue on."""
        while True:
            with self._lock:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
            self._run(batch)
            with self._lock:
                if not self._queue:
                    self._busy = False
                    return
                if mine.done.is_set():
                    # Our answer is ready: wake a waiting request to encode the rest.
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.done.set()
                    return

    def _run(self, batch: list[_Item]) -> None:
        try:
            vectors = np.asarray(self._encode_many([b.text for b in batch]), dtype=np.float32)
            if vectors.shape[0] != len(batch):
                raise RuntimeError(f"the encoder returned {vectors.shape[0]} vectors for "
                                   f"{len(batch)} texts")
        except BaseException as exc:  # every waiter gets the error, nobody hangs
            for b in batch:
                b.error = exc
                b.done.set()
            return
        self.batches += 1
        self.queries += len(batch)
        for b, v in zip(batch, vectors, strict=True):
            b.vector = v
            b.done.set()


def query_encoder(searcher: Any) -> Callable[[str], np.ndarray]:
    """text -> query vector. Searchers that encode lists (`encode_queries`, as `TextSearcher`
    does) get a `BatchingEncoder`, so concurrent requests share one encoder call."""
    many = getattr(searcher, "encode_queries", None)
    if many is None:
        return searcher.encode_query
    from dynplayer.text.query import check_query

    batcher = BatchingEncoder(many)
    return lambda text: batcher.encode(check_query(text))
