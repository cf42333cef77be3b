"""`dynplayer bench ranker`: the second stage on the test split under the field's protocol
(against the embedding's order of the same candidates: grid, ablation) and under the seed's
protocol over the head (beside peers tuned there on validation), and its CPU time per request.
The whole-catalogue peers are `evaluate`'s field table. Nothing here is tuned on test.
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

from dynplayer.data.corpus import TEST, TRAIN, VAL
from dynplayer.eval.peers import GRIDS, TrainData, tune_peer
from dynplayer.eval.protocol import corpus_eval_set, embedding_scorer, evaluate_scorer
from dynplayer.rank import features as F
from dynplayer.rank.stage import TwoStage, queries_from_order
from dynplayer.rank.title import TitleEvidence
from dynplayer.rank.train import (
    Examples,
    TrainRankerConfig,
    candidate_metrics,
    field_examples,
    fit_ranker,
    prepare,
    served_metrics,
    tune,
)


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
    """The default ranker (trained as `train-ranker` trains it) on the test split: under the
    field's protocol against the embedding on the same candidates, with its grid and ablation;
    under the seed's protocol over the head beside the peers tuned there; its CPU a request."""
    from dynplayer.eval.runner import on_rows

    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    cfg = TrainRankerConfig()
    cfg.params = replace(cfg.params, threads=threads)
    prep = prepare(run_dir, cfg, say)
    groups = list(cfg.groups)
    names = F.features_without(groups, [])
    ranker, _, grid_rows, best_point = tune(prep, cfg, names, say)
    params = replace(cfg.params, **best_point)
    title = TitleEvidence.load(prep.run.path, prep.run.ids) if "title" in groups else None
    test = field_examples(prep.sources, prep.corpus, prep.vocab, prep.train.names, cfg.stage,
                          title, split=TEST)
    say(f"test: {test.n_rel.shape[0]:,} field cases with a known seed, candidate recall "
        f"{test.candidate_recall:.3f}")
    field = {"embedding": (candidate_metrics(prep.val, prep.val.columns(["emb_cos"])[:, 0]),
                           candidate_metrics(test, test.columns(["emb_cos"])[:, 0])),
             "two-stage": (served_metrics(ranker, prep.val, names, cfg.stage),
                           served_metrics(ranker, test, names, cfg.stage)),
             "every round": (candidate_metrics(prep.val, ranker.predict(prep.val.columns(names))),
                             candidate_metrics(test, ranker.predict(test.columns(names))))}
    stage = TwoStage(prep.sources, ranker, cfg.stage, title=title)
    # the seed's protocol: held-out head tracks, ranked over the head
    head = prep.corpus.head_vocab()
    head_rows = np.flatnonzero(np.isin(prep.vocab, head))
    test_es = corpus_eval_set(prep.corpus, TEST, prep.vocab[head_rows])
    val_es = corpus_eval_set(prep.corpus, VAL, prep.vocab[head_rows])
    emb_scorer = on_rows(embedding_scorer(prep.sources.vectors), head_rows, prep.vocab.shape[0])
    seed = {"embedding": evaluate_scorer(emb_scorer, test_es, ks=SEED_KS),
            "two-stage": evaluate_scorer(on_rows(stage, head_rows, prep.vocab.shape[0]),
                                         test_es, ks=SEED_KS)}
    say(f"seed protocol (head): two-stage recall@10 {seed['two-stage']['recall@10']:.4f}")
    train_pl = prep.corpus.playlists_in(TRAIN)
    data = TrainData(prep.corpus.interaction_matrix(train_pl, vocab=prep.vocab[head_rows]))
    peer_rows: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for name in peers:
        t = time.perf_counter()
        tuned = tune_peer(name, data, lambda p: float(evaluate_scorer(
            p.score, val_es, ks=(10,))["recall@10"]), GRIDS.get(name, [{}]),
            threads=threads, log=say)
        peer_rows.append((name, evaluate_scorer(tuned.peer.score, test_es, ks=SEED_KS),
                          {"params": tuned.params,
                           "seconds": round(time.perf_counter() - t, 1)}))
        del tuned
    abl: list[tuple[str, dict[str, float], dict[str, float]]] = []
    if ablation:
        for g in groups:
            keep = F.features_without(groups, [g])
            r = fit_ranker(params, keep, prep.train, prep.val)
            abl.append((g, candidate_metrics(prep.val, r.predict(prep.val.columns(keep))),
                        candidate_metrics(test, r.predict(test.columns(keep)))))
            say(f"without {g}: val {abl[-1][1]}")
    cpu = cpu_per_request(stage, corpus_eval_set(prep.corpus, TEST, prep.vocab).order)
    return _report(run_dir, prep, test, field, seed, peer_rows, abl, grid_rows,
                   ranker.importance(), cpu, time.perf_counter() - t0, threads, cfg.stage)


SEED_KS = (10, 50)
FIELD = ("r_precision", "ndcg", "recall@10")
SEED = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def _cells(m: dict[str, float], keys: tuple[str, ...]) -> str:
    return " | ".join(f"{m[k]:.4f}" for k in keys)


def _report(run_dir: Path, prep: Any, test: Examples,
            field: dict[str, tuple[dict[str, float], dict[str, float]]],
            seed: dict[str, dict[str, Any]], peer_rows: list[Any], abl: list[Any],
            grid_rows: list[dict[str, Any]], importance: dict[str, float],
            cpu: dict[str, float], seconds: float, threads: int, stage_cfg: Any) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Command: `dynplayer bench ranker {run_dir}`. Machine: {platform.machine()}, "
             f"{os.cpu_count()} cores (shared), {threads} threads. Measured {when}; "
             f"{seconds:.0f} s in all.", "",
             f"**Field protocol** (the challenge's categories; cases with a seed the vocabulary "
             f"holds: {test.n_rel.shape[0]:,} of the test split; candidates per case "
             f"{test.x.shape[0] / max(test.n_rel.shape[0], 1):.0f} on average, holding "
             f"{test.candidate_recall:.3f} of the truth tracks). Ranker trained on "
             f"{prep.train.n_rel.shape[0]:,} carved-out training playlists "
             f"({prep.train.x.shape[0]:,} candidates), settings chosen on "
             f"{prep.val.n_rel.shape[0]:,} validation cases.", "",
             "| ranking | val R-precision | val NDCG | val Recall@10 | test R-precision | "
             "test NDCG | test Recall@10 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, (mv, mt) in field.items():
        label = {"two-stage": "**two-stage** (as served: the cascade)",
                 "every round": "two-stage, every round on every candidate"}.get(name, name)
        lines.append(f"| {label} | {_cells(mv, FIELD)} | {_cells(mt, FIELD)} |")
    lines += ["", "**Seed protocol** (held-out head tracks ranked over the head, "
              f"{seed['embedding']['n_items']:,} tracks; {seed['embedding']['n_playlists']:,} "
              "test playlists):", "", "| method | " + " | ".join(SEED) + " |",
              "|---|" + "---:|" * len(SEED)]
    for name, m in seed.items():
        lines.append(f"| {'**two-stage**' if name == 'two-stage' else name} | "
                     f"{_cells(m, SEED)} |")
    for name, m, info in peer_rows:
        p = ", ".join(f"{k}={v}" for k, v in info["params"].items())
        lines.append(f"| {name} ({p}) | {_cells(m, SEED)} |")
    lines += ["", "Grid (validation, field cases):", "",
              "| point | rounds | val R-precision | val NDCG | fit s |",
              "|---|---:|---:|---:|---:|"]
    for r in grid_rows:
        point = ", ".join(f"{k}={v}" for k, v in r.items()
                          if k != "rounds" and not k.startswith("val_") and k != "fit_seconds")
        lines.append(f"| {point} | {r['rounds']} | {r.get('val_r_precision', 0):.4f} | "
                     f"{r.get('val_ndcg', 0):.4f} | {r['fit_seconds']} |")
    if abl:
        lines += ["", "Ablation (each feature group removed, refitted with the chosen settings):",
                  "", "| without | val R-precision | val NDCG | test R-precision | test NDCG |",
                  "|---|---:|---:|---:|---:|",
                  f"| (nothing: all groups) | {field['two-stage'][0]['r_precision']:.4f} | "
                  f"{field['two-stage'][0]['ndcg']:.4f} | "
                  f"{field['two-stage'][1]['r_precision']:.4f} | "
                  f"{field['two-stage'][1]['ndcg']:.4f} |"]
        for g, mv, mt in abl:
            lines.append(f"| {g} ({', '.join(F.GROUPS[g])}) | {mv['r_precision']:.4f} | "
                         f"{mv['ndcg']:.4f} | {mt['r_precision']:.4f} | {mt['ndcg']:.4f} |")
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:8]
    lines += ["", "Gain share of the top features: " + ", ".join(f"{k} {v:.3f}" for k, v in top),
              "", f"The two-stage rows rank as served: the first {stage_cfg.cascade_rounds} "
              f"boosting rounds score every candidate, the rest only each playlist's best "
              f"{stage_cfg.cascade_keep}.",
              "", f"CPU per request (one playlist, median of {cpu['requests']} test playlists, "
              f"1 thread): two-stage {cpu['two_stage_ms']:.1f} ms, embedding ranking alone "
              f"{cpu['embedding_ms']:.1f} ms: the ranker adds "
              f"{cpu['two_stage_ms'] - cpu['embedding_ms']:.1f} ms."]
    return "\n".join(lines)
