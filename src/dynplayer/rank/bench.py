"""`dynplayer bench ranker`: the second stage against the embedding ranking and the classical
peers (tuned on validation with `eval.peers.GRIDS`) on the test split, the feature-group
ablation, and the ranker's CPU time per request.

Peers are shown twice: ranking the whole vocabulary (the `evaluate` protocol), and ranking the
same candidates from the same seeds as the two-stage ranker. Nothing here is tuned on test.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from dynplayer.data.corpus import TEST, TRAIN
from dynplayer.eval.peers import GRIDS, TrainData, tune_peer
from dynplayer.eval.protocol import corpus_eval_set, evaluate_scorer
from dynplayer.rank import features as F
from dynplayer.rank.stage import TwoStage, queries_from_order
from dynplayer.rank.train import (
    Examples,
    TrainRankerConfig,
    candidate_metrics,
    eval_examples,
    fit_ranker,
    prepare,
    served_metrics,
    tune,
)

KEYS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def _row(name: str, m: dict[str, float], note: str = "") -> str:
    return f"| {name} | " + " | ".join(f"{m[k]:.4f}" for k in KEYS) + f" | {note} |"


def _peer_candidate_scores(score: Callable[[Any], np.ndarray], visible: Any,
                           ex: Examples) -> np.ndarray:
    out = np.zeros(ex.rows.shape[0], dtype=np.float32)
    bounds = np.searchsorted(ex.rows, np.arange(0, visible.shape[0] + 256, 256))
    for i, start in enumerate(range(0, visible.shape[0], 256)):
        s = score(visible[start:start + 256])
        a, b = bounds[i], bounds[i + 1]
        out[a:b] = s[ex.rows[a:b] - start, ex.cols[a:b]]
    return out


def cpu_per_request(stage: TwoStage, order: Any, n: int = 200) -> dict[str, float]:
    """Median process CPU ms of one request (one playlist) through the two-stage ranker, and
    through the embedding ranking alone (normalised mean -> cosine with every track -> top 50)."""
    q_all = queries_from_order(order[:n])
    ranker_threads = stage.ranker.params.threads
    stage.ranker.params.threads = 1
    two, emb = [], []
    v = stage.sources.vectors
    limit = threadpool_limits(1, "blas")  # as serving does (`ServingRanker.rank`)
    try:
        for i in range(q_all.n):
            q = q_all.slice(i, i + 1)
            t = time.process_time()
            stage.rank(q, 50)
            two.append(time.process_time() - t)
            t = time.process_time()
            mean = v[q.seed_cols].mean(axis=0)
            s = v @ (mean / max(float(np.linalg.norm(mean)), 1e-12))
            np.argpartition(-s, 50)[:50]
            emb.append(time.process_time() - t)
    finally:
        stage.ranker.params.threads = ranker_threads
        limit.restore_original_limits()
    return {"two_stage_ms": 1e3 * float(np.median(two)), "embedding_ms": 1e3 * float(
        np.median(emb)), "requests": q_all.n}


def run_bench(run_dir: Path, peers: list[str], *, ablation: bool = True, threads: int = 2,
              log: Callable[[str], None] | None = None) -> str:
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    cfg = TrainRankerConfig()
    cfg.params = replace(cfg.params, threads=threads)
    prep = prepare(run_dir, cfg, say)
    groups = list(cfg.groups)
    names = F.features_without(groups, [])
    ranker, val_two, grid_rows, best_point = tune(prep, cfg, names, say)
    params = replace(cfg.params, **best_point)
    test_es = corpus_eval_set(prep.corpus, TEST, prep.vocab)
    test = eval_examples(prep.sources, test_es, prep.train.names, cfg.stage)
    say(f"test: {test.n_rel.shape[0]:,} playlists, candidate recall {test.candidate_recall:.3f}")
    emb_val = candidate_metrics(prep.val, prep.val.columns(["emb_cos"])[:, 0])
    emb_test = candidate_metrics(test, test.columns(["emb_cos"])[:, 0])
    every_round = candidate_metrics(test, ranker.predict(test.columns(names)))
    # the cascade, as `recommend` and the API rank
    two_test = served_metrics(ranker, test, names, cfg.stage)
    val_two = served_metrics(ranker, prep.val, names, cfg.stage)
    say(f"cascade ({cfg.stage.cascade_rounds} rounds for all, the rest for the best "
        f"{cfg.stage.cascade_keep}): test recall@10 {two_test['recall@10']:.4f}; every round "
        f"on every candidate {every_round['recall@10']:.4f}")
    stage = TwoStage(prep.sources, ranker, cfg.stage)
    full_check = evaluate_scorer(stage, test_es, ks=(10, 50))  # the protocol, whole vocabulary
    say(f"two-stage test recall@10 {two_test['recall@10']:.4f} (protocol "
        f"{full_check['recall@10']:.4f}), embedding {emb_test['recall@10']:.4f}")

    # peers, tuned on validation, on the same test playlists
    train_pl = prep.corpus.playlists_in(TRAIN)
    data = TrainData(prep.corpus.interaction_matrix(train_pl, vocab=prep.vocab))
    peer_rows: list[tuple[str, dict[str, float], dict[str, float], dict[str, Any]]] = []
    for name in peers:
        t = time.perf_counter()
        tuned = tune_peer(name, data, lambda p: float(evaluate_scorer(
            p.score, prep.val_es, ks=(10,))["recall@10"]), GRIDS.get(name, [{}]),
            threads=threads, log=say)
        full = evaluate_scorer(tuned.peer.score, test_es, ks=(10, 50))
        same = candidate_metrics(test, _peer_candidate_scores(tuned.peer.score,
                                                              test_es.visible, test))
        peer_rows.append((name, full, same, {"params": tuned.params,
                                             "seconds": round(time.perf_counter() - t, 1)}))
        say(f"{name} {tuned.params}: test recall@10 {full['recall@10']:.4f} (same candidates "
            f"{same['recall@10']:.4f})")
        del tuned

    abl: list[tuple[str, dict[str, float], dict[str, float]]] = []
    if ablation:
        for g in groups:
            keep = F.features_without(groups, [g])
            r = fit_ranker(params, keep, prep.train, prep.val)
            mv = candidate_metrics(prep.val, r.predict(prep.val.columns(keep)))
            mt = candidate_metrics(test, r.predict(test.columns(keep)))
            abl.append((g, mv, mt))
            say(f"without {g}: val recall@10 {mv['recall@10']:.4f}, test {mt['recall@10']:.4f}")
    cpu = cpu_per_request(stage, test_es.order)
    return _report(run_dir, prep, test, emb_val, val_two, emb_test, two_test, full_check,
                   peer_rows, abl, grid_rows, ranker.importance(), cpu,
                   time.perf_counter() - t0, threads, every_round, cfg.stage)


def _report(run_dir: Path, prep: Any, test: Examples, emb_val: dict[str, float],
            val_two: dict[str, float], emb_test: dict[str, float],
            two_test: dict[str, float], full_check: dict[str, Any],
            peer_rows: list[Any], abl: list[Any], grid_rows: list[dict[str, Any]],
            importance: dict[str, float], cpu: dict[str, float], seconds: float,
            threads: int, every_round: dict[str, float], stage_cfg: Any) -> str:
    head = "| method | " + " | ".join(KEYS) + " | note |\n|---|" + "---:|" * len(KEYS) + "---|"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Command: `dynplayer bench ranker {run_dir}`. Machine: {platform.machine()}, "
             f"{os.cpu_count()} cores (shared), {threads} threads. Measured {when}; "
             f"{seconds:.0f} s in all.", "",
             f"Test split: {test.n_rel.shape[0]:,} playlists; candidates per playlist "
             f"{test.x.shape[0] / max(test.n_rel.shape[0], 1):.0f} on average, holding "
             f"{test.candidate_recall:.3f} of the held-out tracks. Ranker trained on "
             f"{prep.train.n_rel.shape[0]:,} carved-out training playlists "
             f"({prep.train.x.shape[0]:,} candidates), settings chosen on "
             f"{prep.val.n_rel.shape[0]:,} validation playlists.", "", head,
             _row("embedding only (dynplayer)", emb_test),
             _row("**two-stage** (embedding + ranker)", two_test,
                  f"protocol over the whole vocabulary: recall@10 {full_check['recall@10']:.4f}")]
    best: dict[str, float] = {k: 0.0 for k in KEYS}
    best_name: dict[str, str] = {}
    for name, full, same, info in peer_rows:
        p = ", ".join(f"{k}={v}" for k, v in info["params"].items())
        lines.append(_row(f"{name} ({p}), whole vocabulary", full))
        lines.append(_row(f"{name}, same candidates", same))
        for k in KEYS:
            for m in (full, same):
                if m[k] > best[k]:
                    best[k], best_name[k] = m[k], name
    if peer_rows:
        lines += ["", "Ratios of the two-stage ranker to the best peer row (either way of "
                  "ranking):", ""]
        for k in ("recall@10", "ndcg@10"):
            lines.append(f"- {k}: {two_test[k]:.4f} / {best[k]:.4f} ({best_name[k]}) = "
                         f"**{two_test[k] / max(best[k], 1e-12):.3f}x**; embedding only "
                         f"{emb_test[k] / max(best[k], 1e-12):.3f}x")
    lines += ["", f"The two-stage rows rank as served: the first {stage_cfg.cascade_rounds} "
              f"boosting rounds score every candidate, the rest only each playlist's best "
              f"{stage_cfg.cascade_keep}. Every round on every candidate: test recall@10 "
              f"{every_round['recall@10']:.4f} / ndcg@10 {every_round['ndcg@10']:.4f}."]
    lines += ["", f"Validation: embedding recall@10 {emb_val['recall@10']:.4f} / ndcg@10 "
              f"{emb_val['ndcg@10']:.4f}; two-stage {val_two['recall@10']:.4f} / "
              f"{val_two['ndcg@10']:.4f}. Grid (validation):", "",
              "| point | rounds | val recall@10 | val ndcg@10 | fit s |",
              "|---|---:|---:|---:|---:|"]
    for r in grid_rows:
        point = ", ".join(f"{k}={v}" for k, v in r.items() if k not in (
            "rounds", "val_recall@10", "val_ndcg@10", "fit_seconds"))
        lines.append(f"| {point} | {r['rounds']} | {r['val_recall@10']:.4f} | "
                     f"{r['val_ndcg@10']:.4f} | {r['fit_seconds']} |")
    if abl:
        lines += ["", "Ablation (each feature group removed, refitted with the chosen settings):",
                  "", "| without | val recall@10 | val ndcg@10 | test recall@10 | test ndcg@10 |",
                  "|---|---:|---:|---:|---:|",
                  f"| (nothing: all groups) | {val_two['recall@10']:.4f} | "
                  f"{val_two['ndcg@10']:.4f} | {two_test['recall@10']:.4f} | "
                  f"{two_test['ndcg@10']:.4f} |"]
        for g, mv, mt in abl:
            lines.append(f"| {g} ({', '.join(F.GROUPS[g])}) | {mv['recall@10']:.4f} | "
                         f"{mv['ndcg@10']:.4f} | {mt['recall@10']:.4f} | {mt['ndcg@10']:.4f} |")
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:8]
    lines += ["", "Gain share of the top features: " + ", ".join(f"{k} {v:.3f}" for k, v in top),
              "", f"CPU per request (one playlist, median of {cpu['requests']} test playlists, "
              f"1 thread): two-stage {cpu['two_stage_ms']:.1f} ms, embedding ranking alone "
              f"{cpu['embedding_ms']:.1f} ms: the ranker adds "
              f"{cpu['two_stage_ms'] - cpu['embedding_ms']:.1f} ms."]
    return "\n".join(lines)
