"""The second stage behind the serving `Recommender` (`serve.recommender.ContinuationRanker`):
seed ids in, the ranker's top-k ids and scores out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from dynplayer.rank.candidates import Queries, ordered_distinct, seed_mean
from dynplayer.rank.stage import TwoStage, has_ranker, load_stage


class ServingRanker:
    def __init__(self, stage: TwoStage, ids: list[str]) -> None:
        self.stage = stage
        self.ids = ids
        self.index = {t: i for i, t in enumerate(ids)}
        stage.ranker.params.threads = 1  # one request per thread: no nested thread pools
        # found once: `threadpool_limits()` scans the process's libraries on every call (6 ms)
        self._threads = ThreadpoolController()

    def known(self, track_id: str) -> bool:
        return track_id in self.index

    def rank(self, seeds: list[str], k: int, name: str | None = None
             ) -> list[tuple[str, float]]:
        cols = np.array([self.index[t] for t in seeds if t in self.index], dtype=np.int64)
        if cols.size == 0:
            return []
        ip, distinct = ordered_distinct(np.array([0, cols.shape[0]], dtype=np.int64), cols)
        # one BLAS thread: a request's products are small, and waking a pool costs more
        with self._threads.limit(limits=1, user_api="blas"):
            (top, scores), = self.stage.rank(Queries(ip, distinct), k,
                                             [name] if name else None)
        out = [(self.ids[c], float(s)) for c, s in zip(top.tolist(), scores.tolist(),
                                                       strict=True)]
        if len(out) < k:  # fewer candidates than k: the embedding ranking continues the list
            v = self.stage.sources.vectors
            cos = v @ seed_mean(v, ip, distinct)[0]  # the plain mean, as without a ranker
            cos[distinct] = -np.inf
            cos[top] = -np.inf
            lo = out[-1][1] if out else 0.0
            extra = np.argsort(-cos, kind="stable")[:k - len(out)]
            out += [(self.ids[c], lo - 1.0 - i) for i, c in enumerate(extra.tolist())]
        return out


def load_serving_ranker(run_dir: Path) -> ServingRanker | None:
    """The run's ranker for serving, or None when RUN_DIR/ranker/ is absent."""
    if not has_ranker(run_dir):
        return None
    from dynplayer.run import load_run

    run = load_run(run_dir)
    return ServingRanker(load_stage(run), run.ids)


class LazyServingRanker:
    """The run's ranker, loaded on the first continuation (a one-shot `similar` or `search`
    never pays for it). Thread-safe: concurrent first requests load it once."""

    def __init__(self, run_dir: Path) -> None:
        import threading

        self.run_dir = Path(run_dir)
        self._ranker: ServingRanker | None = None
        self._lock = threading.Lock()

    @property
    def ranker(self) -> ServingRanker:
        if self._ranker is None:
            with self._lock:
                if self._ranker is None:
                    loaded = load_serving_ranker(self.run_dir)
                    if loaded is None:
                        from dynplayer.errors import ArtifactError

                        raise ArtifactError(f"{self.run_dir}: its ranker/ went away")
                    self._ranker = loaded
        return self._ranker

    def known(self, track_id: str) -> bool:
        return self.ranker.known(track_id)

    def rank(self, seeds: list[str], k: int, name: str | None = None
             ) -> list[tuple[str, float]]:
        return self.ranker.rank(seeds, k, name)


def continuation_cpu_ms(rec: Any, reranker: ServingRanker, seeds: list[list[str]],
                        k: int = 20) -> dict[str, float]:
    """Median process CPU ms of `rec.continue_playlist` per request, one at a time: the
    embedding ranking, then through `reranker` (what `bench serve` reports as the ranker's
    added CPU; the pgvector backend runs the same in-memory second stage).

    Each path is timed over two passes of the seeds: the first pass touches the co-occurrence
    and EASE rows for the first time (page faults: 0.5-1 ms a request on MPD slices), the second
    is a warm server's steady state, which `added_ms` compares. `every_round_ms` is the
    two-stage path without the cascade (`StageConfig.cascade_rounds` 0), for the saving."""
    before = rec.reranker
    cfg = reranker.stage.cfg
    rounds = cfg.cascade_rounds
    out: dict[str, float] = {"requests": float(len(seeds))}
    limit = ThreadpoolController().limit(limits=1, user_api="blas")  # as the API runs
    try:
        # the last path runs every boosting round on every candidate (no cascade), paired
        for name, stage, cascade in (("embedding", None, rounds), ("two_stage", reranker, rounds),
                                     ("every_round", reranker, 0)):
            rec.reranker = stage
            cfg.cascade_rounds = cascade
            for pass_name in ("first_pass_", ""):
                times = []
                for s in seeds:
                    t = time.process_time()
                    rec.continue_playlist(s, k)
                    times.append(time.process_time() - t)
                out[f"{pass_name}{name}_ms"] = round(1e3 * float(np.median(times)), 3)
    finally:
        rec.reranker = before
        cfg.cascade_rounds = rounds
        limit.restore_original_limits()
    out["added_ms"] = round(out["two_stage_ms"] - out["embedding_ms"], 3)
    out["cascade_saves_ms"] = round(out["every_round_ms"] - out["two_stage_ms"], 3)
    return out
