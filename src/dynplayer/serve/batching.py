"""Batching of concurrent text requests: one thread answers every request that waits.

The USE encoder streams 13.5 MB of dense weights through the CPU for every call, whether it
encodes one query or eight (on the 2-core dev machine one query costs about 1.4 ms of CPU, a
batch of eight about 0.56 ms a query; scratch measurements). And two cores answering two
requests at once share one memory bus and one cache: each request's playlist search and
`aggregate` (gathers from ~170 MB of track vectors) cost more when another runs beside it.
So the service answers concurrent text requests in batches: the queries of a batch are encoded
in one call, then the same thread searches and aggregates each of them in turn.

There is no timer and no background thread (`Batcher`). A request that finds no batch in
flight is answered at once (so a lone request waits for nothing); requests that arrive while a
batch is being answered queue up, and when that batch is done one of them is woken to answer
the whole queue as the next batch. Every answer is exactly what it would be alone: the same
functions on the same inputs, up to the encoder's float rounding in a batch (`BatchingEncoder`
is the encoding alone, for callers that only need vectors).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

P = TypeVar("P")
R = TypeVar("R")
EncodeMany = Callable[[Sequence[str]], np.ndarray]


class _Item:
    __slots__ = ("done", "error", "lead", "payload", "result")

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        self.result: Any = None
        self.error: BaseException | None = None
        self.lead = False  # woken to answer the queue, not with a result
        self.done = threading.Event()


class Batcher(Generic[P, R]):
    """`run(payload)` for many threads at once, handing the payloads that wait to
    `run_batch` together.

    `run_batch` maps a list of payloads to one result per payload, in order; a result that is
    an exception is raised to its own caller alone. An exception raised by `run_batch` itself
    reaches every caller of the batch.
    """

    def __init__(self, run_batch: Callable[[list[P]], Sequence[R | BaseException]],
                 max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Item] = []
        self._busy = False  # a thread is answering a batch
        self.batches = 0  # statistics (the tests and benchmarks read them)
        self.items = 0

    def run(self, payload: P) -> R:
        item = _Item(payload)
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
        result: R = item.result
        return result

    def _drain(self, mine: _Item) -> None:
        """Answer batches until this thread's own payload is answered, then hand the queue
        on."""
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
                    # Our answer is ready: wake a waiting request to answer the rest.
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.done.set()
                    return

    def _run(self, batch: list[_Item]) -> None:
        try:
            results = list(self._run_batch([b.payload for b in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"the batch returned {len(results)} results for "
                                   f"{len(batch)} requests")
        except BaseException as exc:  # every waiter gets the error, nobody hangs
            for b in batch:
                b.error = exc
                b.done.set()
            return
        self.batches += 1
        self.items += len(batch)
        for b, r in zip(batch, results, strict=True):
            if isinstance(r, BaseException):
                b.error = r
            else:
                b.result = r
            b.done.set()


class BatchingEncoder(Batcher[str, np.ndarray]):
    """`encode(text)` for many threads at once, batching the queries that wait.

    `encode_many` maps a list of (already validated) texts to a (n, d) array, row i for text i.
    """

    def __init__(self, encode_many: EncodeMany, max_batch: int = 32) -> None:
        def run_batch(texts: list[str]) -> list[np.ndarray]:
            return list(_one_per_text(encode_many(texts), len(texts)))

        super().__init__(run_batch, max_batch)

    def encode(self, text: str) -> np.ndarray:
        return self.run(text)

    @property
    def queries(self) -> int:
        return self.items


def _one_per_text(vectors: Any, n: int) -> np.ndarray:
    """The encoder's float32 rows, which must be one per text."""
    out = np.asarray(vectors, dtype=np.float32)
    if out.shape[0] != n:
        raise RuntimeError(f"the encoder returned {out.shape[0]} vectors for {n} texts")
    return out


def encode_texts(searcher: Any, texts: Sequence[str]) -> np.ndarray:
    """(n, d) query vectors of normalised texts: one `encode_queries` call when the searcher
    encodes lists (as `TextSearcher` does), else `encode_query` per text."""
    many = getattr(searcher, "encode_queries", None)
    if many is not None:
        return np.asarray(many(list(texts)), dtype=np.float32)
    return np.stack([np.asarray(searcher.encode_query(t), np.float32).reshape(-1)
                     for t in texts])


@dataclass(frozen=True)
class TextRequest:
    encoded: str  # what the encoder reads (`text.query.check_query`'s normalised text)
    query: str  # what `aggregate` matches against the tracks' metadata
    k: int  # tracks wanted from `aggregate`


Search = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def text_batcher(searcher: Any, search: Search, max_batch: int = 16) -> Batcher[TextRequest, Any]:
    """Text requests answered in batches: the batch's queries encoded in one call, then for
    each in turn `search` (query vector -> playlist rows and similarities) and the searcher's
    `aggregate`. A request whose search or aggregation fails gets its own error; an encoder
    failure reaches the whole batch. At most `max_batch` requests a batch (a batch is
    answered one request after another: 16 keep the last one's wait short)."""

    def run_batch(items: list[TextRequest]) -> list[Any]:
        vectors = _one_per_text(encode_texts(searcher, [r.encoded for r in items]), len(items))
        out: list[Any] = []
        for r, v in zip(items, vectors, strict=True):
            try:
                rows, sims = search(v)
                out.append(searcher.aggregate(rows, sims, r.k, query=r.query))
            except Exception as exc:
                out.append(exc)
        return out

    return Batcher(run_batch, max_batch)


__all__ = ["Batcher", "BatchingEncoder", "TextRequest", "encode_texts", "text_batcher"]
